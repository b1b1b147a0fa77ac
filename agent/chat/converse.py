"""One turn of a conversation: what the question means, weighed against the live state and what
the previous answers were about (``context``), then answered.

- Follow-ups ("et sa baseline ?", "and on the guard set?", "why?", "the other one") keep the
  previous pipeline, stage, eval set and intent; a name in the question replaces them.
- A question about results needs a run that has results: when the stage it resolves to has
  none (killed, failed, not run) and another pipeline's stage of the same name has them, the
  answer comes from that one and says so in one line; two equally good readings are asked back.
- The intents agent.chat.question does not route (best model, guard regressions, worst
  utterances, durations, the gate's decision, a preflight block, a stopped stage) are answered
  by agent.chat.insights; the rest by agent.chat.respond.
Every answer ends with what it is about; ``Answer.data["about"]`` is the next turn's context."""

from __future__ import annotations

from typing import Any

from agent.base.redact import redact, redact_obj
from agent.base.state import LiveState
from agent.chat import insights, tools
from agent.chat.answer import Answer, Source
from agent.chat.asks import asks_other, asks_why_only, described_eval_set, is_follow_up, special_intent
from agent.chat.insight_text import RENDERERS, words
from agent.chat.language import detect_language
from agent.chat.question import asks_metrics_only, asks_running, pipeline_reference, stage_references
from agent.chat.respond import _data, _route
from agent.chat.target import _named_stages, known_pipelines, resolve_target
from agent.chat.text import render
from agent.playbooks.parse import PlaybookSet

RUN_INTENTS = ("status", "compare", "failure", "next", "worst", "duration", "gate")
NEEDS_RESULTS = ("compare", "worst", "duration", "gate")


def _results(stage: dict[str, Any] | None) -> bool:
    return bool(stage) and any(r.get("final") is not None for r in stage.get("metrics") or [])


def _stage(status: dict[str, Any] | None, name: str | None) -> dict[str, Any] | None:
    return next((s for s in (status or {}).get("stages", []) if s["stage"] == name), None)


def _weigh(status: dict[str, Any], stage: dict[str, Any], order: int) -> tuple:
    """Higher is better: a finished pipeline, a promoted stage, then the most recent."""
    return (status.get("state") == "succeeded", stage.get("gate") == "champion", -order)


def with_results(statuses: list[dict[str, Any]], pipeline: str, names: list[str],
                 lang: str) -> tuple[str, str | None, str | None]:
    """(the pipeline to answer from, the line saying why, a question back when two tie): the
    stages ``names`` must all have results."""
    current = next((st for st in statuses if st["pipeline"] == pipeline), None)
    missing = [_stage(current, n) for n in names if not _results(_stage(current, n))]
    if not missing or missing[0] is None:
        return pipeline, None, None
    here, stage_name = missing[0], missing[0]["stage"]
    others = [(_weigh(st, _stage(st, names[-1]) or {}, i), st, _stage(st, stage_name))
              for i, st in enumerate(statuses) if st["pipeline"] != pipeline
              and all(_results(_stage(st, n)) for n in names)]
    if not others:
        return pipeline, None, None
    others.sort(key=lambda x: x[0], reverse=True)
    w = words(lang)
    if len(others) > 1 and others[0][0][:2] == others[1][0][:2]:
        a, b = others[0][1]["pipeline"], others[1][1]["pipeline"]
        return a, None, w["ask_back"].format(a=f"{stage_name} ({a})", b=f"{stage_name} ({b})", stage=stage_name, pa=a)
    chosen = others[0][1]["pipeline"]
    why = w["no_results_why"].format(stage=stage_name, other=pipeline, status=here["status"])
    return chosen, w["chosen"].format(why=why, pipeline=chosen, stage=stage_name), None


def _other_pipeline(statuses: list[dict[str, Any]], ctx: dict[str, Any]) -> str | None:
    """"The other one": another pipeline with the context's stage, results first."""
    stage = (ctx.get("stages") or [None])[0]
    found = [(_weigh(st, s, i), st["pipeline"]) for i, st in enumerate(statuses) if st["pipeline"] != ctx.get("pipeline")
             for s in st.get("stages", []) if s["stage"] == stage]
    return max(found)[1] if found else None


def _intent(question: str, pipeline: str | None, follow: bool, ctx: dict[str, Any], state: LiveState,
            book: PlaybookSet) -> str:
    special = special_intent(question)
    base = _route(question, pipeline, state, book)
    if special == "duration" and base == "compare":
        special = None  # "vs baseline, and how long does its eval take?": the comparison shows the timings
    if special == "guard" and follow:
        return "compare"
    if special == "best" and (pipeline or follow):
        special = None
    if special:
        return special
    if follow and asks_why_only(question):
        stage = ctx.get("stage_status")
        return "failure" if stage in ("failed", "killed", "cancelled", "running") else "gate"
    previous = {"stopped": "failure", "blocked": "failure", "best": "status"}.get(ctx.get("intent"), ctx.get("intent"))
    if follow and (base == "playbook" or asks_other(question)) and previous in RUN_INTENTS:
        return previous
    return base


def _target(question: str, intent: str, named: str | None, follow: bool, ctx: dict[str, Any],
            state: LiveState) -> dict[str, Any]:
    statuses = tools.all_statuses(state)
    pipeline = named
    if follow and asks_other(question) and ctx.get("pipeline"):
        pipeline = _other_pipeline(statuses, ctx) or ctx.get("pipeline")
    elif follow and not named:
        pipeline = ctx.get("pipeline")
    prefer = ("failed", "interrupted") if intent in ("failure", "next") else ()
    if intent == "status" and asks_running(question):
        prefer = ("running",)  # "y a-t-il un run en cours ?": the pipeline that runs
    target = resolve_target(question, state, pipeline, prefer)
    status = target.get("status") or next((st for st in statuses if st["pipeline"] == target.get("pipeline")), None)
    literal = bool(stage_references(question)) or bool(status and _named_stages(question, status.get("stages", [])))
    if follow and not literal and ctx.get("stages") and (not asks_other(question) or target.get("by") != "domain"):
        target["stages"] = list(ctx["stages"])
    if follow and not target.get("pipeline"):
        target["pipeline"] = ctx.get("pipeline")
    target["explicit"] = bool(named) or (follow and bool(ctx.get("explicit")))
    target["statuses"] = statuses
    return target


def _eval_set(question: str, target: dict[str, Any], intent: str, follow: bool, ctx: dict[str, Any]) -> str | None:
    status = next((st for st in target["statuses"] if st["pipeline"] == target.get("pipeline")), None)
    stage = _stage(status, (target.get("stages") or [None])[0]) or {}
    described = described_eval_set(question, stage.get("roles") or {})
    if described or target.get("eval_set"):
        return described or target.get("eval_set")
    return ctx.get("eval_set") if follow and intent == "compare" else None


def _resolve_stage(target: dict[str, Any], intent: str, question: str) -> dict[str, Any] | None:
    """The stage summary the question is about, by name/number/domain; for the gate, the one decided."""
    from agent.base.pipeline_state import resolve_stage

    status = next((st for st in target["statuses"] if st["pipeline"] == target.get("pipeline")), None)
    if not status or not status.get("stages"):
        return None
    ref = (target.get("stages") or [None])[0]
    stage = resolve_stage(status["stages"], ref) if ref else None
    if stage is None and intent == "gate":
        decided = [s for s in status["stages"] if s.get("gate")]
        rejected = [s for s in decided if s.get("gate") == "rejected"]
        stage = (rejected or decided or [None])[-1]
    return stage


def _insight(intent: str, question: str, target: dict[str, Any], state: LiveState) -> dict[str, Any] | None:
    """The data of a new intent, or None when the question names no stage it could be about."""
    if intent == "best":
        return insights.best_model(state, question)
    if intent == "guard":
        return insights.guard_regressions(state)
    stage = _resolve_stage(target, intent, question)
    if stage is None:
        return None
    if intent == "worst":
        return {**insights.worst_predictions(state, stage, target.get("eval_set")), "pipeline": target["pipeline"]}
    if intent == "duration":
        return {**insights.stage_durations(stage), "pipeline": target["pipeline"]}
    return {**insights.gate_decision(state, stage), "status": stage["status"], "pipeline": target["pipeline"]}


def _stopped_or_blocked(intent: str, target: dict[str, Any], state: LiveState) -> tuple[str, dict[str, Any]] | None:
    """A run the preflight blocked (failure, next step or status), or a killed stage (failure)."""
    status = _status_of(target)
    if status is None or intent not in ("failure", "next", "status"):
        return None
    blocked = insights.preflight_block(state, status) if status.get("state") in ("failed", "no_runs") else None
    if blocked:
        return "blocked", blocked
    stage = _stopped_stage(target) if intent == "failure" else None
    if stage is None or stage["status"] not in ("killed", "cancelled"):
        return None
    return "stopped", insights.stopped_stage(status, stage)


def _status_of(target: dict[str, Any]) -> dict[str, Any] | None:
    return next((st for st in target["statuses"] if st["pipeline"] == target.get("pipeline")), None)


def _stopped_stage(target: dict[str, Any]) -> dict[str, Any] | None:
    """The stage of the target that was killed, cancelled, or whose process is gone."""
    status = _status_of(target) or {}
    ref = (target.get("stages") or [None])[0]
    stopped = [s for s in status.get("stages", []) if s["status"] in ("killed", "cancelled")
               or s.get("process") == "dead" or (status.get("interrupted") or {}).get("stage") == s["stage"]]
    return next((s for s in stopped if not ref or s["stage"] == ref or (ref.startswith("exp") and s["stage"].startswith(ref))),
                None)


def _resume_lines(intent: str, target: dict[str, Any], lang: str) -> list[str]:
    """Under a failure or next-step answer about an interrupted stage: its checkpoint and real paths."""
    from agent.chat.insight_text import render_stopped

    stage = _stopped_stage(target) if intent in ("failure", "next", "status") else None
    return render_stopped(insights.stopped_stage(_status_of(target), stage), lang)[1:] if stage else []


def _about(intent: str, data: dict[str, Any], target: dict[str, Any], eval_set: str | None) -> dict[str, Any]:
    if intent in ("best", "guard"):
        rows = data.get("models") or data.get("rows") or []
        one = rows[0] if len(rows) == 1 else {}
        return {"pipeline": one.get("pipeline"), "stages": [one["stage"]] if one.get("stage") else [],
                "eval_set": one.get("eval_set"), "intent": intent, "explicit": False, "stage_status": None}
    stage = data.get("stage")
    name = stage.get("stage") if isinstance(stage, dict) else stage
    focus = data.get("focus")
    name = name or (focus.get("stage") if isinstance(focus, dict) else focus) or (target.get("stages") or [None])[0]
    stage_summary = _stage(next((st for st in target.get("statuses", []) if st["pipeline"] == data.get("pipeline")),
                                None), name)
    return {"pipeline": data.get("pipeline") or target.get("pipeline"), "stages": [name] if name else [],
            "eval_set": data.get("eval_set") or eval_set, "intent": intent, "explicit": target.get("explicit"),
            "stage_status": (stage_summary or {}).get("status")}


def _about_line(about: dict[str, Any], lang: str) -> str:
    parts = [p for p in (about.get("pipeline"), (about.get("stages") or [None])[0], about.get("eval_set")) if p]
    return words(lang)["about"].format(what=" / ".join(parts)) if parts else ""


def answer(question: str, state: LiveState, book: PlaybookSet, context: dict[str, Any] | None = None) -> Answer:
    """Answer one turn offline; ``context``: the previous answer's ``data["about"]`` (None: a new conversation)."""
    from agent.chat.respond import answer_offline

    ctx = dict(context or {})
    if not state.mlflow.available:
        return answer_offline(question, state, book)
    lang = detect_language(question)
    named = pipeline_reference(question, known_pipelines(state))
    follow = bool(ctx.get("pipeline")) and is_follow_up(question) and not named
    intent = _intent(question, named, follow, ctx, state, book)
    if intent not in (*RUN_INTENTS, "best", "guard"):
        return answer_offline(question, state, book)
    try:
        target = _target(question, intent, named, follow, ctx, state)
    except Exception:  # noqa: BLE001 - an unreadable store: the tools' own answer says what is wrong
        return answer_offline(question, state, book)
    chosen_line = ask_back = None
    # A model described by its domain ("le modèle médical") is a model with results, not a run.
    needs = intent in NEEDS_RESULTS or (intent == "status" and (asks_metrics_only(question) or target.get("by") == "domain"))
    if needs and target.get("pipeline") and target.get("stages") and not target["explicit"]:
        target["pipeline"], chosen_line, ask_back = with_results(target["statuses"], target["pipeline"],
                                                                 _full_stage_names(target), lang)
    target["eval_set"] = _eval_set(question, target, intent, follow, ctx)
    if ask_back:
        return _reply(question, lang, "clarify", {"ok": True, "pipeline": target["pipeline"], "sources": [],
                                                    "notes": []}, [ask_back], target)
    special = _stopped_or_blocked(intent, target, state)
    data: dict[str, Any] | None = None
    if special:
        intent, data = special
    elif intent in RENDERERS:
        data = _insight(intent, question, target, state)
        if data is None:
            return answer_offline(question, state, book)
    if data is not None:
        lines = RENDERERS[intent](data, lang)
    else:
        asked = intent
        intent, data = _data(intent, question, lang, target, state, book)
        lines = [render(intent, redact_obj(data), lang), *_resume_lines(asked, target, lang)]
    return _reply(question, lang, intent, data, ([chosen_line] if chosen_line else []) + lines, target)


def _full_stage_names(target: dict[str, Any]) -> list[str]:
    """The references ("exp2") as the stages' full names in the target pipeline."""
    from agent.base.pipeline_state import resolve_stage

    status = next((st for st in target["statuses"] if st["pipeline"] == target["pipeline"]), None)
    out = []
    for ref in target["stages"][:2]:
        stage = resolve_stage(status["stages"], ref) if status and status.get("stages") else None
        out.append(stage["stage"] if stage else ref)
    return out


def _reply(question: str, lang: str, intent: str, data: dict[str, Any], lines: list[str],
           target: dict[str, Any]) -> Answer:
    data = redact_obj(data)
    about = _about(intent, data, target, target.get("eval_set"))
    line = _about_line(about, lang)
    text = "\n".join([*lines, *([line] if line and intent != "playbook" else [])])
    data = {**data, "about": about}
    return Answer(question=redact(question), language=lang, intent=intent, text=redact(text),
                  sources=[Source(**s) for s in data.get("sources", []) if isinstance(s, dict)], data=data)
