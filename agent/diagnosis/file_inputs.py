"""The agent's inputs from files a user names: a pipeline file to preflight, a run's log (and its
heartbeat events) to diagnose. Problems with the files themselves raise InputFileError naming
the file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class InputFileError(ValueError):
    """A named file is missing, unreadable or not what the command expects (the message says which)."""


def read_text(path: Path, what: str) -> str:
    """The file's text; a missing file, a folder or a read error is an InputFileError."""
    if not path.exists():
        raise InputFileError(f"{path}: {what} not found")
    if path.is_dir():
        raise InputFileError(f"{path}: {what} is a folder, expected a file")
    try:
        # Bytes, not read_text: universal newlines would turn tqdm's \r redraws into lines.
        return path.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None


def check_pipeline_file(pipeline: Path, playbooks, apply_autofix: bool = True):  # noqa: ANN001, ANN201
    """The preflight report of every playbook rule on every stage of PIPELINE, with the facts of
    this machine (the network is probed only when a model or a dataset comes from the hub)."""
    from core.config import ConfigError, load_pipeline

    from agent.base.model_refs import is_hub_id
    from agent.base.facts import collect_env_facts
    from agent.rules.preflight import preflight

    try:
        config = load_pipeline(pipeline)
    except ConfigError as exc:
        raise InputFileError(str(exc)) from None
    except OSError as exc:
        raise InputFileError(f"{pipeline}: cannot read pipeline file ({exc.strerror or exc})") from None
    needs_hub = is_hub_id(config.base_model, {}) or any(
        getattr(s.train, "kind", None) == "hub" for s in config.stages)
    facts = collect_env_facts(config, base_dir=pipeline.parent, check_network=needs_hub)
    return preflight(config, facts, playbooks=playbooks, apply_autofix=apply_autofix)


@dataclass
class RunLog:
    """What a diagnosis reads from a run: the log text, heartbeat facts, and the log's age."""

    text: str
    heartbeat: Any = None  # agent.diagnosis.heartbeat.HeartbeatFacts, from events
    age_s: float | None = None  # seconds since the log was last written; None when events tell


def read_run_log(logfile: Path, events: Path | None = None, log_age_s: float | None = None,
                 use_file_age: bool = True) -> RunLog:
    """The log to classify, from a log or an events.jsonl (or both). Without heartbeat events,
    the log's age (given, or the file's modification time unless ``use_file_age`` is off) is
    what tells a stalled run from a live one."""
    from agent.diagnosis.heartbeat import heartbeat_from_events, log_text_from_events, read_events

    text = read_text(logfile, "log file")
    heartbeat = None
    if logfile.suffix == ".jsonl":
        records = read_events(logfile)
        if records:
            text = log_text_from_events(records)
            heartbeat = heartbeat_from_events(records)
    if events is not None:
        read_text(events, "events file")
        records = read_events(events)
        if not records:
            raise InputFileError(f"{events}: no JSON event lines (expected core.events format)")
        heartbeat = heartbeat_from_events(records)
        extra = log_text_from_events(records)
        text = f"{text}\n{extra}" if extra and extra not in text else text
    age = None
    if heartbeat is None and use_file_age:
        age = log_age_s if log_age_s is not None else max(0.0, time.time() - logfile.stat().st_mtime)
    return RunLog(text, heartbeat, age)
