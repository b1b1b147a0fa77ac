"""Answers as text, in French or English, from the tools' data (agent.tools). Pure.

Each intent has one renderer; the words are in ``W`` per language. Numbers come only from the
data; a metric gets a better/worse verdict only when it is a quality metric (error rates,
scores), timings and counts are shown as what they are."""

from __future__ import annotations

from typing import Any

from agent.redact import redact

W = {
    "fr": {
        "better": "mieux", "worse": "moins bien", "same": "inchangé", "timing": "durée, pas une qualité",
        "count": "compte, pas une qualité", "other": "sans direction connue",
        "primary": "jeu principal", "guard": "garde", "report": "suivi", "set": "jeu",
        "no_mlflow": "Je ne peux pas lire l'état des runs : {error}.",
        "start_services": "Démarrer les services : `palier up` (puis `source .state/env`).",
        "no_runs": "Le pipeline {pipeline} n'a encore aucun run.",
        "unknown_pipeline": "Je ne connais pas ce pipeline : {error}.",
        "status_head": "Pipeline {pipeline} — dernier run {run} : {state}{progress}.",
        "stage_head": "{stage} ({pipeline}) : {status}{gate}.",
        "focus_diag": "Diagnostic enregistré : {kind} (`palier ask \"pourquoi {stage} a échoué ?\"`).",
        "others": "Pipeline {state} ; autres étapes : {stages}.",
        "gate": ", gate {gate}",
        "stage_line": "- {stage} : {status}{gate}{metric}",
        "set_line": "{label} {eval_set} : {metrics}",
        "measures": "Mesures (pas des qualités) : {metrics}",
        "process_dead": "marquée running mais son processus (pid {pid}) n'existe plus",
        "interrupted": "interrompu",
        "yes": "Oui", "no": "Non", "mixed": "En partie",
        "vs_baseline": "{verdict} — {stage} ({pipeline}) face à sa baseline :",
        "vs_previous": "Face à l'étape précédente ({previous}) : {metrics}",
        "two_head": "{first} → {second} ({pipeline}){on} :",
        "on_set": " sur {eval_set}",
        "two_line": "- {eval_set}/{metric} : {first} {a} → {second} {b} ({diff}{verdict})",
        "baselines": "Baselines : {first} {a}, {second} {b}.",
        "no_common": "{first} et {second} n'ont pas de métrique finale commune{on}.",
        "no_metrics": "{stage} n'a pas encore de métriques baseline/final (statut {status}).",
        "tolerance": "tolérance {value}",
        "failed_head": "L'étape {stage} de {pipeline} a échoué{attempt}.",
        "attempt": " (tentative {n})",
        "diag": "Cause : {kind}{fid} (confiance {confidence}). Preuves : {evidence}",
        "no_diag": "Aucun diagnostic enregistré pour ce run : `palier diagnose <stage.log> --events <events.jsonl>`.",
        "fix": "À faire : {fix}",
        "remedy": "Remède déjà appliqué : {remedy}",
        "prefect_msg": "Message Prefect : {message}",
        "interrupted_head": ("Le dernier run de {pipeline} ({run}) n'a pas fini : l'étape {stage} est marquée running "
                             "mais {why} — le processus a été tué ou a planté sans enregistrer d'erreur."),
        "why_process_gone": "son processus (pid {pid}) n'existe plus",
        "why_parent": "le run du pipeline est terminé ({status})",
        "why_prefect": "le flow Prefect est {status}",
        "previous_failed": "Le run précédent ({run}) avait échoué à l'étape {stage} : {kind}.",
        "previous_fix": "Correction du playbook : {fix}",
        "no_failure": "Aucune étape en échec dans le dernier run de {pipeline} (état : {state}).",
        "still_running": "{pipeline} tourne encore (étape {stage}).",
        "next_head": "{pipeline} — état : {state}. À faire :",
        "step_preflight": "Avant le prochain lancement, corriger [{rule}] {message} → {fix}",
        "step_warn": "À vérifier [{rule}] {message} → {fix}",
        "step_autofix": "Corrigé automatiquement au lancement [{rule}] {message} → {fix}",
        "here": "ici : {message}",
        "step_invalid": "Le fichier {file} ne se charge pas : {error}",
        "step_fix": "Corriger la cause de l'échec de {stage} ({kind}) : {fix}",
        "step_fix_unknown": "Diagnostiquer l'échec de {stage} : `palier ask \"pourquoi {stage} a échoué ?\"` ou `palier diagnose <stage.log>`.",
        "step_remedy": "(remède sûr déjà tenté : {remedy})",
        "step_interrupted": "Le run {run} s'est arrêté sans fin enregistrée (étape {stage}{pid}) : le relancer.",
        "step_previous": "Le run précédent avait échoué à {stage} ({kind}) : {fix}",
        "step_relaunch": "Relancer `{command}` : les étapes finies{reused} sont réutilisées, l'étape échouée ou interrompue reprend de son dernier checkpoint.",
        "step_gate": "{stage} n'a pas battu sa baseline ({row}) : regarder les pires prédictions (predictions/final_<set>.json), puis ajuster les données ou le learning rate avant de relancer.",
        "step_candidate": "{stage} est candidat ({row}) : le promouvoir à la main (alias champion de {output}) ou lancer l'étape suivante, qui partira de ce modèle.",
        "step_partial": "Relancer pour les étapes restantes ({done}/{planned} finies) : les étapes finies sont sautées.",
        "step_running": "Attendre la fin de {stage}{progress} ; suivre avec `palier ask \"où en est {stage} ?\"` ou l'UI MLflow.",
        "step_succeeded": "Toutes les étapes sont finies ({row}) : charger le champion `models:/{output}@champion`, puis planifier l'étape suivante (elle partira de ce champion).",
        "step_launch": "Valider `palier check {file}`, puis lancer `palier run {file}` (ou `prefect deployment run exp-pipeline/{pipeline}`).",
        "see": "Voir {cites}.",
        "fact_translated": "{answer}",
        "fact_untranslated": "{answer}",
        "nothing": "Je n'ai trouvé ni run ni règle de playbook qui réponde à cette question.",
        "services": "Services : {services}",
        "pipelines": "{n} pipelines :", "no_pipelines": "Aucun pipeline connu (ni run MLflow, ni fichier).",
        "states": {"no_runs": "jamais lancé", "running": "en cours", "failed": "échoué", "gate_rejected": "gate refusée",
                   "candidate": "candidat", "partial": "partiel", "succeeded": "terminé", "interrupted": "interrompu"},
    },
    "en": {
        "better": "better", "worse": "worse", "same": "unchanged", "timing": "a timing, not a quality",
        "count": "a count, not a quality", "other": "no known direction",
        "primary": "primary set", "guard": "guard", "report": "report", "set": "set",
        "no_mlflow": "I cannot read the runs: {error}.",
        "start_services": "Start the services: `palier up` (then `source .state/env`).",
        "no_runs": "Pipeline {pipeline} has no run yet.",
        "unknown_pipeline": "I do not know that pipeline: {error}.",
        "status_head": "Pipeline {pipeline} — latest run {run}: {state}{progress}.",
        "stage_head": "{stage} ({pipeline}): {status}{gate}.",
        "focus_diag": "Recorded diagnosis: {kind} (`palier ask \"why did {stage} fail?\"`).",
        "others": "Pipeline {state}; other stages: {stages}.",
        "gate": ", gate {gate}",
        "stage_line": "- {stage}: {status}{gate}{metric}",
        "set_line": "{label} {eval_set}: {metrics}",
        "measures": "Measurements (not qualities): {metrics}",
        "process_dead": "marked running but its process (pid {pid}) is gone",
        "interrupted": "interrupted",
        "yes": "Yes", "no": "No", "mixed": "Partly",
        "vs_baseline": "{verdict} — {stage} ({pipeline}) against its baseline:",
        "vs_previous": "Against the previous stage ({previous}): {metrics}",
        "two_head": "{first} → {second} ({pipeline}){on}:",
        "on_set": " on {eval_set}",
        "two_line": "- {eval_set}/{metric}: {first} {a} → {second} {b} ({diff}{verdict})",
        "baselines": "Baselines: {first} {a}, {second} {b}.",
        "no_common": "{first} and {second} share no final metric{on}.",
        "no_metrics": "{stage} has no baseline/final metrics yet (status {status}).",
        "tolerance": "tolerance {value}",
        "failed_head": "Stage {stage} of {pipeline} failed{attempt}.",
        "attempt": " (attempt {n})",
        "diag": "Cause: {kind}{fid} (confidence {confidence}). Evidence: {evidence}",
        "no_diag": "No diagnosis recorded for this run: `palier diagnose <stage.log> --events <events.jsonl>`.",
        "fix": "What to do: {fix}",
        "remedy": "Remedy already applied: {remedy}",
        "prefect_msg": "Prefect message: {message}",
        "interrupted_head": ("The latest run of {pipeline} ({run}) did not finish: stage {stage} is marked running "
                             "but {why} — the process was killed or crashed without recording an error."),
        "why_process_gone": "its process (pid {pid}) is gone",
        "why_parent": "the pipeline run has ended ({status})",
        "why_prefect": "the Prefect flow run is {status}",
        "previous_failed": "The previous run ({run}) failed at stage {stage}: {kind}.",
        "previous_fix": "Playbook fix: {fix}",
        "no_failure": "No failed stage in the latest run of {pipeline} (state: {state}).",
        "still_running": "{pipeline} is still running (stage {stage}).",
        "next_head": "{pipeline} — state: {state}. Next:",
        "step_preflight": "Before the next launch, fix [{rule}] {message} → {fix}",
        "step_warn": "Check [{rule}] {message} → {fix}",
        "step_autofix": "Fixed automatically at launch [{rule}] {message} → {fix}",
        "here": "here: {message}",
        "step_invalid": "The file {file} does not load: {error}",
        "step_fix": "Fix the cause of {stage}'s failure ({kind}): {fix}",
        "step_fix_unknown": "Diagnose {stage}'s failure: `palier ask \"why did {stage} fail?\"` or `palier diagnose <stage.log>`.",
        "step_remedy": "(safe remedy already tried: {remedy})",
        "step_interrupted": "Run {run} stopped without recording an end (stage {stage}{pid}): relaunch it.",
        "step_previous": "The previous run had failed at {stage} ({kind}): {fix}",
        "step_relaunch": "Relaunch `{command}`: finished stages{reused} are reused, the failed or interrupted stage resumes from its last checkpoint.",
        "step_gate": "{stage} did not beat its baseline ({row}): look at the worst predictions (predictions/final_<set>.json), then adjust the data or the learning rate before relaunching.",
        "step_candidate": "{stage} is a candidate ({row}): promote it by hand (champion alias of {output}) or run the next stage, which starts from this model.",
        "step_partial": "Relaunch for the remaining stages ({done}/{planned} done): finished stages are skipped.",
        "step_running": "Wait for {stage} to finish{progress}; follow it with `palier ask \"where is {stage}?\"` or the MLflow UI.",
        "step_succeeded": "All stages are done ({row}): load the champion `models:/{output}@champion`, then plan the next stage (it starts from this champion).",
        "step_launch": "Check `palier check {file}`, then launch `palier run {file}` (or `prefect deployment run exp-pipeline/{pipeline}`).",
        "see": "See {cites}.",
        "fact_translated": "{answer}",
        "fact_untranslated": "The playbook says (in French): {answer}",
        "nothing": "I found neither a run nor a playbook rule that answers this question.",
        "services": "Services: {services}",
        "pipelines": "{n} pipelines:", "no_pipelines": "No pipeline known (no MLflow run, no file).",
        "states": {"no_runs": "never run", "running": "running", "failed": "failed", "gate_rejected": "gate rejected",
                   "candidate": "candidate", "partial": "partial", "succeeded": "succeeded", "interrupted": "interrupted"},
    },
}


def num(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 10 else f"{v:.2f}"
    return str(v)


def signed(v: Any) -> str:
    if not isinstance(v, (int, float)):
        return "—"
    return f"{v:+.4f}" if abs(v) < 10 else f"{v:+.2f}"


def verdict(row: dict[str, Any], lang: str, key: str = "improved") -> str:
    w = W[lang]
    if not row.get("quality"):
        return w.get(row.get("kind", "other"), w["other"])
    flag = row.get(key)
    return w["same"] if flag is None else (w["better"] if flag else w["worse"])


def metric_text(row: dict[str, Any], lang: str) -> str:
    """``wer 0.6200 → 0.3100 (-0.3100, better)``; a timing: ``eval_seconds 0.68 → 8.37 (a timing...)``."""
    if row.get("baseline") is None or row.get("final") is None:
        value = row.get("final", row.get("baseline"))
        return f"{row['metric']} {num(value)}"
    delta = f"{signed(row.get('delta'))}, " if row.get("quality") else ""
    return f"{row['metric']} {num(row['baseline'])} → {num(row['final'])} ({delta}{verdict(row, lang)})"


def _label(role: str | None, lang: str) -> str:
    """primary/guard/report in words; no role recorded: no label (never guess "primary")."""
    return W[lang].get(role, role) if role else W[lang]["set"]


def stage_metrics(stage: dict[str, Any], lang: str, rows: list[dict[str, Any]] | None = None) -> list[str]:
    """Per eval set (primary first), quality metrics; then the measurements that are not qualities."""
    w = W[lang]
    rows = stage.get("metrics", []) if rows is None else rows
    lines, measures = [], []
    sets: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        (sets.setdefault(r["eval_set"], []) if r["quality"] else measures).append(r)
    for eval_set, set_rows in sets.items():
        role = stage.get("roles", {}).get(eval_set) or ("primary" if eval_set == stage.get("primary_eval") else None)
        text = " ; ".join(metric_text(r, lang) for r in set_rows) if lang == "fr" else \
            "; ".join(metric_text(r, lang) for r in set_rows)
        tolerance = stage.get("max_regression", {}).get(eval_set)
        if tolerance is not None and role == "guard":
            text += f" [{w['tolerance'].format(value=tolerance)}]"
        lines.append("- " + w["set_line"].format(label=_label(role, lang).capitalize(), eval_set=eval_set, metrics=text))
    if measures:
        lines.append("- " + w["measures"].format(metrics="; ".join(f"{r['eval_set']}/{metric_text(r, lang)}"
                                                               for r in measures)))
    return lines


def primary_summary(stage: dict[str, Any], lang: str) -> str:
    rows = [r for r in stage.get("metrics", []) if r["quality"] and r["eval_set"] == stage.get("primary_eval")]
    rows = rows or [r for r in stage.get("metrics", []) if r["quality"]]
    if not rows:
        return ""
    r = rows[0]
    return f"{r['eval_set']} {metric_text(r, lang)}"


def _state(state: str | None, lang: str) -> str:
    return W[lang]["states"].get(state or "", state or "—")


def _stage_status(s: dict[str, Any], lang: str) -> str:
    if s.get("process") == "dead":
        return W[lang]["process_dead"].format(pid=str(s.get("job_id", ""))[4:])
    return s["status"]


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
                                            status=_stage_status(focus, lang), gate=gate))
        if focus.get("diagnosis_kind") and focus["status"] in ("failed", "cancelled", "killed"):
            lines.append(w["focus_diag"].format(kind=focus["diagnosis_kind"], stage=focus["stage"]))
        lines += stage_metrics(focus, lang)
        if focus["status"] == "running" and focus.get("progress"):
            lines.append("  " + ", ".join(f"{k}={num(v)}" for k, v in sorted(focus["progress"].items())[:4]))
        others = [f"{s['stage']} {_stage_status(s, lang)}" + (f" ({s['gate']})" if s.get("gate") else "")
                  for s in data.get("stages", []) if s["stage"] != focus["stage"]]
        if others:
            lines.append(w["others"].format(state=_state(data.get("state"), lang), stages=", ".join(others)))
        return lines
    done = len([s for s in data["stages"] if s["status"] in ("succeeded", "skipped")])
    planned = data.get("planned_stages") or len(data["stages"])
    progress = f", {done}/{planned}" if planned else ""
    lines.append(w["status_head"].format(pipeline=data["pipeline"], run=data.get("run_name") or data.get("run_id"),
                                         state=_state(data["state"], lang), progress=progress))
    for s in data["stages"]:
        gate = w["gate"].format(gate=s["gate"]) if s.get("gate") else ""
        summary = primary_summary(s, lang)
        extra = f" — {summary}" if summary else ""
        if s["status"] == "running" and s.get("progress"):
            extra += " [" + ", ".join(f"{k}={num(v)}" for k, v in sorted(s["progress"].items())[:3]) + "]"
        lines.append(w["stage_line"].format(stage=s["stage"], status=_stage_status(s, lang), gate=gate, metric=extra))
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
            lines.append(w["no_failure"].format(pipeline=data.get("pipeline"), state=_state(data.get("state"), lang)))
    prev = data.get("previous_failure")
    if prev and prev.get("stage") and not data.get("failed"):
        lines.append(w["previous_failed"].format(run=prev.get("run_name"), stage=prev["stage"]["stage"],
                                                 kind=prev.get("kind") or "—"))
        lines += _diagnosis_lines(prev, lang)
    return lines


def _row_text(row: dict[str, Any] | None, lang: str) -> str:
    return f"{row['eval_set']} {metric_text(row, lang)}" if row else "—"


def _shown_path(path: str) -> str:
    import os

    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def render_next(data: dict[str, Any], lang: str) -> list[str]:
    w = W[lang]
    lines = [w["next_head"].format(pipeline=data.get("pipeline") or "—", state=_state(data["state"], lang))]
    n = 0
    for step in data.get("computed", []):
        kind = step["kind"]
        file = _shown_path(step.get("file") or f"pipelines/{data.get('pipeline')}.yaml")
        if kind == "preflight":
            key = "step_autofix" if step.get("autofixed") else ("step_preflight" if step.get("blocking") else "step_warn")
            general = (step.get("answer") or {}).get(lang)
            if lang == "en" and general:  # the playbook's message is French; its answer has an English form
                text = w[key].format(rule=step["rule_id"], message=general, fix=w["here"].format(message=step["message"]))
            else:
                text = w[key].format(rule=step["rule_id"], message=step["message"], fix=step["fix"])
            if step.get("changes"):
                text += " [" + "; ".join(step["changes"]) + "]"
            text += f" ({step['playbook']})" if step.get("playbook") else ""
        elif kind == "invalid_config":
            text = w["step_invalid"].format(file=file, error=step["error"])
        elif kind == "fix_failure":
            if step.get("fix"):
                text = w["step_fix"].format(stage=step["stage"], kind=step.get("failure_kind") or "—", fix=step["fix"])
                text += f" ({step['cite']})" if step.get("cite") else ""
            else:
                text = w["step_fix_unknown"].format(stage=step["stage"])
            if step.get("remedy"):
                text += " " + w["step_remedy"].format(remedy=step["remedy"])
        elif kind == "interrupted":
            pid = f", pid {step['pid']}" if step.get("pid") else ""
            text = w["step_interrupted"].format(run=step.get("run_name"), stage=step.get("stage"), pid=pid)
        elif kind == "previous_failure":
            text = w["step_previous"].format(stage=step["stage"], kind=step.get("failure_kind") or "—",
                                             fix=step.get("fix") or "—")
            text += f" ({step['cite']})" if step.get("cite") else ""
        elif kind == "relaunch":
            reused = f" ({', '.join(step['reused'])})" if step.get("reused") else ""
            text = w["step_relaunch"].format(command=f"palier run {file}", reused=reused)
        elif kind == "gate_rejected":
            text = w["step_gate"].format(stage=step["stage"], row=_row_text(step.get("row"), lang))
        elif kind == "candidate":
            text = w["step_candidate"].format(stage=step["stage"], row=_row_text(step.get("row"), lang),
                                              output=step.get("output_name") or step["stage"])
        elif kind == "partial":
            text = w["step_partial"].format(done=len(step.get("done") or []), planned=step.get("planned") or "?")
        elif kind == "running":
            progress = step.get("progress") or {}
            shown = f" ({', '.join(f'{k}={num(v)}' for k, v in sorted(progress.items())[:3])})" if progress else ""
            text = w["step_running"].format(stage=step.get("stage") or "—", progress=shown)
        elif kind == "succeeded":
            text = w["step_succeeded"].format(row=_row_text(step.get("row"), lang),
                                              output=step.get("output_name") or step.get("stage"))
        else:
            text = w["step_launch"].format(file=file, pipeline=data.get("pipeline"))
        n += 1
        lines.append(f"{n}. {text}")
    cites = [s["ref"] for s in data.get("sources", []) if s.get("kind") == "playbook" and "next" in str(s.get("label", "")).lower()
             or (s.get("kind") == "playbook" and s["ref"].startswith("playbooks/pipeline-next-steps.md"))]
    if cites:
        lines.append(w["see"].format(cites=", ".join(dict.fromkeys(cites))))
    return lines


def render_fact(data: dict[str, Any], lang: str) -> list[str]:
    w = W[lang]
    results = data.get("results") or []
    if not results:
        return [w["nothing"]]
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
        f"- {r['pipeline']} : {_state(r['state'], lang)}" if lang == "fr" else f"- {r['pipeline']}: {_state(r['state'], lang)}"
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
