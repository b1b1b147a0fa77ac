"""ask(question) -> Answer, from live state (MLflow, Prefect, the pipeline files) and the
playbooks, with sources.

Offline by default: the question is read for its language (agent.chat.language), what it asks
(status, comparison, failure, next steps, a playbook fact, services: agent.chat.question) and
what it is about (a pipeline; stages by name, number, output model or domain word — "le modèle
médical"; an eval set: agent.chat.target), then one tool (agent.chat.tools) computes the data and
agent.chat.text writes the answer. With an LLM configured, the same tools are offered to it
through tool calling (agent.chat.llm); a failing LLM falls back to the offline answer.
"""

from __future__ import annotations

import re
from typing import Any

from core.llm import LlmError

from agent.chat import tools
from agent.chat.answer import Answer, Source
from agent.chat.language import detect_language
from agent.chat.question import (asks_list, asks_metrics_only, asks_permission, asks_running, detect_intent,
                                 names_runs, pipeline_reference, stage_references, topic_tokens)
from agent.chat.target import is_playbook_topic, known_pipelines, resolve_target, stage_mentions
from agent.chat.text import render
from agent.playbooks.answers import answer_fact
from agent.playbooks.parse import PlaybookSet
from agent.rules import load_checked_playbooks
from agent.base.redact import redact, redact_obj
from agent.playbooks.retrieval import fold
from agent.base.state import LiveState

__all__ = ["Answer", "Source", "answer_offline", "ask"]

MAX_QUESTION_CHARS = 1000


def _safe(fn: Any, *args: Any) -> dict[str, Any]:
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - a broken store must give an answer, not a traceback
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "sources": [], "notes": []}


def _route(question: str, pipeline: str | None, state: LiveState, book: PlaybookSet) -> str:
    """The intent, once the question's words are weighed against what it is about."""
    # A pipeline named "killed" or "errors" says nothing about what is asked.
    asked = re.sub(rf"(?<![\w-]){re.escape(pipeline)}(?![\w-])", " ", fold(question)) if pipeline else question
    intent = detect_intent(asked)
    about_runs = bool(pipeline or stage_references(question) or names_runs(question))
    named, described = stage_mentions(question, state) if not about_runs else (False, False)
    about_runs = about_runs or named
    convertible = intent in ("failure", "next", "compare") or (intent == "status" and asks_metrics_only(question))
    if intent != "failure" and asks_permission(question) and is_playbook_topic(question, book):
        intent = "playbook"  # "est-ce que je peux lancer fr sur H200 ?": a playbook rule answers
    elif convertible and not about_runs and not described and is_playbook_topic(question, book):
        intent = "playbook"  # "Kaggle me donne un P100, que faire ?" is about Kaggle, not about a run
    elif intent == "playbook" and about_runs:
        intent = "status"  # "le champion de demo c'est lequel ?" asks about runs
    return "list" if intent == "status" and asks_list(question) else intent


def _status(state: LiveState, book: PlaybookSet, pipeline: str | None, stages: list[str]) -> tuple[str, dict[str, Any]]:
    data = _safe(tools.pipeline_status, state, pipeline)
    focus = None
    if stages and data.get("stages"):
        from agent.base.pipeline_state import resolve_stage

        focus = resolve_stage(data["stages"], stages[0])
    if focus:
        return "status", {**data, "focus": focus}
    if data.get("ok") and data.get("state") == "no_runs" and data.get("pipeline_file"):
        # A pipeline never run: where it stands is what its preflight says.
        return "next", _safe(tools.next_steps, state, book, pipeline)
    return "status", data


def _failure(state: LiveState, book: PlaybookSet, pipeline: str | None, stages: list[str]) -> tuple[str, dict[str, Any]]:
    intent, data = "failure", _safe(tools.explain_failure, state, book, pipeline, stages[0] if stages else None)
    if data.get("ok") and data.get("state") == "no_runs":
        # A problem with a pipeline never run is in its configuration: the preflight says it.
        intent, data = "next", _safe(tools.next_steps, state, book, pipeline)
    if data.get("ok") and not data.get("failed") and data.get("stage") and data.get("state") != "interrupted":
        # "what happened to exp1?" about a stage that did not fail: say where it is.
        status = _safe(tools.pipeline_status, state, data["pipeline"])
        return "status", {**status, "focus": data["stage"]} if status.get("ok") else status
    return intent, data


def _data(intent: str, question: str, lang: str, target: dict[str, Any], state: LiveState,
          book: PlaybookSet) -> tuple[str, dict[str, Any]]:
    """(the intent finally answered, the tool's data for it)."""
    pipeline, stages = target.get("pipeline"), target.get("stages") or []
    if intent == "list":
        return intent, _safe(tools.list_pipelines, state)
    if intent == "status":
        return _status(state, book, pipeline, stages)
    if intent == "compare":
        return intent, _safe(tools.compare_stage, state, pipeline, stages[0] if stages else None,
                             stages[1] if len(stages) > 1 else None, target.get("eval_set"))
    if intent == "failure":
        return _failure(state, book, pipeline, stages)
    if intent == "next":
        return intent, _safe(tools.next_steps, state, book, pipeline)
    if intent == "services":
        return intent, tools.service_status(state)
    return intent, answer_fact(book, " ".join(topic_tokens(question)) or question, lang)


def answer_offline(question: str, state: LiveState, book: PlaybookSet) -> Answer:
    lang = detect_language(question)
    pipeline = pipeline_reference(question, known_pipelines(state))
    intent = _route(question, pipeline, state, book)
    target: dict[str, Any] = {"pipeline": pipeline, "stages": stage_references(question), "eval_set": None}
    if intent in ("status", "compare", "failure", "next") and state.mlflow.available:
        prefer: tuple[str, ...] = ("failed", "interrupted") if intent in ("failure", "next") else ()
        if intent == "status" and asks_running(question):
            prefer = ("running",)  # "y a-t-il un run en cours ?": the pipeline that runs
        target = resolve_target(question, state, pipeline, prefer)
    intent, data = _data(intent, question, lang, target, state, book)
    data = redact_obj(data)
    return Answer(question=redact(question), language=lang, intent=intent, text=render(intent, data, lang),
                  sources=[Source(**s) for s in data.get("sources", [])], data=data)


def ask(question: str, *, state: LiveState | None = None, playbooks: PlaybookSet | None = None,
        use_llm: bool | None = None, context: dict[str, Any] | None = None) -> Answer:
    """Answer a question. ``use_llm``: None = when configured; False = offline only. ``context``:
    the previous answer's ``data["about"]`` (agent.chat.session.ChatSession keeps it). Never
    raises for a question: an error inside becomes an answer that says what failed."""
    state = state or LiveState.from_env()
    book = playbooks or load_checked_playbooks()
    read = question[:MAX_QUESTION_CHARS]  # a pasted log is not a question: its head says what is asked
    try:
        answer = _ask(read, state, book, use_llm, context)
    except Exception as exc:  # noqa: BLE001 - any question gets an answer, never a traceback
        return failed_answer(read, exc)
    if len(question) > MAX_QUESTION_CHARS:
        note = f"(question read up to its first {MAX_QUESTION_CHARS} characters of {len(question)})"
        answer = answer.model_copy(update={"text": f"{answer.text}\n{note}"})
    return answer


def _ask(question: str, state: LiveState, book: PlaybookSet, use_llm: bool | None,
         context: dict[str, Any] | None) -> Answer:
    from agent.chat import llm as chat_llm
    from agent.chat.converse import answer as converse
    from agent.diagnosis import llm_assist

    with state.mlflow.snapshot():
        if use_llm is not False:
            try:
                client = llm_assist.configured_client()
                if client is not None:
                    return chat_llm.answer_with_llm(client, question, state, book)
            except LlmError as exc:
                fallback = converse(question, state, book, context)
                note = f"(LLM unavailable, offline answer: {redact(str(exc))})"
                return fallback.model_copy(update={"text": f"{fallback.text}\n{note}"})
        return converse(question, state, book, context)


def failed_answer(question: str, exc: Exception) -> Answer:
    """One honest sentence: what was understood, what failed, what to run instead."""
    from agent.chat.insight_text import words

    lang = detect_language(question) if question.strip() else "en"
    try:
        understood = f"intent {detect_intent(question)}"
    except Exception:  # noqa: BLE001 - the reading itself may be what failed
        understood = "nothing usable"
    instead = "`palier status`, `palier diagnose <stage folder>` ou `palier ask --no-llm` avec un nom de pipeline" \
        if lang == "fr" else "`palier status`, `palier diagnose <stage folder>` or `palier ask --no-llm` naming a pipeline"
    text = words(lang)["crash"].format(understood=understood, error=f"{type(exc).__name__}: {str(exc)[:200]}",
                                       instead=instead)
    return Answer(question=redact(question[:2000]), language=lang, intent="error", text=redact(text),
                  data={"ok": False, "error": redact(f"{type(exc).__name__}: {exc}"), "about": {}})
