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


@dataclass
class _Seen:
    """What one watch has seen of its job so far (times from the watch's clock)."""

    clock: Callable[[], float]
    started: float
    phase: str = QUEUED
    announced: str | None = None
    first_event: float | None = None
    last_event: float = 0.0
    stage_phase: str | None = None
    step: int | None = None
    transient: int = 0

    def note(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "phase":
            self.stage_phase = event.get("phase", self.stage_phase)
        elif kind == "progress":
            self.step = event.get("done", self.step)
        elif kind == "metric":
            self.step = int(event.get("step", self.step or 0))

    def advance(self, had_events: bool, service_state: str, now: float) -> bool:
        """Update the job phase after a poll; True when it changed since last announced."""
        if had_events:
            self.last_event = now
            if self.first_event is None:
                self.first_event = now
            self.phase = RUNNING
        elif self.phase == QUEUED and service_state == "running":
            self.phase = STARTING
        if self.phase == self.announced:
            return False
        self.announced = self.phase
        return True

    def limit_reached(self, limits: WatchLimits, now: float) -> tuple[str, str] | None:
        if self.first_event is None:
            if now - self.started > limits.pending_s:
                return ("pending_timeout",
                        f"still {self.phase} after {now - self.started:.0f} s, no event from the stage runner "
                        f"(limit {limits.pending_s:.0f} s, backend.options.pending_limit_s)")
        elif now - self.last_event > limits.stall_s:
            return "stalled", f"no event for {now - self.last_event:.0f}s (limit {limits.stall_s:.0f}s)"
        return None

    def outcome(self, state: str, message: str) -> WatchOutcome:
        since = self.clock() - (self.last_event if self.first_event else self.started)
        pending = None if self.first_event is None else self.first_event - self.started
        return WatchOutcome(state, message, since, self.stage_phase, self.step, self.phase, pending, self.transient)


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
    seen = _Seen(clock, started, last_event=started)
    last_ok, failures = started, 0
    while True:
        try:
            status = backend.poll(handle)
        except ServiceUnavailable as exc:
            failures += 1
            seen.transient += 1
            if clock() - last_ok > limits.lost_after_s:
                return seen.outcome("lost", f"no answer from {handle.backend} for {clock() - last_ok:.0f} s "
                                            f"({seen.transient} failed polls; last: {exc}). The job may still be "
                                            "running: rerun the pipeline to reattach to it")
            delay = limits.retry_delay(failures)
            on_transient(exc, seen.transient, delay)
            sleep(delay)
            continue
        except BackendError as exc:  # auth, quota, not found: retrying will not help
            return seen.outcome("failed", str(exc))
        failures, last_ok = 0, clock()
        new_events = tail.read_new()
        for event in new_events:
            seen.note(event)
            on_event(event)
        now = clock()
        if seen.advance(bool(new_events), status.state, now):
            on_phase(seen.phase, now - started)
        if status.finished:
            return seen.outcome(status.state, status.message)
        limit = seen.limit_reached(limits, now)
        if limit is not None:
            return seen.outcome(*limit)
        sleep(limits.poll_interval(now - started))
