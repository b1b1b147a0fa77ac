"""A stage's search: its Optuna study, each trial as a stage spec, and the winner (no Prefect, no MLflow).

The study lives in ``$PALIER_HOME/search/<pipeline>.journal`` (Optuna's journal file storage:
append-only, safe for several processes), one study per stage key, so a restarted orchestrator
finds every trial it had asked for: finished ones are read back, running ones are watched
again (their job handles), pruned and failed ones stay so.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from core.backends.launch import CUDA_DEVICES_OPTION
from core.config.search import SearchConfig, set_path
from core.contracts import StageResult, StageSpec
from core.fingerprint import canonical
from core.gate import decide
from core.paths import home, stage_dir

TRIAL_SEPARATOR = ".t"  # trial 3 of stage "exp1" is the stage "exp1.t3"


def study_file(pipeline: str) -> Path:
    return home() / "search" / f"{pipeline}.journal"


def study_name(spec: StageSpec) -> str:
    return f"{spec.name}-{spec.key}"


def open_study(spec: StageSpec):
    """The stage's study, created on first use and loaded afterwards (same stage key)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    search = _search(spec)
    path = study_file(spec.pipeline)
    path.parent.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(path)))
    direction = "maximize" if spec.stage.gate.greater_is_better else "minimize"
    return optuna.create_study(storage=storage, study_name=study_name(spec), direction=direction,
                               sampler=make_sampler(search), load_if_exists=True)


def make_sampler(search: SearchConfig):
    import optuna

    if search.sampler == "grid":
        return optuna.samplers.GridSampler(search.grid(), seed=search.seed)
    if search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=search.seed)
    return optuna.samplers.TPESampler(seed=search.seed, n_startup_trials=min(4, search.trials))


def suggest(trial, search: SearchConfig) -> dict[str, Any]:
    """The trial's value for each parameter, asked from Optuna."""
    params: dict[str, Any] = {}
    for path, space in search.parameters.items():
        if space.choices is not None:
            params[path] = trial.suggest_categorical(path, list(space.choices))
        elif space.is_int:
            params[path] = trial.suggest_int(path, space.low, space.high, step=space.step or 1, log=space.log)
        else:
            params[path] = trial.suggest_float(path, float(space.low), float(space.high), step=space.step, log=space.log)
    return params


def trial_spec(spec: StageSpec, number: int, params: dict[str, Any], cuda_device: str | None = None) -> StageSpec:
    """The stage with the trial's values set: its own name, key and folder, no search block."""
    raw = spec.stage.model_dump(mode="json") | {"search": None}
    for path, value in params.items():
        set_path(raw, path, value)
    raw["name"] = f"{spec.name}{TRIAL_SEPARATOR}{number}"
    if cuda_device is not None:
        raw["backend"]["options"] = {**raw["backend"].get("options", {}), CUDA_DEVICES_OPTION: cuda_device}
    stage = type(spec.stage).model_validate(raw)
    key = hashlib.sha256(canonical({"stage": spec.key, "params": params}).encode("utf-8")).hexdigest()[:16]
    return spec.model_copy(update={"name": raw["name"], "stage": stage, "key": key})


def trial_dir(spec: StageSpec, trial: StageSpec) -> Path:
    return stage_dir(spec.pipeline, trial.name, trial.key)


def objective(result: StageResult, spec: StageSpec) -> float:
    """The value Optuna optimises: the gate metric on the primary eval set, after training."""
    return float(result.eval(spec.stage.primary_eval.name).final[spec.stage.gate.metric])


def passes_gate(result: StageResult, spec: StageSpec) -> bool:
    """Baseline beaten and every guard set within its bound (the registered champion is compared later,
    once, for the winner)."""
    stage = spec.stage
    guards = {e.name: float(e.max_regression) for e in stage.evals if e.role == "guard"}
    return decide(result, stage.gate, stage.primary_eval.name, guards, None).promoted


def pick_winner(results: dict[int, StageResult], spec: StageSpec) -> int | None:
    """The trial the gate's rules prefer: those that pass the gate first, then the best primary metric,
    then the earliest trial."""
    if not results:
        return None
    sign = -1.0 if spec.stage.gate.greater_is_better else 1.0

    def rank(number: int) -> tuple:
        result = results[number]
        return (not passes_gate(result, spec), sign * objective(result, spec), number)

    return min(results, key=rank)


def promote_trial(source: Path, out_dir: Path) -> None:
    """The winning trial's folder becomes the stage's output folder (hard links: no copy of the weights);
    its job handle stays behind, it belongs to the trial."""
    if out_dir.exists():
        shutil.rmtree(out_dir)

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:  # another file system
            shutil.copy2(src, dst)

    shutil.copytree(source, out_dir, copy_function=link, ignore=shutil.ignore_patterns("job.json"))


def remove_trial_dirs(folders: list[Path]) -> list[Path]:
    removed = []
    for folder in folders:
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def gpu_slots(device: str) -> list[str]:
    """The GPUs trials can be spread over, one trial each (empty: no GPU or device cpu)."""
    if device == "cpu":
        return []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d for d in visible.split(",") if d.strip()]
    if shutil.which("nvidia-smi") is None:
        return []
    listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    return [str(i) for i, line in enumerate(listed.stdout.splitlines()) if line.startswith("GPU ")]


def _search(spec: StageSpec) -> SearchConfig:
    if spec.stage.search is None:
        raise ValueError(f"stage {spec.name} has no search block")
    return spec.stage.search
