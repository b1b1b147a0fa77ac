"""A stage that finished while the tracking server was down is registered by the next run, not retrained."""

import json

from core.contracts import EvalResult, StageResult
from core.plan import plan
from core.config import parse_pipeline
from flows.exp_pipeline import finished_on_disk
from tests_helpers import minimal_pipeline


def _stage(tmp_path, status="succeeded", key=None):
    spec = plan(parse_pipeline(minimal_pipeline(stages=1)), code_version="v1")[0]
    out = tmp_path / "stage"
    (out / "model").mkdir(parents=True)
    result = StageResult(stage=spec.name, key=key or spec.key, base_model="b",
                         evals=[EvalResult(name="t", role="primary", baseline={"wer": 1.0}, final={"wer": 0.5}, samples=1)])
    (out / "metrics.json").write_text(result.model_dump_json(), encoding="utf-8")
    (out / "meta.json").write_text(json.dumps({"status": status}), encoding="utf-8")
    return spec, out, result


def test_finished_output_with_the_same_key_is_adopted(tmp_path):
    spec, out, result = _stage(tmp_path)
    assert finished_on_disk(spec, out) == result


def test_unfinished_or_other_key_or_missing_model_is_run_again(tmp_path):
    spec, out, _ = _stage(tmp_path / "a", status="failed")
    assert finished_on_disk(spec, out) is None
    spec, out, _ = _stage(tmp_path / "b", key="another-key")
    assert finished_on_disk(spec, out) is None
    spec, out, _ = _stage(tmp_path / "c")
    (out / "model").rmdir()
    assert finished_on_disk(spec, out) is None
