"""Heartbeat facts (is the stage still making progress?) and the watchdog's decision.

Progress means the work moved: a ``progress`` or ``metric`` event, a phase boundary, or a
heartbeat whose step advanced. A heartbeat alone only proves the process is alive: a run
hung in a collective or a forked ``map`` keeps its heartbeat thread beating.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ALIVE_WITHIN_S = 90.0  # events.py promises a heartbeat at least every 30 s


class HeartbeatFacts(BaseModel):
    model_config = ConfigDict(frozen=True)

    seconds_since_progress: float | None = Field(default=None, ge=0)
    last_phase: str | None = None
    steps_done: int | None = None
    total_steps: int | None = None
    alive: bool | None = Field(default=None, description="None: unknown")
    finished: bool = False
    error: str | None = None
    stall_limit_s: float | None = Field(default=None, gt=0, description="the stage's heartbeat_stall_s, if known")
    source: Literal["events", "log_age"] = Field(
        default="events", description="log_age: only the log file's modification time is known")

    def describe(self) -> str:
        if self.source == "log_age":
            age = "unknown" if self.seconds_since_progress is None else f"{self.seconds_since_progress:.0f} s ago"
            return f"log file: last written {age} (no heartbeat events; process liveness unknown)"
        parts = []
        if self.seconds_since_progress is not None:
            parts.append(f"no progress for {self.seconds_since_progress:.0f} s")
        if self.last_phase:
            parts.append(f"phase {self.last_phase}")
        if self.steps_done is not None:
            parts.append(f"step {self.steps_done}" + (f"/{self.total_steps}" if self.total_steps else ""))
        parts.append({True: "process alive", False: "process not alive", None: "liveness unknown"}[self.alive])
        return "heartbeat: " + ", ".join(parts)


def is_stalled(heartbeat: HeartbeatFacts | None, limit_s: float) -> bool:
    """The watchdog's decision: alive (or unknown) and no progress for at least ``limit_s``.
    A finished or dead process is not stalled: it failed or succeeded, and poll says which."""
    if heartbeat is None or heartbeat.finished or heartbeat.alive is False:
        return False
    if heartbeat.seconds_since_progress is None:
        return False
    return heartbeat.seconds_since_progress >= limit_s


def heartbeat_from_log_age(age_s: float, stall_limit_s: float | None = None,
                           alive: bool | None = None) -> HeartbeatFacts:
    """What the log file's modification time says: how long nothing was written to it
    (``alive``: what the backend's poll knows; a dead process is not stalled)."""
    return HeartbeatFacts(seconds_since_progress=max(0.0, age_s), alive=alive, source="log_age",
                          stall_limit_s=stall_limit_s)


def heartbeat_from_events(
    events: Iterable[dict[str, Any]],
    now: float | None = None,
    alive: bool | None = None,
    stall_limit_s: float | None = None,
) -> HeartbeatFacts:
    """Fold events.jsonl records (core.events format) into HeartbeatFacts."""
    now = time.time() if now is None else now
    last_progress: float | None = None
    last_any: float | None = None
    phase = None
    step = total = None
    finished = False
    error = None
    for ev in events:
        t = ev.get("t")
        if not isinstance(t, int | float):
            continue
        last_any = t if last_any is None else max(last_any, t)
        kind = ev.get("type")
        if kind == "phase":
            phase = ev.get("phase", phase)
            last_progress = t
            if ev.get("status") == "start":
                step = total = None
        elif kind == "progress":
            phase = ev.get("phase", phase)
            if ev.get("done") != step or last_progress is None:
                last_progress = t
            step, total = ev.get("done"), ev.get("total")
        elif kind == "metric":
            last_progress = t
            if isinstance(ev.get("step"), int):
                step = ev["step"]
        elif kind == "heartbeat":
            phase = ev.get("phase") or phase
            new_step = ev.get("step")
            if new_step is not None and new_step != step:
                step, last_progress = new_step, t
            if ev.get("total") is not None:
                total = ev.get("total")
            if last_progress is None:
                last_progress = t
        elif kind == "done":
            finished, last_progress = True, t
        elif kind == "error":
            finished, error, last_progress = True, str(ev.get("error", "")), t
    if alive is None:
        if finished:
            alive = False
        elif last_any is not None and now - last_any <= ALIVE_WITHIN_S:
            alive = True
    since = None if last_progress is None else max(0.0, now - last_progress)
    return HeartbeatFacts(seconds_since_progress=since, last_phase=phase, steps_done=step, total_steps=total,
                          alive=alive, finished=finished, error=error, stall_limit_s=stall_limit_s)


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """All complete JSON lines of an events file; a half-written or foreign line is skipped."""
    out = []
    for raw in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        raw = raw.strip()
        if not raw:
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


def heartbeat_from_file(path: str | Path, now: float | None = None, alive: bool | None = None,
                        stall_limit_s: float | None = None) -> HeartbeatFacts:
    return heartbeat_from_events(read_events(path), now=now, alive=alive, stall_limit_s=stall_limit_s)


def log_text_from_events(events: Iterable[dict[str, Any]]) -> str:
    """The text a stage said through its events (log lines, metric values, error traceback),
    for diagnosis when no stage.log is at hand."""
    lines = []
    for ev in events:
        kind = ev.get("type")
        if kind == "log":
            lines.append(f"{str(ev.get('level', 'info')).upper()} {ev.get('message', '')}")
        elif kind == "metric":
            metrics = ev.get("metrics") or {}
            lines.append(f"step {ev.get('step')}: " + ", ".join(f"'{k}': {v}" for k, v in metrics.items()))
        elif kind == "error":
            if ev.get("traceback"):
                lines.append(str(ev["traceback"]).rstrip())
            else:
                lines.append(str(ev.get("error", "")))
    return "\n".join(lines)
