"""KaggleBackend end to end against a local fake of Kaggle that runs the generated kernel script."""

from __future__ import annotations

import json

import pytest
from backend_fakes import stub_backend

from core.backends.errors import CredentialsMissing, QuotaExceeded, RemoteOutputInvalid
from core.backends.kaggle.backend import KaggleBackend
from core.contracts import JobHandle
from stage_files import read_events

ERROR_PAGE = "<!DOCTYPE html><html><head><title>Error 500 (Server Error)</title></head><body></body></html>"
SERVICE = "kaggle"  # the conftest's `fake` and `backend`


def test_push_run_relay_and_fetch_through_the_generated_script(backend, fake, make_spec, tmp_path, wait):
    spec = make_spec(backend={"kind": "kaggle", "device": "cpu"}, lexicon=True)
    out = tmp_path / "out"
    handle = backend.submit(spec, out)
    assert handle.job_id == "tester/palier-fr-general" and handle.details["version"] == 1
    assert fake.pushes[0]["is_private"] is True and fake.datasets["tester/palier-fr-general-inputs"]["versions"] == 1
    status = wait(backend, handle)
    assert status.state == "succeeded", (fake.sessions[handle.job_id]["lines"])[-20:]
    backend.fetch(handle)
    got = read_events(out)
    assert [e["metrics"]["loss"] for e in got if e["type"] == "metric"] == [1.0, 0.5, 1 / 3]
    assert sum(e["type"] == "done" for e in got) == 1  # live relay + final merge, no duplicates
    assert (out / "model" / "model.safetensors").is_file() and (out / "metrics.json").is_file()
    assert not (out / "checkpoints").exists()  # dropped in the kernel: Kaggle's output limit
    assert "stub runner: stage general" in (out / "stage.log").read_text()
    assert "palier: stage runner exited with code 0" in (out / "kaggle.log").read_text()
    shipped = json.loads((out / "spec.remote.json").read_text())
    assert "/tmp/" in shipped["stage"]["lexicon"] and "@@" not in (out / "spec.remote.json").read_text()


def test_next_stage_mounts_the_previous_kernel_output_instead_of_uploading_the_model(backend, fake, make_spec,
                                                                                       tmp_path, wait):
    first = tmp_path / "s1"
    handle = backend.submit(make_spec(backend={"kind": "kaggle", "device": "cpu"}), first)
    assert wait(backend, handle).state == "succeeded"
    backend.fetch(handle)
    second_spec = make_spec(name="fr2", backend={"kind": "kaggle", "device": "cpu"}, base_model=str(first / "model"))
    second = backend.submit(second_spec, tmp_path / "s2")
    assert fake.pushes[1]["kernel_sources"] == [handle.job_id] == ["tester/palier-fr-general"]
    assert "base_model" not in second.details["inputs"]  # nothing uploaded for it
    tars = {p.name for p in fake.datasets["tester/palier-fr2-general-inputs"]["folder"].glob("*.tar")}
    assert len(tars) == 2  # train and test data only
    assert wait(backend, second).state == "succeeded", fake.sessions[second.job_id]["lines"][-20:]
    backend.fetch(second)
    mounted = fake.sessions[second.job_id]["session"] / "input" / "notebooks" / handle.job_id / "out" / "model"
    assert json.loads((tmp_path / "s2" / "spec.remote.json").read_text())["base_model"] == str(mounted)
    assert f"stub runner: stage general base={mounted}" in (tmp_path / "s2" / "stage.log").read_text()
    assert (mounted / "model.safetensors").read_bytes() == (first / "model" / "model.safetensors").read_bytes()

    # The first kernel pushed again (another run): its mounted output would not be this model any more.
    again = backend.submit(make_spec(backend={"kind": "kaggle", "device": "cpu"}), tmp_path / "s1b")
    assert wait(backend, again).finished and again.details["version"] == 2
    third = backend.submit(second_spec, tmp_path / "s3")
    assert fake.pushes[-1]["kernel_sources"] == [] and "base_model" in third.details["inputs"]
    assert wait(backend, third).state == "succeeded"


def test_inputs_dataset_gets_a_new_version_only_when_content_changes(backend, fake, make_spec, local_data, tmp_path, wait):
    for attempt in range(2):
        wait(backend, backend.submit(make_spec(backend={"kind": "kaggle", "device": "cpu"}), tmp_path / f"a{attempt}"))
    assert fake.datasets["tester/palier-fr-general-inputs"]["versions"] == 1
    (local_data / "clips" / "0.wav").write_bytes(b"RIFF new recording")
    wait(backend, backend.submit(make_spec(backend={"kind": "kaggle", "device": "cpu"}), tmp_path / "a2"))
    assert fake.datasets["tester/palier-fr-general-inputs"]["versions"] == 2


def test_an_error_page_saved_as_output_is_rejected(backend, fake, make_spec, tmp_path, wait):
    handle = backend.submit(make_spec(backend={"kind": "kaggle", "device": "cpu"}), tmp_path / "out")
    assert wait(backend, handle).state == "succeeded"
    fake.tamper_output = lambda out: (out / "model" / "model.safetensors").write_text(ERROR_PAGE)
    with pytest.raises(RemoteOutputInvalid, match="model/model.safetensors: is an HTML page"):
        backend.fetch(handle)
    assert not (tmp_path / "out" / "model").exists()  # nothing half-installed


def test_failed_stage_reports_and_still_brings_logs(backend, fake, make_spec, tmp_path, wait):
    fake.env["STUB_MODE"] = "fail"
    handle = backend.submit(make_spec(backend={"kind": "kaggle", "device": "cpu"}), tmp_path / "out")
    status = wait(backend, handle)
    assert status.state == "failed" and "exited with code 1" in status.message
    backend.fetch(handle)
    assert "stub failure" in (tmp_path / "out" / "stage.log").read_text()


def test_session_limit_is_a_clear_quota_error(backend, fake, make_spec, tmp_path):
    fake.push_error = "Maximum batch GPU session count of 2 reached."
    with pytest.raises(QuotaExceeded, match="2 GPU sessions at once"):
        backend.submit(make_spec(backend={"kind": "kaggle"}), tmp_path / "out")


def test_reattach_from_a_recorded_handle(backend, fake, make_spec, tmp_path, wait):
    recorded = backend.submit(make_spec(backend={"kind": "kaggle", "device": "cpu"}), tmp_path / "out").model_dump_json()
    restarted = stub_backend(fake)
    handle = JobHandle.model_validate_json(recorded)
    assert restarted.reattach(handle) and wait(restarted, handle).state == "succeeded"
    assert not restarted.reattach(handle.model_copy(update={"job_id": "tester/never-pushed"}))


def test_cancel_never_claims_a_stop_it_cannot_do(backend, make_spec, tmp_path, wait):
    handle = backend.submit(make_spec(backend={"kind": "kaggle", "device": "cpu"}), tmp_path / "out")
    result = backend.cancel(handle)
    assert result.stopped is False
    assert "https://www.kaggle.com/code/tester/palier-fr-general" in result.message and "kaggle-cli/pull/1174" in result.message
    wait(backend, handle)


def test_without_credentials_submit_says_where_to_put_them(make_spec, tmp_path, no_credentials):
    with pytest.raises(CredentialsMissing, match="~/.kaggle/access_token"):
        KaggleBackend().submit(make_spec(backend={"kind": "kaggle"}), tmp_path / "out")
