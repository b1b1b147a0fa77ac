"""ask(question) -> Answer, from live state (MLflow, Prefect) and the playbooks, with sources.

Offline by default: deterministic routing (intent + pipeline/stage references, French or
English) to one tool, and a templated answer. With an LLM configured, the same tools are
offered to it through tool calling; a failing LLM falls back to the offline answer.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field

from agent import tools
from agent.pipeline_state import find_stage
from agent.playbooks import PlaybookSet, load_playbooks
from agent.redact import redact, redact_obj
from agent.retrieval import fold, tokens
from agent.state import LiveState

Intent = Literal["status", "compare", "failure", "next", "playbook", "services"]

_FR_MARKERS = {"ou", "est", "en", "quoi", "pourquoi", "comment", "que", "quel", "quelle", "le", "la", "les",
               "des", "une", "l", "d", "etape", "echoue", "faire", "ensuite", "apres", "sa", "son", "a", "au"}
_EN_MARKERS = {"where", "is", "the", "what", "why", "how", "did", "does", "should", "next", "stage", "failed",
               "compare", "with", "its", "to", "do", "i", "we"}
_INTENT_WORDS: dict[str, tuple[str, ...]] = {
    "failure": ("echou", "fail", "erreur", "error", "plant", "crash", "bloqu", "hang", "stuck", "oom", "timeout",
                "fige", "cass", "broke"),
    "why": ("pourquoi", "why", "diagnos"),
    "compare": ("compar", "baseline", "mieux", "better", "worse", "pire", "amelior", "improv", "delta", "versus",
                " vs ", "gain", "regress", "precedent", "previous"),
    "next": ("next", "prochain", "que faire", "what should", "what do i do", "what to do", "ensuite", "suite",
             "quoi faire", "what now"),
    "status": ("ou en est", "where is", "where are", "status", "statut", "etat", "progress", "avancement",
               "en cours", "running", "how far", "ou en sont"),
    "services": ("mlflow marche", "services", "is mlflow", "prefect up", "serveur"),
}
# Words that say what kind of answer is wanted, not what it is about.
_GENERIC = {"pipeline", "pipelines", "stage", "stages", "etape", "etapes", "exp", "experience", "run", "runs", "job",
            "model", "modele", "training", "entrainement", "faire", "ensuite", "next", "should", "me", "mon", "ma",
            "donne", "gives", "give", "now", "maintenant", "il", "elle", "ca", "cela", "this", "my", "avec", "quand"}
_STAGE_REF = re.compile(r"\b(?:exp(?:erience)?|stage|etape|step)\s*[-_ ]?\s*(\d+)\b")


class Source(BaseModel):
    kind: str
    ref: str
    label: str | None = None


class Answer(BaseModel):
    question: str
    language: Literal["fr", "en"]
    intent: str
    text: str
    sources: list[Source] = Field(default_factory=list)
    source: Literal["offline", "llm"] = "offline"
    data: dict[str, Any] = Field(default_factory=dict)

    def to_json(self) -> str:
        return redact(self.model_dump_json(indent=2))


def detect_language(question: str) -> Literal["fr", "en"]:
    if re.search(r"[àâçéèêëîïôùûüœ]", question.lower()):
        return "fr"
    words = re.findall(r"[a-z]+", fold(question))
    fr = sum(w in _FR_MARKERS for w in words)
    en = sum(w in _EN_MARKERS for w in words)
    return "fr" if fr > en else "en"


def detect_intent(question: str) -> Intent:
    q = f" {fold(question)} "
    # "why" alone is weak: "why is exp2 worse than its baseline?" asks for a comparison.
    for intent in ("failure", "compare", "why", "next", "status", "services"):
        if any(w in q for w in _INTENT_WORDS[intent]):
            return "failure" if intent == "why" else intent  # type: ignore[return-value]
    return "playbook"


def stage_reference(question: str) -> str | None:
    m = _STAGE_REF.search(fold(question))
    return f"exp{m.group(1)}" if m else None


def pipeline_reference(question: str, known: list[str]) -> str | None:
    q = fold(question)
    for name in sorted(known, key=len, reverse=True):
        if re.search(rf"(?<![\w-]){re.escape(name.lower())}(?![\w-])", q):
            return name
    return None


# --- rendering ------------------------------------------------------------------------

T = {
    "fr": {
        "no_mlflow": "Je ne peux pas lire l'état des runs : {error}.",
        "no_runs": "Aucun run pour le pipeline {pipeline}.",
        "status_head": "Pipeline {pipeline} — dernier run {run} : {state}.",
        "stage_line": "- {stage} : {status}{gate}{metric}",
        "gate": ", gate {gate}",
        "compare_head": "{stage} ({pipeline}) — baseline → final :",
        "metric_line": "- {eval_set}/{metric} : {baseline} → {final} (delta {delta}{verdict}){prev}",
        "better": ", mieux", "worse": ", moins bien", "prev": " ; vs étape précédente {delta_prev}{verdict}",
        "no_metrics": "{stage} n'a pas encore de métriques baseline/final (statut {status}).",
        "no_failure": "Aucune étape en échec dans le dernier run de {pipeline} (état : {state}).",
        "failure_head": "L'étape {stage} de {pipeline} est {status}.",
        "diag": "Diagnostic : {kind}{fid} (confiance {confidence}). Preuves : {evidence}",
        "fix": "À faire : {fix}",
        "prefect_msg": "Message Prefect : {message}",
        "remedy": "Remède déjà appliqué : {remedy}",
        "next_head": "État de {pipeline} : {state}. Prochaines étapes :",
        "playbook_head": "D'après les playbooks :",
        "nothing": "Je n'ai rien trouvé dans les playbooks pour cette question.",
        "services": "Services : {services}",
        "progress": " [{progress}]",
    },
    "en": {
        "no_mlflow": "I cannot read the runs: {error}.",
        "no_runs": "No run yet for pipeline {pipeline}.",
        "status_head": "Pipeline {pipeline} — latest run {run}: {state}.",
        "stage_line": "- {stage}: {status}{gate}{metric}",
        "gate": ", gate {gate}",
        "compare_head": "{stage} ({pipeline}) — baseline → final:",
        "metric_line": "- {eval_set}/{metric}: {baseline} → {final} (delta {delta}{verdict}){prev}",
        "better": ", better", "worse": ", worse", "prev": "; vs previous stage {delta_prev}{verdict}",
        "no_metrics": "{stage} has no baseline/final metrics yet (status {status}).",
        "no_failure": "No failed stage in the latest run of {pipeline} (state: {state}).",
        "failure_head": "Stage {stage} of {pipeline} is {status}.",
        "diag": "Diagnosis: {kind}{fid} (confidence {confidence}). Evidence: {evidence}",
        "fix": "What to do: {fix}",
        "prefect_msg": "Prefect message: {message}",
        "remedy": "Remedy already applied: {remedy}",
        "next_head": "{pipeline} is {state}. Next steps:",
        "playbook_head": "From the playbooks:",
        "nothing": "I found nothing in the playbooks for this question.",
        "services": "Services: {services}",
        "progress": " [{progress}]",
    },
}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:+.4f}" if abs(v) < 1 else f"{v:+.2f}"
    return "—" if v is None else str(v)


def _num(v: Any) -> str:
    return "—" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))


def _verdict(flag: bool | None, lang: str) -> str:
    return "" if flag is None else (T[lang]["better"] if flag else T[lang]["worse"])


def _primary_metric(stage: dict[str, Any]) -> str:
    rows = [r for r in stage.get("metrics") or [] if r.get("baseline") is not None and r.get("final") is not None]
    if not rows:
        return ""
    r = rows[0]
    return f", {r['eval_set']}/{r['metric']} {_num(r.get('baseline'))} → {_num(r.get('final'))}"


def _render_metrics(stage: dict[str, Any], lang: str) -> list[str]:
    t = T[lang]
    out = []
    for r in stage.get("metrics", []):
        prev = ""
        if r.get("delta_prev") is not None:
            prev = t["prev"].format(delta_prev=_fmt(r["delta_prev"]), verdict=_verdict(r.get("improved_vs_previous"), lang))
        out.append(t["metric_line"].format(eval_set=r["eval_set"], metric=r["metric"], baseline=_num(r.get("baseline")),
                                           final=_num(r.get("final")), delta=_fmt(r.get("delta")),
                                           verdict=_verdict(r.get("improved"), lang), prev=prev))
    return out


def render(intent: str, data: dict[str, Any], lang: str) -> str:
    t = T[lang]
    if not data.get("ok", True) and data.get("error") and intent != "playbook":
        lines = [t["no_mlflow"].format(error=data["error"])]
    elif intent == "status":
        if data.get("state") == "no_runs":
            lines = [t["no_runs"].format(pipeline=data.get("pipeline"))]
        else:
            lines = [t["status_head"].format(pipeline=data["pipeline"], run=data["run_id"], state=data["state"])]
            if data.get("focus"):
                f = data["focus"]
                lines.append("→ " + t["stage_line"].format(
                    stage=f["stage"], status=f["status"], gate=t["gate"].format(gate=f["gate"]) if f.get("gate") else "",
                    metric=_primary_metric(f))[2:])
            for s in data["stages"]:
                progress = ", ".join(f"{k}={_num(v)}" for k, v in sorted(s.get("progress", {}).items())[:3])
                lines.append(t["stage_line"].format(
                    stage=s["stage"], status=s["status"], gate=t["gate"].format(gate=s["gate"]) if s.get("gate") else "",
                    metric=_primary_metric(s) + (t["progress"].format(progress=progress) if progress and s["status"] == "running" else "")))
            if data.get("prefect"):
                p = data["prefect"]
                lines.append(f"Prefect: {p.get('name')} {p.get('state_name') or p.get('state')}"
                             + (f" — {p['message']}" if p.get("message") else ""))
    elif intent == "compare":
        s = data["stage"]
        if not s["metrics"]:
            lines = [t["no_metrics"].format(stage=s["stage"], status=s["status"])]
        else:
            lines = [t["compare_head"].format(stage=s["stage"], pipeline=data["pipeline"])] + _render_metrics(s, lang)
            if s.get("gate"):
                lines.append(t["gate"].format(gate=s["gate"]).lstrip(", ").capitalize())
    elif intent == "failure":
        if not data.get("failed") and not data.get("stage"):
            lines = [t["no_failure"].format(pipeline=data.get("pipeline"), state=data.get("state"))]
        else:
            s = data["stage"]
            lines = [t["failure_head"].format(stage=s["stage"], pipeline=data["pipeline"], status=s["status"])]
            d = data.get("diagnosis") or {}
            if d or data.get("kind"):
                fid = f" / {d['failure_id']}" if d.get("failure_id") else ""
                evidence = " | ".join(d.get("evidence", [])[:3]) or "—"
                lines.append(t["diag"].format(kind=d.get("kind") or data.get("kind"), fid=fid,
                                              confidence=d.get("confidence", "—"), evidence=evidence))
            fix = d.get("fix") or data.get("playbook_fix")
            if fix:
                lines.append(t["fix"].format(fix=fix))
            if data.get("remedy_applied"):
                lines.append(t["remedy"].format(remedy=data["remedy_applied"].get("description", data["remedy_applied"])))
            if data.get("prefect_message"):
                lines.append(t["prefect_msg"].format(message=data["prefect_message"]))
    elif intent == "next":
        lines = [t["next_head"].format(pipeline=data.get("pipeline") or "—", state=data["state"])]
        for entry in data["steps"]:
            lines.append(f"* {entry['title']}")
            lines += [f"  - {step}" for step in entry["steps"]]
    elif intent == "services":
        lines = [t["services"].format(services="; ".join(
            f"{s['name']}: {'up' if s['reachable'] else ('down' if s['configured'] else 'not configured')} ({s['detail']})"
            for s in data["services"]))]
    else:
        results = data.get("results", [])
        lines = [t["playbook_head"]] if results else [t["nothing"]]
        for r in results:
            lines.append(f"## {r['section']} ({r['cite']})\n{r['text']}")
            lines += [f"  → {fix}" for fix in r.get("fixes", [])]
    lines += [f"({n})" for n in data.get("notes", [])]
    return redact("\n".join(lines))


# --- routing ----------------------------------------------------------------------------

def _known_pipelines(state: LiveState) -> list[str]:
    if not state.mlflow.available:
        return []
    try:
        return [p["pipeline"] for p in state.mlflow.pipelines()]
    except Exception:  # noqa: BLE001 - a broken store is reported by the tool call itself
        return []


def topic_tokens(question: str) -> list[str]:
    """The question's words minus those that only say which kind of answer is wanted."""
    stems = [w.strip() for words in _INTENT_WORDS.values() for w in words]
    return [t for t in tokens(question) if t not in _GENERIC and not any(t.startswith(s) for s in stems)]


def is_playbook_topic(question: str, book: PlaybookSet) -> bool:
    """The question names something the playbooks are about (Kaggle, P100, H200, bf16...)."""
    topic = topic_tokens(question)
    vocabulary = {t for s in book.sections for t in tokens(s.heading)}
    vocabulary |= {t for item in [*book.rules, *book.failures] for t in tokens(item.title)}
    return any(t in vocabulary for t in topic)


def _safe(fn: Any, *args: Any) -> dict[str, Any]:
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - a broken store must give an answer, not a traceback
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "sources": [], "notes": []}


def answer_offline(question: str, state: LiveState, book: PlaybookSet) -> Answer:
    lang = detect_language(question)
    intent = detect_intent(question)
    pipeline = pipeline_reference(question, _known_pipelines(state))
    stage = stage_reference(question)
    if intent in ("failure", "next") and pipeline is None and stage is None and is_playbook_topic(question, book):
        intent = "playbook"  # "Kaggle me donne un P100, que faire ?" is about Kaggle, not about a run
    if intent == "status":
        data = _safe(tools.pipeline_status, state, pipeline)
        focus = find_stage(data.get("stages") or [], stage) if stage else None
        if focus:
            data = {**data, "focus": focus}
    elif intent == "compare":
        data = _safe(tools.compare_stage, state, pipeline, stage)
    elif intent == "failure":
        data = _safe(tools.explain_failure, state, book, pipeline, stage)
        if not data.get("ok") and not state.mlflow.available:
            # No live state: a failure question is still answerable from the playbooks.
            query = " ".join(topic_tokens(question)) or question
            intent, data = "playbook", {**tools.search_playbooks(book, query), "notes": data.get("notes", [])}
    elif intent == "next":
        data = _safe(tools.next_steps, state, book, pipeline)
    elif intent == "services":
        data = tools.service_status(state)
    else:
        data = tools.search_playbooks(book, " ".join(topic_tokens(question)) or question)
    data = redact_obj(data)
    return Answer(question=redact(question), language=lang, intent=intent, text=render(intent, data, lang),
                  sources=[Source(**s) for s in data.get("sources", [])], data=data)


def llm_tools(state: LiveState, book: PlaybookSet) -> list[Any]:
    from agent.llm import Tool

    pipe = {"type": "string", "description": "pipeline name (MLflow experiment palier/<name>); omit for the latest"}
    stage = {"type": "string", "description": "stage name or 'expN' (1-based); omit for the latest relevant"}
    return [
        Tool("list_pipelines", "List palier pipelines known to MLflow.", {"type": "object", "properties": {}},
             lambda: tools.list_pipelines(state)),
        Tool("pipeline_status", "Where a pipeline is: latest run, each stage's status, gate, metrics, Prefect state.",
             {"type": "object", "properties": {"pipeline": pipe}}, lambda pipeline=None: tools.pipeline_status(state, pipeline)),
        Tool("compare_stage", "A stage's final metrics vs its baseline and vs the previous stage.",
             {"type": "object", "properties": {"pipeline": pipe, "stage": stage}},
             lambda pipeline=None, stage=None: tools.compare_stage(state, pipeline, stage)),
        Tool("explain_failure", "Why a stage failed (recorded diagnosis) and the playbook fix.",
             {"type": "object", "properties": {"pipeline": pipe, "stage": stage}},
             lambda pipeline=None, stage=None: tools.explain_failure(state, book, pipeline, stage)),
        Tool("next_steps", "The playbooks' next steps for the pipeline's current state.",
             {"type": "object", "properties": {"pipeline": pipe}},
             lambda pipeline=None: tools.next_steps(state, book, pipeline)),
        Tool("search_playbooks", "Search the playbooks (rules, known failures, fixes).",
             {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
             lambda query: tools.search_playbooks(book, query)),
    ]


def _system_prompt(book: PlaybookSet, lang: str) -> str:
    index = "\n".join(f"- {p.title} ({p.file}): " + "; ".join(s.heading for s in p.sections if s.level == 2)
                      for p in book.playbooks)
    language = "French" if lang == "fr" else "English"
    return (
        "You are palier's assistant for progressive fine-tuning pipelines (Prefect + MLflow). "
        "Use the tools to read live state and the playbooks; never invent run ids or metrics. "
        f"Answer in {language}, briefly, and cite sources (run ids, playbook file#section).\n"
        f"Playbooks:\n{index}"
    )


def answer_with_llm(question: str, state: LiveState, book: PlaybookSet) -> Answer:
    from agent import llm

    lang = detect_language(question)
    text, results = llm.chat_with_tools(_system_prompt(book, lang), question, llm_tools(state, book))
    sources: list[Source] = []
    for r in results:
        for s in r["output"].get("sources", []) if isinstance(r.get("output"), dict) else []:
            src = Source(**s)
            if src not in sources:
                sources.append(src)
    return Answer(question=redact(question), language=lang, intent="llm", text=redact(text), sources=sources,
                  source="llm", data={"tool_calls": results})


def ask(question: str, *, state: LiveState | None = None, playbooks: PlaybookSet | None = None,
        use_llm: bool | None = None) -> Answer:
    """Answer a question. ``use_llm``: None = when configured; False = offline only."""
    state = state or LiveState.from_env()
    book = playbooks or load_playbooks()
    from agent import llm

    if use_llm is not False and llm.configured():
        try:
            return answer_with_llm(question, state, book)
        except llm.LLMError as exc:
            fallback = answer_offline(question, state, book)
            note = f"(LLM unavailable, offline answer: {redact(str(exc))})"
            return fallback.model_copy(update={"text": f"{fallback.text}\n{note}"})
    return answer_offline(question, state, book)
