"""After a failed or stalled attempt: diagnose, record, and retry once with a safe remedy.

Unsafe or unknown failures stop with the diagnosis; nothing is retried blindly.
"""

from __future__ import annotations

from pathlib import Path

from core.contracts import StageSpec
from core.tracking import schema as S

MAX_ATTEMPTS = 2


def after_failure(spec: StageSpec, outcome, log_text: str, out_dir: Path, attempt: int, tracker,
                  stage_run_id: str, logger) -> StageSpec | None:
    from agent import diagnose_run_dir, safe_remedy

    alive = None if outcome.state in ("stalled", "pending_timeout") else False
    diagnosis = diagnose_run_dir(out_dir, alive=alive, stall_limit_s=spec.stage.backend.heartbeat_stall_s)
    tracker.log_text(stage_run_id, diagnosis.to_json(), S.diagnosis_attempt(attempt))
    tracker.log_text(stage_run_id, diagnosis.to_json(), S.ARTIFACT_DIAGNOSIS)
    tracker.set_tags(stage_run_id, {S.TAG_DIAGNOSIS_KIND: diagnosis.kind,
                                    S.TAG_DIAGNOSIS_FAILURE: diagnosis.failure_id or ""})
    origin = " (LLM, unverified)" if diagnosis.source == "llm" else ""
    logger.error(f"[{spec.name}] attempt {attempt} {outcome.state}: {outcome.message}")
    logger.error(f"[{spec.name}] diagnosis{origin}: {diagnosis.kind} / {diagnosis.failure_id or '-'} "
                 f"(confidence {diagnosis.confidence:.2f}); fix: {diagnosis.fix}"
                 + (f" [{diagnosis.section}]" if diagnosis.section else ""))
    for line in diagnosis.evidence[:5]:
        logger.error(f"[{spec.name}]   evidence: {line}")
    if attempt >= MAX_ATTEMPTS:
        logger.error(f"[{spec.name}] already retried once: stopping with the diagnosis")
        return None
    remedy = safe_remedy(spec.stage, diagnosis)
    if remedy is None:
        logger.error(f"[{spec.name}] no remedy the playbook marks safe: stopping (nothing is retried blindly)")
        return None
    new_stage, description = remedy
    tracker.log_json(stage_run_id, {"attempt": attempt, "diagnosis": diagnosis.model_dump(mode="json"),
                                    "description": description,
                                    "new_stage": new_stage.model_dump(mode="json")}, S.ARTIFACT_REMEDY)
    tracker.set_tags(stage_run_id, {S.TAG_REMEDY: description[:250]})
    logger.warning(f"[{spec.name}] safe remedy applied, retrying once: {description}")
    # Same key and folder: the retry resumes from the checkpoints of the failed attempt.
    return spec.model_copy(update={"stage": new_stage})
