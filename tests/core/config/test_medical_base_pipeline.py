"""pipelines/medical-base.yaml (medical dictation on real whisper-base) validates and plans, and the
encoder-output cache it uses is refused where it would be wrong."""

import pytest
from typer.testing import CliRunner

from core.config import ConfigError, load_pipeline, parse_pipeline
from core.plan import plan
from palier.cli import app
from repo_paths import ROOT
from tests_helpers import minimal_pipeline

PIPELINE = ROOT / "pipelines" / "medical-base.yaml"


def test_medical_base_validates_and_plans_one_real_whisper_stage():
    config = load_pipeline(PIPELINE)
    (spec,) = plan(config, code_version="v1", pipeline_file=str(PIPELINE))
    stage = spec.stage
    assert spec.base_model == "pypi:whisper-base" and spec.upstream_stage is None
    assert stage.whisper.chunk_length == 30 and stage.whisper.freeze_encoder and stage.whisper.cache_encoder_outputs
    assert (ROOT / "data" / "lexicons" / "medical_fr.txt").samefile(PIPELINE.parent / stage.lexicon)
    # One generated folder split 80/20: training and held-out sets are its two parts.
    medical = next(e for e in stage.evals if e.name == "medical_test")
    assert medical.role == "primary" and medical.data.part == "test" and stage.train.part == "train"
    assert medical.data.params == stage.train.params and medical.data.generator == "dictation_reports"
    guard = next(e for e in stage.evals if e.role == "guard")
    assert guard.max_regression == 0.02 and guard.data.params.get("domain", "general") == "general"
    assert stage.export is not None and stage.export.quantization == "int8"

    result = CliRunner().invoke(app, ["run", str(PIPELINE), "--plan"])
    assert result.exit_code == 0, result.output
    assert "starts from  pypi:whisper-base" in result.output and "medical_test (primary)" in result.output


@pytest.mark.parametrize("whisper, training, message", [
    ({"cache_encoder_outputs": True}, {}, "needs whisper.freeze_encoder: true"),
    ({"cache_encoder_outputs": True, "freeze_encoder": True}, {"method": "lora"}, "needs training.method: full"),
])
def test_encoder_cache_is_refused_when_the_encoder_could_change(whisper, training, message):
    raw = minimal_pipeline(stages=1)
    raw["stages"][0]["whisper"] = whisper
    raw["stages"][0]["training"] = training
    with pytest.raises(ConfigError, match=message):
        parse_pipeline(raw)
