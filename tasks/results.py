"""Log a finished stage to MLflow, decide its alias, register its model."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from prefect import get_run_logger, task

from core.contracts import StageResult, StageSpec
from core.events import read_all
from core.gate import GateDecision, decide
from core.model_refs import MLFLOW_MODEL_DIR
from core.tracking import schema as S
from core.tracking.datasets import dataset_inputs, stage_datasets
from core.tracking.charts import baseline_vs_final, training_curves
from core.tracking.mlflow_store import Tracker, rows_from_jsonl
from core.versioning import data_digest


def stage_metrics(result: StageResult, previous: StageResult | None) -> dict[str, float]:
    metrics: dict[str, float] = {}
    prev_final = {e.name: e.final for e in previous.evals} if previous else {}
    for ev in result.evals:
        for name, value in ev.final.items():
            metrics[S.final_key(ev.name, name)] = value
            if name in ev.baseline:
                metrics[S.baseline_key(ev.name, name)] = ev.baseline[name]
                metrics[S.delta_key(ev.name, name)] = value - ev.baseline[name]
            if name in prev_final.get(ev.name, {}):
                metrics[S.delta_prev_key(ev.name, name)] = value - prev_final[ev.name][name]
    for name, value in result.train.items():
        metrics[S.train_summary_key(name)] = value
    for phase, seconds in result.timings_s.items():
        metrics[S.timing_key(phase)] = seconds
    return metrics


def tied_metrics(result: StageResult, previous: StageResult | None, model_id: str | None,
                 upstream_model_id: str | None, digests: dict[str, str]) -> list:
    """The stage's metrics as MLflow ``Metric``s; each baseline and final score names the model it
    measures (final: this stage's LoggedModel; baseline: the upstream's) and its eval set."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    owners = {}
    for ev in result.evals:
        for name in ev.final:
            owners[S.final_key(ev.name, name)] = (model_id, ev.name)
            owners[S.baseline_key(ev.name, name)] = (upstream_model_id, ev.name)
    out = []
    for key, value in stage_metrics(result, previous).items():
        owner, eval_set = owners.get(key, (None, None))
        digest = digests.get(eval_set) if eval_set else None
        out.append(Metric(key, float(value), now, 0, model_id=owner,
                          dataset_name=eval_set if digest else None, dataset_digest=digest))
    return out


def side_by_side(baseline: list[dict], final: list[dict], family: str) -> list[dict]:
    """One row per utterance/example: reference, baseline and final outputs and their errors
    (ASR: the utterance's WER; other families: 1 when the output differs from the reference)."""
    import jiwer

    def error(ref: str, hyp: str) -> float:
        if family == "asr":
            return float(jiwer.wer(ref, hyp)) if ref.strip() else float(bool(hyp.strip()))
        return float(ref.strip() != hyp.strip())

    before = {row.get("id"): row for row in baseline}
    rows = []
    for row in final:
        ref, hyp = str(row.get("reference", "")), str(row.get("prediction", ""))
        base = str(before.get(row.get("id"), {}).get("prediction", ""))
        rows.append({"id": row.get("id"), "reference": ref, "baseline": base, "final": hyp,
                     "baseline_error": error(ref, base), "final_error": error(ref, hyp)})
    return rows


@task(name="log-results", task_run_name="{spec.name}: log to MLflow")
def log_results(spec: StageSpec, result: StageResult, previous: StageResult | None, stage_run_id: str,
                out_dir: Path, tracking_uri: str, upstream_model_id: str | None = None) -> str | None:
    """Metrics, datasets, predictions and the model (its LoggedModel id is returned)."""
    logger = get_run_logger()
    tracker = Tracker(tracking_uri)
    datasets = stage_datasets(spec, lambda src: data_digest(src, _base_dir(spec)), result.data)
    tracker.log_datasets(stage_run_id, dataset_inputs(datasets))
    folder = mlflow_model_folder(spec, out_dir, logger)
    model_id = tracker.log_model(stage_run_id, folder, spec.stage.output_name, {S.TAG_STAGE: spec.name}) if folder else None
    tracker.send_metrics(stage_run_id, tied_metrics(result, previous, model_id, upstream_model_id,
                                                    {d.name: d.digest for d in datasets}))
    reused = {f"{S.TAG_BASELINE_FROM}{ev.name}": f"final evaluation of stage {ev.baseline_from} (same model and measurement)"
              for ev in result.evals if ev.baseline_from}
    if reused:
        tracker.set_tags(stage_run_id, reused)
    for ev in result.evals:
        rows = {phase: rows_from_jsonl(out_dir / "predictions" / f"{phase}_{ev.name}.jsonl")
                for phase in ("baseline", "final")}
        for phase, phase_rows in rows.items():
            tracker.log_table(stage_run_id, phase_rows, S.predictions_table(phase, ev.name))
        tracker.log_table(stage_run_id, side_by_side(rows["baseline"], rows["final"], spec.family),
                          S.predictions_table("compare", ev.name))
    _log_files(tracker, stage_run_id, result, out_dir)
    return model_id


def _base_dir(spec: StageSpec) -> Path | None:
    return Path(spec.pipeline_file).parent if spec.pipeline_file else None


def _log_files(tracker: Tracker, stage_run_id: str, result: StageResult, out_dir: Path) -> None:
    tracker.log_json(stage_run_id, result.model_dump(mode="json"), S.ARTIFACT_RESULTS)
    tracker.log_json(stage_run_id, result.data, S.ARTIFACT_DATA_REPORT)
    figure = training_curves(list(read_all(out_dir / "events.jsonl")))
    if figure is not None:
        tracker.log_figure(stage_run_id, figure, S.ARTIFACT_CURVES_CHART)
    extra = out_dir / "artifacts"
    if extra.is_dir() and any(extra.iterdir()):
        tracker.log_artifacts(stage_run_id, extra, S.DIR_STAGE_ARTIFACTS)
    if (out_dir / "stage.log").exists():
        tracker.log_artifact(stage_run_id, out_dir / "stage.log", S.DIR_LOGS)


def mlflow_model_folder(spec: StageSpec, out_dir: Path, logger) -> Path | None:
    """The stage's MLflow model folder: written by the stage runner, or here (a stage that ran
    where MLflow is not installed: Modal, Kaggle) by the same code in a subprocess, the one place
    the orchestrator's machine imports transformers. None when it cannot be made (said why)."""
    folder = out_dir / MLFLOW_MODEL_DIR
    if (folder / S.MLMODEL_FILE).is_file():
        return folder
    cmd = [sys.executable, "-m", "core.stage.mlflow_model", "--family", spec.family,
           "--model", str(out_dir / "model"), "--out", str(folder)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0 or not (folder / S.MLMODEL_FILE).is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        logger.warning(f"[{spec.name}] no MLflow model for {out_dir / 'model'}: {tail[0]}; "
                       "registering the plain model folder")
        return None
    return folder


def version_description(stage_description: str, stage_run_id: str, upstream_uri: str | None,
                        base_model: str) -> str:
    """What the registry's version page says about where the model comes from."""
    lines = [stage_description] if stage_description else []
    lines.append(f"Trained by run {stage_run_id}, starting from "
                 f"{upstream_uri or base_model}.")
    return "\n\n".join(lines)


@task(name="gate-and-register", task_run_name="{spec.name}: gate and register")
def gate_and_register(spec: StageSpec, result: StageResult, stage_run_id: str, upstream_run_id: str | None,
                      upstream_version: str | None, out_dir: Path, tracking_uri: str,
                      upstream_uri: str | None = None, model_id: str | None = None) -> dict:
    logger = get_run_logger()
    tracker = Tracker(tracking_uri)
    stage = spec.stage
    primary = stage.primary_eval.name
    guards = {e.name: float(e.max_regression) for e in stage.evals if e.role == "guard"}
    champion = tracker.champion_metric(stage.output_name, S.final_key(primary, stage.gate.metric))
    decision: GateDecision = decide(result, stage.gate, primary, guards, champion)
    for reason in decision.reasons:
        logger.info(f"[{spec.name}] gate: {reason}")
    tags = {
        S.TAG_STAGE: spec.name,
        S.TAG_STAGE_KEY: spec.key,
        S.TAG_BASE_MODEL: upstream_uri or spec.base_model,
        S.TAG_UPSTREAM_STAGE: spec.upstream_stage or "",
        S.TAG_UPSTREAM_RUN: upstream_run_id or "",
        S.TAG_UPSTREAM_MODEL_VERSION: upstream_version or "",
        S.TAG_SOURCE_RUN: stage_run_id,
        S.TAG_FAMILY: spec.family,
        S.TAG_GATE: decision.alias,
    }
    description = version_description(stage.description, stage_run_id, upstream_uri, spec.base_model)
    version = tracker.register(stage_run_id, stage.output_name, out_dir / "model", tags, decision.alias,
                               description=stage.description, model_id=model_id, version_description=description)
    tracker.set_tags(stage_run_id, {S.TAG_GATE: decision.alias, S.TAG_MODEL_VERSION: version,
                                    S.TAG_LOGGED_MODEL: model_id or ""})
    tracker.log_json(stage_run_id, {"alias": decision.alias, "improved": decision.improved,
                                    "reasons": decision.reasons, "version": version, "model_id": model_id},
                     S.ARTIFACT_GATE)
    logger.info(f"[{spec.name}] registered {stage.output_name} v{version} as {decision.alias}"
                + (f" (LoggedModel {model_id})" if model_id else ""))
    return {"alias": decision.alias, "version": version, "improved": decision.improved, "model_id": model_id}


def summary_rows(specs_results: list[tuple[StageSpec, StageResult]]) -> list[dict]:
    rows = []
    for spec, result in specs_results:
        for ev in result.evals:
            for metric in ev.final:
                if metric in ev.baseline and not metric.endswith(("_seconds", "per_second", "occurrences")):
                    rows.append({"stage": spec.name, "set": ev.name, "role": ev.role, "metric": metric,
                                 "baseline": ev.baseline[metric], "final": ev.final[metric]})
    return rows


@task(name="summarize", task_run_name="pipeline summary")
def summarize(parent_run_id: str, rows: list[dict], tracking_uri: str) -> None:
    tracker = Tracker(tracking_uri)
    tracker.log_json(parent_run_id, rows, S.ARTIFACT_SUMMARY)
    figure = baseline_vs_final(rows)
    if figure is not None:
        tracker.log_figure(parent_run_id, figure, S.ARTIFACT_SUMMARY_CHART)
    metrics = {S.pipeline_metric_key(r["stage"], r["set"], r["metric"], phase): r[phase]
               for r in rows for phase in ("baseline", "final")}
    tracker.log_metrics(parent_run_id, metrics)
