"""One computed next step (agent.chat.tools.next_steps) as a sentence, per step kind (pure)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agent.chat.format import num, row_text
from agent.chat.words import W

StepText = Callable[[dict[str, Any], dict[str, str], str, str], str]


def _cite(step: dict[str, Any], key: str = "cite") -> str:
    return f" ({step[key]})" if step.get(key) else ""


def _preflight(step: dict[str, Any], w: dict[str, str], lang: str, file: str) -> str:
    key = "step_autofix" if step.get("autofixed") else ("step_preflight" if step.get("blocking") else "step_warn")
    general = (step.get("answer") or {}).get(lang)
    if lang == "en" and general:  # the playbook's message is French; its answer has an English form
        text = w[key].format(rule=step["rule_id"], message=general, fix=w["here"].format(message=step["message"]))
    else:
        text = w[key].format(rule=step["rule_id"], message=step["message"], fix=step["fix"])
    if step.get("changes"):
        text += " [" + "; ".join(step["changes"]) + "]"
    return text + _cite(step, "playbook")


def _fix_failure(step: dict[str, Any], w: dict[str, str], lang: str, file: str) -> str:
    if step.get("fix"):
        text = w["step_fix"].format(stage=step["stage"], kind=step.get("failure_kind") or "—", fix=step["fix"])
        text += _cite(step)
    else:
        text = w["step_fix_unknown"].format(stage=step["stage"])
    if step.get("remedy"):
        text += " " + w["step_remedy"].format(remedy=step["remedy"])
    return text


def _interrupted(step: dict[str, Any], w: dict[str, str], lang: str, file: str) -> str:
    pid = f", pid {step['pid']}" if step.get("pid") else ""
    return w["step_interrupted"].format(run=step.get("run_name"), stage=step.get("stage"), pid=pid)


def _previous_failure(step: dict[str, Any], w: dict[str, str], lang: str, file: str) -> str:
    return w["step_previous"].format(stage=step["stage"], kind=step.get("failure_kind") or "—",
                                     fix=step.get("fix") or "—") + _cite(step)


def _relaunch(step: dict[str, Any], w: dict[str, str], lang: str, file: str) -> str:
    reused = f" ({', '.join(step['reused'])})" if step.get("reused") else ""
    return w["step_relaunch"].format(command=f"palier run {file}", reused=reused)


def _running(step: dict[str, Any], w: dict[str, str], lang: str, file: str) -> str:
    progress = step.get("progress") or {}
    shown = f" ({', '.join(f'{k}={num(v)}' for k, v in sorted(progress.items())[:3])})" if progress else ""
    return w["step_running"].format(stage=step.get("stage") or "—", progress=shown)


STEP_TEXT: dict[str, StepText] = {
    "preflight": _preflight,
    "invalid_config": lambda step, w, lang, file: w["step_invalid"].format(file=file, error=step["error"]),
    "fix_failure": _fix_failure,
    "interrupted": _interrupted,
    "previous_failure": _previous_failure,
    "relaunch": _relaunch,
    "gate_rejected": lambda step, w, lang, file: w["step_gate"].format(
        stage=step["stage"], row=row_text(step.get("row"), lang)),
    "candidate": lambda step, w, lang, file: w["step_candidate"].format(
        stage=step["stage"], row=row_text(step.get("row"), lang), output=step.get("output_name") or step["stage"]),
    "partial": lambda step, w, lang, file: w["step_partial"].format(
        done=len(step.get("done") or []), planned=step.get("planned") or "?"),
    "running": _running,
    "succeeded": lambda step, w, lang, file: w["step_succeeded"].format(
        row=row_text(step.get("row"), lang), output=step.get("output_name") or step.get("stage")),
}


def step_text(step: dict[str, Any], file: str, pipeline: str | None, lang: str) -> str:
    """``file``: the pipeline file as shown to the user; any other kind is the first launch."""
    w = W[lang]
    write = STEP_TEXT.get(step["kind"])
    if write is None:
        return w["step_launch"].format(file=file, pipeline=pipeline)
    return write(step, w, lang, file)
