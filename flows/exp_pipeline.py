"""The ``exp-pipeline`` flow: run a pipeline's stages in order, each from the previous output.

    prefect deployment run exp-pipeline/demo     (services up: `palier up`)
    palier run pipelines/demo.yaml               (in-process, for development)

For each stage: skip it when a finished MLflow run has the same stage key (config + upstream
key + data + code) and its outputs are still on disk; otherwise open a child run, run the
stage on its backend, log baseline vs final, gate, and register the model. The orchestrator
owns every MLflow run; the stage runner never calls MLflow.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.states import Failed, State
from prefect.runtime import flow_run

from core import fault_points
from core.config import load_pipeline
from core.contracts import StageResult, StageSpec
from core.ct2.packaged import is_packaged_ref, resolve_base_model
from core.cost import RunCost, run_cost, total_cost
from core.model_refs import is_registry_ref, parse_registry_ref
from core.paths import cache_dir, stage_dir
from core.plan import plan, upstream_of
from core.tracking import schema as S
from core.tracking.mlflow_store import Tracker
from core.tracking.queries import (RegistryRefError, download_registered_model, registered_version,
                                  version_model_id)
from core.versioning import code_version, data_digest
from flows.stale_runs import sweep
from flows.stopping import close_run
from tasks.artifacts import publish_artifacts
from tasks.budget import check_budget
from tasks.preflight import PreflightBlocked, preflight_task, quiet_blocked_preflight
from tasks.results import gate_and_register, log_results, summarize, summary_rows
from tasks.search import run_search
from tasks.stage import StageFailed, run_stage_task

quiet_blocked_preflight()


def plan_pipeline(pipeline_file: str, tracking_uri: str | None = None) -> tuple:
    path = Path(pipeline_file).resolve()
    config = pin_registered_base(load_pipeline(path), tracking_uri)
    specs = plan(config, code_version(), lambda src: data_digest(src, path.parent), pipeline_file=str(path))
    return config, specs


def pin_registered_base(config, tracking_uri: str | None):
    """``base_model: models:/NAME@ALIAS`` -> ``models:/NAME/VERSION``, the version the alias names
    now: the run records it, and a stage key changes when the alias moves. A reference the
    registry does not have is left as written: the preflight refuses it and says why."""
    if not tracking_uri or not is_registry_ref(config.base_model):
        return config
    try:
        ref = parse_registry_ref(config.base_model)
    except ValueError:
        return config
    if ref.alias is None:
        return config
    try:
        version = registered_version(tracking_uri, config.base_model)
    except RegistryRefError:
        return config
    return config.model_copy(update={"base_model": ref.version_uri(str(version.version))})


def _registered_upstream(tracking_uri: str, ref: str, logger) -> StageOutput:
    """A registered version as the first stage's upstream: downloaded once into the cache, its
    run, version and LoggedModel recorded as the lineage (the baseline measures that model)."""
    version = registered_version(tracking_uri, ref)
    folder = download_registered_model(tracking_uri, ref, cache_dir())
    logger.info(f"base model {ref}: version {version.version} of {version.name} (run {version.run_id}) in {folder}")
    return StageOutput(folder, version.run_id or "", str(version.version), version.name, version_model_id(version))


def _tracking_uri(explicit: str | None) -> str:
    uri = explicit or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise RuntimeError("no MLflow tracking server: run `palier up` (then `source .state/env`) "
                           "or set MLFLOW_TRACKING_URI")
    return uri


@flow(name="exp-pipeline", log_prints=True)
def exp_pipeline(pipeline: str = "pipelines/demo.yaml", tracking_uri: str | None = None,
                 only: list[str] | None = None) -> list[dict] | State:
    """Run every stage of ``pipeline`` (a YAML path). ``only`` restricts to named stages
    (their upstream outputs must already exist)."""
    logger = get_run_logger()
    uri = _tracking_uri(tracking_uri)
    pipeline_file = str(Path(pipeline).resolve())
    config, specs = plan_pipeline(pipeline, uri)
    tracker = Tracker(uri)
    for line in sweep(uri).lines():  # runs a dead process left open
        logger.warning(line)
    parent = _open_pipeline_run(tracker, config, specs, pipeline_file)
    logger.info(f"pipeline {config.name}: {len(specs)} stage(s); MLflow experiment {config.experiment_name!r}, "
                f"parent run {parent}")
    try:
        config, specs = _preflight(tracker, parent, config, specs, pipeline_file)
    except PreflightBlocked as blocked:
        return _blocked(blocked, config.name, logger)
    try:
        check_budget(config, specs, logger)
        costs: list[RunCost] = []
        done = _run_stages(tracker, uri, config, specs, parent, only, logger, costs)
        rows = summary_rows(done)
        summarize(parent, rows, uri)
        tracker.log_metrics(parent, total_cost(costs))
        try:
            publish_artifacts(config.name, config.experiment_name, parent, uri)
        except Exception as exc:  # the results are in MLflow already; the artifacts are a view
            logger.warning(f"Prefect artifacts not created: {type(exc).__name__}: {exc}")
        tracker.end_run(parent, "succeeded")
        return rows
    except BaseException as exc:
        close_run(tracker, parent, exc)
        raise


def _blocked(blocked: PreflightBlocked, name: str, logger) -> State:
    """A blocked preflight is a finding, not a crash: the flow run ends Failed with the report as
    its message and no traceback in its log; an in-process caller gets the exception back from
    the state (``palier run`` prints it as a report)."""
    logger.error(f"pipeline {name} not started: preflight blocked it; fix the findings above and run it again")
    return Failed(message=str(blocked), data=blocked)


def _open_pipeline_run(tracker: Tracker, config, specs: list[StageSpec], pipeline_file: str) -> str:
    params = {"pipeline": config.name, "family": config.family, "base_model": config.base_model,
              "language": config.language, "task": config.task, "stages": " -> ".join(s.name for s in specs)}
    return tracker.start_pipeline_run(config.experiment_name, config.name, pipeline_file, params, flow_run.get_id())


def _preflight(tracker: Tracker, parent: str, config, specs: list[StageSpec], pipeline_file: str) -> tuple:
    """The agent's rules before any stage; a blocked pipeline ends its run as failed. Returns the
    config and plan to run (replanned when the preflight applied autofixes)."""
    try:
        report = preflight_task(config, pipeline_file)
    except BaseException:
        tracker.end_run(parent, "failed")
        raise
    tracker.log_text(parent, report.to_json(), S.ARTIFACT_PREFLIGHT)
    if not report.ok:
        tracker.set_tags(parent, {S.TAG_PREFLIGHT: "blocked"})
        tracker.end_run(parent, "failed")
        raise PreflightBlocked("preflight blocked the pipeline:\n" + "\n".join(report.lines()))
    if not report.changes:
        return config, specs
    config = report.config
    return config, plan(config, code_version(), lambda src: data_digest(src, Path(pipeline_file).parent),
                        pipeline_file=pipeline_file)


@dataclass(frozen=True)
class StageOutput:
    model_dir: Path
    run_id: str
    model_version: str | None
    registered_name: str = ""
    model_id: str | None = None  # its MLflow LoggedModel

    def uri(self) -> str | None:
        """``models:/NAME/VERSION`` of this output, when it was registered."""
        return f"models:/{self.registered_name}/{self.model_version}" if self.model_version else None


def _run_stages(tracker: Tracker, uri: str, config, specs: list[StageSpec], parent: str, only: list[str] | None,
                logger, costs: list[RunCost]) -> list[tuple[StageSpec, StageResult]]:
    """Each stage from the previous one's output, reusing a finished run with the same key."""
    done: list[tuple[StageSpec, StageResult]] = []
    outputs: dict[str, StageOutput] = {}
    previous: StageResult | None = None
    for spec in specs:
        upstream_name = upstream_of(spec.base_model)
        upstream = outputs[upstream_name] if upstream_name is not None else None
        if upstream is None and is_registry_ref(spec.base_model):
            upstream = _registered_upstream(uri, spec.base_model, logger)
        spec = _with_base_model(spec, upstream, logger)
        out_dir = stage_dir(spec.pipeline, spec.name, spec.key)
        selected = not only or spec.name in only
        reused = _reuse(tracker, config.experiment_name, spec, out_dir, parent, logger, quiet=not selected)
        if reused is None and not selected:
            raise StageFailed(f"stage {spec.name} is not selected and has no finished output to start from")
        if reused is not None:
            run_id, version, result, model_id = reused
        else:
            run_id, version, result, cost, model_id = _run_one(tracker, uri, config, spec, parent, previous, upstream,
                                                               out_dir)
            costs.append(cost)
        outputs[spec.name] = StageOutput(out_dir / "model", run_id, version, spec.stage.output_name,
                                        model_id)
        done.append((spec, result))
        previous = result
    return done


def _with_base_model(spec: StageSpec, upstream: StageOutput | None, logger) -> StageSpec:
    """``stage:<name>`` -> that stage's model folder; ``pypi:whisper-base`` -> the cached imported folder."""
    if upstream is not None:
        return spec.with_base_model(str(upstream.model_dir))
    if is_packaged_ref(spec.base_model):
        return spec.with_base_model(resolve_base_model(spec.base_model, cache_dir(), logger.info))
    return spec


def _run_one(tracker: Tracker, uri: str, config, spec: StageSpec, parent: str,
             previous: StageResult | None, upstream: StageOutput | None, out_dir: Path):
    """A new stage run: run the stage on its backend (or its search, whose winner becomes its output),
    log it, gate it, register its model. A stage that finished with this key but was never logged
    (orchestrator killed, tracking server down) is logged and registered instead of trained again."""
    run_id = tracker.start_stage_run(config.experiment_name, parent, spec, attempt=1)
    result = finished_on_disk(spec, out_dir)
    if result is not None:
        get_run_logger().warning(f"[{spec.name}] finished earlier in {out_dir} but was never logged: "
                                 "logging and registering that output instead of training again")
        cost = run_cost(spec, result, config.prices)
    else:
        try:
            if spec.stage.search is not None:
                result, cost = run_search(tracker, uri, config.experiment_name, spec, run_id, out_dir, config.prices,
                                          get_run_logger())
            else:
                result = run_stage_task(spec, run_id, uri)
                cost = run_cost(spec, result, config.prices)
        except BaseException as exc:
            close_run(tracker, run_id, exc)
            raise
    fault_points.reached("after_stage_end")
    model_id = log_results(spec, result, previous, run_id, out_dir, uri,
                           upstream_model_id=upstream.model_id if upstream else None)
    tracker.log_metrics(run_id, cost.metrics())
    decision = gate_and_register(spec, result, run_id, upstream.run_id if upstream else None,
                                 upstream.model_version if upstream else None, out_dir, uri,
                                 upstream_uri=upstream.uri() if upstream else None, model_id=model_id)
    tracker.end_run(run_id, "succeeded")
    return run_id, decision["version"], result, cost, model_id


def finished_on_disk(spec: StageSpec, out_dir: Path) -> StageResult | None:
    """The result a stage runner wrote and marked succeeded in ``out_dir`` for this key, with its
    model, or None."""
    metrics_file, meta_file = out_dir / "metrics.json", out_dir / "meta.json"
    if not metrics_file.is_file() or not meta_file.is_file() or not (out_dir / "model").is_dir():
        return None
    try:
        if json.loads(meta_file.read_text(encoding="utf-8")).get("status") != "succeeded":
            return None
        result = StageResult.model_validate_json(metrics_file.read_text(encoding="utf-8"))
    except ValueError:
        return None
    return result if result.key == spec.key else None


def _reuse(tracker: Tracker, experiment: str, spec: StageSpec, out_dir: Path, parent: str, logger, quiet=False):
    """A finished run with the same stage key whose outputs are still here: link, don't redo."""
    finished = tracker.finished_stage_run(experiment, spec.key)
    metrics_file = out_dir / "metrics.json"
    if finished is None or not metrics_file.exists() or not (out_dir / "model").is_dir():
        return None
    result = StageResult.model_validate_json(metrics_file.read_text(encoding="utf-8"))
    run_id = tracker.start_stage_run(experiment, parent, spec, attempt=0)
    tracker.set_tags(run_id, {S.TAG_REUSED_FROM: finished.info.run_id,
                              S.TAG_MODEL_VERSION: finished.data.tags.get(S.TAG_MODEL_VERSION, ""),
                              S.TAG_GATE: finished.data.tags.get(S.TAG_GATE, "")})
    tracker.log_metrics(run_id, {k: v for k, v in finished.data.metrics.items()
                                 if k.split("/")[0] in S.RESULT_METRIC_PREFIXES})
    tracker.end_run(run_id, "skipped")
    if not quiet:
        logger.info(f"[{spec.name}] already done with the same key {spec.key} (run {finished.info.run_id}): skipped")
    return run_id, finished.data.tags.get(S.TAG_MODEL_VERSION), result, finished.data.tags.get(S.TAG_LOGGED_MODEL)
