from core.config.common import GateConfig
from core.contracts import EvalResult, StageResult
from core.gate import decide


def result(primary=(0.30, 0.20), guard=(0.10, 0.11)):
    return StageResult(stage="s", key="k", base_model="b", evals=[
        EvalResult(name="main", role="primary", baseline={"wer": primary[0]}, final={"wer": primary[1]}, samples=10),
        EvalResult(name="guard", role="guard", baseline={"wer": guard[0]}, final={"wer": guard[1]}, samples=10),
    ])


def test_champion_when_improved_guard_ok_and_no_champion_yet():
    d = decide(result(), GateConfig(metric="wer"), "main", {"guard": 0.02}, None)
    assert d.alias == "champion" and d.improved


def test_candidate_when_guard_regresses_too_much():
    d = decide(result(guard=(0.10, 0.15)), GateConfig(metric="wer"), "main", {"guard": 0.02}, None)
    assert d.alias == "candidate" and d.improved
    assert any("EXCEEDED" in r for r in d.reasons)


def test_candidate_when_not_better_than_current_champion():
    d = decide(result(), GateConfig(metric="wer"), "main", {}, champion_metric=0.15)
    assert d.alias == "candidate"
    assert decide(result(), GateConfig(metric="wer"), "main", {}, champion_metric=0.25).alias == "champion"


def test_min_improvement_and_higher_is_better_metrics():
    assert decide(result(primary=(0.30, 0.29)), GateConfig(metric="wer", min_improvement=0.02), "main", {}, None).alias == "candidate"
    r = StageResult(stage="s", key="k", base_model="b", evals=[
        EvalResult(name="main", role="primary", baseline={"f1": 0.5}, final={"f1": 0.8}, samples=3)])
    assert decide(r, GateConfig(metric="f1", greater_is_better=True), "main", {}, None).alias == "champion"
    assert decide(r, GateConfig(metric="f1", greater_is_better=False), "main", {}, None).alias == "candidate"


def test_unchanged_model_is_not_promoted():
    assert decide(result(primary=(0.3, 0.3)), GateConfig(metric="wer"), "main", {}, None).alias == "candidate"
