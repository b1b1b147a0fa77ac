"""Diagnose a stage's output folder (what every backend brings back: ``stage.log`` and
``events.jsonl``) — the one call the flow's watchdog and failure path need."""

from __future__ import annotations

import time
from pathlib import Path

from agent.diagnosis.diagnose import Diagnosis, diagnose, read_log
from agent.diagnosis.heartbeat import (
    HeartbeatFacts,
    heartbeat_from_events,
    heartbeat_from_log_age,
    log_text_from_events,
    read_events,
)
from agent.playbooks.parse import PlaybookSet

LOG_TAIL_BYTES = 2_000_000  # the end of a huge log is where the failure is


def facts_from_run_dir(out_dir: str | Path, *, now: float | None = None, alive: bool | None = None,
                       stall_limit_s: float | None = None) -> tuple[str, HeartbeatFacts | None]:
    folder = Path(out_dir)
    text = ""
    log = folder / "stage.log"
    if log.is_file():
        text = read_log(log)[-LOG_TAIL_BYTES:]
    heartbeat = None
    events = folder / "events.jsonl"
    if events.is_file():
        records = read_events(events)
        heartbeat = heartbeat_from_events(records, now=now, alive=alive, stall_limit_s=stall_limit_s)
        said = log_text_from_events(records)
        if said and said not in text:
            text = f"{text}\n{said}" if text else said
    elif log.is_file():
        # No heartbeat events (a runner that died before writing any, a foreign log): the
        # log's modification time is the only clock.
        age = (time.time() if now is None else now) - log.stat().st_mtime
        heartbeat = heartbeat_from_log_age(age, stall_limit_s=stall_limit_s, alive=alive)
    return text, heartbeat


def diagnose_run_dir(out_dir: str | Path, *, now: float | None = None, alive: bool | None = None,
                     stall_limit_s: float | None = None, playbooks: PlaybookSet | None = None,
                     use_llm: bool | None = None) -> Diagnosis:
    """``alive``: what the backend's poll knows (None: infer from heartbeats);
    ``stall_limit_s``: the stage's ``backend.heartbeat_stall_s``."""
    text, heartbeat = facts_from_run_dir(out_dir, now=now, alive=alive, stall_limit_s=stall_limit_s)
    return diagnose(text, heartbeat, playbooks=playbooks, use_llm=use_llm)
