from core.contracts import EvalResult, StageResult
from core.tracking import schema as S
from tasks.results import side_by_side, tied_metrics


def _result():
    return StageResult(stage="s", key="k", base_model="b", timings_s={"train": 3.0},
                       evals=[EvalResult(name="t", role="primary", baseline={"wer": 0.5}, final={"wer": 0.2}, samples=2)])


def test_scores_name_their_model_and_eval_set():
    metrics = {m.key: m for m in tied_metrics(_result(), None, "m-final", "m-upstream", {"t": "d1"})}
    final, baseline = metrics[S.final_key("t", "wer")], metrics[S.baseline_key("t", "wer")]
    assert (final.model_id, final.dataset_name, final.dataset_digest, final.value) == ("m-final", "t", "d1", 0.2)
    assert (baseline.model_id, baseline.dataset_name, baseline.value) == ("m-upstream", "t", 0.5)
    delta, timing = metrics[S.delta_key("t", "wer")], metrics[S.timing_key("train")]
    assert delta.model_id is None and delta.dataset_name is None and abs(delta.value + 0.3) < 1e-9
    assert timing.model_id is None and timing.value == 3.0
    # The first stage's baseline measures a base model that has no LoggedModel.
    first = {m.key: m for m in tied_metrics(_result(), None, "m-final", None, {"t": "d1"})}
    assert first[S.baseline_key("t", "wer")].model_id is None and first[S.baseline_key("t", "wer")].dataset_name == "t"


def test_predictions_side_by_side_with_per_utterance_error():
    baseline = [{"id": 0, "reference": "le patient tousse", "prediction": "le patron tousse"},
                {"id": 1, "reference": "bonjour", "prediction": "bonjour"}]
    final = [{"id": 0, "reference": "le patient tousse", "prediction": "le patient tousse"},
             {"id": 1, "reference": "bonjour", "prediction": "bonsoir"}]
    rows = side_by_side(baseline, final, "asr")
    assert rows[0] == {"id": 0, "reference": "le patient tousse", "baseline": "le patron tousse",
                       "final": "le patient tousse", "baseline_error": 1 / 3, "final_error": 0.0}
    assert rows[1]["baseline_error"] == 0.0 and rows[1]["final_error"] == 1.0
    assert side_by_side(baseline, final, "sft")[0]["baseline_error"] == 1.0
