"""The agent's tools: the same functions answer offline and serve as the LLM's tool calls.

Each returns a JSON-able dict with ``sources`` (MLflow run ids, Prefect flow runs, playbook
sections) and ``notes`` (why something is missing, e.g. a service that is down).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.tracking import schema as S

from agent.base.pipeline_state import improvement, latest_per_stage, pipeline_state, resolve_stage, stage_summary
from agent.playbooks.parse import PlaybookSet
from agent.playbooks.retrieval import prose, search_sections
from agent.base.state import LiveState


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
    rows = [{"pipeline": s["pipeline"], "state": s["state"], "stages": len(s.get("stages") or []),
             "planned": s.get("planned_stages")} for s in all_statuses(state)]
    return {"ok": True, "pipelines": [p["pipeline"] for p in pipes], "rows": rows, "sources": [], "notes": []}


def _resolve(state: LiveState, pipeline: str | None) -> tuple[dict[str, Any] | None, list[str]]:
    pipes = state.mlflow.pipelines()
    if pipeline:
        want = pipeline.lower().removeprefix("palier/")
        for p in pipes:
            if p["pipeline"].lower() == want:
                return p, []
        known = sorted({p["pipeline"] for p in pipes} | set(state.pipeline_files()))
        return None, [f"no pipeline named {pipeline!r}; known: {', '.join(known) or 'none'}"]
    if not pipes:
        return None, ["no palier/* experiment in MLflow yet"]
    notes = [] if len(pipes) == 1 else [f"several pipelines; using the most recent: {pipes[0]['pipeline']}"]
    return pipes[0], notes


_CONFIGS: dict[tuple[str, int], Any] = {}


def load_config(path: str) -> Any:
    """The PipelineConfig of a file, parsed once per version of the file."""
    from core.config import load_pipeline

    key = (str(Path(path).resolve()), Path(path).stat().st_mtime_ns)
    if key not in _CONFIGS:
        _CONFIGS[key] = load_pipeline(path)
    return _CONFIGS[key]


def _planned_stages(parent: dict[str, Any]) -> int | None:
    path = parent["tags"].get(S.TAG_PIPELINE_FILE)
    return _planned_from_file(path) if path else None


def _process_state(stage: dict[str, Any]) -> str | None:
    """alive | dead for a running stage whose local process palier knows; None otherwise."""
    job = str(stage.get("job_id") or "")
    if stage.get("status") != "running" or not job.startswith("pid-"):
        return None
    from core.processes import pid_alive

    try:
        return "alive" if pid_alive(int(job[4:])) else "dead"
    except ValueError:
        return None


_PREFECT_ENDED = ("CRASHED", "FAILED", "CANCELLED", "CANCELLING", "COMPLETED")


def _run_status(state: LiveState, exp: dict[str, Any], parent: dict[str, Any]) -> dict[str, Any]:
    """One pipeline run: its stages (latest attempt each), the computed state, and whether a
    run still marked running has lost its process (killed, crashed, machine rebooted)."""
    stages = [stage_summary(r) for r in latest_per_stage(state.mlflow.stage_runs(exp["experiment_id"], parent["run_id"]))]
    for s in stages:
        s["process"] = _process_state(s)
    planned = _planned_stages(parent)
    computed = pipeline_state(stages, parent["status"], planned)
    interrupted = None
    dead = next((s for s in stages if s.get("process") == "dead"), None)
    if dead is not None:
        interrupted = {"stage": dead["stage"], "pid": str(dead["job_id"])[4:], "why": "process_gone"}
    elif computed == "running" and parent.get("mlflow_status") in ("FAILED", "KILLED"):
        interrupted = {"stage": next((s["stage"] for s in stages if s["status"] == "running"), None),
                       "why": "parent_" + parent["mlflow_status"].lower()}
    return {"run_id": parent["run_id"], "run_name": parent["run_name"], "run_status": parent["status"],
            "start_time": parent.get("start_time"), "stages": stages, "planned_stages": planned,
            "state": "interrupted" if interrupted else computed, "interrupted": interrupted,
            "pipeline_file": parent["tags"].get(S.TAG_PIPELINE_FILE), "tags": parent["tags"]}


def pipeline_status(state: LiveState, pipeline: str | None = None) -> dict[str, Any]:
    """Where a pipeline is: latest pipeline run, each stage's status/gate/metrics (primary eval
    set first), whether a running stage's process is alive, Prefect state. A pipeline that has
    a file but no run yet is ``no_runs``."""
    down = _unavailable(state)
    if down:
        file = state.pipeline_files().get(pipeline or "")
        return {**down, "pipeline": pipeline, "pipeline_file": str(file) if file else None}
    exp, notes = _resolve(state, pipeline)
    if exp is None:
        file = state.pipeline_files().get(pipeline or "")
        if file is not None:
            return {"ok": True, "pipeline": pipeline, "state": "no_runs", "stages": [], "pipeline_file": str(file),
                    "planned_stages": _planned_from_file(str(file)), "sources": [_src("pipeline_file", str(file))],
                    "notes": ["no pipeline run yet"]}
        return {"ok": False, "error": notes[0], "state": "no_runs", "pipeline": pipeline, "sources": [], "notes": notes}
    runs = state.mlflow.pipeline_runs(exp["experiment_id"], limit=5)
    file = state.pipeline_files().get(exp["pipeline"])
    if not runs:
        return {"ok": True, "pipeline": exp["pipeline"], "state": "no_runs", "stages": [], "sources": [],
                "pipeline_file": str(file) if file else None, "notes": notes + ["no pipeline run yet"]}
    parent = runs[0]
    run = _run_status(state, exp, parent)
    sources = [_src("mlflow_run", parent["run_id"], f"pipeline run {parent['run_name']}")]
    sources += [_src("mlflow_run", s["run_id"], f"stage {s['stage']}") for s in run["stages"]]
    prefect = None
    flow_run_id = parent["tags"].get(S.TAG_FLOW_RUN_ID)
    if flow_run_id:
        prefect = state.prefect.flow_run(flow_run_id)
        if prefect:
            sources.append(_src("prefect_flow_run", flow_run_id, prefect.get("name")))
            if run["state"] == "running" and str(prefect.get("state")) in _PREFECT_ENDED:
                run["state"] = "interrupted"
                run["interrupted"] = {"stage": next((s["stage"] for s in run["stages"] if s["status"] == "running"), None),
                                      "why": "prefect_" + str(prefect.get("state")).lower()}
        elif state.prefect.status().configured:
            notes.append(f"Prefect: {state.prefect.status().detail}")
    return {
        "ok": True,
        "pipeline": exp["pipeline"],
        "experiment": exp["experiment"],
        "run_id": parent["run_id"],
        "run_name": parent["run_name"],
        "run_status": parent["status"],
        "state": run["state"],
        "interrupted": run["interrupted"],
        "planned_stages": run["planned_stages"],
        "pipeline_file": run["pipeline_file"] or (str(file) if file else None),
        "stages": run["stages"],
        "previous_runs": [{"run_id": r["run_id"], "run_name": r["run_name"], "status": r["status"]} for r in runs[1:]],
        "prefect": prefect,
        "sources": sources,
        "notes": notes,
    }


def _planned_from_file(path: str) -> int | None:
    try:
        return len(load_config(path).stages)
    except Exception:  # noqa: BLE001 - a moved or invalid file: the plan is unknown
        return None


def all_statuses(state: LiveState) -> list[dict[str, Any]]:
    """Every pipeline's status, most recent first (pipelines with a file but no run last)."""
    if _unavailable(state):
        return []
    out = [pipeline_status(state, p["pipeline"]) for p in state.mlflow.pipelines()]
    seen = {s.get("pipeline") for s in out}
    out += [pipeline_status(state, name) for name in state.pipeline_files() if name not in seen]
    return [s for s in out if s.get("ok")]


def _pick_stage(stages: list[dict[str, Any]], stage: str | None) -> dict[str, Any] | None:
    return resolve_stage(stages, stage) if stage else None


def compare_stage(state: LiveState, pipeline: str | None = None, stage: str | None = None,
                  other: str | None = None, eval_set: str | None = None) -> dict[str, Any]:
    """A stage's final metrics against its baseline and the previous stage (delta_prev); with
    ``other``, two stages side by side (final vs final on the sets they share). Rows are ordered
    primary set first; only quality metrics carry a better/worse verdict."""
    status = pipeline_status(state, pipeline)
    if not status.get("ok") or not status.get("stages"):
        return status
    stages = status["stages"]
    notes = list(status["notes"])
    chosen = _pick_stage(stages, stage)
    if stage and chosen is None:
        notes.append(f"no stage matching {stage!r} in {status['pipeline']}")
    if chosen is None:
        done = [s for s in stages if s["metrics"]]
        chosen = done[-1] if done else stages[-1]
    second = _pick_stage(stages, other) if other else None
    if other and second is None:
        notes.append(f"no stage matching {other!r} in {status['pipeline']}")
    position = stages.index(chosen)
    previous = stages[position - 1] if position > 0 else None
    rows = [r for r in chosen["metrics"] if eval_set is None or r["eval_set"] == eval_set]
    if eval_set and not rows and chosen["metrics"]:
        notes.append(f"{chosen['stage']} has no metrics on {eval_set!r}")
    side_by_side = []
    if second is not None:
        a, b = (chosen, second) if stages.index(chosen) < stages.index(second) else (second, chosen)
        theirs = {(r["eval_set"], r["metric"]): r for r in b["metrics"]}
        for r in a["metrics"]:
            if eval_set and r["eval_set"] != eval_set:
                continue
            o = theirs.get((r["eval_set"], r["metric"]))
            if o is None or r.get("final") is None or o.get("final") is None:
                continue
            diff = o["final"] - r["final"]
            side_by_side.append({"eval_set": r["eval_set"], "metric": r["metric"], "kind": r["kind"],
                                 "quality": r["quality"], "first": r["final"], "second": o["final"], "diff": diff,
                                 "first_baseline": r.get("baseline"), "second_baseline": o.get("baseline"),
                                 "improved": improvement(diff, r["kind"]), "role": b["roles"].get(r["eval_set"])})
        chosen, second = a, b
    if not chosen["metrics"]:
        notes.append(f"stage {chosen['stage']} has no baseline/final metrics yet (status {chosen['status']})")
    sources = [_src("mlflow_run", chosen["run_id"], f"stage {chosen['stage']}")]
    if second is not None:
        sources.append(_src("mlflow_run", second["run_id"], f"stage {second['stage']}"))
    elif previous:
        sources.append(_src("mlflow_run", previous["run_id"], f"stage {previous['stage']}"))
    return {"ok": True, "pipeline": status["pipeline"], "stage": chosen, "rows": rows, "eval_set": eval_set,
            "other_stage": second, "side_by_side": side_by_side, "previous_stage": previous,
            "sources": sources, "notes": notes}


def _stage_failure(state: LiveState, book: PlaybookSet, chosen: dict[str, Any]) -> dict[str, Any]:
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
    return {"stage": chosen, "diagnosis": diagnosis, "remedy_applied": remedy, "kind": kind,
            "playbook_failure": entry.id if entry else None,
            "playbook_fix": (f"{entry.diagnosis} {entry.fix}" if entry else None),
            "playbook_cite": entry.source.cite if entry and entry.source else None, "sources": sources}


def _previous_failure(state: LiveState, book: PlaybookSet, pipeline: str) -> dict[str, Any] | None:
    """The most recent earlier run of the pipeline that failed, with its failed stage's diagnosis."""
    exp, _ = _resolve(state, pipeline)
    if exp is None:
        return None
    for parent in state.mlflow.pipeline_runs(exp["experiment_id"], limit=5)[1:]:
        run = _run_status(state, exp, parent)
        failed = [s for s in run["stages"] if s["status"] in ("failed", "cancelled", "killed")]
        if failed or run["state"] == "failed":
            info = _stage_failure(state, book, failed[-1]) if failed else {"stage": None, "sources": []}
            return {**info, "run_id": parent["run_id"], "run_name": parent["run_name"]}
    return None


def explain_failure(state: LiveState, book: PlaybookSet, pipeline: str | None = None,
                    stage: str | None = None) -> dict[str, Any]:
    """Why a pipeline stopped: the failed stage's recorded diagnosis and the playbook's fix; a run
    still marked running whose process is gone (killed, crashed); and the previous run's failure.
    No pipeline named: the most recent pipeline whose latest run failed or was interrupted."""
    status = pipeline_status(state, pipeline)
    if pipeline is None and status.get("ok") and status.get("state") not in ("failed", "interrupted"):
        for other in all_statuses(state):
            if other.get("state") in ("failed", "interrupted"):
                status = other
                break
    if not status.get("ok"):
        return status
    stages = status.get("stages", [])
    notes = list(status["notes"])
    chosen = _pick_stage(stages, stage)
    if chosen is None:
        failed = [s for s in stages if s["status"] in ("failed", "cancelled", "killed")]
        chosen = failed[-1] if failed else None
    base = {"ok": True, "pipeline": status["pipeline"], "state": status["state"], "run_name": status.get("run_name"),
            "interrupted": status.get("interrupted"), "prefect_message": (status.get("prefect") or {}).get("message")}
    previous = None
    if status["state"] in ("interrupted", "running") or chosen is None:
        previous = _previous_failure(state, book, status["pipeline"]) if status["state"] != "no_runs" else None
    if chosen is None or chosen["status"] not in ("failed", "cancelled", "killed"):
        sources = status["sources"][:1] + ((previous or {}).get("sources") or [])
        return {**base, "failed": False, "stage": chosen, "previous_failure": previous, "sources": sources,
                "notes": notes}
    info = _stage_failure(state, book, chosen)
    prefect = status.get("prefect")
    if prefect:
        info["sources"].append(_src("prefect_flow_run", prefect["id"], prefect.get("name")))
    if not info["diagnosis"] and not info["kind"]:
        notes.append("no diagnosis recorded for this run: run `palier diagnose <stage.log> --events <events.jsonl>`")
    return {**base, **info, "failed": True, "previous_failure": previous, "notes": notes}


def _preflight(path: str | None, book: PlaybookSet) -> dict[str, Any] | None:
    """The preflight on the pipeline file (no autofix applied to the file; library API rules are
    left to `palier check`, which imports the libraries)."""
    if not path:
        return None
    try:
        import dataclasses

        from agent.base.facts import collect_env_facts
        from agent.playbooks.parse import PlaybookSet as Books
        from agent.rules.preflight import preflight

        config = load_config(path)
        rules_here = Books([dataclasses.replace(p, rules=[r for r in p.rules if r.check != "api_accepts"])
                            for p in book.playbooks])
        facts = collect_env_facts(config, base_dir=Path(path).parent, inspect_models=False)
        report = preflight(config, facts, playbooks=rules_here)
    except Exception as exc:  # noqa: BLE001 - an invalid file is itself the finding
        return {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:300]}", "findings": []}
    def answer(rule_id: str) -> dict[str, str]:
        rule = book.rule(rule_id)
        return dict(rule.answer) if rule else {}

    return {"ok": report.ok, "findings": [
        {"rule_id": f.rule_id, "severity": f.severity, "blocking": f.blocking, "autofixed": f.autofixed,
         "stage": f.stage, "message": f.message, "fix": f.fix, "playbook": f.playbook, "answer": answer(f.rule_id),
         "changes": [c.line() for c in report.changes if c.rule_id == f.rule_id]} for f in report.findings]}


def _failure_steps(why: dict[str, Any], status: dict[str, Any], current: str) -> list[dict[str, Any]]:
    """A failed or interrupted run: what went wrong and its fix (or the previous run's)."""
    if current == "interrupted":
        steps = [{"kind": "interrupted", **(status.get("interrupted") or {}), "run_name": status.get("run_name")}]
        prev = why.get("previous_failure")
        if prev and prev.get("stage"):
            steps.append({"kind": "previous_failure", "stage": prev["stage"]["stage"], "failure_kind": prev.get("kind"),
                          "fix": (prev.get("diagnosis") or {}).get("fix") or prev.get("playbook_fix"),
                          "cite": prev.get("playbook_cite")})
        return steps
    d = why.get("diagnosis") or {}
    return [{"kind": "fix_failure", "stage": (why.get("stage") or {}).get("stage"),
             "failure_kind": why.get("kind"), "fix": d.get("fix") or why.get("playbook_fix"),
             "cite": why.get("playbook_cite"), "remedy": (why.get("remedy_applied") or {}).get("description")}]


def _state_step(status: dict[str, Any], current: str, stages: list[dict[str, Any]],
                finished: list[str]) -> dict[str, Any]:
    """The one step a run that did not fail calls for (gate, candidate, partial, running...)."""
    if current == "gate_rejected":
        last = [s for s in stages if s["stage"] in finished][-1]
        return {"kind": "gate_rejected", "stage": last["stage"], "row": _primary_row(last)}
    if current == "candidate":
        last = [s for s in stages if s["stage"] in finished][-1]
        return {"kind": "candidate", "stage": last["stage"], "output_name": last.get("output_name"),
                "row": _primary_row(last)}
    if current == "partial":
        return {"kind": "partial", "done": finished, "planned": status.get("planned_stages"),
                "file": status.get("pipeline_file")}
    if current == "running":
        running = next((s for s in stages if s["status"] == "running"), None)
        return {"kind": "running", "stage": running["stage"] if running else None,
                "progress": (running or {}).get("progress", {})}
    if current == "succeeded":
        last = stages[-1] if stages else {}
        return {"kind": "succeeded", "stage": last.get("stage"), "output_name": last.get("output_name"),
                "row": _primary_row(last) if last else None}
    return {"kind": "launch", "file": status.get("pipeline_file"), "pipeline": status.get("pipeline")}


def _add_preflight(steps: list[dict[str, Any]], status: dict[str, Any], book: PlaybookSet,
                   current: str) -> list[dict[str, str]]:
    """Insert the preflight's findings on the pipeline file (after the failure's own fix, before
    the relaunch: what would block the next run); returns their playbook sources."""
    check = _preflight(status.get("pipeline_file"), book)
    if check is None:
        return []
    findings = check["findings"]
    wanted = [f for f in findings if f["blocking"]]
    if current == "no_runs":  # before a first run, everything the preflight would say
        wanted += [f for f in findings if not f["blocking"] and not f["autofixed"]]
        wanted += [f for f in findings if f["autofixed"]]
    if not check.get("ok", True) and check.get("error"):
        steps.insert(0, {"kind": "invalid_config", "error": check["error"], "file": status.get("pipeline_file")})
        wanted = []
    at = next((i for i, s in enumerate(steps) if s["kind"] in ("relaunch", "launch", "partial", "succeeded",
                                                                "candidate", "gate_rejected")), len(steps))
    for f in reversed(wanted[:5]):
        steps.insert(at, {"kind": "preflight", **f})
    return [_src("playbook", f["playbook"], f["rule_id"]) for f in wanted[:5] if f.get("playbook")]


def next_steps(state: LiveState, book: PlaybookSet, pipeline: str | None = None,
               family: str | None = None) -> dict[str, Any]:
    """What to do next, computed from the pipeline's state: the failure's fix, the interrupted
    stage, the stages left, the gate's verdict, the champion to load; plus the preflight's
    blocking findings on the pipeline file. The playbooks' next-step blocks are cited."""
    status = pipeline_status(state, pipeline)
    current = status.get("state") or "no_runs"
    stages = status.get("stages") or []
    if family is None:
        family = next((st["family"] for st in stages if st.get("family")), None)
    notes = list(status.get("notes", []))
    sources = list(status.get("sources", [])[:1])
    if not status.get("ok") and status.get("error"):
        notes.append(status["error"])
    finished = [s["stage"] for s in stages if s["status"] in ("succeeded", "skipped", "finished")]
    if current in ("failed", "interrupted"):
        why = explain_failure(state, book, status.get("pipeline"))
        sources += [s for s in why.get("sources", []) if s not in sources]
        steps = _failure_steps(why, status, current)
        steps.append({"kind": "relaunch", "reused": finished, "file": status.get("pipeline_file")})
    else:
        steps = [_state_step(status, current, stages, finished)]
    if current != "running":
        sources += _add_preflight(steps, status, book, current)
    lookup = "failed" if current == "interrupted" else current
    entries = [n for n in book.next_steps if n.state == lookup]
    chosen = [n for n in entries if "*" not in n.families and (family is None or family in n.families)]
    chosen += [n for n in entries if "*" in n.families]
    sources += [_src("playbook", n.source.cite, n.source.section) for n in chosen if n.source]
    return {"ok": True, "pipeline": status.get("pipeline"), "state": current, "computed": steps,
            "steps": [{"id": n.id, "title": n.title, "steps": n.steps, "families": n.families} for n in chosen],
            "sources": sources, "notes": notes}


def _primary_row(stage: dict[str, Any]) -> dict[str, Any] | None:
    rows = [r for r in stage.get("metrics") or [] if r["quality"] and r.get("final") is not None]
    primary = [r for r in rows if r["eval_set"] == stage.get("primary_eval")]
    return (primary or rows or [None])[0]


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


def stage_or_error(status: dict[str, Any], stage: str | None) -> tuple[dict[str, Any] | None, str | None]:
    """The stage a tool asks for (default: the last one with metrics), or why there is none."""
    stages = status.get("stages") or []
    if not stages:
        return None, f"pipeline {status.get('pipeline')} has no stage run yet (state {status.get('state')})"
    if stage:
        chosen = resolve_stage(stages, stage)
        if chosen is None:
            names = ", ".join(s["stage"] for s in stages)
            return None, f"no stage matching {stage!r} in {status['pipeline']}; stages: {names}"
        return chosen, None
    done = [s for s in stages if s["metrics"]]
    return (done[-1] if done else stages[-1]), None


def _row_error(row: dict[str, Any]) -> float:
    from core.metrics.asr import utterance_wer

    if isinstance(row.get("errors"), int | float):
        return float(row["errors"])
    return utterance_wer(str(row.get("reference") or ""), str(row.get("prediction") or ""))


def predictions_of(state: LiveState, stage: dict[str, Any], eval_set: str,
                   phase: str = "final") -> tuple[str, list[dict[str, Any]] | None, str]:
    """The predictions table a stage run logged for ``eval_set``: (the run that holds it, its rows
    or None, its artifact path). A skipped stage run reuses a finished one: the table is there."""
    path = S.predictions_table(phase, eval_set)
    run_id = artifacts_run(state, stage)
    return run_id, state.mlflow.table_artifact(run_id, path), path


def artifacts_run(state: LiveState, stage: dict[str, Any]) -> str:
    """The run that holds a stage's artifacts (log, predictions): its own, or for a skipped stage
    run, the finished run it reuses."""
    tags = (state.mlflow.run(stage["run_id"]) or {}).get("tags") or {}
    return tags.get(S.TAG_REUSED_FROM) or stage["run_id"]


def worst_predictions(state: LiveState, pipeline: str | None = None, stage: str | None = None,
                      eval_set: str | None = None, phase: str = "final", k: int = 5) -> dict[str, Any]:
    """A stage's worst predictions on an eval set (default: its primary set), from the predictions
    table the flow logged: reference, prediction and the utterance's error (WER after French
    normalisation, or the span errors counted by token classification)."""
    status = pipeline_status(state, pipeline)
    if not status.get("ok"):
        return status
    chosen, why = stage_or_error(status, stage)
    if chosen is None:
        return {"ok": False, "error": why, "sources": status["sources"][:1], "notes": status["notes"]}
    sets = sorted({r["eval_set"] for r in chosen["metrics"]} | set(chosen["roles"]))
    eval_set = eval_set or chosen.get("primary_eval") or (sets[0] if sets else None)
    run_id, rows, path = predictions_of(state, chosen, eval_set, phase) if eval_set else (chosen["run_id"], None, "")
    if rows is None:
        return {"ok": False, "error": f"stage {chosen['stage']} (status {chosen['status']}) has no {phase} predictions "
                                      f"on {eval_set!r}; eval sets: {', '.join(sets) or 'none'}",
                "sources": [_src("mlflow_run", chosen["run_id"], f"stage {chosen['stage']}")], "notes": status["notes"]}
    scored = sorted(({**r, "error": round(_row_error(r), 4)} for r in rows), key=lambda r: r["error"], reverse=True)
    return {"ok": True, "pipeline": status["pipeline"], "stage": chosen["stage"], "eval_set": eval_set, "phase": phase,
            "total": len(rows), "worst": scored[:max(1, k)],
            "sources": [_src("mlflow_artifact", f"{run_id}/{path}", f"stage {chosen['stage']}")],
            "notes": status["notes"]}


def champion(state: LiveState, model: str) -> dict[str, Any]:
    """A registered model's aliases and versions; the champion's stage run with its primary-set
    metrics (baseline, final, delta) and the run that trained it."""
    down = _unavailable(state)
    if down:
        return down
    info = state.mlflow.registered_model(model)
    version = info["aliases"].get(S.ALIAS_CHAMPION)
    sources = [_src("registered_model", f"models:/{info['name']}", info["name"])]
    notes = [] if version else [f"{info['name']} has no champion alias; aliases: {info['aliases'] or 'none'}"]
    entry = next((v for v in info["versions"] if v["version"] == version), None)
    summary = None
    if entry and entry["run_id"]:
        record = state.mlflow.run(entry["run_id"])
        if record is not None:
            stage = stage_summary(record)
            summary = {"stage": stage["stage"], "run_id": stage["run_id"], "pipeline": record["tags"].get(S.TAG_PIPELINE),
                       "gate": stage["gate"], "primary_eval": stage["primary_eval"], "row": _primary_row(stage),
                       "metrics": [r for r in stage["metrics"] if r["quality"]]}
            sources.append(_src("mlflow_run", stage["run_id"], f"stage {stage['stage']}"))
    return {"ok": True, "model": info["name"], "champion_version": version, "champion": summary,
            "aliases": info["aliases"], "versions": info["versions"], "uri": f"models:/{info['name']}@champion",
            "sources": sources, "notes": notes}


def diagnose_stage(state: LiveState, book: PlaybookSet, pipeline: str | None = None,
                   stage: str | None = None) -> dict[str, Any]:
    """Why a stage failed (or that it did not): what the flow recorded (diagnosis, remedy, the
    playbook's fix; a killed or interrupted run) plus the rules' verdict on the stage's own log
    (``logs/stage.log`` in MLflow)."""
    from agent.diagnosis.diagnose import diagnose

    status = pipeline_status(state, pipeline)
    if not status.get("ok"):
        return status
    if stage:
        _, why = stage_or_error(status, stage)
        if why:
            return {"ok": False, "error": why, "sources": status["sources"][:1], "notes": status["notes"]}
    result = explain_failure(state, book, status["pipeline"], stage)
    chosen = result.get("stage") or (stage_or_error(status, None)[0])
    if chosen:
        run_id = artifacts_run(state, chosen)
        log = state.mlflow.text_artifact(run_id, f"{S.DIR_LOGS}/stage.log")
        if log is not None:
            result["log_diagnosis"] = diagnose(log, None, playbooks=book, use_llm=False).model_dump(mode="json")
            result["sources"] = [*result.get("sources", []),
                                 _src("mlflow_artifact", f"{run_id}/{S.DIR_LOGS}/stage.log", "stage log")]
        else:
            result.setdefault("notes", []).append(f"no stage.log logged for {chosen['stage']}")
    return result
