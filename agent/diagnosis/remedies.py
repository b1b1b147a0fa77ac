"""safe_remedy(stage, diagnosis): the one config change a playbook marks safe for this
failure, or None. No remedy for unknown or code-level failures: no blind retry."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from agent.rules.context import MISSING, get_path, normalize_gpu, set_path
from agent.diagnosis.diagnose import Diagnosis
from agent.base.function_table import FunctionTable

RemedyFn = Callable[[dict[str, Any], dict[str, Any]], tuple[dict[str, Any], str] | None]
_REMEDIES = FunctionTable()
_remedy = _REMEDIES.add


@_remedy("halve_batch")
def _halve_batch(stage: dict[str, Any], params: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    batch = get_path(stage, "training.per_device_train_batch_size")
    accum = get_path(stage, "training.gradient_accumulation_steps")
    if not isinstance(batch, int) or batch < 2:
        return None  # batch 1 still runs out of memory: needs a human (smaller model, LoRA, bigger GPU)
    accum = accum if isinstance(accum, int) and accum > 0 else 1
    new_batch, new_accum = batch // 2, accum * 2
    set_path(stage, "training.per_device_train_batch_size", new_batch)
    set_path(stage, "training.gradient_accumulation_steps", new_accum)
    eval_batch = get_path(stage, "training.per_device_eval_batch_size")
    extra = ""
    if isinstance(eval_batch, int) and eval_batch >= 2:
        set_path(stage, "training.per_device_eval_batch_size", eval_batch // 2)
        extra = f", per_device_eval_batch_size {eval_batch} -> {eval_batch // 2}"
    kept = "unchanged" if batch % 2 == 0 else f"{batch * accum} -> {new_batch * new_accum}"
    return stage, (f"per_device_train_batch_size {batch} -> {new_batch}, gradient_accumulation_steps "
                   f"{accum} -> {new_accum}{extra} (effective batch {kept})")


@_remedy("single_process_map")
def _single_process_map(stage: dict[str, Any], params: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    workers = get_path(stage, "training.preprocessing_num_workers")
    if workers is MISSING or workers == 1:
        return None  # already single-process: the hang is elsewhere
    set_path(stage, "training.preprocessing_num_workers", 1)
    return stage, f"preprocessing_num_workers {workers} -> 1 (no forked map workers)"


@_remedy("fallback_gpu")
def _fallback_gpu(stage: dict[str, Any], params: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    current = get_path(stage, "backend.gpu")
    if current is MISSING or not current:
        return None
    mapping = {normalize_gpu(k): v for k, v in (params.get("map") or {}).items()}
    target = mapping.get(normalize_gpu(current))
    if not target or normalize_gpu(target) == normalize_gpu(current):
        return None
    set_path(stage, "backend.gpu", target)
    return stage, f"backend.gpu {current} -> {target}"


def safe_remedy(stage_config: Any, diagnosis: Diagnosis) -> tuple[Any, str] | None:
    """``(new_stage_config, description)`` when the diagnosis carries a remedy the playbook
    marked safe and it applies to this stage; otherwise None. The new config is validated by
    the stage's own model (its type is preserved)."""
    remedy = diagnosis.remedy
    if not remedy or not remedy.get("safe") or diagnosis.kind in ("none", "unknown") or diagnosis.source != "rules":
        return None
    fn = _REMEDIES.get(str(remedy.get("action")))
    if fn is None:
        return None
    data = copy.deepcopy(stage_config.model_dump(mode="python"))
    result = fn(data, remedy.get("params") or {})
    if result is None:
        return None
    new_data, description = result
    try:
        new_stage = type(stage_config).model_validate(new_data)
    except ValueError:
        return None
    return new_stage, description
