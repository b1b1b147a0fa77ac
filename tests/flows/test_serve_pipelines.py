"""flows/serve.py: one deployment per pipeline file, kept in step with the folder by `palier up`
without restarting the serving process; a blocked preflight ends its deployment run without a
traceback in the flow run's log."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from e2e_services import BIN, deployment_run, flow_run_id
from tiny import tiny_asr_pipeline


def _write(path, name: str, description: str = "A test pipeline.", base_model=None, **kwargs) -> None:
    tiny_asr_pipeline(path, base_model or path.parent / "model", stages=1, name=name, **kwargs)
    plan = yaml.safe_load(path.read_text(encoding="utf-8"))
    path.write_text(yaml.safe_dump({"description": description, **plan}, sort_keys=False), encoding="utf-8")


def test_scan_serves_valid_files_and_names_each_invalid_one(tmp_path):
    from flows.serve import scan

    _write(tmp_path / "a.yaml", "alpha")
    _write(tmp_path / "b.yaml", "alpha")  # the same deployment name as a.yaml
    (tmp_path / "c.yaml").write_text("name: gamma\nstages: 3\n", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not a pipeline", encoding="utf-8")

    found = scan(tmp_path)

    assert found.files == {"alpha": tmp_path / "a.yaml"}
    assert set(found.invalid) == {str(tmp_path / "b.yaml"), str(tmp_path / "c.yaml")}
    assert "already served from" in found.invalid[str(tmp_path / "b.yaml")]
    assert found.invalid[str(tmp_path / "c.yaml")].startswith(f"{tmp_path / 'c.yaml'}: invalid pipeline")


def test_a_changed_file_changes_its_fingerprint_and_is_applied_again(tmp_path):
    from flows.serve import changes, scan

    _write(tmp_path / "a.yaml", "alpha")
    before = scan(tmp_path).fingerprints
    _write(tmp_path / "a.yaml", "alpha", description="Edited.")
    after = scan(tmp_path).fingerprints
    assert before["alpha"] != after["alpha"]
    assert changes(before, after) == (["alpha"], [])
    assert changes(after, after) == ([], [])


def test_changes_adds_new_names_and_removes_gone_ones():
    from flows.serve import changes

    served = {"kept": "1", "edited": "2", "gone": "3", "left-by-an-earlier-process": ""}
    wanted = {"kept": "1", "edited": "2b", "new": "4"}
    assert changes(served, wanted) == (["edited", "new"], ["gone", "left-by-an-earlier-process"])


def _up(services) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "palier"), "up", "--pipelines", str(services["pipelines"])],
                          capture_output=True, text=True, env=services["env"], timeout=300)


def _deployment(client, name: str):
    from prefect.exceptions import ObjectNotFound

    try:
        return client.read_deployment_by_name(f"exp-pipeline/{name}")
    except ObjectNotFound:
        return None


def _flow_run_logs(client, flow_run: str) -> list[str]:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    return [log.message for log in client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run])))]


@pytest.mark.e2e
def test_palier_up_serves_added_changed_and_deleted_files_without_restarting(services, tiny_whisper):
    from prefect.client.orchestration import SyncPrefectClient

    from palier.services import read_state

    client = SyncPrefectClient(services["env"]["PREFECT_API_URL"])
    folder = services["pipelines"]
    serving_pid = read_state()["serve"]["pid"]
    added, bad = folder / "my-exp.yaml", folder / "bad.yaml"
    # A lexicon that is not there: the preflight blocks the run before any stage.
    _write(added, "my-exp", base_model=tiny_whisper, lexicon=folder / "no-such-lexicon.txt")
    bad.write_text("name: bad\nstages: 3\n", encoding="utf-8")
    try:
        proc = _up(services)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "exp-pipeline/my-exp" in proc.stdout and "exp-pipeline/tiny" in proc.stdout
        assert f"not served: {bad}: invalid pipeline" in proc.stderr and "stages:" in proc.stderr
        assert read_state()["serve"]["pid"] == serving_pid  # the runs it started go on
        assert _deployment(client, "my-exp").parameters == {"pipeline": str(added.resolve())}

        run = deployment_run(services["env"], "my-exp", timeout_s=300)
        flow_run = client.read_flow_run(flow_run_id(run.stdout))
        assert flow_run.state.is_failed() and flow_run.state.message.startswith("preflight blocked the pipeline")
        logs = "\n".join(_flow_run_logs(client, str(flow_run.id)))
        assert "[BLOCK] data.lexicon-exists" in logs and "not started: preflight blocked it" in logs, logs
        assert "Traceback" not in logs and "PreflightBlocked" not in logs, logs

        _write(added, "my-exp", "Edited while served.", base_model=tiny_whisper, lexicon=folder / "no-such-lexicon.txt")
        assert _up(services).returncode == 0
        assert _deployment(client, "my-exp").description == "Edited while served."
    finally:
        added.unlink(missing_ok=True)
        bad.unlink(missing_ok=True)
        proc = _up(services)
    assert proc.returncode == 0 and "not served" not in proc.stderr, proc.stderr
    assert _deployment(client, "my-exp") is None and _deployment(client, "tiny") is not None
    assert read_state()["serve"]["pid"] == serving_pid
