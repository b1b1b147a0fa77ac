"""Start a stage's job: reattach to a live one recorded for the same stage key, or submit.

Kept apart from tasks.stage (no Prefect import), so an orchestrator restarted mid-stage can be
exercised without a flow."""

from __future__ import annotations

from pathlib import Path

from core.backends.errors import ServiceUnavailable
from core.backends.resume import live_job
from core.contracts import JobHandle, StageSpec
from core.tracking import schema as S
from core.tracking.job_handles import record_handle, recorded_handles


class StageFailed(RuntimeError):
    pass


def start_job(backend, spec: StageSpec, out_dir: Path, tracker, stage_run_id: str, attempt: int,
              logger) -> tuple[JobHandle, int]:
    """Reattach to a live job of the same stage key (first attempt only), or submit a new one.
    Returns the handle and the events.jsonl offset the watch starts from (0 after a reattach:
    the job's events so far are replayed into this run)."""
    if attempt == 1:
        try:
            found = live_job(backend, recorded_handles(tracker, stage_run_id, spec.key, out_dir))
        except ServiceUnavailable as exc:
            raise StageFailed(f"stage {spec.name}: cannot tell whether its earlier {backend.name} job still runs "
                              f"({exc}); not submitting a second one. Retry when the service answers.") from exc
        if found is not None:
            handle, status = found
            record_handle(tracker, stage_run_id, handle)
            tracker.set_tags(stage_run_id, {S.TAG_REATTACHED: handle.job_id, S.TAG_ATTEMPT: str(attempt)})
            logger.info(f"[{spec.name}] reattached to {handle.backend} job {handle.job_id} ({status.state}); "
                        "not submitting again")
            return handle, 0
    events = out_dir / "events.jsonl"
    offset = events.stat().st_size if events.exists() else 0
    handle = backend.submit(spec, out_dir)
    record_handle(tracker, stage_run_id, handle)
    tracker.set_tags(stage_run_id, {S.TAG_ATTEMPT: str(attempt)})
    logger.info(f"[{spec.name}] attempt {attempt} on {spec.stage.backend.kind} ({handle.job_id}); outputs in {out_dir}")
    return handle, offset
