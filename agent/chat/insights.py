"""Tools for the questions beyond status and comparison: the best model for a domain (registry
aliases), guard-set regressions across pipelines, why the preflight blocked a run, a killed
stage (checkpoint, steps, real paths), a stage's worst utterances, how long a stage took and
why the gate decided. Each returns a JSON-able dict with ``sources`` and ``notes``, as
agent.chat.tools does; the MCP server calls the same functions."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from core.tracking import schema as S

from agent.base.pipeline_state import domain_score, improvement
from agent.base.state import LiveState
from agent.chat import tools
from agent.playbooks.retrieval import tokens


def _src(kind: str, ref: str, label: str | None = None) -> dict[str, Any]:
    return {"kind": kind, "ref": ref, "label": label}


def _stages_by_run(state: LiveState) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """run id -> (pipeline status, stage summary), over every pipeline's latest run."""
    return {s["run_id"]: (st, s) for st in tools.all_statuses(state) for s in st.get("stages", [])}


def _primary(stage: dict[str, Any]) -> dict[str, Any] | None:
    rows = [r for r in stage.get("metrics") or [] if r["quality"] and r.get("final") is not None]
    gate = stage.get("gate_metric")
    primary = [r for r in rows if r["eval_set"] == stage.get("primary_eval")]
    return next((r for r in primary if r["metric"] == gate), None) or (primary or rows or [None])[0]


def registered_models(state: LiveState) -> list[dict[str, Any]]:
    """Every registered model with its aliases, the stage run behind each alias and its primary metric."""
    client = state.mlflow.client()
    by_run = _stages_by_run(state)
    out = []
    for model in client.search_registered_models(max_results=200):
        for alias, version in sorted((getattr(model, "aliases", None) or {}).items()):
            mv = client.get_model_version(model.name, version)
            status, stage = by_run.get(mv.run_id or "", (None, None))
            row = _primary(stage) if stage else None
            out.append({"model": model.name, "alias": alias, "version": str(version), "run_id": mv.run_id,
                        "pipeline": (status or {}).get("pipeline"), "stage": (stage or {}).get("stage"),
                        "description": " ".join(filter(None, [model.description, (stage or {}).get("description")])),
                        "row": row, "stage_summary": stage})
    return out


def best_model(state: LiveState, question: str) -> dict[str, Any]:
    """The champion (else candidate) of each registered model whose name, stage or sets match the
    question's domain words; every champion when no domain word matches."""
    down = tools._unavailable(state)
    if down:
        return down
    models = registered_models(state)
    words = {t for t in tokens(question) if len(t) > 2} - {"best", "meilleur", "model", "modele", "champion", "far",
                                                           "quel", "quelle", "what", "which", "pour", "for", "moment"}

    def matches(m: dict[str, Any]) -> int:
        text = " ".join(filter(None, [m["model"], m["pipeline"], m["stage"], m["description"]]))
        hits = len(words & set(tokens(text.replace("-", " "))))
        return hits + (domain_score(m["stage_summary"], question) if m["stage_summary"] else 0)

    scored = [(matches(m), m) for m in models]
    top = max((s for s, _ in scored), default=0)
    chosen = [m for s, m in scored if s == top and (top > 0 or m["alias"] == S.ALIAS_CHAMPION)]
    champions = [m for m in chosen if m["alias"] == S.ALIAS_CHAMPION]
    picked = champions or [m for m in chosen if m["alias"] == S.ALIAS_CANDIDATE]
    asked = set(tokens(question))
    for m in picked:  # "medical term accuracy of the champion?": that metric too
        metrics = (m["stage_summary"] or {}).get("metrics") or []
        m["asked"] = [r for r in metrics if r["quality"] and r is not m["row"] and r["eval_set"] == (m["row"] or {}).get("eval_set")
                      and set(r["metric"].split("_")) <= asked]
    rows = [{k: v for k, v in m.items() if k != "stage_summary"} for m in picked]
    notes = [] if models else ["no registered model yet: a stage registers its output when it finishes"]
    return {"ok": True, "models": rows, "domain": sorted(words) if top > 0 else [], "notes": notes,
            "sources": [_src("registered_model", f"models:/{m['model']}@{m['alias']}", m["stage"]) for m in rows]}


def guard_regressions(state: LiveState) -> dict[str, Any]:
    """Every guard set of every pipeline's latest finished stages: baseline, final, allowed regression."""
    down = tools._unavailable(state)
    if down:
        return down
    rows = []
    for st in tools.all_statuses(state):
        for stage in st.get("stages", []):
            guards = {name for name, role in stage.get("roles", {}).items() if role == "guard"}
            for r in stage.get("metrics") or []:
                if r["eval_set"] not in guards or not r["quality"] or r.get("final") is None or r.get("baseline") is None:
                    continue
                if stage.get("gate_metric") and r["metric"] != stage["gate_metric"]:
                    continue
                delta = r["final"] - r["baseline"]
                limit = stage.get("max_regression", {}).get(r["eval_set"])
                worse = improvement(delta, r["kind"]) is False
                beyond = worse and limit is not None and abs(delta) > float(limit)
                rows.append({"pipeline": st["pipeline"], "stage": stage["stage"], "eval_set": r["eval_set"],
                             "metric": r["metric"], "baseline": r["baseline"], "final": r["final"], "delta": delta,
                             "worse": worse, "max_regression": float(limit) if limit is not None else None,
                             "beyond": beyond, "gate": stage.get("gate"), "run_id": stage["run_id"]})
    rows.sort(key=lambda r: (not r["beyond"], not r["worse"], r["pipeline"]))
    return {"ok": True, "rows": rows, "notes": [] if rows else ["no finished stage has a guard set yet"],
            "sources": [_src("mlflow_run", r["run_id"], f"{r['pipeline']}/{r['stage']}") for r in rows]}


def preflight_block(state: LiveState, status: dict[str, Any]) -> dict[str, Any] | None:
    """The blocking findings of the preflight report on the latest pipeline run, when it blocked."""
    if (status.get("tags") or {}).get(S.TAG_PREFLIGHT) != "blocked" and status.get("stages"):
        return None
    report = state.mlflow.json_artifact(status["run_id"], S.ARTIFACT_PREFLIGHT) if status.get("run_id") else None
    if not report:
        return None
    findings = [f for f in report.get("findings", []) if f.get("blocking") or f.get("severity") == "block"]
    if not findings:
        return None
    return {"ok": True, "pipeline": status["pipeline"], "run_name": status.get("run_name"),
            "pipeline_file": status.get("pipeline_file"),
            "findings": [{k: f.get(k) for k in ("rule_id", "stage", "message", "fix", "playbook")} for f in findings],
            "sources": [_src("mlflow_run", status["run_id"], f"pipeline run {status.get('run_name')} "
                                                             f"({S.ARTIFACT_PREFLIGHT})")]
            + [_src("playbook", f["playbook"], f.get("rule_id")) for f in findings if f.get("playbook")], "notes": []}


def _checkpoints(folder: Path) -> list[tuple[int, Path]]:
    found = []
    for path in (folder / "checkpoints").glob("checkpoint-*"):
        m = re.fullmatch(r"checkpoint-(\d+)", path.name)
        if m and path.is_dir():
            found.append((int(m.group(1)), path))
    return sorted(found)


def stopped_stage(status: dict[str, Any], stage: dict[str, Any]) -> dict[str, Any]:
    """A killed, crashed or interrupted stage: steps done, the last checkpoint, what a rerun does,
    and the real stage folder, log and events paths (core.paths.stage_dir)."""
    from core.paths import stage_dir

    folder = stage_dir(status["pipeline"], stage["stage"], stage["key"]) if stage.get("key") else None
    checkpoints = _checkpoints(folder) if folder else []
    log = folder / "stage.log" if folder else None
    events = folder / "events.jsonl" if folder else None
    step = (stage.get("progress") or {}).get("train/step")
    return {"ok": True, "pipeline": status["pipeline"], "stage": stage["stage"], "status": stage["status"],
            "reason": stage.get("killed_reason"), "step": int(step) if step is not None else None,
            "checkpoint": str(checkpoints[-1][1]) if checkpoints else None,
            "checkpoint_step": checkpoints[-1][0] if checkpoints else None,
            "folder": str(folder) if folder else None,
            "log": str(log) if log and log.exists() else None,
            "events": str(events) if events and events.exists() else None,
            "pipeline_file": status.get("pipeline_file"),
            "reused": [s["stage"] for s in status.get("stages", []) if s["status"] in ("succeeded", "skipped")],
            "sources": [_src("mlflow_run", stage["run_id"], f"stage {stage['stage']}")]
            + ([_src("file", str(log))] if log and log.exists() else []), "notes": []}


def _wer(reference: str, hypothesis: str) -> float:
    ref, hyp = reference.split(), hypothesis.split()
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / max(1, len(ref))


def worst_predictions(state: LiveState, stage: dict[str, Any], eval_set: str | None = None, k: int = 3) -> dict[str, Any]:
    """The stage's worst utterances on an eval set (its primary by default), from the final
    predictions table it logged: reference, hypothesis and word error rate, worst first."""
    name = eval_set or stage.get("primary_eval") or next(iter(stage.get("roles") or {}), None)
    run_id, records, path = tools.predictions_of(state, stage, name) if name else (stage["run_id"], None, "")
    if not records:
        return {"ok": True, "stage": stage["stage"], "eval_set": name, "rows": [], "sources": [],
                "notes": [f"no predictions table {S.predictions_table('final', name or '?')} on this stage run"]}
    rows = [{"reference": str(r.get("reference", "")), "hypothesis": str(r.get("prediction", "")),
             "wer": _wer(str(r.get("reference", "")), str(r.get("prediction", "")))} for r in records]
    rows.sort(key=lambda r: -r["wer"])
    return {"ok": True, "stage": stage["stage"], "eval_set": name, "rows": rows[:k], "count": len(rows),
            "sources": [_src("mlflow_run", run_id, path)], "notes": []}


def stage_durations(stage: dict[str, Any]) -> dict[str, Any]:
    """How long a stage and its phases took: the runner's timings, each set's eval_seconds, wall clock."""
    evals = [{"eval_set": r["eval_set"], "baseline": r.get("baseline"), "final": r.get("final")}
             for r in stage.get("metrics") or [] if r["metric"] == "eval_seconds"]
    start, end = stage.get("start_time"), stage.get("end_time")
    wall = (end - start) / 1000 if start and end else None
    return {"ok": True, "stage": stage["stage"], "phases": stage.get("timings") or {}, "eval_seconds": evals,
            "wall_s": wall, "status": stage["status"],
            "sources": [_src("mlflow_run", stage["run_id"], f"stage {stage['stage']}")], "notes": []}


def gate_decision(state: LiveState, stage: dict[str, Any]) -> dict[str, Any]:
    """Why the gate promoted or refused a stage: its verdict, the primary metric against the
    baseline, the guard sets against their allowed regression, and the gate's own record."""
    record = state.mlflow.json_artifact(stage["run_id"], S.ARTIFACT_GATE) or {}
    guards = {n for n, role in (stage.get("roles") or {}).items() if role == "guard"}
    rows = [r for r in stage.get("metrics") or [] if r["quality"] and r.get("final") is not None
            and (r["eval_set"] == stage.get("primary_eval") or r["eval_set"] in guards)
            and (not stage.get("gate_metric") or r["metric"] == stage["gate_metric"])]
    return {"ok": True, "stage": stage["stage"], "gate": stage.get("gate"), "primary_eval": stage.get("primary_eval"),
            "rows": rows, "guards": sorted(guards), "max_regression": stage.get("max_regression") or {},
            "reasons": [str(r) for r in record.get("reasons") or []],
            "sources": [_src("mlflow_run", stage["run_id"], f"stage {stage['stage']}")], "notes": []}
