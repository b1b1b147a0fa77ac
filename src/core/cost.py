"""GPU hours and money, before a run (an estimate from step counts and a step time) and after it
(what each stage run and trial used). Pure: callers pass what they measured.

Prices are USD per GPU hour. The shipped table is dated and cited below; a pipeline's ``prices:``
block overrides any entry (``prices: {modal: {H100: 3.50}, local: {cuda: 0.80}}``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from core.contracts import StageResult, StageSpec

PRICES_CHECKED = "2026-05-07"
PRICES_SOURCE = ("Modal's pricing page (https://modal.com/pricing, billed per second), as listed on 2026-05-07 and "
                 "quoted by https://techbytes.app/posts/serverless-gpu-pricing-matrix-modal-replicate-lambda-2026/")
MODAL_USD_PER_GPU_HOUR: dict[str, float] = {
    "T4": 0.5904,
    "L4": 0.7992,
    "L40S": 1.9512,
    "A100-80GB": 2.4984,
    "H100": 3.9492,
}
# Kaggle's GPU is free and rationed: about 30 GPU hours a week per verified account (Kaggle's
# notebook settings panel; also github.com/frederisk/kaggle-action's README, "more than 30 hours").
KAGGLE_WEEKLY_GPU_HOURS = 30.0
KAGGLE_QUOTA_SOURCE = "Kaggle's weekly GPU quota (about 30 h per account), per github.com/frederisk/kaggle-action"


@dataclass(frozen=True)
class StageEstimate:
    stage: str
    backend: str
    trials: int
    steps: int | None  # per trial
    step_time_s: float | None
    step_time_from: str  # "declared" | "measured" | ""
    usd_per_gpu_hour: float | None
    gpus: int

    @property
    def gpu_hours(self) -> float | None:
        if self.steps is None or self.step_time_s is None:
            return None
        return self.trials * self.steps * self.step_time_s * self.gpus / 3600

    @property
    def usd(self) -> float | None:
        hours = self.gpu_hours
        return None if hours is None or self.usd_per_gpu_hour is None else hours * self.usd_per_gpu_hour

    def missing(self) -> str:
        """What keeps this estimate from being complete ('' when it is)."""
        if self.steps is None:
            return "steps unknown: set training.max_steps (or max_samples on the training data)"
        if self.step_time_s is None:
            return "step time unknown: declare backend.step_time_s or run the stage once"
        if self.usd_per_gpu_hour is None:
            return f"no price for this GPU: add it under prices.{self.backend}"
        return ""


def usd_per_gpu_hour(backend, overrides: Mapping[str, Mapping[str, float]] | None = None) -> float | None:
    """The price of one GPU hour on ``backend`` (a BackendConfig); None when unknown."""
    own = dict((overrides or {}).get(backend.kind, {}))
    if backend.kind == "local":
        return float(own.get(backend.gpu or backend.device, own.get("gpu", 0.0)))  # your own hardware: free unless priced
    if backend.kind == "kaggle":
        return float(own.get(backend.gpu or "gpu", 0.0))
    table = MODAL_USD_PER_GPU_HOUR | own
    return float(table[backend.gpu]) if backend.gpu in table else None


def training_steps(stage) -> int | None:
    """Optimizer steps of one run of the stage: max_steps, or epochs over a known number of samples."""
    training = getattr(stage, "training", None)
    if training is None:
        return None
    if training.max_steps:
        return int(training.max_steps)
    samples = getattr(stage.train, "max_samples", None) or getattr(stage.train, "params", {}).get("count")
    if not samples:
        return None
    per_step = training.per_device_train_batch_size * training.gradient_accumulation_steps * stage.backend.gpus
    return int(math.ceil(samples * training.num_train_epochs / per_step))


def estimate(specs: list[StageSpec], prices: Mapping[str, Mapping[str, float]] | None = None,
             measured_step_s: Mapping[str, float] | None = None) -> list[StageEstimate]:
    """One estimate per stage; a search's counts its trials. ``measured_step_s`` maps stage names to a
    step time measured on an earlier run (a declared ``backend.step_time_s`` wins)."""
    rows = []
    for spec in specs:
        backend = spec.stage.backend
        declared, measured = backend.step_time_s, (measured_step_s or {}).get(spec.name)
        rows.append(StageEstimate(
            stage=spec.name, backend=backend.kind + (f" {backend.gpu}" if backend.gpu else ""),
            trials=spec.stage.search.trials if spec.stage.search else 1, steps=training_steps(spec.stage),
            step_time_s=declared if declared is not None else measured,
            step_time_from="declared" if declared is not None else "measured" if measured is not None else "",
            usd_per_gpu_hour=usd_per_gpu_hour(backend, prices), gpus=backend.gpus))
    return rows


def over_budget(estimates: list[StageEstimate], budget) -> list[str]:
    """Why the estimate does not fit ``budget`` (a BudgetConfig or None); [] when it fits."""
    problems = []
    hours = sum(e.gpu_hours or 0.0 for e in estimates)
    usd = sum(e.usd or 0.0 for e in estimates)
    kaggle = sum(e.gpu_hours or 0.0 for e in estimates if e.backend.startswith("kaggle"))
    if kaggle > KAGGLE_WEEKLY_GPU_HOURS:
        problems.append(f"the Kaggle stages need {kaggle:.1f} GPU h, more than Kaggle's weekly "
                        f"{KAGGLE_WEEKLY_GPU_HOURS:.0f} h quota")
    if budget is None:
        return problems
    if budget.usd is not None and usd > budget.usd:
        problems.append(f"estimated cost ${usd:,.2f} is above budget.usd ${budget.usd:,.2f}")
    if budget.gpu_hours is not None and hours > budget.gpu_hours:
        problems.append(f"estimated {hours:.1f} GPU h is above budget.gpu_hours {budget.gpu_hours:g}")
    unknown = [e.stage for e in estimates if e.missing()]
    if unknown and (budget.usd is not None or budget.gpu_hours is not None):
        problems.append(f"no estimate for {', '.join(unknown)}: a budget needs every stage estimated "
                        f"({estimates[[e.stage for e in estimates].index(unknown[0])].missing()})")
    return problems


@dataclass(frozen=True)
class RunCost:
    gpu_seconds: float
    usd: float

    def metrics(self) -> dict[str, float]:
        from core.tracking import schema as S

        return {S.METRIC_GPU_SECONDS: round(self.gpu_seconds, 3), S.METRIC_COST_USD: round(self.usd, 6)}


def run_cost(spec: StageSpec, result: StageResult, prices: Mapping[str, Mapping[str, float]] | None = None) -> RunCost:
    """What one finished stage run or trial used: its phases' seconds on its GPUs (none on a CPU)."""
    backend = spec.stage.backend
    on_gpu = backend.kind != "local" or backend.device == "cuda"
    seconds = sum(result.timings_s.values()) * backend.gpus if on_gpu else 0.0
    price = usd_per_gpu_hour(backend, prices) or 0.0
    return RunCost(seconds, seconds / 3600 * price)


def total_cost(costs: list[RunCost]) -> dict[str, float]:
    """The pipeline run's totals over the stage runs it ran (a search's stage run holds its trials')."""
    from core.tracking import schema as S

    return {S.METRIC_TOTAL_GPU_SECONDS: round(sum(c.gpu_seconds for c in costs), 3),
            S.METRIC_TOTAL_COST_USD: round(sum(c.usd for c in costs), 6)}


def measured_step_time(result: StageResult) -> float | None:
    steps = result.train.get("global_step")
    seconds = result.timings_s.get("train")
    return seconds / steps if steps and seconds else None


def cost_lines(estimates: list[StageEstimate]) -> list[str]:
    """The estimate as plain lines (one per stage and a total), whatever the terminal's width."""
    lines = []
    for e in estimates:
        what = f"{e.trials} trials × " if e.trials > 1 else ""
        if e.missing():
            lines.append(f"{e.stage}  [{e.backend}]  {what}{e.steps or '?'} steps: no estimate ({e.missing()})")
            continue
        lines.append(f"{e.stage}  [{e.backend}]  {what}{e.steps} steps × {e.step_time_s:g} s ({e.step_time_from})"
                     f" = {e.gpu_hours:.2f} GPU h × ${e.usd_per_gpu_hour:g}/h = ${e.usd:,.2f}")
    hours = sum(e.gpu_hours or 0.0 for e in estimates)
    usd = sum(e.usd or 0.0 for e in estimates)
    unknown = sum(1 for e in estimates if e.missing())
    lines.append(f"total  {hours:.2f} GPU h, ${usd:,.2f}" + (f" (+ {unknown} stage(s) not estimated)" if unknown else "")
                 + f"  [prices of {PRICES_CHECKED}; pipeline prices: override them]")
    return lines
