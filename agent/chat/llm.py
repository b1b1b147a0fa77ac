"""The chat's LLM path: the tools declared to the model, its system prompt, and the answer
built from its reply (labelled ``source: llm``, sources from the tools it called)."""

from __future__ import annotations

from core.llm import LlmClient

from agent.chat import tools
from agent.chat.answer import Answer, Source
from agent.chat.language import detect_language
from agent.diagnosis.llm_assist import Tool, chat_with_tools
from agent.playbooks.answers import answer_fact
from agent.playbooks.parse import PlaybookSet
from agent.base.redact import redact
from agent.base.state import LiveState


def llm_tools(state: LiveState, book: PlaybookSet) -> list[Tool]:
    """The tools the LLM may call: the same ones the offline answers use."""
    pipe = {"type": "string", "description": "pipeline name (MLflow experiment palier/<name>); omit for the latest"}
    stage = {"type": "string", "description": "stage name, 'expN' (1-based), output model name or a domain word "
             "('medical'); omit for the latest relevant"}
    return [
        Tool("list_pipelines", "List palier pipelines known to MLflow.", {"type": "object", "properties": {}},
             lambda: tools.list_pipelines(state)),
        Tool("pipeline_status", "Where a pipeline is: latest run, each stage's status, gate, metrics (primary eval "
             "set first), whether a running stage's process is alive, Prefect state.",
             {"type": "object", "properties": {"pipeline": pipe}}, lambda pipeline=None: tools.pipeline_status(state, pipeline)),
        Tool("compare_stage", "A stage's final metrics vs its baseline and the previous stage; with 'other', two "
             "stages side by side. Only quality metrics (kind error/score) are better/worse; timings and counts are not.",
             {"type": "object", "properties": {"pipeline": pipe, "stage": stage, "other": stage,
                                               "eval_set": {"type": "string", "description": "only this eval set"}}},
             lambda pipeline=None, stage=None, other=None, eval_set=None: tools.compare_stage(
                 state, pipeline, stage, other, eval_set)),
        Tool("explain_failure", "Why a pipeline stopped: the failed stage's recorded diagnosis and playbook fix, a "
             "run marked running whose process is gone, the previous run's failure.",
             {"type": "object", "properties": {"pipeline": pipe, "stage": stage}},
             lambda pipeline=None, stage=None: tools.explain_failure(state, book, pipeline, stage)),
        Tool("next_steps", "What to do next, computed from the pipeline's state and its preflight findings.",
             {"type": "object", "properties": {"pipeline": pipe}},
             lambda pipeline=None: tools.next_steps(state, book, pipeline)),
        Tool("playbook_fact", "A playbook fact as a one-sentence answer with its citation (GPU choice, batch sizes, "
             "Kaggle, Modal, library APIs...).",
             {"type": "object", "properties": {"question": {"type": "string"},
                                               "language": {"type": "string", "enum": ["fr", "en"]}},
              "required": ["question"]},
             lambda question, language="en": answer_fact(book, question, language)),
        Tool("search_playbooks", "Search the playbooks (sections, rules, known failures, fixes).",
             {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
             lambda query: tools.search_playbooks(book, query)),
    ]


def system_prompt(book: PlaybookSet, lang: str) -> str:
    index = "\n".join(f"- {p.title} ({p.file}): " + "; ".join(s.heading for s in p.sections if s.level == 2)
                      for p in book.playbooks)
    language = "French" if lang == "fr" else "English"
    return (
        "You are palier's assistant for progressive fine-tuning pipelines (Prefect + MLflow). "
        "Use the tools to read live state and the playbooks; never invent run ids or metrics. "
        f"Answer in {language}, briefly, and cite sources (run ids, playbook file#section).\n"
        f"Playbooks:\n{index}"
    )


def answer_with_llm(client: LlmClient, question: str, state: LiveState, book: PlaybookSet) -> Answer:
    """The LLM's answer, its sources taken from the tool results (raises ``LlmError``)."""
    lang = detect_language(question)
    text, results = chat_with_tools(client, system_prompt(book, lang), question, llm_tools(state, book))
    sources: list[Source] = []
    for r in results:
        for s in r["output"].get("sources", []) if isinstance(r.get("output"), dict) else []:
            src = Source(**s)
            if src not in sources:
                sources.append(src)
    return Answer(question=redact(question), language=lang, intent="llm", text=redact(text), sources=sources,
                  source="llm", data={"tool_calls": results})
