"""Everything palier writes to MLflow: runs, metrics (batched), tables, charts, registry.

Only the orchestrator calls this module. Runs are created with explicit run ids through
``MlflowClient`` (never ``mlflow.start_run`` global state), so a Trainer or a library cannot
open a stray run and a resumed flow cannot re-log a param with a new value. The client is the
Tracker's own: every write outside core.tracking goes through a Tracker method, so each one
waits out an outage the same way.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from core import fault_points
from core.tracking import schema as S
from core.tracking.outage import PatientClient, configure_mlflow_http


def client(tracking_uri: str | None = None):
    from mlflow import MlflowClient

    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise RuntimeError("MLFLOW_TRACKING_URI is not set: start the services with `palier up` "
                           "(or `source .state/env`), or pass a tracking URI")
    configure_mlflow_http()
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def flatten(prefix: str, obj: Any) -> dict[str, str]:
    """Nested config -> MLflow params (``training.learning_rate`` = "1e-05")."""
    out: dict[str, str] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten(f"{prefix}.{k}" if prefix else str(k), v))
    elif isinstance(obj, list) and obj and all(isinstance(v, dict) for v in obj):
        for i, v in enumerate(obj):
            name = v.get("name", i) if isinstance(v, dict) else i
            out.update(flatten(f"{prefix}.{name}", v))
    else:
        text = json.dumps(obj, ensure_ascii=False) if isinstance(obj, (list, dict)) else str(obj)
        out[prefix] = text[:6000]
    return out


class Tracker:
    def __init__(self, tracking_uri: str | None = None):
        self.tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
        # Every call waits out a tracking-server outage (bounded) instead of failing the stage.
        self._client = PatientClient(client(tracking_uri), self.tracking_uri)
        self._beating: set[str] = set()

    # -- experiments and runs -----------------------------------------------------------
    def experiment_id(self, name: str) -> str:
        exp = self._client.get_experiment_by_name(name)
        if exp is None:
            return self._client.create_experiment(name, tags={S.TAG_EXPERIMENT_KIND: S.EXPERIMENT_KIND_TRAINING})
        if S.TAG_EXPERIMENT_KIND not in exp.tags:  # made by an older palier
            self._client.set_experiment_tag(exp.experiment_id, S.TAG_EXPERIMENT_KIND, S.EXPERIMENT_KIND_TRAINING)
        return exp.experiment_id

    def _owned_run(self, exp_id: str, run_name: str, tags: dict[str, str]) -> str:
        """Create a run that records this process as its owner and beats while it lives."""
        from core.liveness import HEARTBEAT
        from core.tracking.stale_runs import owner_tags

        run_id = self._client.create_run(exp_id, run_name=run_name, tags={**tags, **owner_tags()}).info.run_id
        HEARTBEAT.add(run_id, lambda rid: self.set_tags(rid, {S.TAG_HEARTBEAT: str(int(time.time()))}))
        self._beating.add(run_id)
        return run_id

    def stop_heartbeats(self) -> None:
        """Stop beating for the runs this Tracker opened and left open (they stay as they are in
        MLflow): for a writer that is done, before the store it wrote to goes away."""
        from core.liveness import HEARTBEAT

        for run_id in self._beating:
            HEARTBEAT.discard(run_id)
        self._beating.clear()

    def start_pipeline_run(self, experiment: str, pipeline: str, pipeline_file: str | None,
                           params: dict[str, Any], flow_run_id: str | None) -> str:
        exp_id = self.experiment_id(experiment)
        tags = {S.TAG_KIND: "pipeline", S.TAG_PIPELINE: pipeline, S.TAG_STATUS: "running"}
        if pipeline_file:
            tags[S.TAG_PIPELINE_FILE] = pipeline_file
        if flow_run_id:
            tags[S.TAG_FLOW_RUN_ID] = flow_run_id
        run_id = self._owned_run(exp_id, f"{pipeline}-{time.strftime('%Y%m%d-%H%M%S')}", tags)
        self.log_params(run_id, params)
        if pipeline_file and Path(pipeline_file).exists():
            self.log_artifact(run_id, Path(pipeline_file), S.DIR_PIPELINE_FILE)
        return run_id

    def start_stage_run(self, experiment: str, parent_run_id: str, spec, attempt: int) -> str:
        exp_id = self.experiment_id(experiment)
        tags = {
            S.TAG_KIND: "stage",
            S.TAG_PARENT_RUN: parent_run_id,
            S.TAG_PIPELINE: spec.pipeline,
            S.TAG_STAGE: spec.name,
            S.TAG_STAGE_INDEX: str(spec.index),
            S.TAG_STAGE_KEY: spec.key,
            S.TAG_FAMILY: spec.family,
            S.TAG_BASE_MODEL: spec.base_model,
            S.TAG_UPSTREAM_STAGE: spec.upstream_stage or "",
            S.TAG_BACKEND: spec.stage.backend.kind,
            S.TAG_STATUS: "running",
            S.TAG_ATTEMPT: str(attempt),
        }
        run_id = self._owned_run(exp_id, f"{spec.index + 1}-{spec.name}", tags)
        self.log_params(run_id, flatten("", spec.stage.model_dump(mode="json")) | {
            "pipeline": spec.pipeline, "base_model": spec.base_model, "language": spec.language,
            "task": spec.task, "stage_key": spec.key})
        self.log_json(run_id, spec.model_dump(mode="json"), S.ARTIFACT_CONFIG)
        return run_id

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k[:250], str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self._client.log_batch(run_id, params=items[i : i + 100])

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self._client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        for i in range(0, len(items), 1000):
            self._client.log_batch(run_id, metrics=items[i : i + 1000])

    def send_metrics(self, run_id: str, metrics: list, wait: bool = True) -> None:
        """One batch of ``mlflow.entities.Metric`` (at most 1000). ``wait=False``: a single try, an
        unreachable server raises TrackingUnavailable at once (the spool keeps them for later)."""
        send = self._client.call if wait else self._client.attempt
        send("log_batch", run_id, metrics=metrics)

    def log_datasets(self, run_id: str, inputs: list) -> None:
        """``mlflow.entities.DatasetInput``s (core.tracking.datasets) as the run's inputs."""
        if inputs:
            self._client.log_inputs(run_id, datasets=inputs)

    def log_json(self, run_id: str, payload: Any, artifact_file: str) -> None:
        self._client.log_dict(run_id, payload, artifact_file)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self._client.log_text(run_id, text, artifact_file)

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        """One local file under ``artifact_path`` (a folder of the run's artifacts)."""
        self._client.log_artifact(run_id, str(path), artifact_path)

    def log_table(self, run_id: str, rows: list[dict[str, Any]], artifact_file: str) -> None:
        if not rows:
            return
        columns = {k: [r.get(k) for r in rows] for k in rows[0]}
        self._client.log_table(run_id, data=columns, artifact_file=artifact_file)

    def log_artifacts(self, run_id: str, folder: Path, artifact_path: str | None = None) -> None:
        self._client.log_artifacts(run_id, str(folder), artifact_path)

    def log_figure(self, run_id: str, figure, artifact_file: str) -> None:
        self._client.log_figure(run_id, figure, artifact_file)

    def end_run(self, run_id: str, status: str) -> None:
        from core.liveness import HEARTBEAT

        HEARTBEAT.discard(run_id)
        self._beating.discard(run_id)
        mlflow_status = {"succeeded": "FINISHED", "skipped": "FINISHED", "failed": "FAILED",
                         "cancelled": "KILLED"}.get(status, "FINISHED")
        self.set_tags(run_id, {S.TAG_STATUS: status})
        self._client.set_terminated(run_id, status=mlflow_status)

    # -- reading back (resume, reattach) --------------------------------------------------
    def get_run(self, run_id: str):
        return self._client.get_run(run_id)

    def stage_key_runs(self, experiment_id: str, stage_key: str, succeeded_only: bool = False,
                       max_results: int = 20) -> list:
        """Runs of the experiment with this stage key, newest first."""
        query = f"tags.`{S.TAG_STAGE_KEY}` = '{stage_key}'"
        if succeeded_only:
            query += f" and tags.`{S.TAG_STATUS}` = 'succeeded'"
        return list(self._client.search_runs([experiment_id], filter_string=query,
                                             order_by=["attributes.start_time DESC"], max_results=max_results))

    def finished_stage_run(self, experiment: str, stage_key: str):
        exp = self._client.get_experiment_by_name(experiment)
        if exp is None:
            return None
        runs = self.stage_key_runs(exp.experiment_id, stage_key, succeeded_only=True, max_results=1)
        return runs[0] if runs else None

    # -- registry -----------------------------------------------------------------------
    def log_model(self, run_id: str, folder: Path, name: str, tags: dict[str, str] | None = None) -> str:
        """Log an MLflow model folder (``core.stage.mlflow_model``) as the run's LoggedModel: the
        experiment's Models tab lists it, its artifacts are uploaded once, and a registered
        version made from ``models:/<model_id>`` is loadable by MLflow's own tools. Returns the
        model id; a LoggedModel already made for this run and folder is reused (a retry)."""
        from mlflow.entities import LoggedModelOutput, LoggedModelStatus
        from mlflow.models import Model

        run = self.get_run(run_id)
        existing = self._client.search_logged_models(
            experiment_ids=[run.info.experiment_id],
            filter_string=f"source_run_id = '{run_id}' AND name = '{name}'", max_results=1)
        if existing and existing[0].status == LoggedModelStatus.READY:
            return existing[0].model_id
        model = existing[0] if existing else self._client.create_logged_model(
            # positional: PatientClient.call's own first parameter is called ``name``
            run.info.experiment_id, name, run_id, tags, None, "transformers")
        self._client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=0)])
        mlmodel = Model.load(str(folder / S.MLMODEL_FILE))
        # What MLflow's own log_model writes into MLmodel: who this model is and where it lives.
        mlmodel.model_id = mlmodel.model_uuid = model.model_id
        mlmodel.run_id, mlmodel.artifact_path = run_id, model.artifact_location
        mlmodel.save(str(folder / S.MLMODEL_FILE))
        self._client.log_model_artifacts(model.model_id, str(folder))
        self._client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
        return model.model_id

    def run_version(self, name: str, run_id: str, stage_key: str | None = None) -> str | None:
        """The version of ``name`` already registered from this run, or from this stage key (a
        registration retried by a later run after an outage): never register one output twice."""
        found = list(self._client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'"))
        if not found and stage_key:
            found = list(self._client.search_model_versions(
                f"name = '{name}' and tags.`{S.TAG_STAGE_KEY}` = '{stage_key}'"))
        return str(max(int(v.version) for v in found)) if found else None

    def register(self, run_id: str, name: str, model_dir: Path, tags: dict[str, str], alias: str,
                 description: str = "", model_id: str | None = None, version_description: str = "") -> str:
        """Register the run's model as a new version of ``name`` (or the version this run already
        registered: never twice). ``model_id``: the run's LoggedModel (``log_model``), the
        version's source; without one, ``model_dir`` is logged under the run's ``model/``."""
        from mlflow.exceptions import MlflowException

        try:
            self._client.create_registered_model(name, description=description or None)
        except MlflowException as exc:
            if "already exists" not in str(exc).lower() and "RESOURCE_ALREADY_EXISTS" not in str(exc):
                raise
        version = self.run_version(name, run_id, tags.get(S.TAG_STAGE_KEY))
        if version is None:
            if model_id is None:
                self.log_artifacts(run_id, model_dir, S.DIR_MODEL)
                source = f"{self.get_run(run_id).info.artifact_uri}/{S.DIR_MODEL}"
            else:
                source = f"models:/{model_id}"
                tags = {**tags, S.TAG_LOGGED_MODEL: model_id}
            version = str(self._client.create_model_version(
                name, source=source, run_id=run_id, tags=tags, description=version_description or description or None,
                model_id=model_id).version)
            fault_points.reached("after_model_version")
        self._client.set_registered_model_alias(name, S.ALIAS_CANDIDATE, version)
        if alias == S.ALIAS_CHAMPION:
            self._client.set_registered_model_alias(name, S.ALIAS_CHAMPION, version)
        return version

    def move_alias(self, name: str, alias: str, version: str) -> str | None:
        """Point ``name@alias`` at ``version``; returns the version it pointed at before (None if unset)."""
        from mlflow.exceptions import MlflowException

        try:
            before = str(self._client.get_model_version_by_alias(name, alias).version)
        except MlflowException:
            before = None
        self._client.set_registered_model_alias(name, alias, version)
        return before

    def champion_metric(self, name: str, metric_key: str) -> float | None:
        from mlflow.exceptions import MlflowException

        try:
            version = self._client.get_model_version_by_alias(name, S.ALIAS_CHAMPION)
        except MlflowException:
            return None
        if not version.run_id:
            return None
        value = self.get_run(version.run_id).data.metrics.get(metric_key)
        return float(value) if value is not None else None


def rows_from_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

