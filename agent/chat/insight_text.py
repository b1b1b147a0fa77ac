"""The new intents' answers as text, French and English side by side (pure): best model, guard
regressions, preflight block, stopped stage, worst utterances, durations, gate decision, and the
lines that say what an answer is about, what was chosen and what to ask back."""

from __future__ import annotations

from typing import Any

from agent.chat.format import num, signed

_W: dict[str, dict[str, str]] = {
    "fr": {
        "about": "À propos de : {what}.",
        "chosen": "{why} ; réponse tirée de {pipeline} ({stage}), qui a des résultats.",
        "no_results_why": "{stage} de {other} : {status}, sans résultats",
        "ask_back": "Deux lectures possibles : {a} ou {b} ? Précisez le pipeline (par ex. « {stage} de {pa} »).",
        "best_none": "Aucun modèle enregistré ne correspond (le registre se remplit quand une étape se termine).",
        "best_head": "Meilleur modèle{domain} d'après le registre (alias et métrique principale) :",
        "best_row": "- models:/{model}@{alias} (version {version}) — {pipeline}/{stage}{metric}",
        "guard_none": "Aucune étape terminée n'a de jeu de garde pour l'instant.",
        "guard_head": "Jeux de garde, tous pipelines confondus ({n} ; une régression au-delà de la tolérance est signalée) :",
        "guard_row": "- {pipeline}/{stage}, {eval_set} : {metric} {baseline} → {final} ({delta}){verdict}",
        "beyond": " — RÉGRESSION au-delà de max_regression {limit}",
        "within": " — moins bien, dans la tolérance {limit}",
        "held": " — tenu",
        "blocked": "Le preflight a bloqué {pipeline} (run {run}) avant toute étape :",
        "finding": "- règle {rule_id}{stage} : {message} Correctif : {fix} ({playbook})",
        "blocked_rerun": "Après correction : `palier check {file}` puis `palier run {file}`.",
        "stopped": "{stage} de {pipeline} : {status}{reason}, à l'étape d'entraînement {step}.",
        "checkpoint": "Dernier checkpoint : {path} (pas {n}) ; relancer `palier run {file}` reprend depuis ce checkpoint, les étapes terminées ({reused}) sont réutilisées.",
        "no_checkpoint": "Aucun checkpoint sur disque : une relance `palier run {file}` repart du début de {stage} (les étapes terminées sont réutilisées).",
        "paths": "Journal : {log} ; événements : {events} ; diagnostic : `palier diagnose {log} --events {events}`.",
        "no_paths": "Dossier de l'étape attendu : {folder} (introuvable sur cette machine : le run a tourné ailleurs).",
        "worst_head": "Pires énoncés de {stage} sur {eval_set} ({n} prédictions finales, WER par phrase) :",
        "worst_row": "- WER {wer} — référence : « {reference} » ; hypothèse : « {hypothesis} »",
        "worst_none": "{stage} : pas de table de prédictions finales sur {eval_set}.",
        "dur_head": "Durée de {stage} ({status}) :",
        "phase": "- {phase} : {s} s ({m} min)",
        "eval_s": "- évaluation {eval_set} : {b} s avant, {f} s après entraînement (eval_seconds)",
        "wall": "- de bout en bout (run MLflow) : {s} s ({m} min)",
        "dur_none": "{stage} : aucune durée enregistrée.",
        "gate_head": "Gate de {stage} : {gate}.",
        "gate_primary": "- jeu principal {eval_set} : {metric} {baseline} → {final} ({delta}, {verdict})",
        "gate_guard": "- garde {eval_set} : {metric} {baseline} → {final} ({delta}) ; tolérance {limit} : {held}",
        "gate_reason": "- raison enregistrée : {reason}",
        "gate_none": "{stage} n'a pas de décision de gate (statut {status}).",
        "better": "mieux", "worse": "moins bien", "same": "inchangé", "held_yes": "tenue", "held_no": "dépassée",
        "crash": "J'ai compris : {understood}. La réponse a échoué ({error}). À la place : {instead}.",
    },
    "en": {
        "about": "About: {what}.",
        "chosen": "{why}; answering from {pipeline} ({stage}), which has results.",
        "no_results_why": "{other}'s {stage} is {status}, with no results",
        "ask_back": "Two readings fit equally: {a} or {b}? Name the pipeline (e.g. \"{stage} of {pa}\").",
        "best_none": "No registered model matches (the registry fills up when a stage finishes).",
        "best_head": "Best model{domain} from the registry (alias and primary metric):",
        "best_row": "- models:/{model}@{alias} (version {version}) — {pipeline}/{stage}{metric}",
        "guard_none": "No finished stage has a guard set yet.",
        "guard_head": "Guard sets across all pipelines ({n}; a regression beyond its tolerance is flagged):",
        "guard_row": "- {pipeline}/{stage}, {eval_set}: {metric} {baseline} → {final} ({delta}){verdict}",
        "beyond": " — REGRESSION beyond max_regression {limit}",
        "within": " — worse, within tolerance {limit}",
        "held": " — held",
        "blocked": "The preflight blocked {pipeline} (run {run}) before any stage:",
        "finding": "- rule {rule_id}{stage}: {message} Fix: {fix} ({playbook})",
        "blocked_rerun": "Once fixed: `palier check {file}` then `palier run {file}`.",
        "stopped": "{pipeline}'s {stage}: {status}{reason}, at training step {step}.",
        "checkpoint": "Last checkpoint: {path} (step {n}); rerunning `palier run {file}` resumes from it, and the finished stages ({reused}) are reused.",
        "no_checkpoint": "No checkpoint on disk: rerunning `palier run {file}` restarts {stage} from the beginning (finished stages are reused).",
        "paths": "Log: {log}; events: {events}; diagnosis: `palier diagnose {log} --events {events}`.",
        "no_paths": "Expected stage folder: {folder} (not on this machine: the run ran elsewhere).",
        "worst_head": "Worst utterances of {stage} on {eval_set} ({n} final predictions, per-utterance WER):",
        "worst_row": "- WER {wer} — reference: \"{reference}\"; hypothesis: \"{hypothesis}\"",
        "worst_none": "{stage}: no final predictions table on {eval_set}.",
        "dur_head": "How long {stage} took ({status}):",
        "phase": "- {phase}: {s} s ({m} min)",
        "eval_s": "- evaluation on {eval_set}: {b} s before, {f} s after training (eval_seconds)",
        "wall": "- end to end (MLflow run): {s} s ({m} min)",
        "dur_none": "{stage}: no duration recorded.",
        "gate_head": "Gate of {stage}: {gate}.",
        "gate_primary": "- primary set {eval_set}: {metric} {baseline} → {final} ({delta}, {verdict})",
        "gate_guard": "- guard {eval_set}: {metric} {baseline} → {final} ({delta}); tolerance {limit}: {held}",
        "gate_reason": "- recorded reason: {reason}",
        "gate_none": "{stage} has no gate decision (status {status}).",
        "better": "better", "worse": "worse", "same": "unchanged", "held_yes": "held", "held_no": "exceeded",
        "crash": "I understood: {understood}. Answering failed ({error}). Instead: {instead}.",
    },
}


def words(lang: str) -> dict[str, str]:
    return _W["fr" if lang == "fr" else "en"]


def render_best(data: dict[str, Any], lang: str) -> list[str]:
    w = words(lang)
    if not data.get("models"):
        return [w["best_none"]]
    domain = f" ({', '.join(data['domain'])})" if data.get("domain") else ""
    lines = [w["best_head"].format(domain=domain)]
    for m in data["models"]:
        r = m.get("row")
        metric = f" : {r['eval_set']} {r['metric']} {num(r.get('baseline'))} → {num(r['final'])}" if r else ""
        metric += "".join(f", {a['metric']} {num(a.get('baseline'))} → {num(a['final'])}" for a in m.get("asked") or [])
        lines.append(w["best_row"].format(model=m["model"], alias=m["alias"], version=m["version"],
                                          pipeline=m.get("pipeline") or "?", stage=m.get("stage") or "?",
                                          metric=metric if lang == "fr" else metric.replace(" : ", ": ")))
    return lines


def render_guard(data: dict[str, Any], lang: str) -> list[str]:
    w = words(lang)
    rows = data.get("rows") or []
    if not rows:
        return [w["guard_none"]]
    lines = [w["guard_head"].format(n=len(rows))]
    for r in rows:
        limit = num(r.get("max_regression"))
        verdict = w["beyond"] if r["beyond"] else (w["within"] if r["worse"] else w["held"])
        lines.append(w["guard_row"].format(pipeline=r["pipeline"], stage=r["stage"], eval_set=r["eval_set"],
                                           metric=r["metric"], baseline=num(r["baseline"]), final=num(r["final"]),
                                           delta=signed(r["delta"]), verdict=verdict.format(limit=limit)))
    return lines


def render_blocked(data: dict[str, Any], lang: str) -> list[str]:
    w = words(lang)
    lines = [w["blocked"].format(pipeline=data["pipeline"], run=data.get("run_name") or "?")]
    for f in data["findings"]:
        stage = f" ({f['stage']})" if f.get("stage") else ""
        lines.append(w["finding"].format(rule_id=f.get("rule_id"), stage=stage, message=f.get("message") or "",
                                         fix=f.get("fix") or "", playbook=f.get("playbook") or ""))
    lines.append(w["blocked_rerun"].format(file=data.get("pipeline_file") or data["pipeline"]))
    return lines


def render_stopped(data: dict[str, Any], lang: str) -> list[str]:
    w = words(lang)
    reason = f" ({data['reason']})" if data.get("reason") else ""
    status = {"killed": "tuée (killed)" if lang == "fr" else "killed"}.get(data["status"], data["status"])
    lines = [w["stopped"].format(stage=data["stage"], pipeline=data["pipeline"], status=status, reason=reason,
                                 step=data.get("step") if data.get("step") is not None else "?")]
    file = data.get("pipeline_file") or data["pipeline"]
    if data.get("checkpoint"):
        lines.append(w["checkpoint"].format(path=data["checkpoint"], n=data["checkpoint_step"], file=file,
                                            reused=", ".join(data.get("reused") or []) or "—"))
    else:
        lines.append(w["no_checkpoint"].format(file=file, stage=data["stage"]))
    if data.get("log") or data.get("events"):
        lines.append(w["paths"].format(log=data.get("log") or "—", events=data.get("events") or "—"))
    elif data.get("folder"):
        lines.append(w["no_paths"].format(folder=data["folder"]))
    return lines


def render_worst(data: dict[str, Any], lang: str) -> list[str]:
    w = words(lang)
    if not data.get("rows"):
        return [w["worst_none"].format(stage=data.get("stage"), eval_set=data.get("eval_set"))]
    lines = [w["worst_head"].format(stage=data["stage"], eval_set=data["eval_set"], n=data.get("count"))]
    lines += [w["worst_row"].format(wer=f"{r['wer']:.2f}", reference=r["reference"], hypothesis=r["hypothesis"])
              for r in data["rows"]]
    return lines


def render_durations(data: dict[str, Any], lang: str) -> list[str]:
    w = words(lang)
    lines = [w["dur_head"].format(stage=data["stage"], status=data["status"])]
    lines += [w["phase"].format(phase=p, s=num(float(s)), m=f"{float(s) / 60:.1f}") for p, s in data["phases"].items()]
    lines += [w["eval_s"].format(eval_set=e["eval_set"], b=num(e.get("baseline")), f=num(e.get("final")))
              for e in data["eval_seconds"]]
    if data.get("wall_s"):
        lines.append(w["wall"].format(s=num(float(data["wall_s"])), m=f"{data['wall_s'] / 60:.1f}"))
    return lines if len(lines) > 1 else [w["dur_none"].format(stage=data["stage"])]


def render_gate(data: dict[str, Any], lang: str) -> list[str]:
    w = words(lang)
    if not data.get("gate"):
        return [w["gate_none"].format(stage=data["stage"], status=data.get("status", "?"))]
    lines = [w["gate_head"].format(stage=data["stage"], gate=data["gate"])]
    for r in data["rows"]:
        verdict = w["better"] if r.get("improved") else (w["worse"] if r.get("improved") is False else w["same"])
        if r["eval_set"] == data.get("primary_eval"):
            lines.append(w["gate_primary"].format(eval_set=r["eval_set"], metric=r["metric"], baseline=num(r.get("baseline")),
                                                  final=num(r["final"]), delta=signed(r.get("delta")), verdict=verdict))
            continue
        limit = data["max_regression"].get(r["eval_set"])
        held = r.get("improved") is not False or (limit is not None and abs(r.get("delta") or 0) <= float(limit))
        lines.append(w["gate_guard"].format(eval_set=r["eval_set"], metric=r["metric"], baseline=num(r.get("baseline")),
                                            final=num(r["final"]), delta=signed(r.get("delta")), limit=limit or "—",
                                            held=w["held_yes"] if held else w["held_no"]))
    lines += [w["gate_reason"].format(reason=reason) for reason in data.get("reasons") or []]
    return lines


RENDERERS = {"best": render_best, "guard": render_guard, "blocked": render_blocked, "stopped": render_stopped,
             "worst": render_worst, "duration": render_durations, "gate": render_gate}
