"""A stage that searches: its trials as stage jobs (one Prefect task run and one nested MLflow run
each, ``parallel`` at a time), the winner by the gate's rules made the stage's output.

The study (core.search) remembers every trial: a rerun or a restarted orchestrator reads the
finished ones back, watches the running ones again (run_stage_task reattaches through the trial's
job handle) and leaves pruned and failed ones alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect.artifacts import create_table_artifact
from prefect.futures import as_completed

from core import search as S_
from core.contracts import StageResult, StageSpec
from core.cost import RunCost, run_cost
from core.tracking import schema as S
from core.tracking.mlflow_store import Tracker
from flows.stopping import close_run
from tasks.artifacts import artifact_key
from tasks.jobs import StageFailed
from tasks.results import stage_metrics
from tasks.stage import run_stage_task


@dataclass
class Trials:
    """What the orchestrator knows of the study's trials while it runs."""

    results: dict[int, StageResult] = field(default_factory=dict)
    specs: dict[int, StageSpec] = field(default_factory=dict)
    runs: dict[int, str] = field(default_factory=dict)
    states: dict[int, str] = field(default_factory=dict)
    params: dict[int, dict[str, Any]] = field(default_factory=dict)


def run_search(tracker: Tracker, uri: str, experiment: str, spec: StageSpec, stage_run_id: str, out_dir: Path,
               prices, logger) -> tuple[StageResult, RunCost]:
    """Run (or continue) the stage's search; the winner's folder becomes ``out_dir``. Returns the winner's
    result and what every finished trial used."""
    from optuna.trial import TrialState

    search = spec.stage.search
    study = S_.open_study(spec)
    trials = Trials()
    slots = S_.gpu_slots(spec.stage.backend.device) if spec.stage.backend.kind == "local" else []
    parallel = min(search.parallel, len(slots)) if slots else search.parallel
    running: dict = {}  # future -> trial number
    for old in study.get_trials(deepcopy=False):
        trials.params[old.number] = dict(old.params)
        trials.specs[old.number] = S_.trial_spec(spec, old.number, dict(old.params))
        trials.states[old.number] = old.state.name.lower()
        if old.state == TrialState.COMPLETE:
            _read_back(trials, spec, old.number, logger)
        elif old.state == TrialState.RUNNING:  # the orchestrator died while it ran: watch it again
            logger.info(f"[{spec.name}] trial {old.number} was running: reattaching")
            running[_launch(tracker, uri, experiment, spec, stage_run_id, trials, old.number, None)] = old.number
    asked = len([t for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING])
    try:
        while True:
            while len(running) < parallel and asked < search.trials:
                trial = study.ask()
                asked += 1
                trials.params[trial.number] = S_.suggest(trial, search)
                slot = _free_slot(slots, running, trials)
                future = _launch(tracker, uri, experiment, spec, stage_run_id, trials, trial.number, slot)
                running[future] = trial.number
            if not running:
                break
            future = next(as_completed(list(running)))
            _finish(study, tracker, spec, trials, running.pop(future), future, prices, logger)
    except BaseException as exc:
        for number in running.values():
            close_run(tracker, trials.runs[number], exc)
        raise
    result = _conclude(tracker, spec, stage_run_id, out_dir, trials, logger)
    costs = [run_cost(trials.specs[n], r, prices) for n, r in trials.results.items()]
    return result, RunCost(sum(c.gpu_seconds for c in costs), sum(c.usd for c in costs))


def _free_slot(slots: list[str], running: dict, trials: Trials) -> str | None:
    if not slots:
        return None
    busy = {trials.specs[n].stage.backend.options.get(S_.CUDA_DEVICES_OPTION) for n in running.values()}
    return next(s for s in slots if s not in busy)


def _launch(tracker: Tracker, uri: str, experiment: str, spec: StageSpec, stage_run_id: str, trials: Trials,
            number: int, slot: str | None):
    params = trials.params[number]
    trial = S_.trial_spec(spec, number, params, cuda_device=slot)
    trials.specs[number] = trial
    run_id = tracker.start_stage_run(experiment, stage_run_id, trial, attempt=1)
    tracker.set_tags(run_id, {S.TAG_KIND: S.KIND_TRIAL, S.TAG_TRIAL: str(number), S.TAG_STAGE: spec.name,
                              S.TAG_TRIAL_STAGE_KEY: spec.key})
    tracker.log_params(run_id, {f"{S.PARAM_TRIAL_PREFIX}{path}": value for path, value in params.items()})
    trials.runs[number] = run_id
    trials.states[number] = "running"
    return run_stage_task.with_options(task_run_name=f"{spec.name} trial {number}: {_describe(params)}").submit(
        trial, run_id, uri)


def _finish(study, tracker: Tracker, spec: StageSpec, trials: Trials, number: int, future, prices, logger) -> None:
    from optuna.trial import TrialState

    run_id = trials.runs[number]
    try:
        result = future.result()
    except (StageFailed, RuntimeError, ValueError, OSError) as exc:
        logger.error(f"[{spec.name}] trial {number} failed: {exc}")
        _tell(study, number, state=TrialState.FAIL)
        trials.states[number] = "fail"
        tracker.end_run(run_id, "failed")
        return
    value = S_.objective(result, spec)
    _tell(study, number, value)
    trials.states[number], trials.results[number] = "complete", result
    tracker.log_metrics(run_id, stage_metrics(result, None) | run_cost(trials.specs[number], result, prices).metrics())
    tracker.end_run(run_id, "succeeded")
    logger.info(f"[{spec.name}] trial {number} ({_describe(trials.params[number])}): "
                f"{spec.stage.gate.metric} {value:.4f}")


def _tell(study, number: int, value: float | None = None, state=None) -> None:
    """``study.tell``; the grid sampler then calls ``study.stop`` once its grid is covered, which Optuna
    refuses outside ``study.optimize`` (the trial is stored before that): this loop stops by itself."""
    try:
        study.tell(number, value, state=state)
    except RuntimeError as exc:
        if "Study.stop" not in str(exc):
            raise


def _read_back(trials: Trials, spec: StageSpec, number: int, logger) -> None:
    metrics = S_.trial_dir(spec, trials.specs[number]) / "metrics.json"
    if metrics.exists():
        trials.results[number] = StageResult.model_validate_json(metrics.read_text(encoding="utf-8"))
        logger.info(f"[{spec.name}] trial {number} already finished: not run again")
    else:
        logger.warning(f"[{spec.name}] trial {number} finished earlier but its folder is gone: left out of the choice")


def _conclude(tracker: Tracker, spec: StageSpec, stage_run_id: str, out_dir: Path, trials: Trials,
              logger) -> StageResult:
    winner = S_.pick_winner(trials.results, spec)
    if winner is None:
        raise StageFailed(f"stage {spec.name}: no trial of its search finished (see the trial runs under it)")
    S_.promote_trial(S_.trial_dir(spec, trials.specs[winner]), out_dir)
    if winner in trials.runs:
        tracker.set_tags(trials.runs[winner], {S.TAG_SEARCH_WINNER: "true"})
    tracker.set_tags(stage_run_id, {S.TAG_SEARCH_WINNER_TRIAL: str(winner)})
    tracker.log_params(stage_run_id, {f"{S.PARAM_WINNER_PREFIX}{p}": v for p, v in trials.params[winner].items()})
    rows = trial_rows(spec, trials, winner)
    tracker.log_json(stage_run_id, rows, S.ARTIFACT_SEARCH_TRIALS)
    try:
        create_table_artifact(rows, key=artifact_key(spec.pipeline, f"{spec.name}-trials"),
                              description=f"{spec.name}: the search's trials; the winner became the stage output")
    except Exception as exc:  # the table is in MLflow already; the Prefect artifact is a view
        logger.warning(f"Prefect trials table not created: {type(exc).__name__}: {exc}")
    if not spec.stage.search.keep_trials:
        removed = S_.remove_trial_dirs([S_.trial_dir(spec, t) for t in trials.specs.values()])
        logger.info(f"[{spec.name}] removed {len(removed)} trial folder(s) (keep_trials: false)")
    logger.info(f"[{spec.name}] search winner: trial {winner} ({_describe(trials.params[winner])})")
    return StageResult.model_validate_json((out_dir / "metrics.json").read_text(encoding="utf-8"))


def trial_rows(spec: StageSpec, trials: Trials, winner: int) -> list[dict]:
    rows = []
    for number in sorted(trials.params):
        result = trials.results.get(number)
        rows.append({"trial": number, "state": trials.states.get(number, ""),
                     **{path: trials.params[number].get(path) for path in spec.stage.search.parameters},
                     spec.stage.gate.metric: None if result is None else round(S_.objective(result, spec), 6),
                     "passes gate": None if result is None else S_.passes_gate(result, spec),
                     "winner": number == winner})
    return rows


def _describe(params: dict[str, Any]) -> str:
    return ", ".join(f"{path.rsplit('.', 1)[-1]}={value:.3g}" if isinstance(value, float)
                     else f"{path.rsplit('.', 1)[-1]}={value}" for path, value in params.items())
