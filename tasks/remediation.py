"""After a failed or stalled attempt: diagnose, record, and retry once with a safe remedy."""

from __future__ import annotations

from pathlib import Path

from core.contracts import StageSpec


def after_failure(spec: StageSpec, outcome, log_text: str, out_dir: Path, attempt: int, tracker,
                  stage_run_id: str, logger) -> StageSpec | None:
    logger.error(f"[{spec.name}] attempt {attempt} {outcome.state}: {outcome.message}")
    return None
