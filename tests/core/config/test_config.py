import pytest
import yaml

from core.config import ConfigError, load_pipeline, parse_pipeline
from repo_paths import ROOT, SHIPPED_PIPELINES


def _minimal(**over):
    raw = {
        "name": "p",
        "family": "asr",
        "base_model": "openai/whisper-tiny",
        "defaults": {"training": {"learning_rate": 1e-4, "per_device_train_batch_size": 8},
                     "evals": [{"name": "t", "role": "primary", "data": {"kind": "csv", "path": "t.csv"}}]},
        "stages": [
            {"name": "a", "output_name": "m-a", "train": {"kind": "csv", "path": "a.csv"}},
            {"name": "b", "output_name": "m-b", "train": {"kind": "csv", "path": "b.csv"},
             "training": {"learning_rate": 5e-5}},
        ],
    }
    raw.update(over)
    return raw


def test_shipped_pipelines_validate():
    for path in SHIPPED_PIPELINES:
        config = load_pipeline(path)
        assert config.stages, path


def test_fr_pipeline_encodes_the_four_stage_large_v3_plan():
    config = load_pipeline(ROOT / "pipelines" / "fr.yaml")
    assert config.base_model == "openai/whisper-large-v3"
    assert [s.name for s in config.stages][0] == "exp1-mls" and len(config.stages) == 4
    first = config.stages[0]
    assert first.train.id == "facebook/multilingual_librispeech" and first.train.config == "french"
    assert first.output_name == "gilbert-whisper-l3-fr-base-v1"
    for stage in config.stages:
        t = stage.training
        assert (t.per_device_train_batch_size, t.fp16, t.generation_max_length) == (16, True, 225)
        assert stage.backend.kind == "modal" and stage.backend.gpu == "H100"
        assert t.load_best_model_at_end and t.metric_for_best_model == "wer"
        assert any(e.role == "guard" and e.language == "english" for e in stage.evals)
    assert config.stages[0].training.eval_steps == 5000


def test_defaults_inherit_and_stage_values_override():
    config = parse_pipeline(_minimal())
    a, b = config.stages
    assert a.training.per_device_train_batch_size == 8 == b.training.per_device_train_batch_size
    assert a.training.learning_rate == 1e-4
    assert b.training.learning_rate == 5e-5
    assert a.evals[0].name == "t"


def test_unknown_key_is_rejected_with_stage_and_field():
    raw = _minimal()
    raw["stages"][1]["training"]["evaluation_strategy"] = "steps"
    with pytest.raises(ConfigError) as info:
        parse_pipeline(raw, "x.yaml")
    text = str(info.value)
    assert "x.yaml" in text and "stages[1](b).training.evaluation_strategy" in text and "unknown key" in text


def test_missing_field_and_bad_value_are_named():
    raw = _minimal()
    del raw["stages"][0]["output_name"]
    raw["stages"][1]["training"]["learning_rate"] = -1
    with pytest.raises(ConfigError) as info:
        parse_pipeline(raw)
    problems = "\n".join(info.value.problems)
    assert "stages[0](a).output_name: required" in problems
    assert "stages[1](b).training.learning_rate" in problems


def test_configs_are_frozen():
    config = parse_pipeline(_minimal())
    with pytest.raises(Exception):
        config.stages[0].training.learning_rate = 1.0


def test_guard_needs_bound_and_one_primary():
    raw = _minimal()
    raw["defaults"]["evals"].append({"name": "g", "role": "guard", "data": {"kind": "csv", "path": "g.csv"}})
    with pytest.raises(ConfigError, match="max_regression"):
        parse_pipeline(raw)
    raw = _minimal()
    raw["defaults"]["evals"][0]["role"] = "report"
    with pytest.raises(ConfigError, match="exactly one eval set with role: primary"):
        parse_pipeline(raw)


def test_fp16_and_bf16_conflict():
    raw = _minimal()
    raw["defaults"]["training"].update(fp16=True, bf16=True)
    with pytest.raises(ConfigError, match="fp16 and bf16"):
        parse_pipeline(raw)


def test_yaml_syntax_error_names_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: p\nstages: [\n  - a: 1\n")
    with pytest.raises(ConfigError) as info:
        load_pipeline(bad)
    assert "bad.yaml" in str(info.value) and "line" in str(info.value)


def test_duplicate_output_names_rejected():
    raw = _minimal()
    raw["stages"][1]["output_name"] = "m-a"
    with pytest.raises(ConfigError, match="output_name"):
        parse_pipeline(raw)


def test_roundtrip_through_yaml(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(_minimal()))
    assert load_pipeline(path).stages[1].training.learning_rate == 5e-5
