"""How the orchestrator waits on a job: its phases, their limits, poll back-off, transient errors.

A remote job goes through phases the stage runner cannot report: *queued* (waiting for a GPU or a
Kaggle slot), *starting* (image build, container start, pip installs). Only the stage runner's
first event proves it is running; from then on the heartbeat clock applies (``heartbeat_stall_s``).
Before it, the pending limit applies: generous and per backend (``backend.options.pending_limit_s``),
because a first Modal image build or a Kaggle queue plus installs takes many minutes, and declaring
such a job stalled would cancel a healthy stage.

Polls start every second or two and back off towards ``poll_max_s`` as the job ages: a Kaggle
status call is rate-limited by the service and a Modal poll is an RPC plus a volume listing.
A ``ServiceUnavailable`` from ``poll`` is retried with exponential back-off and counted; any other
``BackendError`` (auth, quota, not found) ends the watch at once with its message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.backends.errors import BackendError, ServiceUnavailable
from core.contracts import JobHandle
from core.events import EventTail

PENDING_LIMIT_S = {"local": 600, "modal": 3600, "kaggle": 7200}
POLL_MIN_S = {"local": 1.0, "modal": 2.0, "kaggle": 5.0}
POLL_MAX_S = {"local": 2.0, "modal": 30.0, "kaggle": 60.0}
POLL_GROWTH = 0.05  # the interval grows by this fraction of the job's age: 30 s after 10 min
RETRY_MAX_S = 300.0
LOST_AFTER_S = 30 * 60  # this long without one successful poll: stop watching (the job may still run)

QUEUED, STARTING, RUNNING = "queued", "starting", "running"
PHASE_TEXT = {
    QUEUED: "queued (waiting for a machine: GPU queue or session slot)",
    STARTING: "starting (image build, container start or package installs; no event from the runner yet)",
    RUNNING: "running (the stage runner is sending events)",
}


@dataclass(frozen=True)
class WatchLimits:
    pending_s: float
    stall_s: float
    poll_min_s: float = 1.0
    poll_max_s: float = 2.0
    lost_after_s: float = LOST_AFTER_S

    @classmethod
    def for_backend(cls, config) -> WatchLimits:
        """From a stage's BackendConfig: its heartbeat_stall_s and options.pending_limit_s."""
        kind = config.kind
        pending = config.options.get("pending_limit_s", PENDING_LIMIT_S[kind])
        if isinstance(pending, bool) or not isinstance(pending, (int, float)) or pending <= 0:
            raise ValueError(f"backend.options.pending_limit_s {pending!r}: expected a number of seconds > 0")
        return cls(float(pending), float(config.heartbeat_stall_s), POLL_MIN_S[kind], POLL_MAX_S[kind])

    def poll_interval(self, age_s: float) -> float:
        return min(self.poll_max_s, max(self.poll_min_s, self.poll_min_s + POLL_GROWTH * age_s))

    def retry_delay(self, failures: int) -> float:
        return min(RETRY_MAX_S, self.poll_min_s * 2 ** max(failures - 1, 0))


@dataclass
class WatchOutcome:
    state: str  # succeeded | failed | cancelled | stalled | pending_timeout | lost
    message: str
    seconds_since_event: float
    last_phase: str | None
    last_step: int | None
    job_phase: str = QUEUED
    pending_s: float | None = None  # how long the job took to send its first event
    transient_errors: int = 0

    @property
    def job_may_still_run(self) -> bool:
        """The job was not seen to end: cancel it (stalled, pending too long) or say it may run on."""
        return self.state in ("stalled", "pending_timeout", "lost")


def watch_job(
    backend,
    handle: JobHandle,
    limits: WatchLimits,
    on_event: Callable[[dict[str, Any]], None],
    on_phase: Callable[[str, float], None],
    on_transient: Callable[[ServiceUnavailable, int, float], None] = lambda exc, n, delay: None,
    *,
    events_offset: int = 0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> WatchOutcome:
    """Poll ``backend`` until the job ends or a limit is reached.

    ``on_event`` gets each event appended to events.jsonl after ``events_offset``; ``on_phase(phase, seconds_since_start)`` each
    change of job phase; ``on_transient(error, count, delay)`` each retried service error."""
    tail = EventTail(Path(handle.out_dir) / "events.jsonl", events_offset)
    started = clock()
    phase, announced = QUEUED, None
    first_event: float | None = None
    last_event = started
    last_ok = started
    failures = transient = 0
    stage_phase: str | None = None
    step: int | None = None

    def outcome(state: str, message: str) -> WatchOutcome:
        now = clock()
        return WatchOutcome(state, message, now - (last_event if first_event else started), stage_phase, step,
                            phase, None if first_event is None else first_event - started, transient)

    while True:
        try:
            status = backend.poll(handle)
        except ServiceUnavailable as exc:
            failures += 1
            transient += 1
            if clock() - last_ok > limits.lost_after_s:
                return outcome("lost", f"no answer from {handle.backend} for {clock() - last_ok:.0f} s "
                                       f"({transient} failed polls; last: {exc}). The job may still be running: "
                                       "rerun the pipeline to reattach to it")
            delay = limits.retry_delay(failures)
            on_transient(exc, transient, delay)
            sleep(delay)
            continue
        except BackendError as exc:  # auth, quota, not found: retrying will not help
            return outcome("failed", str(exc))
        failures = 0
        last_ok = clock()
        new_events = tail.read_new()
        for event in new_events:
            kind = event.get("type")
            if kind == "phase":
                stage_phase = event.get("phase", stage_phase)
            elif kind == "progress":
                step = event.get("done", step)
            elif kind == "metric":
                step = int(event.get("step", step or 0))
            on_event(event)
        now = clock()
        if new_events:
            last_event = now
            if first_event is None:
                first_event = now
            phase = RUNNING
        elif phase == QUEUED and status.state == "running":
            phase = STARTING
        if phase != announced:
            announced = phase
            on_phase(phase, now - started)
        if status.finished:
            return outcome(status.state, status.message)
        if first_event is None:
            if now - started > limits.pending_s:
                return outcome("pending_timeout",
                               f"still {phase} after {now - started:.0f} s, no event from the stage runner "
                               f"(limit {limits.pending_s:.0f} s, backend.options.pending_limit_s)")
        elif now - last_event > limits.stall_s:
            return outcome("stalled", f"no event for {now - last_event:.0f}s (limit {limits.stall_s:.0f}s)")
        sleep(limits.poll_interval(now - started))
