"""The stage runner on a tiny random-weight Whisper with real espeak-ng speech (CPU)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.config import load_pipeline
from core.contracts import StageResult
from core.plan import plan
from tiny import tiny_asr_pipeline
from repo_paths import ROOT
from stage_files import read_events

pytestmark = pytest.mark.integration


def _spec(tmp_path, tiny_whisper, **overrides):
    lexicon = ROOT / "data" / "lexicons" / "medical_fr.txt"
    path = tiny_asr_pipeline(tmp_path / "p.yaml", tiny_whisper, stages=2, lexicon=lexicon, **overrides)
    return plan(load_pipeline(path), code_version="test", pipeline_file=str(path))


def _run(spec, out: Path, cache: Path, check=True):
    spec.write(out.parent / f"{out.name}.spec.json") if out.parent.exists() else None
    out.mkdir(parents=True, exist_ok=True)
    spec_file = spec.write(out / "spec.json")
    proc = subprocess.run([sys.executable, "-m", "core.stage", "--spec", str(spec_file), "--out", str(out),
                           "--cache-dir", str(cache)], capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_one_stage_end_to_end(tmp_path, tiny_whisper, speech_cache):
    import torch
    from transformers import WhisperForConditionalGeneration

    spec = _spec(tmp_path, tiny_whisper)[1]  # the medical stage: two eval sets, lexicon, guard
    spec = spec.with_base_model(str(tiny_whisper))
    out = tmp_path / "run"
    _run(spec, out, speech_cache)

    result = StageResult.model_validate_json((out / "metrics.json").read_text())
    assert {e.name for e in result.evals} == {"medical_test", "general_test"}
    medical = result.eval("medical_test")
    for phase in (medical.baseline, medical.final):
        assert {"wer", "cer", "normalized_wer", "normalized_cer", "medical_term_accuracy"} <= set(phase)
    assert medical.samples == 4 and result.train["global_step"] == 2
    assert result.data["train"]["kept"] == 8

    # Baseline strictly before training: the gains are measured against the untouched model.
    phases = [e["phase"] for e in read_events(out) if e["type"] == "phase" and e["status"] == "start"]
    assert phases.index("baseline") < phases.index("train") < phases.index("final")
    assert any(e["type"] == "metric" and "loss" in e["metrics"] for e in read_events(out))
    assert any(e["type"] == "heartbeat" for e in read_events(out))

    rows = [json.loads(line) for line in (out / "predictions" / "final_medical_test.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and {"id", "reference", "prediction"} <= set(rows[0])

    meta = json.loads((out / "meta.json").read_text())
    assert meta["status"] == "succeeded" and meta["lineage"]["base_model"] == str(tiny_whisper)

    trained = WhisperForConditionalGeneration.from_pretrained(out / "model")
    original = WhisperForConditionalGeneration.from_pretrained(tiny_whisper, dtype=torch.float32)
    changed = [n for (n, a), (_, b) in zip(trained.named_parameters(), original.named_parameters())
               if not torch.equal(a.float(), b.float())]
    assert changed, "training did not change any weight"
    assert trained.generation_config.language in ("french", "fr", "<|fr|>")


def test_bad_samples_are_dropped_with_named_reasons(tmp_path, tiny_whisper, speech_cache):
    from core.config import parse_pipeline
    from audio_files import write_audio_zoo
    import yaml

    from core.demo.datasets import generate

    manifest = generate("french_speech", {"pool": "stage", "count": 8, "voices": "stage"}, speech_cache)
    zoo = write_audio_zoo(tmp_path / "zoo")
    csv = tmp_path / "train.csv"
    lines = manifest.read_text().splitlines()
    good = [f"{manifest.parent / line.split(',', 1)[0]},{line.split(',', 1)[1]}" for line in lines[1:]]
    csv.write_text("audio,sentence\n" + "\n".join(good) + "\n"
                   f"{zoo['html_error_page.wav']},du texte\n{zoo['too_long.wav']},du texte\n"
                   f"{zoo['pcm16_16k_mono.wav']},\n{tmp_path / 'nope.wav'},du texte\n")
    raw = yaml.safe_load((tiny_asr_pipeline(tmp_path / "p.yaml", tiny_whisper, stages=1)).read_text())
    raw["stages"][0]["train"] = {"kind": "csv", "path": str(csv)}
    raw["stages"][0]["training"] = {"max_steps": 1}
    spec = plan(parse_pipeline(raw), code_version="test", pipeline_file=str(tmp_path / "p.yaml"))[0]
    out = tmp_path / "run"
    _run(spec, out, speech_cache)
    report = json.loads((out / "metrics.json").read_text())["data"]["train"]
    assert report["kept"] == 8
    assert report["dropped"] == {"unreadable_audio": 2, "audio_longer_than_window": 1, "empty_transcript": 1}
    assert any("nope.wav" in x for x in report["dropped_examples"]["unreadable_audio"])


def test_sigterm_checkpoints_and_rerun_resumes(tmp_path, tiny_whisper, speech_cache):
    spec = _spec(tmp_path, tiny_whisper, training={"max_steps": 400, "save_steps": 1000, "logging_steps": 1,
                                                   "per_device_train_batch_size": 2})[0]
    out = tmp_path / "run"
    out.mkdir()
    spec_file = spec.write(out / "spec.json")
    proc = subprocess.Popen([sys.executable, "-m", "core.stage", "--spec", str(spec_file), "--out", str(out),
                             "--cache-dir", str(speech_cache)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while time.time() < deadline:
        if (out / "events.jsonl").exists() and any(
                e["type"] == "progress" and e.get("phase") == "train" and e["done"] >= 3 for e in read_events(out)):
            break
        assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 130
    assert json.loads((out / "meta.json").read_text())["status"] == "cancelled"
    checkpoints = sorted((out / "checkpoints").glob("checkpoint-*"))
    assert checkpoints, "graceful cancel must leave a checkpoint"
    stopped_at = int(checkpoints[-1].name.split("-")[1])
    assert 3 <= stopped_at < 400

    resumed = spec.model_copy(update={"stage": spec.stage.model_copy(update={
        "training": spec.stage.training.model_copy(update={"max_steps": stopped_at + 2})})})
    _run(resumed, out, speech_cache)
    events = read_events(out)
    messages = [e.get("message", "") for e in events if e["type"] == "log"]
    assert any(f"resuming training from checkpoint-{stopped_at}" in m for m in messages)
    assert any("reusing it" in m for m in messages)  # baseline measured once, not twice
    assert json.loads((out / "metrics.json").read_text())["train"]["global_step"] == stopped_at + 2


def test_lora_stage_merges_adapter_for_the_next_stage(tmp_path, tiny_whisper, speech_cache):
    from transformers import WhisperForConditionalGeneration

    spec = _spec(tmp_path, tiny_whisper, training={"method": "lora", "max_steps": 1,
                                                   "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}})[0]
    out = tmp_path / "run"
    _run(spec, out, speech_cache)
    result = json.loads((out / "metrics.json").read_text())
    total = sum(p.numel() for p in WhisperForConditionalGeneration.from_pretrained(tiny_whisper).parameters())
    assert 0 < result["train"]["trainable_parameters"] < total * 0.2
    assert not (out / "model" / "adapter_config.json").exists()
    WhisperForConditionalGeneration.from_pretrained(out / "model")  # plain weights, loadable


def test_unknown_local_model_fails_with_clear_message(tmp_path, tiny_whisper, speech_cache):
    spec = _spec(tmp_path, tiny_whisper)[0].with_base_model(str(tmp_path / "no-such-model"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "run"
    out.mkdir()
    proc = subprocess.run([sys.executable, "-m", "core.stage", "--spec", str(spec.write(out / "spec.json")),
                           "--out", str(out)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 1
    assert "cannot load WhisperFeatureExtractor" in proc.stderr and "HF_HUB_OFFLINE=1" in proc.stderr
    assert json.loads((out / "meta.json").read_text())["status"] == "failed"


def test_kill_9_then_a_torn_newest_checkpoint_resumes_from_the_previous_one(tmp_path, tiny_whisper, speech_cache):
    """Issue 18: a stage killed mid-training whose newest checkpoint is torn (its weights cut to
    half, what a crash or a full disk during a save leaves): the rerun sets it aside and
    finishes from the previous checkpoint instead of failing on it forever."""
    from core.stage.checkpoints import COMPLETE_MARKER, checkpoints_newest_first

    spec = _spec(tmp_path, tiny_whisper, training={"max_steps": 400, "save_steps": 2, "logging_steps": 1,
                                                   "per_device_train_batch_size": 2})[0]
    out = tmp_path / "run"
    out.mkdir()
    spec_file = spec.write(out / "spec.json")
    proc = subprocess.Popen([sys.executable, "-m", "core.stage", "--spec", str(spec_file), "--out", str(out),
                             "--cache-dir", str(speech_cache)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 300
    while len([c for c in checkpoints_newest_first(out / "checkpoints") if (c / COMPLETE_MARKER).is_file()]) < 2:
        assert proc.poll() is None and time.time() < deadline, "the stage ended before two checkpoints"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    complete = [c for c in checkpoints_newest_first(out / "checkpoints") if (c / COMPLETE_MARKER).is_file()]
    torn, previous = complete[0], complete[1]
    weights = torn / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])

    torn_step = int(torn.name.split("-")[1])
    resumed = spec.model_copy(update={"stage": spec.stage.model_copy(update={
        "training": spec.stage.training.model_copy(update={"max_steps": torn_step + 2})})})
    proc = _run(resumed, out, speech_cache)
    assert f"set aside as {out / 'checkpoints' / ('torn-' + torn.name)}" in proc.stderr
    events = read_events(out)
    aside = [e for e in events if e["type"] == "checkpoint_set_aside"]
    assert [a["checkpoint"] for a in aside][-1] == torn.name and "model.safetensors" in aside[-1]["reason"]
    messages = [e.get("message", "") for e in events if e["type"] == "log"]
    assert f"resuming training from {previous.name}" in messages
    assert (out / "checkpoints" / f"torn-{torn.name}" / "model.safetensors").is_file()  # never deleted
    assert json.loads((out / "metrics.json").read_text())["train"]["global_step"] == torn_step + 2
