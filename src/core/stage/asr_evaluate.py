"""``palier evaluate``'s stage-runner side: one model on one speech set, scored by the stage's code.

    python -m core.stage.asr_evaluate --request request.json --out result.json

The request names a model (a Transformers folder or hub id; or a CTranslate2 folder with
``engine: ct2``), a data source (the pipeline file's ``DataSource`` forms), the language and
optionally a lexicon. The set is preprocessed, transcribed and scored by ``AsrRecipe``
(``prepare_evals`` / ``evaluate``), exactly as a stage's baseline and final evaluations are, so
the metric names are those of ``metrics.json``. Audio longer than the model's window is an
error that names the files (Whisper hears one window; long recordings must be cut first)
unless ``skip_long`` is set.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.config.common import DataSource
from core.ct2.model_bin import is_ct2_folder

EVAL_SET = "evaluation"
EXIT_BAD_INPUT = 2


class EvaluateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    engine: str = Field(default="transformers", pattern="^(transformers|ct2)$")
    data: DataSource
    language: str = "french"
    task: str = "transcribe"
    lexicon: str | None = None
    skip_long: bool = False
    batch_size: int | None = Field(default=None, gt=0)
    cpu_threads: int | None = Field(default=None, gt=0)
    device: str = "auto"
    max_new_tokens: int = Field(default=225, gt=0)


class EvaluationError(ValueError):
    """Bad input the user can fix: the message names the file and what to do."""


def _window_seconds(model_ref: str) -> int:
    """The model's own audio window (the nano model's is 6 s, OpenAI checkpoints' 30 s)."""
    from transformers import WhisperFeatureExtractor

    try:
        return int(WhisperFeatureExtractor.from_pretrained(model_ref).chunk_length)
    except OSError:
        return 30


def _ct2_window_seconds(folder: Path) -> int:
    config = folder / "preprocessor_config.json"
    if config.exists():  # `palier export --to ct2` writes it; faster-whisper's own folders assume 30 s
        return int(json.loads(config.read_text(encoding="utf-8")).get("chunk_length", 30))
    return 30


def _stage(request: EvaluateRequest, window: int):
    from core.config.asr import AsrStage, AsrTraining, WhisperSettings
    from core.config.common import BackendConfig, EvalSet

    return AsrStage(
        name="evaluate", output_name="evaluate", train=request.data,
        evals=[EvalSet(name=EVAL_SET, data=request.data, role="primary", language=request.language)],
        lexicon=request.lexicon, whisper=WhisperSettings(chunk_length=window),
        training=AsrTraining(eval_strategy="no", per_device_eval_batch_size=request.batch_size,
                             cpu_threads=request.cpu_threads, generation_max_length=request.max_new_tokens),
        backend=BackendConfig(device=request.device))


def _long_audio_error(report: dict[str, Any], window: int) -> str:
    from core.stage.asr_data import DROP_TOO_LONG_AUDIO

    n = report["dropped"].get(DROP_TOO_LONG_AUDIO, 0)
    examples = "; ".join(report["dropped_examples"].get(DROP_TOO_LONG_AUDIO, []))
    return (f"{n} recording(s) longer than the model's {window} s window ({examples}). Whisper hears one "
            f"{window} s window per utterance and palier evaluate does not cut long-form audio: split those "
            f"recordings into utterances of at most {window} s, each with its own transcript, or pass --skip-long "
            "to score the others and list these as skipped")


def evaluate(request: EvaluateRequest, work_dir: Path) -> dict[str, Any]:
    from core import paths
    from core.contracts import StageSpec
    from core.events import EventLog
    from core.stage.asr import AsrRecipe
    from core.stage.asr_data import DROP_TOO_LONG_AUDIO
    from core.stage.recipe import RecipeContext
    from core.stage.device import pick_torch_device

    model_path = Path(request.model).expanduser()
    ct2 = model_path.is_dir() and is_ct2_folder(model_path)
    if ct2 != (request.engine == "ct2"):
        raise EvaluationError(f"{request.model}: engine {request.engine} does not read this model "
                              "(--engine ct2 is for CTranslate2 folders, transformers for the others)")
    ref = str(model_path.resolve()) if model_path.exists() else request.model
    window = _ct2_window_seconds(model_path) if ct2 else _window_seconds(ref)
    stage = _stage(request, window)
    spec = StageSpec(pipeline="evaluate", index=0, name="evaluate", family="asr", language=request.language,
                     task=request.task, base_model=ref, upstream_stage=None, stage=stage, key="evaluate")
    events = EventLog(work_dir / "events.jsonl")
    device = pick_torch_device(request.device)
    ctx = RecipeContext(spec=spec, out_dir=work_dir, cache_dir=paths.cache_dir(), events=events, device=device,
                        checkpoint_dir=work_dir / "checkpoints")
    recipe = AsrRecipe(ctx)
    transcribe = None
    if ct2:
        engine = Ct2Engine(model_path, request.cpu_threads)
        recipe.processor, recipe._base_max_target = engine.processor(request.language, request.task)

        def transcribe(prepared, language):  # the Transformers side's batches and token budgets
            return engine.transcribe(prepared, language, recipe.decode_plan(prepared))
    t0 = time.perf_counter()
    try:
        report = recipe.prepare_evals()[f"eval:{EVAL_SET}"]
    except ValueError as exc:
        if DROP_TOO_LONG_AUDIO in str(exc):
            raise EvaluationError(f"no recording fits the model's {window} s window: {exc}") from None
        raise EvaluationError(str(exc)) from None
    if report["dropped"].get(DROP_TOO_LONG_AUDIO) and not request.skip_long:
        raise EvaluationError(_long_audio_error(report, window))
    prepare_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    if not ct2:
        recipe.load_model(ref)
    load_s = time.perf_counter() - t0
    outcome = recipe.evaluate("evaluate", transcribe)[EVAL_SET]
    events.close()
    return {"model": request.model, "resolved_model": ref, "engine": request.engine, "language": request.language,
            "window_s": window, "device": device, "samples": len(outcome.rows), "metrics": outcome.metrics,
            "data": report, "timings_s": {"prepare": round(prepare_s, 3), "load": round(load_s, 3),
                                           "transcribe": outcome.metrics["eval_seconds"]},
            "predictions": outcome.rows}


class Ct2Engine:
    """A CTranslate2 Whisper fed the same log-Mel features as the Transformers engine."""

    def __init__(self, folder: Path, threads: int | None):
        from core.ct2.export import Ct2Whisper

        self.folder = folder
        self.model = Ct2Whisper(folder, threads)

    def processor(self, language: str, task: str):
        from transformers import WhisperFeatureExtractor, WhisperProcessor, WhisperTokenizer

        if (self.folder / "preprocessor_config.json").exists():
            extractor = WhisperFeatureExtractor.from_pretrained(self.folder)
        else:  # faster-whisper's default: 30 s, mel bins as the model has
            extractor = WhisperFeatureExtractor(feature_size=int(self.model.model.feature_extractor.mel_filters.shape[0]))
        if not (self.folder / "tokenizer.json").exists():
            raise EvaluationError(f"{self.folder}: no tokenizer.json (faster-whisper folders ship one)")
        tokenizer = WhisperTokenizer.from_pretrained(self.folder)
        tokenizer.set_prefix_tokens(language=language, task=task, predict_timestamps=False)
        return WhisperProcessor(feature_extractor=extractor, tokenizer=tokenizer), self.model.max_new_tokens + 4

    def transcribe(self, prepared, language: str, plan: list[tuple[list[int], int]]) -> list[str]:
        """``plan``: ``AsrRecipe.decode_plan``'s batches and token budgets (the same bound on
        looping outputs as the Transformers engine)."""
        import numpy as np

        texts: dict[int, str] = {}
        for batch, max_new in plan:
            feats = prepared.features[batch].astype(np.float32)
            texts.update(zip(batch, self.model.transcribe_features(feats, language, max_new)))
        return [texts[i] for i in sorted(texts)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.stage.asr_evaluate", description=__doc__)
    parser.add_argument("--request", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    request = EvaluateRequest.model_validate_json(args.request.read_text(encoding="utf-8"))
    try:
        with tempfile.TemporaryDirectory(prefix="palier-evaluate-") as work:
            result = evaluate(request, Path(work))
    except (EvaluationError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:  # the source layer names the file (DataSourceError, ModelRefError)
        from core.stage.family_common import ModelRefError
        from core.stage.sources import DataSourceError

        if isinstance(exc, (DataSourceError, ModelRefError)):
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        raise
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    tmp.replace(args.out)
    return 0

if __name__ == "__main__":
    sys.exit(main())
