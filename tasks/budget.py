"""The cost estimate of a planned pipeline, and the budget check before it starts (no Prefect here:
`palier run --plan` and `palier check` use it too)."""

from __future__ import annotations

from pathlib import Path

from core.contracts import StageResult, StageSpec
from core.cost import StageEstimate, estimate, measured_step_time, over_budget
from core.paths import home


class BudgetExceeded(RuntimeError):
    """The estimate is above the pipeline's ``budget:``; nothing was started."""


def measured_step_times(specs: list[StageSpec]) -> dict[str, float]:
    """Seconds per step from the newest finished output of each stage (or of its trials) on this machine."""
    found: dict[str, float] = {}
    for spec in specs:
        folder = home() / "runs" / spec.pipeline
        candidates = sorted(folder.glob(f"{spec.name}-*/metrics.json"), key=lambda p: p.stat().st_mtime) + sorted(
            folder.glob(f"{spec.name}.t*-*/metrics.json"), key=lambda p: p.stat().st_mtime)
        for path in reversed(candidates):
            seconds = _step_time(path)
            if seconds is not None:
                found[spec.name] = seconds
                break
    return found


def _step_time(path: Path) -> float | None:
    try:
        return measured_step_time(StageResult.model_validate_json(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def plan_estimates(config, specs: list[StageSpec]) -> list[StageEstimate]:
    return estimate(specs, config.prices, measured_step_times(specs))


def check_budget(config, specs: list[StageSpec], logger=None) -> list[StageEstimate]:
    """Raise BudgetExceeded when the estimate does not fit ``budget:`` (or Kaggle's weekly quota)."""
    estimates = plan_estimates(config, specs)
    problems = over_budget(estimates, config.budget)
    if problems:
        raise BudgetExceeded(f"pipeline {config.name} not started: " + "; ".join(problems)
                             + " (raise budget:, lower trials or steps, or pick a cheaper GPU)")
    if logger is not None:
        hours = sum(e.gpu_hours or 0.0 for e in estimates)
        usd = sum(e.usd or 0.0 for e in estimates)
        logger.info(f"estimate: {hours:.2f} GPU h, ${usd:,.2f}")
    return estimates
