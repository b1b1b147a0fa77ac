"""A two-stage chain with a frozen encoder (tiny random-weight Whisper, real espeak-ng speech):
encoder outputs computed once for the chain, cross-attention keys/values frozen and computed
once per training utterance, and the second stage's baseline on the set the first stage's final
evaluation measured (same model, same token budget) taken from that evaluation."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import load_pipeline
from core.contracts import StageResult
from core.plan import plan
from repo_paths import ROOT
from tiny import tiny_asr_pipeline

pytestmark = pytest.mark.integration

WHISPER = {"chunk_length": 6, "freeze_encoder": True, "cache_encoder_outputs": True,
           "freeze_cross_attention": True, "eval_tokens_per_second": 10}


def _messages(out: Path) -> list[str]:
    events = [json.loads(line) for line in (out / "events.jsonl").read_text(encoding="utf-8").splitlines()]
    return [e["message"] for e in events if e["type"] == "log"]


def _run_chain(tmp_path: Path, tiny_whisper: Path, cache: Path) -> list[Path]:
    path = tiny_asr_pipeline(tmp_path / "chain.yaml", tiny_whisper, stages=2, name="chain",
                             lexicon=ROOT / "data" / "lexicons" / "medical_fr.txt", whisper=WHISPER)
    outs = []
    for spec in plan(load_pipeline(path), code_version="test", pipeline_file=str(path)):
        out = tmp_path / spec.name
        out.mkdir()
        if outs:
            spec = spec.with_base_model(str(outs[-1] / "model"))
        proc = subprocess.run([sys.executable, "-m", "core.stage", "--spec", str(spec.write(out / "spec.json")),
                               "--out", str(out), "--cache-dir", str(cache)], capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        outs.append(out)
    return outs


def test_second_stage_reuses_the_first_stages_measurements(tmp_path, tiny_whisper):
    import torch
    from transformers import WhisperForConditionalGeneration

    general, medical = _run_chain(tmp_path, tiny_whisper, tmp_path / "cache")
    first = StageResult.model_validate_json((general / "metrics.json").read_text())
    second = StageResult.model_validate_json((medical / "metrics.json").read_text())

    guard = second.eval("general_test")
    assert guard.baseline_from == "general" and guard.baseline == first.eval("general_test").final
    assert second.eval("medical_test").baseline_from is None  # never measured before: evaluated
    rows = (medical / "predictions" / "baseline_general_test.jsonl").read_text()
    assert rows == (general / "predictions" / "final_general_test.jsonl").read_text()
    assert any("general_test: the final evaluation of stage general" in m for m in _messages(medical))

    # The encoder is the same in both stages: the general set's outputs are read back, not recomputed.
    assert any("computed once" in m for m in _messages(general))
    assert sum("reused from the cache" in m for m in _messages(medical)) == 1, _messages(medical)
    assert sum("cross-attention keys/values of 8 utterances computed once" in m for m in _messages(medical)) == 1

    # Only the decoder's own layers learnt: encoder and cross-attention keys/values stayed put.
    before = dict(WhisperForConditionalGeneration.from_pretrained(tiny_whisper, dtype=torch.float32).named_parameters())
    after = dict(WhisperForConditionalGeneration.from_pretrained(medical / "model").named_parameters())
    changed = {n for n, p in after.items() if not torch.equal(p.float(), before[n].float())}
    assert changed and not any(n.startswith("model.encoder.") or ".encoder_attn.k_proj" in n
                               or ".encoder_attn.v_proj" in n for n in changed), sorted(changed)
    assert any(".encoder_attn.q_proj" in n for n in changed)
