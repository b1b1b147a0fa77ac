"""Cost before (GPU hours and dollars from steps x step time x price) and after (what a run used)."""

import pytest

from core.config import parse_pipeline
from core.contracts import EvalResult, StageResult
from core.cost import (KAGGLE_WEEKLY_GPU_HOURS, MODAL_USD_PER_GPU_HOUR, cost_lines, estimate, over_budget, run_cost,
                       total_cost)
from core.plan import plan
from core.tracking import schema as S


def _config(backend: dict, training: dict, search: dict | None = None, **top):
    stage = {"name": "a", "output_name": "m-a", "train": {"kind": "csv", "path": "a.csv"}, "training": training,
             "evals": [{"name": "t", "role": "primary", "data": {"kind": "csv", "path": "t.csv"}}], "backend": backend}
    if search:
        stage["search"] = search
    return parse_pipeline({"name": "p", "family": "asr", "base_model": "openai/whisper-tiny", "stages": [stage], **top})


def test_a_search_on_modal_costs_its_trials_at_the_table_price():
    search = {"parameters": {"training.learning_rate": {"low": 1.0e-5, "high": 1.0e-3, "log": True}}, "trials": 4}
    config = _config({"kind": "modal", "gpu": "H100", "step_time_s": 0.9}, {"max_steps": 20000}, search)
    [e] = estimate(plan(config, "code"), config.prices)
    assert e.trials == 4 and e.steps == 20000 and e.step_time_from == "declared"
    assert e.gpu_hours == pytest.approx(4 * 20000 * 0.9 / 3600)  # 20 GPU hours
    assert e.usd == pytest.approx(20 * MODAL_USD_PER_GPU_HOUR["H100"])
    assert "4 trials × 20000 steps × 0.9 s (declared) = 20.00 GPU h" in cost_lines([e])[0]


def test_prices_overridden_measured_step_time_and_epochs_over_a_known_sample_count():
    config = _config({"kind": "modal", "gpu": "A10G"}, {"num_train_epochs": 2.0, "per_device_train_batch_size": 8},
                     prices={"modal": {"A10G": 1.10}})
    config = config.model_copy(update={"stages": [config.stages[0].model_copy(update={
        "train": config.stages[0].train.model_copy(update={"max_samples": 100})})]})
    [e] = estimate(plan(config, "code"), config.prices, {"a": 0.5})
    assert e.steps == 25 and e.step_time_from == "measured" and e.usd_per_gpu_hour == 1.10
    assert e.usd == pytest.approx(25 * 0.5 / 3600 * 1.10)


def test_budget_refuses_a_plan_above_it_and_an_unknown_estimate():
    config = _config({"kind": "modal", "gpu": "H100", "step_time_s": 1.0}, {"max_steps": 36000},
                     budget={"usd": 30.0})
    estimates = estimate(plan(config, "code"), config.prices)
    assert estimates[0].usd == pytest.approx(10 * 3.9492)
    assert any("above budget.usd $30.00" in p for p in over_budget(estimates, config.budget))
    unpriced = _config({"kind": "modal", "gpu": "B300", "step_time_s": 1.0}, {"max_steps": 10}, budget={"usd": 30.0})
    problems = over_budget(estimate(plan(unpriced, "code"), unpriced.prices), unpriced.budget)
    assert any("no price for this GPU: add it under prices.modal" in p for p in problems)


def test_kaggle_is_free_but_rationed_by_its_weekly_quota():
    config = _config({"kind": "kaggle", "step_time_s": 2.0}, {"max_steps": 60000})
    estimates = estimate(plan(config, "code"), config.prices)
    assert estimates[0].usd == 0.0 and estimates[0].gpu_hours > KAGGLE_WEEKLY_GPU_HOURS
    assert any("weekly" in p for p in over_budget(estimates, None))


def test_what_a_run_used():
    result = StageResult(stage="a", key="k", base_model="b", timings_s={"baseline": 60.0, "train": 3540.0},
                         evals=[EvalResult(name="t", role="primary", baseline={"wer": 1.0}, final={"wer": 0.5}, samples=1)])
    modal = plan(_config({"kind": "modal", "gpu": "H100", "gpus": 2}, {"max_steps": 1}), "code")[0]
    cost = run_cost(modal, result)
    assert cost.gpu_seconds == 7200.0 and cost.usd == pytest.approx(2 * 3.9492)
    cpu = plan(_config({"kind": "local", "device": "cpu"}, {"max_steps": 1}), "code")[0]
    assert run_cost(cpu, result).gpu_seconds == 0.0
    totals = total_cost([cost, run_cost(cpu, result)])
    assert totals[S.METRIC_TOTAL_GPU_SECONDS] == 7200.0
