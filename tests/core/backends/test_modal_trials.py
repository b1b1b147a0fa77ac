"""A search's trials on Modal: parallel detached calls, one per trial, each with its own folder in
the stage volume's layout; each call is reattached or cancelled on its own (the local Modal fake
runs the stub runner in place of the containers)."""

from __future__ import annotations

import time

from backend_fakes import stub_backend

from core import search
from core.config.search import ParamSpace, SearchConfig
from core.contracts import JobHandle

SERVICE = "modal"  # the conftest's `fake` and `backend`


def _trials(make_spec, count: int):
    spec = make_spec()
    space = SearchConfig(parameters={"training.learning_rate": ParamSpace(choices=[1.0e-5, 1.0e-4, 1.0e-3][:count])},
                         sampler="grid", trials=count, parallel=count)
    searching = spec.model_copy(update={"stage": spec.stage.model_copy(update={"search": space})})
    return [search.trial_spec(searching, n, {"training.learning_rate": lr}) for n, lr in enumerate(space.grid()[
        "training.learning_rate"])]


def test_trials_run_as_parallel_calls_each_reattached_or_cancelled_alone(fake, make_spec, tmp_path, wait):
    fake.env.update(STUB_STEPS="10", STUB_STEP_S="0.4")  # long enough for the three calls to run side by side
    backend = stub_backend(fake)
    trials = _trials(make_spec, 3)
    handles = [backend.submit(t, tmp_path / t.name) for t in trials]
    assert len({h.job_id for h in handles}) == 3
    remote = [h.details["remote_out"] for h in handles]
    assert remote == [f"runs/fr/00-general.t{n}-{t.key}" for n, t in enumerate(trials)]
    deadline = time.time() + 30
    while not all(backend.poll(h).state == "running" for h in handles) and time.time() < deadline:
        time.sleep(0.1)
    assert all(backend.poll(h).state == "running" for h in handles), "the three calls run at the same time"

    # The orchestrator dies; a new one reattaches to each call from its recorded handle and cancels one.
    restarted = stub_backend(fake)
    again = [JobHandle.model_validate_json(h.model_dump_json()) for h in handles]
    assert all(restarted.reattach(h) for h in again)
    restarted.cancel(again[1])
    assert [wait(restarted, h).state for h in again] == ["succeeded", "cancelled", "succeeded"]
    for trial, handle in zip(trials, again):
        if trial.name != "general.t1":
            restarted.fetch(handle)
            assert (tmp_path / trial.name / "metrics.json").is_file()
