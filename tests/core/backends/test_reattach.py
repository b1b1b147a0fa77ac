"""Reattach for real: the job handle is stored on the MLflow stage run (a real sqlite store); a
rerun with the same stage key resumes watching a live job instead of submitting again, and only a
finished or dead job leads to a new submit. On the local backend the orchestrator is a real
process killed with SIGKILL in the middle of a stage; on Modal and Kaggle the fake transports
stand in for the services (they keep running the job while the orchestrator is gone)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time

import pytest
from backend_fakes import fake_service, stub_backend

from core.backends.local import LocalBackend, process_start_ticks
from core.backends.resume import live_job
from core.backends.watch import WatchLimits, watch_job
from core.contracts import JobHandle
from core.tracking import schema as S
from core.tracking.job_handles import recorded_handles
from core.tracking.mlflow_store import Tracker
from tasks.jobs import start_job
from repo_paths import ROOT
from stage_files import read_events

LOG = logging.getLogger("test")
LIMITS = WatchLimits(60, 60, 0.1, 0.2)


@pytest.fixture(scope="module")
def tracker(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow")
    return Tracker(f"sqlite:///{root}/mlflow.db")


def new_stage_run(tracker, spec, experiment):
    parent = tracker.start_pipeline_run(experiment, spec.pipeline, None, {}, None)
    return tracker.start_stage_run(experiment, parent, spec, attempt=1)


def wait_for(predicate, timeout_s=90.0, what="condition"):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_killed_orchestrator_local_stage_is_resumed_not_resubmitted(tracker, make_spec, tmp_path, child_env):
    spec = make_spec(backend={"kind": "local", "device": "cpu"})
    out = tmp_path / "stage"
    spec.write(tmp_path / "spec.json")
    first_run = new_stage_run(tracker, spec, "reattach-local")
    child_env.update(STUB_STEPS="10", STUB_STEP_S="0.5")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([child_env["PYTHONPATH"], str(ROOT)]),
           "STUB_CHILD_ENV": json.dumps(child_env)}
    orchestrator = subprocess.Popen([sys.executable, "-m", "orchestrator", tracker.tracking_uri, first_run,
                                     str(tmp_path / "spec.json"), str(out)], env=env)
    try:
        wait_for(lambda: (out / "events.jsonl").exists() and any(e["type"] == "metric" for e in read_events(out)),
                 what="the stage's first metric")
        recorded = JobHandle.model_validate_json(tracker.get_run(first_run).data.tags[S.TAG_JOB_HANDLE])
        orchestrator.send_signal(signal.SIGKILL)  # the orchestrator dies mid-stage
        orchestrator.wait(timeout=30)
    finally:
        if orchestrator.poll() is None:
            orchestrator.kill()
    stage_pid = recorded.details["pid"]
    assert LocalBackend().reattach(recorded), "the stage process must outlive its orchestrator"

    rerun = new_stage_run(tracker, spec, "reattach-local")
    backend = LocalBackend(runner_module="stub_stage", extra_env=child_env)  # a new process knows nothing
    handle, offset = start_job(backend, spec, out, tracker, rerun, 1, LOG)
    assert handle.job_id == recorded.job_id and offset == 0
    tags = tracker.get_run(rerun).data.tags
    assert tags[S.TAG_REATTACHED] == recorded.job_id and json.loads(tags[S.TAG_JOB_HANDLE])["job_id"] == recorded.job_id
    relayed = []
    outcome = watch_job(backend, handle, LIMITS, relayed.append, lambda p, s: None)
    assert outcome.state == "succeeded"
    assert [e["step"] for e in relayed if e["type"] == "metric"] == list(range(1, 11))  # replayed into the rerun
    starts = [e for e in read_events(out) if e["type"] == "log" and e["message"].startswith("stub stage")]
    assert len(starts) == 1, "the stage ran once"
    assert json.loads((out / "metrics.json").read_text())["key"] == spec.key

    # a finished job is not resumed: the next rerun submits a new one
    again = new_stage_run(tracker, spec, "reattach-local")
    fresh, _ = start_job(backend, spec, out, tracker, again, 1, LOG)
    assert fresh.job_id != recorded.job_id and S.TAG_REATTACHED not in tracker.get_run(again).data.tags
    assert watch_job(backend, fresh, LIMITS, lambda e: None, lambda p, s: None).state == "succeeded"
    # a recycled pid is not the stage: same pid, another start time
    impostor = recorded.model_copy(update={"out_dir": str(tmp_path / "elsewhere"),
                                           "details": {**recorded.details, "pid": os.getpid(),
                                                       "started": (process_start_ticks(os.getpid()) or 0) + 1}})
    assert LocalBackend().reattach(impostor.model_copy(update={"details": {**impostor.details, "started": None}}))
    assert not LocalBackend().reattach(impostor) and stage_pid != os.getpid()


@pytest.mark.parametrize("kind", ["modal", "kaggle"])
def test_restarted_orchestrator_reattaches_to_the_remote_job(kind, tracker, make_spec, tmp_path, child_env):
    child_env.update(STUB_STEPS="4", STUB_STEP_S="0.3")
    fake = fake_service(kind, tmp_path, child_env)
    if kind == "modal":
        spec, submitted = make_spec(), lambda: len(fake.launches)
    else:
        spec, submitted = make_spec(backend={"kind": "kaggle", "device": "cpu"}), lambda: len(fake.pushes)
    out = tmp_path / "stage"
    first_run = new_stage_run(tracker, spec, f"reattach-{kind}")
    first = stub_backend(fake)
    handle, _ = start_job(first, spec, out, tracker, first_run, 1, LOG)
    wait_for(lambda: first.poll(handle).state == "running", what="the job to run")
    del first  # the orchestrator is gone; the service keeps the job running

    rerun = new_stage_run(tracker, spec, f"reattach-{kind}")
    second = stub_backend(fake)
    resumed, _ = start_job(second, spec, out, tracker, rerun, 1, LOG)
    assert resumed == handle and submitted() == 1
    assert tracker.get_run(rerun).data.tags[S.TAG_REATTACHED] == handle.job_id
    assert watch_job(second, resumed, LIMITS, lambda e: None, lambda p, s: None).state == "succeeded"
    second.fetch(resumed)
    assert json.loads((out / "metrics.json").read_text())["key"] == spec.key

    # the recorded job has finished: a rerun would submit (the local test above does it for real)
    assert live_job(stub_backend(fake), recorded_handles(tracker, new_stage_run(tracker, spec, f"reattach-{kind}"),
                                             spec.key, out)) is None
