"""Events reach the local events.jsonl while the remote job is still running (watchdog, live curves)."""

from __future__ import annotations

import json
import time

import pytest
from backend_fakes import fake_service, stub_backend


@pytest.mark.parametrize("kind", ["modal", "kaggle"])
def test_metrics_arrive_before_the_job_ends(kind, make_spec, tmp_path, child_env, wait):
    child_env["STUB_STEP_S"] = "1.0"
    backend = stub_backend(fake_service(kind, tmp_path, child_env))
    spec = make_spec() if kind == "modal" else make_spec(backend={"kind": "kaggle", "device": "cpu"})
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
