"""The agent's tools: the same functions answer offline and serve as the LLM's tool calls.

Each returns a JSON-able dict with ``sources`` (MLflow run ids, Prefect flow runs, playbook
sections) and ``notes`` (why something is missing, e.g. a service that is down).
"""

from __future__ import annotations

from typing import Any

from core.tracking import schema as S

from agent.pipeline_state import find_stage, latest_per_stage, pipeline_state, stage_summary
from agent.playbooks import PlaybookSet
from agent.retrieval import prose, search_sections
from agent.state import LiveState


def _src(kind: str, ref: str, label: str | None = None) -> dict[str, Any]:
    return {"kind": kind, "ref": ref, "label": label}


def _unavailable(state: LiveState) -> dict[str, Any] | None:
    status = state.mlflow.status()
    if status.reachable:
        return None
    why = "not configured" if not status.configured else "unreachable"
    return {"ok": False, "error": f"MLflow {why}: {status.detail}", "services": state.services(),
            "sources": [_src("service", "mlflow", status.detail)], "notes": [f"MLflow {why}"]}


def list_pipelines(state: LiveState) -> dict[str, Any]:
    down = _unavailable(state)
    if down:
        return down
    pipes = state.mlflow.pipelines()
    return {"ok": True, "pipelines": [p["pipeline"] for p in pipes], "sources": [], "notes": []}


def _resolve(state: LiveState, pipeline: str | None) -> tuple[dict[str, Any] | None, list[str]]:
    pipes = state.mlflow.pipelines()
    if not pipes:
        return None, ["no palier/* experiment in MLflow yet"]
    if pipeline:
        want = pipeline.lower().removeprefix("palier/")
        for p in pipes:
            if p["pipeline"].lower() == want:
                return p, []
        return None, [f"no pipeline named {pipeline!r}; known: {', '.join(p['pipeline'] for p in pipes)}"]
    notes = [] if len(pipes) == 1 else [f"several pipelines; using the most recent: {pipes[0]['pipeline']}"]
    return pipes[0], notes


def _planned_stages(parent: dict[str, Any]) -> int | None:
    path = parent["tags"].get(S.TAG_PIPELINE_FILE)
    if not path:
        return None
    try:
        from core.config import load_pipeline

        return len(load_pipeline(path).stages)
    except Exception:  # noqa: BLE001 - the file may have moved; the plan is then unknown
        return None


def pipeline_status(state: LiveState, pipeline: str | None = None) -> dict[str, Any]:
    """Where a pipeline is: latest pipeline run, each stage's status/gate/metrics, Prefect state."""
    down = _unavailable(state)
    if down:
        return down
    exp, notes = _resolve(state, pipeline)
    if exp is None:
        return {"ok": False, "error": notes[0], "state": "no_runs", "sources": [], "notes": notes}
    runs = state.mlflow.pipeline_runs(exp["experiment_id"], limit=1)
    if not runs:
        return {"ok": True, "pipeline": exp["pipeline"], "state": "no_runs", "stages": [], "sources": [],
                "notes": notes + ["no pipeline run yet"]}
    parent = runs[0]
    stages = [stage_summary(r) for r in latest_per_stage(state.mlflow.stage_runs(exp["experiment_id"], parent["run_id"]))]
    planned = _planned_stages(parent)
    sources = [_src("mlflow_run", parent["run_id"], f"pipeline run {parent['run_name']}")]
    sources += [_src("mlflow_run", s["run_id"], f"stage {s['stage']}") for s in stages]
    prefect = None
    flow_run_id = parent["tags"].get(S.TAG_FLOW_RUN_ID)
    if flow_run_id:
        prefect = state.prefect.flow_run(flow_run_id)
        if prefect:
            sources.append(_src("prefect_flow_run", flow_run_id, prefect.get("name")))
        elif state.prefect.status().configured:
            notes.append(f"Prefect: {state.prefect.status().detail}")
    return {
        "ok": True,
        "pipeline": exp["pipeline"],
        "experiment": exp["experiment"],
        "run_id": parent["run_id"],
        "run_status": parent["status"],
        "state": pipeline_state(stages, parent["status"], planned),
        "planned_stages": planned,
        "stages": stages,
        "prefect": prefect,
        "sources": sources,
        "notes": notes,
    }


def compare_stage(state: LiveState, pipeline: str | None = None, stage: str | None = None) -> dict[str, Any]:
    """A stage's final metrics against its baseline and the previous stage (delta_prev)."""
    status = pipeline_status(state, pipeline)
    if not status.get("ok") or not status.get("stages"):
        return status
    stages = status["stages"]
    chosen = find_stage(stages, stage) if stage else None
    if chosen is None:
        done = [s for s in stages if s["metrics"]]
        chosen = done[-1] if done else stages[-1]
    position = stages.index(chosen)
    previous = stages[position - 1] if position > 0 else None
    notes = list(status["notes"])
    if stage and find_stage(stages, stage) is None:
        notes.append(f"no stage matching {stage!r}; showing {chosen['stage']}")
    if not chosen["metrics"]:
        notes.append(f"stage {chosen['stage']} has no baseline/final metrics yet (status {chosen['status']})")
    return {"ok": True, "pipeline": status["pipeline"], "stage": chosen, "previous_stage": previous,
            "sources": [_src("mlflow_run", chosen["run_id"], f"stage {chosen['stage']}")]
            + ([_src("mlflow_run", previous["run_id"], f"stage {previous['stage']}")] if previous else []),
            "notes": notes}


def explain_failure(state: LiveState, book: PlaybookSet, pipeline: str | None = None,
                    stage: str | None = None) -> dict[str, Any]:
    """Why a stage failed (recorded diagnosis, Prefect message) and the playbook's fix.
    No pipeline named: the most recent pipeline whose latest run failed."""
    status = pipeline_status(state, pipeline)
    if pipeline is None and status.get("ok") and status.get("state") != "failed":
        for exp in state.mlflow.pipelines()[1:]:
            other = pipeline_status(state, exp["pipeline"])
            if other.get("state") == "failed":
                status = other
                break
    if not status.get("ok"):
        return status
    stages = status.get("stages", [])
    chosen = find_stage(stages, stage) if stage else None
    if chosen is None:
        failed = [s for s in stages if s["status"] in ("failed", "cancelled")]
        chosen = failed[-1] if failed else None
    notes = list(status["notes"])
    if chosen is None:
        return {"ok": True, "pipeline": status["pipeline"], "failed": False, "state": status["state"],
                "sources": status["sources"][:1], "notes": notes + ["no failed stage in the latest run"]}
    diagnosis = state.mlflow.json_artifact(chosen["run_id"], S.ARTIFACT_DIAGNOSIS)
    remedy = state.mlflow.json_artifact(chosen["run_id"], S.ARTIFACT_REMEDY)
    kind = (diagnosis or {}).get("kind") or chosen.get("diagnosis_kind")
    failure_id = (diagnosis or {}).get("failure_id")
    entry = book.failure(failure_id) if failure_id else None
    if entry is None and kind:
        entry = next((f for f in book.failures if f.kind == kind), None)
    sources = [_src("mlflow_run", chosen["run_id"], f"stage {chosen['stage']}")]
    if entry and entry.source:
        sources.append(_src("playbook", entry.source.cite, entry.source.section))
    prefect = status.get("prefect")
    if prefect:
        sources.append(_src("prefect_flow_run", prefect["id"], prefect.get("name")))
    if not diagnosis and not kind:
        notes.append("no diagnosis recorded for this run: run `palier diagnose <stage.log> --events <events.jsonl>`")
    return {
        "ok": True,
        "pipeline": status["pipeline"],
        "failed": chosen["status"] in ("failed", "cancelled"),
        "stage": chosen,
        "diagnosis": diagnosis,
        "remedy_applied": remedy,
        "kind": kind,
        "playbook_fix": (f"{entry.diagnosis} {entry.fix}" if entry else None),
        "playbook_failure": entry.id if entry else None,
        "prefect_message": (prefect or {}).get("message"),
        "sources": sources,
        "notes": notes,
    }


def next_steps(state: LiveState, book: PlaybookSet, pipeline: str | None = None,
               family: str | None = None) -> dict[str, Any]:
    """The playbooks' next steps for the pipeline's current state (family-specific first)."""
    status = pipeline_status(state, pipeline)
    current = status.get("state") or "no_runs"
    if family is None:
        family = next((st["family"] for st in status.get("stages", []) if st.get("family")), None)
    entries = [n for n in book.next_steps if n.state == current]
    specific = [n for n in entries if "*" not in n.families and (family is None or family in n.families)]
    generic = [n for n in entries if "*" in n.families]
    chosen = specific + generic
    sources = [_src("playbook", n.source.cite, n.source.section) for n in chosen if n.source]
    notes = list(status.get("notes", []))
    if not status.get("ok") and status.get("error"):
        notes.append(status["error"])
    return {"ok": True, "pipeline": status.get("pipeline"), "state": current,
            "steps": [{"id": n.id, "title": n.title, "steps": n.steps, "families": n.families} for n in chosen],
            "sources": status.get("sources", [])[:1] + sources, "notes": notes}


def search_playbooks(book: PlaybookSet, query: str, k: int = 3) -> dict[str, Any]:
    hits = search_sections(book.sections, query, k=k)
    if hits:  # drop weak tail matches: half the best score or less
        hits = [(s, score) for s, score in hits if score > hits[0][1] / 2]
    items = [i for i in [*book.rules, *book.failures] if i.source]
    results = []
    for section, score in hits:
        related = [i for i in items if i.source.cite == section.cite]
        fixes = [f"{i.id}: {i.fix}" for i in related][:6]
        results.append({"section": section.heading, "cite": section.cite, "score": score, "text": prose(section),
                        "fixes": fixes})
    return {"ok": True, "query": query,
            "results": results,
            "sources": [_src("playbook", s.cite, s.heading) for s, _ in hits], "notes": [] if hits else ["no match"]}


def service_status(state: LiveState) -> dict[str, Any]:
    return {"ok": True, "services": state.services(), "sources": [], "notes": []}
