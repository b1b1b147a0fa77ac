"""The installed modal 1.6.4 client against a local gRPC server speaking Modal's own protocol
(modal_api_fake): palier's reading of call results and errors goes through the client's real
request building, retries and result decoding. Not exercised: what the real service sends
beyond these documented result statuses and gRPC codes."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
from grpclib import Status
from modal_api_fake import FakeModalServer, error, finished, running
from modal_proto import api_pb2

from core.backends.errors import CredentialsMissing, ServiceUnavailable
from core.backends.modal.backend import ModalBackend
from core.backends.modal.client import ModalClient

STATUS = api_pb2.GenericResult


@pytest.fixture(scope="module")
def modal_api():
    import modal.client

    saved = {k: os.environ.get(k) for k in ("MODAL_SERVER_URL", "MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET")}
    with FakeModalServer() as server:
        os.environ.update(MODAL_SERVER_URL=server.url, MODAL_TOKEN_ID="ak-test", MODAL_TOKEN_SECRET="as-test")
        modal.client._Client._client_from_env = None
        yield server
        modal.client._Client._client_from_env = None
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def api(modal_api):
    modal_api.api.answers.clear()
    modal_api.api.calls.clear()
    return modal_api.api


def test_call_results_as_modal_sends_them(api):
    client = ModalClient("palier")
    api.answer("FunctionGetOutputs", running(),
               finished(STATUS.GENERIC_STATUS_SUCCESS, value={"exit_code": 0}),
               finished(STATUS.GENERIC_STATUS_SUCCESS, value={"exit_code": 130}),
               finished(STATUS.GENERIC_STATUS_TIMEOUT, "Function timed out after 86400 s"))
    assert client.call_state("fc-1").state == "running"
    assert client.call_state("fc-1").state == "succeeded"
    assert client.call_state("fc-1").state == "cancelled"  # the runner stopped on SIGTERM
    timed_out = client.call_state("fc-1")
    assert timed_out.state == "failed" and timed_out.exit_code == 124 and "timeout" in timed_out.message
    request = api.calls[0][1]
    assert request.function_call_id == "fc-1" and request.clear_on_success is False  # the result stays readable


def test_a_terminated_call_is_cancelled_with_its_reason_not_a_blank_failure(api):
    api.answer("FunctionGetOutputs", finished(STATUS.GENERIC_STATUS_TERMINATED))
    state = ModalClient("palier").call_state("fc-2")
    assert state.state == "cancelled" and "Modal terminated the call" in state.message and "modal app stop" in state.message


def test_outages_are_transient_and_a_bad_token_is_permanent(api):
    api.answer("FunctionGetOutputs", *[error(Status.UNAVAILABLE, "upstream connect error")] * 30)
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable, match="upstream connect error"):
        ModalClient("palier").call_state("fc-3")
    assert len(api.calls) > 1  # modal's own retries ran first
    assert time.monotonic() - started < 30
    api.answers.clear()
    api.answer("FunctionGetOutputs", error(Status.UNAUTHENTICATED, "Invalid token"))
    with pytest.raises(CredentialsMissing, match="modal token new"):
        ModalClient("palier").call_state("fc-3")


def test_cancel_reaches_modal_and_is_reported_only_when_accepted(api):
    handle = type("H", (), {"job_id": "fc-4", "details": {"volume": "palier", "app": "palier"}})()
    assert ModalBackend(transport=ModalClient("palier")).cancel(handle).stopped
    assert api.calls[-1][0] == "FunctionCallCancel" and api.calls[-1][1].function_call_id == "fc-4"
    api.answer("FunctionCallCancel", error(Status.UNAVAILABLE, "down"), *[error(Status.UNAVAILABLE, "down")] * 30)
    refused = ModalBackend(transport=ModalClient("palier")).cancel(handle)
    assert not refused.stopped and "modal app stop palier" in refused.message


def test_container_commits_publish_while_the_runner_writes_with_no_open_files(api, tmp_path, child_env, monkeypatch):
    """The periodic commit is modal's real Volume.commit() (commit, then reload); the reload fails
    on Modal while a file on the volume is open, so none of palier's may be open at a commit."""
    import modal

    from core.backends.modal.container import commit
    from core.backends.supervisor import supervise

    out = tmp_path / "vol" / "runs" / "x"
    volume = modal.Volume.from_name("palier")
    open_at_commit: list[str] = []

    def tick():
        open_at_commit.extend(open_files_under(out))
        commit(volume)

    spec = out / "spec.json"
    out.mkdir(parents=True)
    spec.write_text(_stub_spec(), encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", child_env["PYTHONPATH"])
    code = supervise([sys.executable, "-m", "stub_stage", "--spec", str(spec), "--out", str(out)], out,
                     {"STUB_STEPS": "6", "STUB_STEP_S": "0.3"}, on_tick=tick, tick_every_s=0.2)
    assert code == 0
    commits = [name for name, _ in api.calls if name == "VolumeCommit"]
    assert len(commits) >= 4 and [n for n, _ in api.calls].count("VolumeReload") == len(commits)
    assert open_at_commit == []
    # a reload refused for open files (a checkpoint being written) is reported, not raised
    api.answer("VolumeReload", error(Status.FAILED_PRECONDITION, "there are open files preventing the operation"))
    assert "volume committed" in commit(volume)


def open_files_under(folder: Path) -> list[str]:
    """Files under ``folder`` held open by this process or its descendants (Linux /proc)."""
    mine = {os.getpid()}
    for _ in range(3):  # children, grandchildren
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) in mine:
                mine.add(int(stat.parent.name))
    found = []
    for pid in mine:
        for fd in Path(f"/proc/{pid}/fd").glob("*"):
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith(str(folder)):
                found.append(f"{pid}: {target}")
    return found


def _stub_spec() -> str:
    from core.config.pipeline import PipelineConfig
    from core.plan import plan

    raw = {"name": "fr", "family": "asr", "base_model": "openai/whisper-tiny",
           "stages": [{"name": "general", "output_name": "fr-general", "train": {"kind": "hub", "id": "x/y"},
                       "evals": [{"name": "test", "role": "primary", "data": {"kind": "hub", "id": "x/y"}}]}]}
    return plan(PipelineConfig.model_validate(raw), "test")[0].model_dump_json()

