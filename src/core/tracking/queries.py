"""What palier reads back from MLflow: pipelines, their runs, stage runs, JSON artifacts and
registered models. Read-only; the agent, `palier watch` and `palier evaluate` ask through here,
so the tag names they filter on come from the schema and the raw client stays in core.tracking.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from core.tracking import schema as S

PIPELINE_EXPERIMENT_PREFIX = "palier/"


class RegistryRefError(ValueError):
    """A ``models:/`` reference that is malformed or not in the registry."""


def read_client(tracking_uri: str):  # noqa: ANN201 - mlflow is imported lazily
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def run_record(run: Any) -> dict[str, Any]:
    """A run as plain data: ids, status, palier's tags, metrics and params."""
    tags = run.data.tags
    return {
        "run_id": run.info.run_id,
        "run_name": run.info.run_name,
        "experiment_id": run.info.experiment_id,
        "mlflow_status": run.info.status,
        "status": tags.get(S.TAG_STATUS) or run.info.status.lower(),
        "start_time": run.info.start_time,
        "end_time": run.info.end_time,
        "tags": {k: v for k, v in tags.items() if k.startswith(S.TAG_PREFIX) or k == S.TAG_PARENT_RUN},
        "metrics": dict(run.data.metrics),
        "params": dict(run.data.params),
    }


def pipeline_experiments(client: Any) -> list[dict[str, Any]]:
    """Every pipeline's experiment, most recently updated first."""
    exps = client.search_experiments(filter_string=f"name LIKE '{PIPELINE_EXPERIMENT_PREFIX}%'")
    out = [{"pipeline": e.name[len(PIPELINE_EXPERIMENT_PREFIX):], "experiment": e.name,
            "experiment_id": e.experiment_id, "last_update": e.last_update_time} for e in exps]
    return sorted(out, key=lambda e: e["last_update"] or 0, reverse=True)


def pipeline_runs(client: Any, experiment_id: str, limit: int) -> list[dict[str, Any]]:
    """A pipeline's parent runs, newest first."""
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{S.TAG_KIND}` = 'pipeline'",
                              order_by=["attributes.start_time DESC"], max_results=limit)
    return [run_record(r) for r in runs]


def _children_filter(parent_run_id: str) -> str:
    return f"tags.`{S.TAG_PARENT_RUN}` = '{parent_run_id}'"


def stage_runs(client: Any, experiment_id: str, parent_run_id: str) -> list[dict[str, Any]]:
    """A pipeline run's stage runs, in the order they started."""
    runs = client.search_runs([experiment_id],
                              filter_string=f"tags.`{S.TAG_KIND}` = 'stage' and {_children_filter(parent_run_id)}",
                              order_by=["attributes.start_time ASC"], max_results=500)
    return [run_record(r) for r in runs]


def flow_run_stage_runs(client: Any, flow_run_id: str) -> list[Any]:
    """The stage runs of the pipeline run a Prefect flow run opened (none while it has not)."""
    parents = client.search_runs([e.experiment_id for e in client.search_experiments()],
                                 filter_string=f"tags.`{S.TAG_FLOW_RUN_ID}` = '{flow_run_id}'")
    if not parents:
        return []
    parent = parents[0]
    return client.search_runs([parent.info.experiment_id], filter_string=_children_filter(parent.info.run_id),
                              order_by=["attributes.start_time ASC"])


def _artifact_bytes(client: Any, run_id: str, path: str) -> bytes | None:
    """A run's artifact file, or None when it is absent or cannot be downloaded."""
    flag = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    saved = os.environ.get(flag)
    os.environ[flag] = "false"  # a progress bar per artifact would garble a chat answer
    try:
        with tempfile.TemporaryDirectory() as tmp:
            return Path(client.download_artifacts(run_id, path, tmp)).read_bytes()
    except Exception:  # noqa: BLE001 - an absent or unreadable artifact is simply not there
        return None
    finally:
        if saved is None:
            os.environ.pop(flag, None)
        else:
            os.environ[flag] = saved


def json_artifact(client: Any, run_id: str, path: str) -> dict[str, Any] | None:
    """A run's JSON artifact, or None when it is absent or unreadable."""
    data = _artifact_bytes(client, run_id, path)
    try:
        return json.loads(data.decode("utf-8")) if data is not None else None
    except ValueError:
        return None


def _what_exists(client: Any, name: str) -> str:
    """The registered model's versions and aliases, for an error message."""
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
    except MlflowException:
        names = sorted(m.name for m in client.search_registered_models(max_results=50))
        return f"no registered model {name!r}; registered: {', '.join(names) or 'none'}"
    versions = sorted(int(v.version) for v in client.search_model_versions(f"name = '{name}'"))
    aliases = ", ".join(f"@{a} -> v{v}" for a, v in sorted(model.aliases.items())) or "none"
    return f"{name} has versions {', '.join(map(str, versions)) or 'none'} and aliases {aliases}"


def _model_version(client: Any, uri: str) -> Any:
    from mlflow.exceptions import MlflowException

    from core.model_refs import parse_registry_ref

    try:
        ref = parse_registry_ref(uri)
    except ValueError as exc:
        raise RegistryRefError(str(exc)) from None
    try:
        if ref.alias:
            return client.get_model_version_by_alias(ref.name, ref.alias)
        return client.get_model_version(ref.name, ref.version)
    except MlflowException:
        raise RegistryRefError(f"{uri}: not in the MLflow model registry ({_what_exists(client, ref.name)})") from None


def registered_version(tracking_uri: str, uri: str) -> Any:
    """The ``ModelVersion`` a ``models:/`` reference names (an alias resolved to its version now).
    RegistryRefError when it is malformed or absent (naming what exists) or the server is down."""
    from core.tracking.outage import configure_mlflow_http, unreachable

    configure_mlflow_http()  # a server that is down answers at once, not after MLflow's retries
    try:
        return _model_version(read_client(tracking_uri), uri)
    except RegistryRefError:
        raise
    except Exception as exc:
        if unreachable(exc):
            raise RegistryRefError(f"{uri}: the MLflow server at {tracking_uri} does not answer: start it "
                                   "with `palier up` (or set MLFLOW_TRACKING_URI to the right server)") from None
        raise


def version_model_id(version: Any) -> str | None:
    """The LoggedModel a registered version was made from (MLflow's SQL registry keeps it only
    as the version's ``models:/<model_id>`` source)."""
    if getattr(version, "model_id", None):
        return version.model_id
    source = version.source or ""
    if source.startswith("models:/m-"):
        return source[len("models:/"):].split("/")[0]
    return version.tags.get(S.TAG_LOGGED_MODEL)


def version_family(tracking_uri: str, version: Any) -> str | None:
    """The task family of a registered version: palier's tag, else its MLflow model's
    ``transformers`` task; None when neither says."""
    from core.model_refs import FAMILY_TASKS

    if version.tags.get(S.TAG_FAMILY):
        return version.tags[S.TAG_FAMILY]
    try:
        import yaml
        from mlflow.artifacts import load_text

        mlmodel = yaml.safe_load(load_text(f"{version.source}/{S.MLMODEL_FILE}"))
    except Exception:  # noqa: BLE001 - not an MLflow model (an older palier's plain folder)
        return None
    task = (mlmodel.get("flavors", {}).get("transformers") or {}).get("task")
    return next((family for family, t in FAMILY_TASKS.items() if t == task), None)


def download_registered_model(tracking_uri: str, uri: str, cache: Path) -> Path:
    """A registered version's Transformers folder, downloaded once into ``cache``: the MLflow
    model's ``model/`` folder (it holds every file of the stage's output), or the whole download
    for a version registered from a plain folder."""
    from mlflow.artifacts import download_artifacts

    version = registered_version(tracking_uri, uri)
    target = cache / "registered" / f"{version.name}-v{version.version}"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            local = Path(download_artifacts(artifact_uri=version.source, dst_path=tmp,
                                            tracking_uri=tracking_uri))
            local.replace(target)
    return target / "model" if (target / S.MLMODEL_FILE).is_file() else target


def run(client: Any, run_id: str) -> dict[str, Any] | None:
    """One run as plain data, or None when the id is unknown."""
    from mlflow.exceptions import MlflowException

    try:
        return run_record(client.get_run(run_id))
    except MlflowException:
        return None


def table_artifact(client: Any, run_id: str, path: str) -> list[dict[str, Any]] | None:
    """A table a run logged with ``log_table`` (``{"columns": [...], "data": [[...]]}``) as rows,
    or None when it is absent or unreadable."""
    table = json_artifact(client, run_id, path)
    if not isinstance(table, dict) or "columns" not in table or "data" not in table:
        return None
    return [dict(zip(table["columns"], row)) for row in table["data"]]


def text_artifact(client: Any, run_id: str, path: str, limit: int = 2_000_000) -> str | None:
    """The end (``limit`` characters) of a run's text artifact, or None when it is absent."""
    data = _artifact_bytes(client, run_id, path)
    return data.decode("utf-8", errors="replace")[-limit:] if data is not None else None


def registered_model(client: Any, name: str) -> dict[str, Any]:
    """A registered model's versions (newest first) and aliases; RegistryRefError naming the
    known models when there is no model of that name."""
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
    except MlflowException:
        known = sorted(m.name for m in client.search_registered_models(max_results=200))
        raise RegistryRefError(f"no registered model named {name!r}; known: {', '.join(known) or 'none'}") from None
    versions = client.search_model_versions(f"name = '{name}'")
    aliases = {alias: str(version) for alias, version in (model.aliases or {}).items()}
    rows = [{"version": str(v.version), "run_id": v.run_id, "status": v.status, "created": v.creation_timestamp,
             "aliases": sorted(a for a, n in aliases.items() if n == str(v.version)),
             "tags": {k: t for k, t in (v.tags or {}).items() if k.startswith(S.TAG_PREFIX)}}
            for v in versions]
    return {"name": model.name, "description": model.description, "aliases": aliases,
            "versions": sorted(rows, key=lambda r: int(r["version"]), reverse=True)}
