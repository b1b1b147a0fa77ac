"""A stage's model folder as an MLflow model: the ``transformers`` flavor, saved with
``mlflow.transformers.save_model`` from a Transformers pipeline, so ``mlflow.transformers.load_model``,
``mlflow.pyfunc.load_model`` and ``mlflow models serve`` accept the registered version.

    python -m core.stage.mlflow_model --family asr --model OUT/model --out OUT/mlflow-model

Layout (MLflow's own): ``MLmodel``, ``model/`` (the weights), ``components/`` (tokenizer, feature
extractor), ``requirements.txt``... Every file of the stage's ``model/`` folder is also in the
flavor's ``model/`` folder, as a hard link where the file system allows: the weights are stored
once on disk, and the flavor's ``model/`` stays a complete Transformers folder that a later stage
(``base_model: models:/...``) can start from.

Runs where transformers may be imported: at the end of a stage (the stage runner) or, for a stage
that ran where MLflow is not installed, as this command on the orchestrator's machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from importlib import metadata
from pathlib import Path

from core.model_refs import FAMILY_TASKS, MLFLOW_MODEL_DIR

__all__ = ["MLFLOW_MODEL_DIR", "save_mlflow_model"]

GENERATION_PARAMS = {"max_new_tokens": 128, "do_sample": False, "temperature": 1.0}
_REQUIREMENTS = ("mlflow", "transformers", "tokenizers", "torch", "accelerate", "safetensors")


def requirements(family: str) -> list[str]:
    """Pinned to what ran here; explicit, so MLflow does not load the model again to infer them."""
    names = _REQUIREMENTS + (("peft",) if family == "sft" else ())
    return [f"{name}=={metadata.version(name)}" for name in names]


def _pipeline(family: str, model_dir: Path):
    import transformers

    if family == "token_cls":
        from core.stage.token_cls_hf import token_classification_model

        model, tokenizer = token_classification_model(model_dir)
        return transformers.pipeline("token-classification", model=model, tokenizer=tokenizer,
                                     aggregation_strategy="simple", device="cpu")
    return transformers.pipeline(FAMILY_TASKS[family], model=str(model_dir), device="cpu")


def _signature(family: str):
    """Chat models take generation settings per request (``params``); the others MLflow's default."""
    if family != "sft":
        return None
    from mlflow.models import infer_signature

    return infer_signature(["Bonjour"], ["Bonjour"], params=dict(GENERATION_PARAMS))


def link_or_copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        dest.unlink()
    try:
        os.link(src, dest)
    except OSError:  # another file system, or links not allowed: a copy
        shutil.copy2(src, dest)


def share_files(model_dir: Path, flavor_model_dir: Path, replace: bool) -> int:
    """Hard-link the stage folder's files into the flavor's ``model/``; ``replace``: also those
    MLflow wrote (same model, same files: stored once). Returns the bytes not stored twice."""
    shared = 0
    for src in model_dir.rglob("*"):
        if not src.is_file():
            continue
        dest = flavor_model_dir / src.relative_to(model_dir)
        if dest.exists() and not replace:
            continue
        link_or_copy(src, dest)
        shared += src.stat().st_size
    return shared


def save_mlflow_model(family: str, model_dir: Path, dest: Path) -> dict:
    """Write ``dest`` (an MLflow model folder) from the stage's ``model_dir``; atomic: a folder
    with an ``MLmodel`` is complete. Returns what it cost (seconds, bytes written, bytes shared)."""
    import mlflow.transformers

    t0 = time.perf_counter()
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    pipe = _pipeline(family, model_dir)
    mlflow.transformers.save_model(transformers_model=pipe, path=str(tmp), task=FAMILY_TASKS[family],
                                   pip_requirements=requirements(family), signature=_signature(family))
    # token_cls: the flavor holds a Transformers token classifier built from palier's own folder,
    # a different set of files; the palier files ride along for a stage that starts from it.
    shared = share_files(model_dir, tmp / "model", replace=family != "token_cls")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.replace(dest)
    written = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file() and p.stat().st_nlink == 1)
    return {"seconds": round(time.perf_counter() - t0, 3), "task": FAMILY_TASKS[family],
            "bytes_written": written, "bytes_shared": shared}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.stage.mlflow_model", description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", required=True, choices=sorted(FAMILY_TASKS))
    parser.add_argument("--model", type=Path, required=True, help="the stage's model/ folder")
    parser.add_argument("--out", type=Path, required=True, help="the MLflow model folder to write")
    args = parser.parse_args(argv)
    if not (args.model / "config.json").is_file() and not (args.model / "palier_token_cls.json").is_file():
        print(f"error: {args.model}: not a stage's model folder (no config.json)", file=sys.stderr)
        return 2
    info = save_mlflow_model(args.family, args.model, args.out)
    print(f"{args.out}: MLflow model ({info['task']}) in {info['seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
