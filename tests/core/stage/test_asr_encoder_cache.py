"""whisper.cache_encoder_outputs: a frozen encoder run once, its outputs reused by training
and by both evaluations, on a tiny random-weight Whisper with real espeak-ng speech."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import load_pipeline
from core.contracts import StageResult
from core.plan import plan
from tiny import tiny_asr_pipeline
from repo_paths import ROOT

pytestmark = pytest.mark.integration


def _run_stage(tmp_path: Path, tiny_whisper: Path, cache: Path, name: str, whisper: dict, training: dict) -> Path:
    path = tiny_asr_pipeline(tmp_path / f"{name}.yaml", tiny_whisper, stages=1, name=name,
                             lexicon=ROOT / "data" / "lexicons" / "medical_fr.txt", whisper=whisper)
    spec = plan(load_pipeline(path), code_version="test", pipeline_file=str(path))[0]
    spec = spec.model_copy(update={"stage": spec.stage.model_copy(
        update={"training": spec.stage.training.model_copy(update=training)})})
    out = tmp_path / name
    out.mkdir()
    proc = subprocess.run([sys.executable, "-m", "core.stage", "--spec", str(spec.write(out / "spec.json")),
                           "--out", str(out), "--cache-dir", str(cache)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def _predictions(out: Path, phase: str) -> list[str]:
    lines = (out / "predictions" / f"{phase}_general_test.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["prediction"] for line in lines]


def test_cached_encoder_outputs_train_the_decoder_and_match_the_live_encoder(tmp_path, tiny_whisper, speech_cache):
    import torch
    from transformers import WhisperForConditionalGeneration

    training = {"max_steps": 3, "eval_strategy": "steps", "eval_steps": 3, "eval_sample": 2, "cpu_threads": 1}
    cached = _run_stage(tmp_path, tiny_whisper, speech_cache, "cached",
                        {"chunk_length": 6, "freeze_encoder": True, "cache_encoder_outputs": True}, training)
    live = _run_stage(tmp_path, tiny_whisper, speech_cache, "live", {"chunk_length": 6, "freeze_encoder": True},
                      training)

    # The baseline sees the same encoder either way: the same transcripts, token for token.
    assert _predictions(cached, "baseline") == _predictions(live, "baseline")
    events = [json.loads(line) for line in (cached / "events.jsonl").read_text().splitlines()]
    computed = [e["message"] for e in events if e["type"] == "log" and "computed once" in e.get("message", "")]
    assert len(computed) == 2, computed  # the train set and the eval set, each once for the whole stage

    result = StageResult.model_validate_json((cached / "metrics.json").read_text())
    assert result.train["global_step"] == 3
    trained = WhisperForConditionalGeneration.from_pretrained(cached / "model")
    original = WhisperForConditionalGeneration.from_pretrained(tiny_whisper, dtype=torch.float32)
    changed = {n for (n, a), (_, b) in zip(trained.named_parameters(), original.named_parameters())
               if not torch.equal(a.float(), b.float())}
    assert changed and all(n.startswith(("model.decoder.", "proj_out")) for n in changed), sorted(changed)[:5]
    # Same data, same seed, same frozen encoder: training on cached outputs is training on live ones.
    live_model = WhisperForConditionalGeneration.from_pretrained(live / "model")
    for (n, a), (_, b) in zip(trained.named_parameters(), live_model.named_parameters()):
        assert torch.allclose(a, b, atol=1e-5), n
