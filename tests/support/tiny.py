"""Tiny real artefacts for the tests: a random-weight nano Whisper and spoken French data."""

from __future__ import annotations

from pathlib import Path

import yaml


def build_tiny_whisper(out: Path, chunk_length: int = 6) -> Path:
    from core.stage.whisper_nano import build_feature_extractor, build_model, build_tokenizer

    if (out / "config.json").exists():
        return out
    tok = build_tokenizer()
    tok.set_prefix_tokens(language="french", task="transcribe", predict_timestamps=False)
    model = build_model(tok, chunk_length=chunk_length, d_model=32, layers=1, heads=2, ffn=64, max_target_positions=96)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    build_feature_extractor(chunk_length).save_pretrained(out)
    return out


def tiny_asr_pipeline(path: Path, base_model: Path, stages: int = 2, name: str = "tiny", steps: int = 2,
                      lexicon: Path | None = None, **stage_overrides) -> Path:
    def speech(pool: str, count: int, domain: str = "general", voices: str = "stage") -> dict:
        return {"kind": "generated", "generator": "french_speech",
                "params": {"pool": pool, "count": count, "voices": voices, "domain": domain}}

    plan = {
        "name": name,
        "family": "asr",
        "base_model": str(base_model),
        "language": "french",
        "defaults": {
            "whisper": {"chunk_length": 6},
            "training": {"max_steps": steps, "per_device_train_batch_size": 4, "learning_rate": 1e-3,
                         "eval_strategy": "no", "logging_steps": 1, "generation_max_length": 40},
            "backend": {"kind": "local", "device": "cpu"},
            **({"lexicon": str(lexicon)} if lexicon else {}),
        },
        "stages": [
            {"name": "general", "output_name": f"{name}-general",
             "train": speech("stage", 8), "evals": [{"name": "general_test", "role": "primary", "data": speech("test", 4)}]},
            {"name": "medical", "output_name": f"{name}-medical",
             "train": speech("stage", 8, "medical"),
             "evals": [{"name": "medical_test", "role": "primary", "data": speech("test", 4, "medical")},
                       {"name": "general_test", "role": "guard", "max_regression": 1.0, "data": speech("test", 4)}]},
        ][:stages],
    }
    for stage in plan["stages"]:
        stage.update(stage_overrides)
    path.write_text(yaml.safe_dump(plan, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def tiny_search_pipeline(path: Path, base_model: Path, name: str, trials: int, parallel: int, stages: int = 2,
                         parameters: dict | None = None) -> Path:
    """The tiny pipeline whose first stage searches, on a grid: by default the learning rate (its trials
    differ in what they learn)."""
    tiny_asr_pipeline(path, base_model, stages=stages, name=name)
    plan = yaml.safe_load(path.read_text(encoding="utf-8"))
    plan["stages"][0]["search"] = {
        "parameters": parameters or {"training.learning_rate": {"choices": [1.0e-5, 3.0e-4, 1.0e-3, 3.0e-3][:trials]}},
        "sampler": "grid", "trials": trials, "parallel": parallel}
    path.write_text(yaml.safe_dump(plan, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path
