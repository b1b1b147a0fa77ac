"""pipelines/demo-base.yaml (``make demo``: whisper-base, new speakers -> medical dictation)
validates and plans a progressive chain, and the frozen cross-attention it uses is refused
where its keys and values could not be computed once."""

import pytest

from core.config import ConfigError, load_pipeline, parse_pipeline
from core.plan import plan
from repo_paths import ROOT
from tests_helpers import minimal_pipeline

PIPELINE = ROOT / "pipelines" / "demo-base.yaml"


def test_demo_base_chains_two_stages_on_real_whisper_with_one_token_budget():
    config = load_pipeline(PIPELINE)
    exp1, exp2 = plan(config, code_version="v1", pipeline_file=str(PIPELINE))
    assert exp1.base_model == "pypi:whisper-base" and exp2.base_model == "stage:exp1-general"
    assert exp2.upstream_stage == "exp1-general"
    for spec in (exp1, exp2):
        w = spec.stage.whisper
        assert w.chunk_length == 30 and w.freeze_encoder and w.cache_encoder_outputs and w.freeze_cross_attention
        assert w.eval_tokens_per_second == 12
    # Exp2's guard is Exp1's primary set, measured the same way: its baseline is Exp1's final.
    general1 = exp1.stage.primary_eval
    guard = next(e for e in exp2.stage.evals if e.role == "guard")
    assert guard.name == general1.name and guard.data == general1.data and guard.max_regression == 0.02
    assert exp2.stage.primary_eval.data.params["domain"] == "medical"
    assert exp2.stage.train.params["general_mix"] > 0


def test_frozen_cross_attention_needs_the_encoder_outputs_cached():
    raw = minimal_pipeline(stages=1)
    raw["stages"][0]["whisper"] = {"freeze_encoder": True, "freeze_cross_attention": True}
    with pytest.raises(ConfigError, match="freeze_cross_attention needs whisper.cache_encoder_outputs"):
        parse_pipeline(raw)
