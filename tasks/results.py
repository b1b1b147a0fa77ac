"""Log a finished stage to MLflow, decide its alias, register its model."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task

from core.contracts import StageResult, StageSpec
from core.events import read_all
from core.gate import GateDecision, decide
from core.tracking import schema as S
from core.tracking.charts import baseline_vs_final, training_curves
from core.tracking.mlflow_store import Tracker, rows_from_jsonl


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


@task(name="log-results", task_run_name="{spec.name}: log to MLflow")
def log_results(spec: StageSpec, result: StageResult, previous: StageResult | None, stage_run_id: str,
                out_dir: Path, tracking_uri: str) -> None:
    tracker = Tracker(tracking_uri)
    tracker.log_metrics(stage_run_id, stage_metrics(result, previous))
    reused = {f"{S.TAG_BASELINE_FROM}{ev.name}": f"final evaluation of stage {ev.baseline_from} (same model and measurement)"
              for ev in result.evals if ev.baseline_from}
    if reused:
        tracker.set_tags(stage_run_id, reused)
    for phase in ("baseline", "final"):
        for ev in result.evals:
            rows = rows_from_jsonl(out_dir / "predictions" / f"{phase}_{ev.name}.jsonl")
            tracker.log_table(stage_run_id, rows, S.predictions_table(phase, ev.name))
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


@task(name="gate-and-register", task_run_name="{spec.name}: gate and register")
def gate_and_register(spec: StageSpec, result: StageResult, stage_run_id: str, upstream_run_id: str | None,
                      upstream_version: str | None, out_dir: Path, tracking_uri: str) -> dict:
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
        S.TAG_BASE_MODEL: spec.base_model,
        S.TAG_UPSTREAM_STAGE: spec.upstream_stage or "",
        S.TAG_UPSTREAM_RUN: upstream_run_id or "",
        S.TAG_UPSTREAM_MODEL_VERSION: upstream_version or "",
        S.TAG_GATE: decision.alias,
    }
    version = tracker.register(stage_run_id, stage.output_name, out_dir / "model", tags, decision.alias,
                               description=stage.description)
    tracker.set_tags(stage_run_id, {S.TAG_GATE: decision.alias, S.TAG_MODEL_VERSION: version})
    tracker.log_json(stage_run_id, {"alias": decision.alias, "improved": decision.improved,
                                    "reasons": decision.reasons, "version": version}, S.ARTIFACT_GATE)
    logger.info(f"[{spec.name}] registered {stage.output_name} v{version} as {decision.alias}")
    return {"alias": decision.alias, "version": version, "improved": decision.improved}


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
