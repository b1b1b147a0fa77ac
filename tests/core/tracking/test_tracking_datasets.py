import json

from core.config import parse_pipeline
from core.plan import plan
from core.tracking.datasets import EVALUATION, TRAINING, dataset_inputs, stage_datasets
from tests_helpers import minimal_pipeline


def test_training_and_eval_sets_become_datasets_with_source_and_context(tmp_path):
    raw = minimal_pipeline(stages=1)
    raw["stages"][0]["evals"] = [
        {"name": "t", "role": "primary", "data": {"kind": "csv", "path": "t.csv"}},
        {"name": "hub_guard", "role": "guard", "max_regression": 0.02,
         "data": {"kind": "hub", "id": "facebook/multilingual_librispeech", "config": "french", "split": "test"}}]
    spec = plan(parse_pipeline(raw), code_version="v1", pipeline_file=str(tmp_path / "p.yaml"))[0]
    sets = stage_datasets(spec, lambda src: f"digest-of-{src.kind}", {"t": {"kept": 3}})
    by_name = {d.name: d for d in sets}
    assert [d.name for d in sets] == ["s0-train", "t", "hub_guard"]
    assert by_name["s0-train"].context == TRAINING and by_name["t"].context == EVALUATION
    assert json.loads(by_name["t"].source) == {"uri": (tmp_path / "t.csv").as_uri()}  # relative to the pipeline file
    assert by_name["t"].source_type == "local" and by_name["t"].digest == "digest-of-csv"
    assert json.loads(by_name["t"].profile) == {"kept": 3}
    assert json.loads(by_name["hub_guard"].source) == {"path": "facebook/multilingual_librispeech",
                                                       "config_name": "french", "split": "test"}
    inputs = dataset_inputs(sets)
    assert inputs[1].dataset.name == "t" and inputs[1].tags[0].key == "mlflow.data.context"
    assert inputs[1].tags[0].value == "evaluation"
