"""The backend contract: ship a spec, run the stage runner, relay, fetch, cancel.

A backend never talks to MLflow; it only moves the spec in and the output folder
(events.jsonl, stage.log, metrics.json, meta.json, model/, predictions/) out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from core.contracts import JobHandle, JobStatus, StageSpec


@dataclass(frozen=True)
class CancelResult:
    """What ``cancel`` achieved: ``stopped`` only when the job ended or the service accepted to
    stop it; otherwise ``message`` says where the user can stop it."""

    stopped: bool
    message: str


class Backend(Protocol):
    name: str

    def submit(self, spec: StageSpec, out_dir: Path) -> JobHandle:
        """Start the stage; returns at once with a handle that can be recorded and reattached."""
        ...

    def poll(self, handle: JobHandle) -> JobStatus:
        """Current state; also brings events.jsonl and stage.log up to date under handle.out_dir."""
        ...

    def fetch(self, handle: JobHandle) -> Path:
        """Make the finished outputs available locally (no-op for local); returns the folder."""
        ...

    def cancel(self, handle: JobHandle) -> CancelResult:
        """Stop the job (the runner checkpoints first where the backend can signal it)."""
        ...

    def reattach(self, handle: JobHandle) -> bool:
        """True when the job behind a recorded handle is still known to the service (any state);
        ``poll`` then says whether it still runs."""
        ...

