"""The watch loop against real jobs (the local backend's subprocess, the Modal fake's supervisor):
phases and their limits, transient and permanent service errors, poll back-off."""

from __future__ import annotations

import time

import pytest
from backend_fakes import FakeModalTransport, stub_backend

from core.backends.errors import CredentialsMissing, ServiceUnavailable
from core.backends.local import LocalBackend
from core.backends.watch import WatchLimits, watch_job
from core.config.common import BackendConfig


def run_watch(backend, handle, limits):
    phases, events, retries = [], [], []
    outcome = watch_job(backend, handle, limits, events.append, lambda phase, s: phases.append((phase, s)),
                        lambda exc, n, delay: retries.append((str(exc), n)))
    return outcome, phases, events, retries


def test_a_slow_start_is_pending_not_stalled_and_the_heartbeat_starts_at_the_first_event(make_spec, tmp_path, child_env):
    child_env.update(STUB_START_DELAY_S="2.5", STUB_STEPS="2")
    backend = LocalBackend(runner_module="stub_stage", extra_env=child_env)
    handle = backend.submit(make_spec(backend={"kind": "local", "device": "cpu"}), tmp_path / "out")
    # a heartbeat limit shorter than the start: applied from submit, it would call this job stalled
    outcome, phases, events, _ = run_watch(backend, handle, WatchLimits(pending_s=60, stall_s=1.5, poll_min_s=0.1,
                                                                        poll_max_s=0.2))
    assert outcome.state == "succeeded", outcome.message
    assert [p for p, _ in phases] == ["starting", "running"]
    assert outcome.pending_s >= 2.5 and phases[1][1] >= 2.5
    assert [e["type"] for e in events][-1] == "done"


def test_a_job_that_never_starts_hits_the_pending_limit_and_is_really_cancelled(make_spec, tmp_path, child_env):
    child_env.update(STUB_START_DELAY_S="60")
    backend = LocalBackend(runner_module="stub_stage", extra_env=child_env)
    handle = backend.submit(make_spec(backend={"kind": "local", "device": "cpu"}), tmp_path / "out")
    outcome, phases, _, _ = run_watch(backend, handle, WatchLimits(pending_s=1.0, stall_s=600, poll_min_s=0.1,
                                                                   poll_max_s=0.2))
    assert outcome.state == "pending_timeout" and outcome.job_may_still_run
    assert "still starting" in outcome.message and "pending_limit_s" in outcome.message
    result = backend.cancel(handle)
    assert result.stopped and backend.poll(handle).finished


class FlakyModal(FakeModalTransport):
    """Modal's answers for the first polls are lost (network blips, rate limits), then normal."""

    def __init__(self, *args, failures: int, error=None):
        super().__init__(*args)
        self.failures, self.error = failures, error

    def call_state(self, call_id):
        if self.failures:
            self.failures -= 1
            raise self.error or ServiceUnavailable("Modal API UNAVAILABLE: connection reset")
        return super().call_state(call_id)


def test_transient_errors_are_retried_with_backoff_and_counted(make_spec, tmp_path, child_env):
    fake = FlakyModal(tmp_path / "volume", child_env, failures=3)
    backend = stub_backend(fake)
    handle = backend.submit(make_spec(), tmp_path / "out")
    limits = WatchLimits(pending_s=60, stall_s=60, poll_min_s=0.05, poll_max_s=0.2)
    started = time.monotonic()
    outcome, _, _, retries = run_watch(backend, handle, limits)
    assert outcome.state == "succeeded" and outcome.transient_errors == 3
    assert [n for _, n in retries] == [1, 2, 3] and "UNAVAILABLE" in retries[0][0]
    assert time.monotonic() - started >= 0.05 + 0.1 + 0.2  # 0.05 s doubling per failure
    assert len(fake.launches) == 1  # nothing resubmitted


def test_a_permanent_error_stops_at_once_with_the_fix(make_spec, tmp_path, child_env):
    error = CredentialsMissing("Modal refused the token (UNAUTHENTICATED). Run `modal token new`.")
    fake = FlakyModal(tmp_path / "volume", child_env, failures=1, error=error)
    backend = stub_backend(fake)
    handle = backend.submit(make_spec(), tmp_path / "out")
    outcome, _, _, retries = run_watch(backend, handle, WatchLimits(60, 60, 0.05, 0.2))
    assert outcome.state == "failed" and "modal token new" in outcome.message and not retries
    fake.cancel(handle.job_id)


@pytest.mark.parametrize("kind, first, after_10_min, cap", [
    ("local", 1.0, 2.0, 2.0), ("modal", 2.0, 30.0, 30.0), ("kaggle", 5.0, 35.0, 60.0)])
def test_polls_start_fast_and_back_off_for_long_runs(kind, first, after_10_min, cap):
    limits = WatchLimits.for_backend(BackendConfig(kind=kind, heartbeat_stall_s=900))
    assert limits.poll_interval(0) == first
    assert limits.poll_interval(600) == after_10_min and limits.poll_interval(24 * 3600) == cap
    assert limits.pending_s >= 600 and limits.stall_s == 900
    assert [limits.retry_delay(n) for n in (1, 2, 3)] == [first, 2 * first, 4 * first] and limits.retry_delay(30) == 300


def test_pending_limit_is_configurable_per_stage():
    limits = WatchLimits.for_backend(BackendConfig(kind="modal", options={"pending_limit_s": 5400}))
    assert limits.pending_s == 5400
    with pytest.raises(ValueError, match="pending_limit_s"):
        WatchLimits.for_backend(BackendConfig(kind="kaggle", options={"pending_limit_s": "soon"}))
