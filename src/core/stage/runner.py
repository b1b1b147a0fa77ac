"""Runs one stage end to end: the only entry point that imports torch/transformers.

Outputs in ``--out``: ``model/``, ``metrics.json`` (StageResult), ``meta.json`` (resolved spec,
lineage, status), ``events.jsonl``, ``predictions/{baseline,final}_{set}.jsonl`` and
``checkpoints/``. A rerun on the same folder reuses the baseline evaluation and resumes
training from the last checkpoint.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core.contracts import EvalResult, StageResult, StageSpec
from core.events import EventLog
from core.stage.cancel import check_cancel
from core.stage.recipe import EvalOutcome, RecipeContext
from core.stage.registry import load_recipe


def pick_device(requested: str) -> str:
    import torch

    if requested == "cpu":
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    if requested == "cuda":
        raise RuntimeError("backend.device is 'cuda' but no CUDA device is visible to the stage runner")
    return "cpu"


def default_cache_dir(out_dir: Path) -> Path:
    env = os.environ.get("PALIER_CACHE_DIR")
    return Path(env) if env else out_dir.parent / "_cache"


def _write_predictions(out_dir: Path, phase: str, outcomes: dict[str, EvalOutcome]) -> None:
    folder = out_dir / "predictions"
    folder.mkdir(parents=True, exist_ok=True)
    for name, outcome in outcomes.items():
        with (folder / f"{phase}_{name}.jsonl").open("w", encoding="utf-8") as fh:
            for row in outcome.rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def _write_json(path: Path, payload: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)


def process_rank() -> tuple[int, int]:
    """(rank, world size) under accelerate/torchrun; (0, 1) for a single process."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


@contextmanager
def main_process_first(world_size: int):
    """Rank 0 prepares (generates data, fills the feature cache) while the others wait, then
    they read the cache: no two processes write the same files."""
    if world_size == 1:
        yield
        return
    from accelerate import PartialState

    with PartialState().main_process_first():
        yield


def run_stage(spec: StageSpec, out_dir: Path, cache_dir: Path | None = None) -> StageResult:
    rank, world_size = process_rank()
    return _run_stage(spec, out_dir, cache_dir, rank, world_size)


def _run_stage(spec: StageSpec, out_dir: Path, cache_dir: Path | None, rank: int, world_size: int) -> StageResult:
    main = rank == 0
    out_dir.mkdir(parents=True, exist_ok=True)
    # Every rank trains (data parallel); only rank 0 writes the stage's outputs and events.
    events = EventLog(out_dir / ("events.jsonl" if main else f"events.rank{rank}.jsonl"))
    events.start_heartbeat()
    meta: dict[str, Any] = {
        "status": "running",
        "spec": spec.model_dump(mode="json"),
        "lineage": {"base_model": spec.base_model, "upstream_stage": spec.upstream_stage},
        "started_at": time.time(),
        "pid": os.getpid(),
    }
    write_json = _write_json if main else (lambda path, payload: None)
    write_predictions = _write_predictions if main else (lambda out, phase, outcomes: None)
    write_json(out_dir / "meta.json", meta)
    timings: dict[str, float] = {}
    try:
        ctx = RecipeContext(
            spec=spec,
            out_dir=out_dir,
            cache_dir=cache_dir or default_cache_dir(out_dir),
            events=events,
            device=pick_device(spec.stage.backend.device),
            checkpoint_dir=out_dir / "checkpoints",
        )
        events.log(f"stage {spec.name} ({spec.family}) on {ctx.device}, starting from {spec.base_model}")
        recipe = load_recipe(ctx)

        def timed(phase: str, fn, *args):
            check_cancel(phase)
            events.set_phase(phase)
            t0 = time.perf_counter()
            result = fn(*args)
            timings[phase] = round(time.perf_counter() - t0, 3)
            events.set_phase(phase, "end")
            return result

        with main_process_first(world_size):
            data_report = timed("prepare", recipe.prepare)
        timed("load", recipe.load_model, spec.base_model)

        baseline_file = out_dir / "baseline.json"
        if baseline_file.exists() and json.loads(baseline_file.read_text()).get("key") == spec.key:
            baseline = {k: EvalOutcome(metrics=v) for k, v in json.loads(baseline_file.read_text())["metrics"].items()}
            events.log("baseline already measured for this stage key: reusing it")
        else:
            # Seed 000 rule 5: evaluate the starting model before training.
            baseline = timed("baseline", recipe.evaluate, "baseline")
            write_predictions(out_dir, "baseline", baseline)
            write_json(baseline_file, {"key": spec.key, "metrics": {k: v.metrics for k, v in baseline.items()}})

        train_summary = timed("train", recipe.train)
        final = timed("final", recipe.evaluate, "final")
        write_predictions(out_dir, "final", final)
        if main:
            timed("save", recipe.save, out_dir / "model")
        exported = None
        if main and getattr(spec.stage, "export", None) is not None:
            from core.stage.export import export_stage_output

            exported = timed("export", export_stage_output, spec, out_dir / "model", out_dir / "export-ct2",
                             ctx.cache_dir, events)

        roles = {e.name: e.role for e in spec.stage.evals}
        sizes = {name: len(o.rows) for name, o in final.items()}
        result = StageResult(
            stage=spec.name,
            key=spec.key,
            base_model=spec.base_model,
            evals=[
                EvalResult(name=name, role=roles.get(name, "report"), baseline=baseline[name].metrics,
                           final=final[name].metrics, samples=sizes[name])
                for name in final
            ],
            train=train_summary,
            data=data_report,
            timings_s=timings,
            exported=exported,
        )
        write_json(out_dir / "metrics.json", result.model_dump(mode="json"))
        meta.update(status="succeeded", finished_at=time.time(), metrics_file="metrics.json")
        write_json(out_dir / "meta.json", meta)
        events.emit("done", status="succeeded")
        return result
    except BaseException as exc:
        tb = traceback.format_exc()
        events.emit("error", error=f"{type(exc).__name__}: {exc}", traceback=tb)
        meta.update(status="cancelled" if isinstance(exc, KeyboardInterrupt) else "failed",
                    error=f"{type(exc).__name__}: {exc}", finished_at=time.time())
        write_json(out_dir / "meta.json", meta)
        raise
    finally:
        events.close()
