"""The agent's use of the LLM (``core.llm.LlmClient``): a tool-calling loop for the chat, and
a second opinion on a log the rules could not classify.

Configured as ``core.llm`` says (``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` + ``PALIER_LLM_MODEL``).
Everything sent is redacted first (questions, tool results, log excerpts) and so is everything
returned; an LLM answer is always labelled ``source: llm`` and never carries a remedy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.llm import LlmClient, LlmError

from agent.playbooks.models import KINDS
from agent.base.redact import redact, redact_obj

MAX_TOOL_ROUNDS = 5
LOG_TAIL_LINES = 150
TOOL_OUTPUT_CHARS = 20000


def configured_client() -> LlmClient | None:
    """The client the environment configures, or None (``LlmError`` for a retired variable)."""
    return LlmClient.from_env()


@dataclass
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    run: Callable[..., dict[str, Any]]

    def schema(self) -> dict[str, Any]:
        return {"type": "function",
                "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}


def _call_tool(tool: Tool | None, name: str, arguments: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(arguments, redacted output) of one tool call; a bad call is reported to the model."""
    args: dict[str, Any] = {}
    try:
        args = json.loads(arguments or "{}")
        output = tool.run(**args) if tool else {"error": f"unknown tool {name!r}"}
    except Exception as exc:  # noqa: BLE001 - a bad tool call is reported to the model
        output = {"error": f"{type(exc).__name__}: {exc}"}
    return (args if tool else {}), redact_obj(output)


def chat_with_tools(client: LlmClient, system: str, user: str, tools: list[Tool]
                    ) -> tuple[str, list[dict[str, Any]]]:
    """Run the tool-calling loop; returns (redacted final text, tool results in call order)."""
    by_name = {t.name: t for t in tools}
    schemas = [t.schema() for t in tools]
    messages: list[dict[str, Any]] = [{"role": "system", "content": redact(system)},
                                      {"role": "user", "content": redact(user)}]
    results: list[dict[str, Any]] = []
    for _ in range(MAX_TOOL_ROUNDS):
        try:
            msg = client.complete(messages, tools=schemas)
        except LlmError as exc:
            raise LlmError(redact(str(exc)), misconfigured=exc.misconfigured) from None
        calls = msg.tool_calls or []
        if not calls:
            return redact(msg.content or ""), results
        messages.append({"role": "assistant", "content": msg.content or "",
                         "tool_calls": [{"id": c.id, "type": "function",
                                         "function": {"name": c.function.name, "arguments": c.function.arguments}}
                                        for c in calls]})
        for call in calls:
            args, output = _call_tool(by_name.get(call.function.name), call.function.name, call.function.arguments)
            results.append({"tool": call.function.name, "arguments": redact_obj(args), "output": output})
            messages.append({"role": "tool", "tool_call_id": call.id,
                             "content": json.dumps(output, ensure_ascii=False, default=str)[:TOOL_OUTPUT_CHARS]})
    raise LlmError(f"no final answer after {MAX_TOOL_ROUNDS} tool rounds")


_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def _diagnosis_prompt(book: Any) -> str:
    known = "\n".join(f"- {f.id} ({f.kind}): {f.title}" for f in book.failures)
    return (
        "You diagnose failed or stalled fine-tuning runs for palier. Answer with ONE JSON object: "
        '{"kind": one of ' + json.dumps(list(KINDS)) + ', "failure_id": a known failure id or null, '
        '"confidence": 0..1, "evidence": [exact log lines], "fix": "what to do"}. '
        "Prefer the final exception over warnings. Known failures from the playbooks:\n" + known
    )


def diagnose_unknown(client: LlmClient, log_text: str, heartbeat: Any, book: Any) -> dict[str, Any] | None:
    """Ask the LLM about a log the rules could not classify. Returns the fields of a diagnosis
    (kind restricted to the fixed list, evidence restricted to lines that are really in the log,
    confidence at most 0.6), or None if the answer is unusable."""
    tail = "\n".join((log_text or "").splitlines()[-LOG_TAIL_LINES:])
    hb = heartbeat.describe() if heartbeat is not None else "no heartbeat facts"
    text, _ = chat_with_tools(client, _diagnosis_prompt(book), f"{hb}\n\nLog tail:\n{tail}", tools=[])
    match = _JSON_OBJECT.search(text or "")
    if not match:
        return None
    try:
        data = json.loads(match.group(0))
    except json.JSONDecodeError:
        return None
    kind = data.get("kind") if data.get("kind") in KINDS else "unknown"
    failure_id = data.get("failure_id") if book.failure(str(data.get("failure_id"))) else None
    lines = {ln.strip() for ln in (log_text or "").splitlines()}
    evidence = [redact(str(e))[:300] for e in data.get("evidence") or [] if str(e).strip() in lines][:6]
    try:
        confidence = min(float(data.get("confidence", 0.3)), 0.6)
    except (TypeError, ValueError):
        confidence = 0.3
    return {"kind": kind, "failure_id": failure_id, "confidence": max(confidence, 0.0), "evidence": evidence,
            "fix": redact(str(data.get("fix", "")))[:2000]}
