"""ModalBackend end to end against a local fake of Modal (same transport interface)."""

from __future__ import annotations

import json
import time

import pytest
from backend_fakes import stub_backend
from stage_files import read_events

from core.backends.errors import CredentialsMissing
from core.backends.modal.backend import ModalBackend
from core.contracts import JobHandle
SERVICE = "modal"  # the conftest's `fake` and `backend`


def test_submit_relay_fetch(backend, fake, make_spec, tmp_path, wait):
    spec = make_spec(lexicon=True)
    out = tmp_path / "run1" / "general"
    handle = backend.submit(spec, out)
    assert handle.job_id.startswith("fc-") and handle.details["remote_out"] == f"runs/fr/00-general-{spec.key}"
    status = wait(backend, handle)
    assert status.state == "succeeded" and status.exit_code == 0
    relayed = read_events(out)
    assert [e["metrics"]["loss"] for e in relayed if e["type"] == "metric"] == [1.0, 0.5, 1 / 3]
    assert relayed[-1]["type"] == "done"
    assert "stub runner: stage general" in (out / "stage.log").read_text()
    backend.fetch(handle)
    assert (out / "model" / "model.safetensors").is_file() and json.loads((out / "metrics.json").read_text())["key"] == spec.key
    assert not (out / "checkpoints").exists()  # not fetched by default
    remote_spec = json.loads((out / "spec.remote.json").read_text())
    assert remote_spec["stage"]["lexicon"].startswith("/vol/inputs/")
    assert json.loads((out / ".palier-remote.json").read_text()) == {"backend": "modal", "volume": "palier", "path": handle.details["remote_out"]}
    # the shipped copies are what the runner read
    train_line = next(e["message"] for e in relayed if e["type"] == "log" and e["message"].startswith("stub stage"))
    assert str(fake.root / "inputs") in train_line


def test_unchanged_inputs_are_uploaded_once(backend, fake, make_spec, tmp_path, wait):
    for attempt in range(2):
        wait(backend, backend.submit(make_spec(), tmp_path / f"run{attempt}"))
    assert len([p for p in fake.uploaded if p.endswith(".complete")]) == 2  # train + test, once each


def test_next_stage_starts_from_the_volume_copy_of_the_previous_output(backend, fake, make_spec, tmp_path, wait):
    first = tmp_path / "s1"
    handle = backend.submit(make_spec(), first)
    wait(backend, handle)
    backend.fetch(handle)
    second = backend.submit(make_spec(name="fr2", base_model=str(first / "model")), tmp_path / "s2")
    remote = json.loads((tmp_path / "s2" / "spec.remote.json").read_text())
    assert remote["base_model"] == f"/vol/{handle.details['remote_out']}/model"
    assert "base_model" not in second.details["inputs"]  # nothing uploaded for it


def test_a_restarted_flow_reattaches_from_the_recorded_handle(backend, fake, make_spec, tmp_path, wait, child_env):
    child_env["STUB_MODE"] = "ok"
    out = tmp_path / "out"
    recorded = backend.submit(make_spec(), out).model_dump_json()
    # the orchestrator process dies here; a new one reads the handle back
    handle = JobHandle.model_validate_json(recorded)
    restarted = stub_backend(fake)
    assert restarted.reattach(handle)
    assert wait(restarted, handle).state == "succeeded"
    assert sum(1 for e in read_events(out) if e["type"] == "done") == 1  # no duplicated events
    # once Modal has forgotten the call, the volume's exit marker still answers
    fake.forget(handle.job_id)
    assert restarted.reattach(handle) and restarted.poll(handle).state == "succeeded"


def test_cancel_stops_the_runner_gracefully(fake, make_spec, tmp_path, wait):
    fake.env["STUB_MODE"] = "slow"
    backend = stub_backend(fake)
    out = tmp_path / "out"
    handle = backend.submit(make_spec(), out)
    deadline = time.time() + 30
    while backend.poll(handle).state != "running" and time.time() < deadline:
        time.sleep(0.1)
    backend.cancel(handle)
    assert wait(backend, handle).state == "cancelled"
    remote_out = fake.local(handle.details["remote_out"])
    assert (remote_out / "exit_code").read_text() == "130"  # the runner saw SIGTERM and exited as cancelled


def test_retry_resumes_from_the_checkpoints_on_the_volume(fake, make_spec, tmp_path, wait):
    fake.env["STUB_MODE"] = "fail"
    backend = stub_backend(fake)
    first = backend.submit(make_spec(), tmp_path / "attempt1")
    failed = wait(backend, first)
    assert failed.state == "failed" and "exited with code 1" in failed.message
    backend.fetch(first)  # a failed stage's logs can be fetched; no completeness required
    fake.env["STUB_MODE"] = "ok"
    second = backend.submit(make_spec(), tmp_path / "attempt2")
    assert second.details["remote_out"] == first.details["remote_out"]
    assert wait(backend, second).state == "succeeded"
    backend.fetch(second)
    assert json.loads((tmp_path / "attempt2" / "metrics.json").read_text())["resumed"] is True
    starts = [e for e in read_events(tmp_path / "attempt2") if e["type"] == "log" and e["message"].startswith("stub stage")]
    assert len(starts) == 1  # only this attempt's events were relayed


def test_without_a_token_submit_says_how_to_log_in(make_spec, tmp_path, no_credentials):
    with pytest.raises(CredentialsMissing, match="modal setup"):
        ModalBackend().submit(make_spec(), tmp_path / "out")


def test_container_function_commits_the_volume(monkeypatch, tmp_path, child_env):
    import modal

    from core.backends.modal.container import run_stage_in_container

    commits = []

    class FakeVolume:
        def commit(self):
            commits.append(time.time())

    monkeypatch.setattr(modal.Volume, "from_name", lambda name, **_: FakeVolume())
    monkeypatch.setenv("PYTHONPATH", child_env["PYTHONPATH"])
    out = tmp_path / "vol" / "runs" / "x"
    request = {"volume": "palier", "out_dir": str(out), "spec_json": "{}", "env": {}, "timeout_s": 60,
               "commit_every_s": 60, "command": ["python", "-c", "print('hello from the container')"]}
    assert run_stage_in_container(request) == {"exit_code": 0}
    assert (out / "spec.json").read_text() == "{}" and "hello" in (out / "stage.log").read_text()
    assert len(commits) >= 2  # at start and after the exit marker
