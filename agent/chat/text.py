"""Answers as text, in French or English, from the tools' data (agent.chat.tools). Pure.

Each intent has one renderer; the words are in ``agent.chat.words.W`` per language, numbers and
metric rows are written by ``agent.chat.format``, and come only from the data."""

from __future__ import annotations

from typing import Any

from agent.chat.format import (num, primary_summary, shown_path, signed, stage_metrics, stage_status,
                               state_name, verdict)
from agent.chat.steps import step_text
from agent.chat.words import W
from agent.base.redact import redact

def _down(data: dict[str, Any], lang: str) -> list[str]:
    w = W[lang]
    error = data.get("error", "")
    lines = [w["no_mlflow"].format(error=error)]
    if "MLflow" in error:
        lines.append(w["start_services"])
    return lines


def render_status(data: dict[str, Any], lang: str) -> list[str]:
    w = W[lang]
    if data.get("state") == "no_runs":
        return [w["no_runs"].format(pipeline=data.get("pipeline"))]
    lines = []
    focus = data.get("focus")
    if focus:
        gate = w["gate"].format(gate=focus["gate"]) if focus.get("gate") else ""
        lines.append(w["stage_head"].format(stage=focus["stage"], pipeline=data["pipeline"],
                                            status=stage_status(focus, lang), gate=gate))
        if focus.get("diagnosis_kind") and focus["status"] in ("failed", "cancelled", "killed"):
            lines.append(w["focus_diag"].format(kind=focus["diagnosis_kind"], stage=focus["stage"]))
        lines += stage_metrics(focus, lang)
        if focus["status"] == "running" and focus.get("progress"):
            lines.append("  " + ", ".join(f"{k}={num(v)}" for k, v in sorted(focus["progress"].items())[:4]))
        others = [f"{s['stage']} {stage_status(s, lang)}" + (f" ({s['gate']})" if s.get("gate") else "")
                  for s in data.get("stages", []) if s["stage"] != focus["stage"]]
        if others:
            lines.append(w["others"].format(state=state_name(data.get("state"), lang), stages=", ".join(others)))
        return lines
    done = len([s for s in data["stages"] if s["status"] in ("succeeded", "skipped")])
    planned = data.get("planned_stages") or len(data["stages"])
    progress = f", {done}/{planned}" if planned else ""
    lines.append(w["status_head"].format(pipeline=data["pipeline"], run=data.get("run_name") or data.get("run_id"),
                                         state=state_name(data["state"], lang), progress=progress))
    for s in data["stages"]:
        gate = w["gate"].format(gate=s["gate"]) if s.get("gate") else ""
        summary = primary_summary(s, lang)
        extra = f" — {summary}" if summary else ""
        if s["status"] == "running" and s.get("progress"):
            extra += " [" + ", ".join(f"{k}={num(v)}" for k, v in sorted(s["progress"].items())[:3]) + "]"
        lines.append(w["stage_line"].format(stage=s["stage"], status=stage_status(s, lang), gate=gate, metric=extra))
    if data.get("prefect"):
        p = data["prefect"]
        lines.append(f"Prefect: {p.get('name')} {p.get('state_name') or p.get('state')}"
                     + (f" — {p['message']}" if p.get("message") else ""))
    return lines


def _beyond_tolerance(row: dict[str, Any], stage: dict[str, Any]) -> bool:
    """A guard metric that got worse by more than its set's max_regression (any worsening when unknown)."""
    if not row.get("quality") or row.get("improved") is not False or row.get("delta") is None:
        return False
    try:
        tolerance = float(stage.get("max_regression", {}).get(row["eval_set"]))
    except (TypeError, ValueError):
        return True
    return abs(row["delta"]) > tolerance


def render_compare(data: dict[str, Any], lang: str) -> list[str]:
    w = W[lang]
    if not isinstance(data.get("stage"), dict):  # a status without stage runs (never run, no results)
        return render_status(data, lang)
    s = data["stage"]
    on = w["on_set"].format(eval_set=data["eval_set"]) if data.get("eval_set") else ""
    if data.get("other_stage"):
        o = data["other_stage"]
        rows = data["side_by_side"]
        if not rows:
            return [w["no_common"].format(first=s["stage"], second=o["stage"], on=on)]
        lines = [w["two_head"].format(first=s["stage"], second=o["stage"], pipeline=data["pipeline"], on=on)]
        for r in rows:
            diff = f"{signed(r['diff'])}, " if r["quality"] else ""
            lines.append(w["two_line"].format(eval_set=r["eval_set"], metric=r["metric"], first=s["stage"],
                                              a=num(r["first"]), second=o["stage"], b=num(r["second"]), diff=diff,
                                              verdict=verdict(r, lang)))
        base = next((r for r in rows if r["quality"]), None)
        if base and base.get("first_baseline") is not None and base.get("second_baseline") is not None:
            lines.append(w["baselines"].format(first=s["stage"], a=num(base["first_baseline"]), second=o["stage"],
                                               b=num(base["second_baseline"])) + f" ({base['eval_set']}/{base['metric']})")
        return lines
    rows = data.get("rows") or []
    if not rows:
        return [w["no_metrics"].format(stage=s["stage"], status=s["status"])]
    quality = [r for r in rows if r["quality"]]
    primary = [r for r in quality if r["eval_set"] == s.get("primary_eval")]
    # The primary set's first (gate) metric decides; no primary set recorded: every quality metric.
    flags = {r.get("improved") for r in (primary[:1] or quality)}
    guard_bad = any(_beyond_tolerance(r, s) for r in rows if s.get("roles", {}).get(r["eval_set"]) == "guard")
    word = (w["yes"] if not guard_bad else w["mixed"]) if flags == {True} else (w["mixed"] if True in flags else w["no"])
    lines = [w["vs_baseline"].format(verdict=word, stage=s["stage"], pipeline=data["pipeline"])]
    lines += stage_metrics(s, lang, rows)
    if s.get("gate"):
        lines.append(w["gate"].format(gate=s["gate"]).lstrip(", ").capitalize())
    # Against the previous stage: each set's leading metric (the gate's, when it has one).
    prev, seen = [], set()
    for r in rows:
        if r.get("delta_prev") is not None and r["quality"] and r["eval_set"] not in seen:
            prev.append(r)
            seen.add(r["eval_set"])
    if prev and data.get("previous_stage"):
        text = "; ".join(f"{r['eval_set']}/{r['metric']} {signed(r['delta_prev'])} ({verdict(r, lang, 'improved_vs_previous')})"
                         for r in prev)
        lines.append(w["vs_previous"].format(previous=data["previous_stage"]["stage"], metrics=text))
    return lines


def _why(interrupted: dict[str, Any], lang: str) -> str:
    w = W[lang]
    why = interrupted.get("why", "")
    if why == "process_gone":
        return w["why_process_gone"].format(pid=interrupted.get("pid"))
    if why.startswith("parent_"):
        return w["why_parent"].format(status=why[len("parent_"):])
    return w["why_prefect"].format(status=why[len("prefect_"):])


def _diagnosis_lines(data: dict[str, Any], lang: str) -> list[str]:
    w = W[lang]
    lines = []
    d = data.get("diagnosis") or {}
    if d or data.get("kind"):
        fid = f" / {d['failure_id']}" if d.get("failure_id") else (f" / {data['playbook_failure']}" if data.get("playbook_failure") else "")
        evidence = " | ".join(d.get("evidence", [])[:3]) or "—"
        lines.append(w["diag"].format(kind=d.get("kind") or data.get("kind"), fid=fid,
                                      confidence=d.get("confidence", "—"), evidence=evidence))
    else:
        lines.append(w["no_diag"])
    fix = d.get("fix") or data.get("playbook_fix")
    if fix:
        lines.append(w["fix"].format(fix=fix) + (f" ({data['playbook_cite']})" if data.get("playbook_cite") else ""))
    if data.get("remedy_applied"):
        lines.append(w["remedy"].format(remedy=data["remedy_applied"].get("description", data["remedy_applied"])))
    return lines


def render_failure(data: dict[str, Any], lang: str) -> list[str]:
    w = W[lang]
    lines: list[str] = []
    if data.get("state") == "interrupted" and data.get("interrupted"):
        i = data["interrupted"]
        lines.append(w["interrupted_head"].format(pipeline=data["pipeline"], run=data.get("run_name"),
                                                  stage=i.get("stage"), why=_why(i, lang)))
    if data.get("failed"):
        s = data["stage"]
        attempt = w["attempt"].format(n=s["attempt"]) if s.get("attempt") and str(s["attempt"]) != "1" else ""
        lines.append(w["failed_head"].format(stage=s["stage"], pipeline=data["pipeline"], attempt=attempt))
        lines += _diagnosis_lines(data, lang)
        if data.get("prefect_message"):
            lines.append(w["prefect_msg"].format(message=data["prefect_message"]))
    elif not lines:
        if data.get("state") == "running":
            running = next((s["stage"] for s in data.get("stages", []) if s.get("status") == "running"), "—")
            lines.append(w["still_running"].format(pipeline=data["pipeline"], stage=(data.get("stage") or {}).get("stage", running)))
        else:
            lines.append(w["no_failure"].format(pipeline=data.get("pipeline"), state=state_name(data.get("state"), lang)))
    prev = data.get("previous_failure")
    if prev and prev.get("stage") and not data.get("failed"):
        lines.append(w["previous_failed"].format(run=prev.get("run_name"), stage=prev["stage"]["stage"],
                                                 kind=prev.get("kind") or "—"))
        lines += _diagnosis_lines(prev, lang)
    return lines


def render_next(data: dict[str, Any], lang: str) -> list[str]:
    w = W[lang]
    lines = [w["next_head"].format(pipeline=data.get("pipeline") or "—", state=state_name(data["state"], lang))]
    for n, step in enumerate(data.get("computed", []), start=1):
        file = shown_path(step.get("file") or f"pipelines/{data.get('pipeline')}.yaml")
        lines.append(f"{n}. {step_text(step, file, data.get('pipeline'), lang)}")
    cites = [s["ref"] for s in data.get("sources", []) if s.get("kind") == "playbook" and "next" in str(s.get("label", "")).lower()
             or (s.get("kind") == "playbook" and s["ref"].startswith("playbooks/pipeline-next-steps.md"))]
    if cites:
        lines.append(w["see"].format(cites=", ".join(dict.fromkeys(cites))))
    return lines


def render_fact(data: dict[str, Any], lang: str) -> list[str]:
    w = W[lang]
    results = data.get("results") or []
    if not results:
        closest = data.get("closest") or []
        return [w["nothing"]] + ([w["closest"].format(topics="; ".join(closest))] if closest else [])
    best = results[0]
    key = "fact_translated" if best.get("in_question_language") else "fact_untranslated"
    lines = [w[key].format(answer=best["answer"]) + (f" ({best['cite']})" if best.get("cite") else "")]
    others = [r["cite"] for r in results[1:] if r.get("cite") and r["cite"] != best.get("cite")]
    if others:
        lines.append(w["see"].format(cites=", ".join(others)))
    return lines


def render_services(data: dict[str, Any], lang: str) -> list[str]:
    return [W[lang]["services"].format(services="; ".join(
        f"{s['name']}: {'up' if s['reachable'] else ('down' if s['configured'] else 'not configured')} ({s['detail']})"
        for s in data["services"]))] + ([W[lang]["start_services"]] if any(not s["reachable"] for s in data["services"]) else [])


def render_list(data: dict[str, Any], lang: str) -> list[str]:
    rows = data.get("rows") or []
    if not rows:
        return [W[lang]["no_pipelines"]]
    return [W[lang]["pipelines"].format(n=len(rows))] + [
        f"- {r['pipeline']} : {state_name(r['state'], lang)}" if lang == "fr" else f"- {r['pipeline']}: {state_name(r['state'], lang)}"
        for r in rows]


RENDERERS = {"list": render_list, "status": render_status, "compare": render_compare, "failure": render_failure, "next": render_next,
             "playbook": render_fact, "services": render_services}


def render(intent: str, data: dict[str, Any], lang: str) -> str:
    if not data.get("ok", True) and data.get("error") and intent != "playbook":
        if "no pipeline named" in str(data.get("error")):
            lines = [W[lang]["unknown_pipeline"].format(error=data["error"])]
        else:
            lines = _down(data, lang)
    else:
        lines = RENDERERS.get(intent, render_fact)(data, lang)
    lines += [f"({n})" for n in data.get("notes", []) if n != "no pipeline run yet"]
    return redact("\n".join(lines))
