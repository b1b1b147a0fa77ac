"""Runs one stage end to end: the only entry point that imports torch/transformers.

Outputs in ``--out``: ``model/``, ``metrics.json`` (StageResult), ``meta.json`` (resolved spec,
lineage, status), ``events.jsonl``, ``predictions/{baseline,final}_{set}.jsonl`` and
``checkpoints/``. A rerun on the same folder reuses the baseline evaluation and resumes
training from the last checkpoint.
"""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import re
import shutil
import sys
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core.contracts import EvalResult, StageResult, StageSpec
from core.events import EventLog
from core.model_refs import MLFLOW_MODEL_DIR, MLFLOW_MODEL_ENV
from core.stage.cancel import check_cancel
from core.stage.device import pick_torch_device
from core.stage.recipe import EvalOutcome, RecipeContext, StageRecipe
from core.stage.recipes import load_recipe


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


def measurements(recipe: StageRecipe, spec: StageSpec) -> dict[str, Any]:
    """Each eval set's measurement (``recipe.measurement``), for recipes that describe one."""
    if not hasattr(recipe, "measurement"):
        return {}
    return json.loads(json.dumps({e.name: recipe.measurement(e.name) for e in spec.stage.evals}))


def upstream_finals(spec: StageSpec, recipe: StageRecipe) -> dict[str, EvalOutcome]:
    """The upstream stage's final evaluations that are this stage's baseline: same model (this
    stage starts from the upstream's saved output) and the same measurement of the same set."""
    if spec.upstream_stage is None or not hasattr(recipe, "measurement"):
        return {}
    upstream = Path(spec.base_model).parent
    try:
        meta = json.loads((upstream / "meta.json").read_text(encoding="utf-8"))
        result = StageResult.model_validate_json((upstream / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if meta.get("status") != "succeeded" or Path(spec.base_model) != upstream / result.model_dir:
        return {}
    mine, theirs = measurements(recipe, spec), meta.get("measurements", {})
    reused = {}
    for ev in result.evals:
        rows_file = upstream / "predictions" / f"final_{ev.name}.jsonl"
        if ev.name in mine and theirs.get(ev.name) == mine[ev.name] and rows_file.exists():
            rows = [json.loads(line) for line in rows_file.read_text(encoding="utf-8").splitlines() if line.strip()]
            reused[ev.name] = EvalOutcome(metrics=dict(ev.final), rows=rows)
    return reused


def run_stage(spec: StageSpec, out_dir: Path, cache_dir: Path | None = None) -> StageResult:
    rank, world_size = process_rank()
    return _run_stage(spec, out_dir, cache_dir, rank, world_size)


class _StageRun:
    """One run of one stage on one rank: its events, meta.json and timed phases. Every rank
    trains (data parallel); only rank 0 writes the stage's outputs and events."""

    def __init__(self, spec: StageSpec, out_dir: Path, rank: int):
        self.spec, self.out_dir, self.main = spec, out_dir, rank == 0
        out_dir.mkdir(parents=True, exist_ok=True)
        self.events = EventLog(out_dir / ("events.jsonl" if self.main else f"events.rank{rank}.jsonl"))
        self.timings: dict[str, float] = {}
        self.baseline_sources: dict[str, str] = {}  # eval set -> upstream stage whose final it reuses
        self.meta: dict[str, Any] = {
            "status": "running",
            "spec": spec.model_dump(mode="json"),
            "lineage": {"base_model": spec.base_model, "upstream_stage": spec.upstream_stage},
            "started_at": time.time(),
            "pid": os.getpid(),
        }

    def write_json(self, path: Path, payload: Any) -> None:
        if self.main:
            _write_json(path, payload)

    def write_predictions(self, phase: str, outcomes: dict[str, EvalOutcome]) -> None:
        if self.main:
            _write_predictions(self.out_dir, phase, outcomes)

    def timed(self, phase: str, fn, *args):
        check_cancel(phase)
        self.events.set_phase(phase)
        t0 = time.perf_counter()
        result = fn(*args)
        self.timings[phase] = round(time.perf_counter() - t0, 3)
        self.events.set_phase(phase, "end")
        return result

    def baseline(self, recipe: StageRecipe) -> dict[str, EvalOutcome]:
        """The starting model's evaluation, reused from baseline.json when the stage key matches;
        on a set the upstream stage's final evaluation measured with this model and the same
        measurement, that result (``baseline_sources`` names it)."""
        baseline_file = self.out_dir / "baseline.json"
        if baseline_file.exists() and json.loads(baseline_file.read_text()).get("key") == self.spec.key:
            self.events.log("baseline already measured for this stage key: reusing it")
            saved = json.loads(baseline_file.read_text())
            self.baseline_sources = saved.get("sources", {})
            return {k: EvalOutcome(metrics=v) for k, v in saved["metrics"].items()}
        reused = upstream_finals(self.spec, recipe)
        for name in reused:
            self.baseline_sources[name] = self.spec.upstream_stage
            self.events.log(f"baseline {name}: the final evaluation of stage {self.spec.upstream_stage} "
                            "(same model, same data and measurement): reused, not recomputed")
        names = [e.name for e in self.spec.stage.evals if e.name not in reused]
        # Evaluate the starting model before training: the gate compares against it.
        measured = {}
        if names:
            measured = (self.timed("baseline", recipe.evaluate, "baseline", None, names) if reused
                        else self.timed("baseline", recipe.evaluate, "baseline"))
        baseline = {e.name: reused.get(e.name) or measured[e.name] for e in self.spec.stage.evals}
        self.write_predictions("baseline", baseline)
        self.write_json(baseline_file, {"key": self.spec.key, "metrics": {k: v.metrics for k, v in baseline.items()},
                                        "sources": self.baseline_sources})
        return baseline

    def finish(self, status: str, **fields: Any) -> None:
        self.meta.update(status=status, finished_at=time.time(), **fields)
        self.write_json(self.out_dir / "meta.json", self.meta)


# torch.save's zip writer on a full disk: "[enforce fail at inline_container.cc:672] . unexpected pos
# 482308 vs 482260" or "PytorchStreamWriter failed writing file data/0: file write failed", no errno.
_WRITE_FAILED = re.compile(r"unexpected pos \d+ vs \d+|file write failed|PytorchStreamWriter failed")
NEARLY_FULL_BYTES = 64 * 1024 ** 2


def is_disk_full(exc: BaseException, out_dir: Path) -> bool:
    """ENOSPC anywhere in the exception chain, or a writer's failure on a disk with almost no
    space left (torch words a full disk without the errno)."""
    seen: BaseException | None = exc
    while seen is not None:
        text = str(seen)
        if getattr(seen, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "No space left on device" in text \
                or "os error 28" in text:
            return True
        if _WRITE_FAILED.search(text) and out_dir.exists() and shutil.disk_usage(out_dir).free < NEARLY_FULL_BYTES:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def full_disk_message(spec: StageSpec, out_dir: Path) -> str:
    """The folder that filled up, its free space, and what the stage needs there: measured from
    a complete checkpoint when one was written, else estimated from the base model."""
    from core.disk_space import human, stage_space
    from core.stage.checkpoints import COMPLETE_MARKER, checkpoints_newest_first

    limit = spec.stage.training.save_total_limit
    done = [c for c in checkpoints_newest_first(out_dir / "checkpoints") if (c / COMPLETE_MARKER).is_file()]
    if done:
        each = sum(p.stat().st_size for p in done[0].rglob("*") if p.is_file())
        model = sum(p.stat().st_size for p in done[0].glob("*.safetensors"))
        need = f"about {human((limit + 1) * each + model)} ({limit + 1} checkpoints of {human(each)}, final model)"
    else:
        weights = sum(p.stat().st_size for p in Path(spec.base_model).glob("*.safetensors"))
        need = stage_space(weights // 4, method=getattr(spec.stage.training, "method", "full"),
                           save_total_limit=limit).describe() if weights else "unknown (base model size unknown)"
    free = shutil.disk_usage(out_dir).free if out_dir.exists() else 0
    return (f"no space left on device under {out_dir} ({human(free)} free); this stage needs {need}. Free space "
            f"or lower save_total_limit, then rerun: it resumes from the last complete checkpoint")


def _run_stage(spec: StageSpec, out_dir: Path, cache_dir: Path | None, rank: int, world_size: int) -> StageResult:
    run = _StageRun(spec, out_dir, rank)
    events = run.events
    events.start_heartbeat()
    run.write_json(out_dir / "meta.json", run.meta)
    try:
        ctx = RecipeContext(
            spec=spec,
            out_dir=out_dir,
            cache_dir=cache_dir or default_cache_dir(out_dir),
            events=events,
            device=pick_torch_device(spec.stage.backend.device),
            checkpoint_dir=out_dir / "checkpoints",
        )
        events.log(f"stage {spec.name} ({spec.family}) on {ctx.device}, starting from {spec.base_model}")
        result = _train_and_evaluate(run, ctx, load_recipe(ctx), world_size)
        run.write_json(out_dir / "metrics.json", result.model_dump(mode="json"))
        run.finish("succeeded", metrics_file="metrics.json")
        events.emit("done", status="succeeded")
        return result
    except BaseException as exc:
        tb = traceback.format_exc()
        try:  # on a full disk these small writes may fail too: the stage's own error must win
            events.emit("error", error=f"{type(exc).__name__}: {exc}", traceback=tb)
            run.finish("cancelled" if isinstance(exc, KeyboardInterrupt) else "failed",
                       error=f"{type(exc).__name__}: {exc}")
        except OSError as write_error:
            print(f"palier: could not record the failure in {out_dir}: {write_error}", file=sys.stderr, flush=True)
        raise
    finally:
        events.close()


def _save_mlflow_model(spec: StageSpec, out_dir: Path, events: EventLog) -> None:
    """The output as an MLflow model too; one that cannot be made is said, not fatal (the plain
    model folder is registered instead)."""
    from core.stage.mlflow_model import save_mlflow_model

    try:
        info = save_mlflow_model(spec.family, out_dir / "model", out_dir / MLFLOW_MODEL_DIR)
    except Exception as exc:  # noqa: BLE001 - optional output: any failure is reported, the stage stands
        events.log(f"no MLflow model for this output: {exc}", "warning")
        return
    events.log(f"MLflow model ({info['task']}) in {info['seconds']:.1f} s: {info['bytes_written']} bytes written, "
               f"{info['bytes_shared']} shared with model/")


def _train_and_evaluate(run: _StageRun, ctx: RecipeContext, recipe: StageRecipe, world_size: int) -> StageResult:
    spec, out_dir = run.spec, run.out_dir
    with main_process_first(world_size):
        data_report = run.timed("prepare", recipe.prepare)
    run.timed("load", recipe.load_model, spec.base_model)
    baseline = run.baseline(recipe)
    train_summary = run.timed("train", recipe.train)
    final = run.timed("final", recipe.evaluate, "final")
    run.write_predictions("final", final)
    run.meta["measurements"] = measurements(recipe, spec)
    exported = None
    if run.main:
        run.timed("save", recipe.save, out_dir / "model")
        if os.environ.get(MLFLOW_MODEL_ENV) == "1" and importlib.util.find_spec("mlflow") is not None:
            run.timed("mlflow_model", _save_mlflow_model, spec, out_dir, run.events)
        if getattr(spec.stage, "export", None) is not None:
            from core.ct2.export import export_stage_output

            exported = run.timed("export", export_stage_output, spec, out_dir / "model", out_dir / "export-ct2",
                                 ctx.cache_dir, run.events)
    roles = {e.name: e.role for e in spec.stage.evals}
    return StageResult(
        stage=spec.name,
        key=spec.key,
        base_model=spec.base_model,
        evals=[
            EvalResult(name=name, role=roles.get(name, "report"), baseline=baseline[name].metrics,
                       final=final[name].metrics, samples=len(outcome.rows),
                       baseline_from=run.baseline_sources.get(name))
            for name, outcome in final.items()
        ],
        train=train_summary,
        data=data_report,
        timings_s=run.timings,
        exported=exported,
    )
