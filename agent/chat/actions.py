"""Guarded actions an assistant may ask for: start (or resume) a pipeline or one stage through
its Prefect deployment, only after the preflight passes; move a registry alias, only with an
explicit confirmation. The preflight report they run on is a tool of its own.

A refusal (a blocked preflight, a missing confirmation) is an answer, not an error: it says what
was checked and what would happen. Bad arguments (an unknown pipeline, a missing file, a stage
or version that does not exist) raise ActionError naming them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.tracking import schema as S

from agent.playbooks import PlaybookSet
from agent.base.state import LiveState

DEPLOYMENT_FLOW = "exp-pipeline"  # flows.serve names each deployment exp-pipeline/<pipeline name>


class ActionError(ValueError):
    """An action's argument names something that does not exist (the message says what)."""


def _looks_like_file(ref: str) -> bool:
    return ref.endswith((".yaml", ".yml")) or "/" in ref or Path(ref).is_file()


def pipeline_file(state: LiveState, pipeline: str) -> Path:
    """The pipeline file a name or a path means: a path as given; a name, the file its served
    deployment runs, else the one in the pipelines folder (``PALIER_PIPELINES_DIR``, default
    ``pipelines/``)."""
    if _looks_like_file(pipeline):
        path = Path(pipeline).expanduser()
        if not path.is_file():
            raise ActionError(f"{pipeline}: pipeline file not found")
        return path.resolve()
    deployment = _deployment(state, pipeline)  # what a run would run comes first
    if deployment and deployment.get("pipeline"):
        return Path(deployment["pipeline"]).resolve()
    found = state.pipeline_files().get(pipeline)
    if found is not None:
        return found.resolve()
    known = sorted(set(state.pipeline_files()) | {p["pipeline"] for p in _mlflow_pipelines(state)})
    raise ActionError(f"no pipeline named {pipeline!r}; known: {', '.join(known) or 'none'} (or give a file path)")


def _mlflow_pipelines(state: LiveState) -> list[dict[str, Any]]:
    return state.mlflow.pipelines() if state.mlflow.available else []


def preflight_report(state: LiveState, book: PlaybookSet, pipeline: str) -> dict[str, Any]:
    """Every playbook rule on every stage of the pipeline against this machine (what `palier
    check` prints): ``ok`` False when a rule blocks the launch. Autofixes are reported, the file
    is not changed."""
    import json

    from agent.diagnosis.file_inputs import InputFileError, check_pipeline_file

    path = pipeline_file(state, pipeline)
    try:
        report = check_pipeline_file(path, book, apply_autofix=True)
    except InputFileError as exc:
        raise ActionError(str(exc)) from None
    payload = json.loads(report.to_json())
    blocking = [f for f in payload["findings"] if f["severity"] == "block" and not f["autofixed"]]
    return {"ok": report.ok, "pipeline_file": str(path), "pipeline": report.config.name, "blocking": len(blocking),
            "findings": payload["findings"], "changes": payload["changes"], "lines": report.lines(),
            "sources": [{"kind": "pipeline_file", "ref": str(path), "label": None}]
            + [{"kind": "playbook", "ref": f["playbook"], "label": f["rule_id"]} for f in payload["findings"]
               if f.get("playbook")],
            "notes": []}


def _deployment(state: LiveState, name: str) -> dict[str, Any] | None:
    """The served deployment of a pipeline (its id and the file it runs), None if there is none."""
    if not state.prefect.available:
        return None
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        with get_client(sync_client=True) as client:
            found = client.read_deployment_by_name(f"{DEPLOYMENT_FLOW}/{name}")
    except ObjectNotFound:
        return None
    return {"id": str(found.id), "name": f"{DEPLOYMENT_FLOW}/{name}", "pipeline": (found.parameters or {}).get("pipeline")}


def _stage_names(path: Path) -> list[str]:
    from core.config import ConfigError

    from agent.chat.tools import load_config

    try:
        return [s.name for s in load_config(str(path)).stages]
    except ConfigError as exc:
        raise ActionError(str(exc)) from None


def run_pipeline(state: LiveState, book: PlaybookSet, pipeline: str, stage: str | None = None) -> dict[str, Any]:
    """Start the pipeline (or only ``stage``, from its upstream's existing output) through its
    deployment, after the preflight: a blocked preflight starts nothing and returns the report.
    A pipeline run reuses the stages already finished with the same inputs, so running it again
    after a failure or a kill resumes it."""
    path = pipeline_file(state, pipeline)
    stages = _stage_names(path)
    if stage is not None and stage not in stages:
        raise ActionError(f"no stage {stage!r} in {path}; stages: {', '.join(stages)}")
    check = preflight_report(state, book, str(path))
    if not check["ok"]:
        return {"ok": False, "started": False, "refused": "preflight blocked the run; nothing was started",
                "pipeline": check["pipeline"], "preflight": check, "sources": check["sources"],
                "notes": ["fix the blocking findings (each names its rule, the file or field, and the fix), then ask again"]}
    if not state.prefect.available:
        raise ActionError(f"Prefect is not reachable ({state.prefect.status().detail}): start the services with `palier up`")
    deployment = _deployment(state, check["pipeline"])
    if deployment is None:
        raise ActionError(f"no deployment {DEPLOYMENT_FLOW}/{check['pipeline']} is served: "
                          f"`palier up --pipelines {path.parent}` serves the files of that folder")
    if deployment["pipeline"] and Path(deployment["pipeline"]).resolve() != path:
        raise ActionError(f"{deployment['name']} runs {deployment['pipeline']}, not {path}")
    from prefect.deployments import run_deployment

    flow_run = run_deployment(deployment["name"], parameters={"only": [stage]} if stage else {}, timeout=0,
                              as_subflow=False, tags=["palier-mcp"])
    ui = state.prefect.url.rstrip("/").removesuffix("/api") if state.prefect.url else None
    return {"ok": True, "started": True, "pipeline": check["pipeline"], "only": stage, "deployment": deployment["name"],
            "flow_run_id": str(flow_run.id), "flow_run_name": flow_run.name,
            "prefect_ui": f"{ui}/runs/flow-run/{flow_run.id}" if ui else None,
            "preflight": {"ok": True, "warnings": [f for f in check["findings"] if f["severity"] == "warn"]},
            "sources": [{"kind": "prefect_flow_run", "ref": str(flow_run.id), "label": flow_run.name}],
            "notes": ["stages already finished with the same inputs are reused, so this also resumes a failed or "
                      "killed run; follow it with pipeline_status"]}


def move_alias(state: LiveState, model: str, alias: str, version: str, confirm: bool = False) -> dict[str, Any]:
    """Point ``model@alias`` (champion, candidate, ...) at ``version``. Without ``confirm`` nothing
    moves: the answer says what would change."""
    from core.tracking.queries import RegistryRefError

    if not state.mlflow.available:
        raise ActionError(f"MLflow is not reachable ({state.mlflow.status().detail}): `palier up`")
    try:
        info = state.mlflow.registered_model(model)
    except RegistryRefError as exc:
        raise ActionError(str(exc)) from None
    versions = [v["version"] for v in info["versions"]]
    if str(version) not in versions:
        raise ActionError(f"{model} has no version {version}; versions: {', '.join(versions)}")
    current = info["aliases"].get(alias)
    change = {"model": info["name"], "alias": alias, "from_version": current, "to_version": str(version)}
    sources = [{"kind": "registered_model", "ref": f"models:/{info['name']}@{alias}", "label": info["name"]}]
    if not confirm:
        return {"ok": False, "moved": False, "refused": "not confirmed: nothing was changed", "would_move": change,
                "sources": sources, "notes": ["ask the user, then call again with confirm: true to move the alias"]}
    from core.tracking.mlflow_store import Tracker

    before = Tracker(state.mlflow.uri).move_alias(info["name"], alias, str(version))
    return {"ok": True, "moved": True, **change, "from_version": before, "sources": sources,
            "notes": [] if alias != S.ALIAS_CHAMPION else
            [f"models:/{info['name']}@champion now loads version {version}; the next stage's gate compares with it"]}
