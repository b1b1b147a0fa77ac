"""Events reach the local events.jsonl while the remote job is still running (watchdog, live curves)."""

from __future__ import annotations

import json
import time

import pytest
from backend_fakes import FakeKaggleTransport, FakeModalTransport

from core.backends.kaggle_backend import KaggleBackend
from core.backends.modal_backend import ModalBackend


@pytest.mark.parametrize("kind", ["modal", "kaggle"])
def test_metrics_arrive_before_the_job_ends(kind, make_spec, tmp_path, child_env, wait):
    child_env["STUB_STEP_S"] = "1.0"
    if kind == "modal":
        backend = ModalBackend(transport=FakeModalTransport(tmp_path / "v", child_env), runner_module="stub_stage",
                               log_sync_every_s=0)
        spec = make_spec()
    else:
        backend = KaggleBackend(transport=FakeKaggleTransport(tmp_path / "k", child_env), runner_module="stub_stage",
                                poll_dataset_every_s=0)
        spec = make_spec(backend={"kind": "kaggle", "device": "cpu"})
    out = tmp_path / "out"
    handle = backend.submit(spec, out)
    seen_while_running = []
    deadline = time.time() + 60
    while time.time() < deadline:
        status = backend.poll(handle)
        if status.finished:
            break
        if (out / "events.jsonl").exists():
            seen_while_running = [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()]
        time.sleep(0.1)
    assert any(e["type"] == "metric" for e in seen_while_running), "no event relayed before the end"
    assert status.state == "succeeded"
    backend.fetch(handle)
