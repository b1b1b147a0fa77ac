"""Optional OpenAI-compatible LLM (the ``openai`` client against OPENAI_BASE_URL).

Configured when PALIER_LLM_MODEL is set and OPENAI_API_KEY or OPENAI_BASE_URL is. Everything
sent is redacted first (questions, tool results, log excerpts) and so is everything
returned; an LLM answer is always labelled ``source: llm`` and never carries a remedy.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.redact import redact, redact_obj

DEFAULT_TIMEOUT_S = 60.0
MAX_TOOL_ROUNDS = 5
LOG_TAIL_LINES = 150


class LLMError(RuntimeError):
    pass


@dataclass(frozen=True)
class LLMSettings:
    model: str
    api_key: str | None
    base_url: str | None


def settings(environ: dict[str, str] | None = None) -> LLMSettings | None:
    env = os.environ if environ is None else environ
    model = env.get("PALIER_LLM_MODEL") or None
    key = env.get("OPENAI_API_KEY") or None
    base = env.get("OPENAI_BASE_URL") or None
    if not model or not (key or base):
        return None
    return LLMSettings(model=model, api_key=key, base_url=base)


def configured() -> bool:
    return settings() is not None


def _client(s: LLMSettings):  # noqa: ANN202 - openai is imported lazily
    try:
        from openai import OpenAI
    except ImportError as exc:  # pragma: no cover - openai is a dependency
        raise LLMError("the openai package is not installed") from exc
    # A local OpenAI-compatible server may need no key; the client insists on one.
    return OpenAI(api_key=s.api_key or "no-key", base_url=s.base_url, timeout=DEFAULT_TIMEOUT_S, max_retries=0)


@dataclass
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    run: Callable[..., dict[str, Any]]

    def schema(self) -> dict[str, Any]:
        return {"type": "function",
                "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}


def chat_with_tools(system: str, user: str, tools: list[Tool], s: LLMSettings | None = None
                    ) -> tuple[str, list[dict[str, Any]]]:
    """Run the tool-calling loop; returns (redacted final text, tool results in call order)."""
    s = s or settings()
    if s is None:
        raise LLMError("no LLM configured (PALIER_LLM_MODEL and OPENAI_API_KEY or OPENAI_BASE_URL)")
    client = _client(s)
    by_name = {t.name: t for t in tools}
    messages: list[dict[str, Any]] = [{"role": "system", "content": redact(system)},
                                      {"role": "user", "content": redact(user)}]
    results: list[dict[str, Any]] = []
    for _ in range(MAX_TOOL_ROUNDS):
        try:
            extra = {"tools": [t.schema() for t in tools]} if tools else {}
            reply = client.chat.completions.create(model=s.model, messages=messages, **extra)
        except Exception as exc:  # noqa: BLE001 - any transport/API error means "no LLM answer"
            raise LLMError(redact(f"LLM call failed: {type(exc).__name__}: {exc}")) from None
        if not reply.choices:
            raise LLMError("LLM returned no choices")
        msg = reply.choices[0].message
        calls = msg.tool_calls or []
        if not calls:
            return redact(msg.content or ""), results
        messages.append({"role": "assistant", "content": msg.content or "",
                         "tool_calls": [{"id": c.id, "type": "function",
                                         "function": {"name": c.function.name, "arguments": c.function.arguments}}
                                        for c in calls]})
        for call in calls:
            tool = by_name.get(call.function.name)
            try:
                args = json.loads(call.function.arguments or "{}")
                output = tool.run(**args) if tool else {"error": f"unknown tool {call.function.name!r}"}
            except Exception as exc:  # noqa: BLE001 - a bad tool call is reported to the model
                output = {"error": f"{type(exc).__name__}: {exc}"}
            output = redact_obj(output)
            results.append({"tool": call.function.name, "arguments": redact_obj(args if tool else {}), "output": output})
            messages.append({"role": "tool", "tool_call_id": call.id,
                             "content": json.dumps(output, ensure_ascii=False, default=str)[:20000]})
    raise LLMError(f"no final answer after {MAX_TOOL_ROUNDS} tool rounds")


_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def diagnose_unknown(log_text: str, heartbeat: Any, book: Any, s: LLMSettings | None = None) -> Any:
    """Ask the LLM about a log the rules could not classify. Returns a Diagnosis labelled
    ``source: llm`` (kind restricted to the fixed list, evidence restricted to lines that
    are really in the log, no remedy), or None if the answer is unusable."""
    from agent.diagnose import Diagnosis
    from agent.playbook_models import KINDS

    s = s or settings()
    if s is None:
        return None
    known = "\n".join(f"- {f.id} ({f.kind}): {f.title}" for f in book.failures)
    tail = "\n".join((log_text or "").splitlines()[-LOG_TAIL_LINES:])
    system = (
        "You diagnose failed or stalled fine-tuning runs for palier. Answer with ONE JSON object: "
        '{"kind": one of ' + json.dumps(list(KINDS)) + ', "failure_id": a known failure id or null, '
        '"confidence": 0..1, "evidence": [exact log lines], "fix": "what to do"}. '
        "Prefer the final exception over warnings. Known failures from the playbooks:\n" + known
    )
    hb = heartbeat.describe() if heartbeat is not None else "no heartbeat facts"
    text, _ = chat_with_tools(system, f"{hb}\n\nLog tail:\n{tail}", tools=[], s=s)
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
    return Diagnosis(kind=kind, failure_id=failure_id, confidence=max(confidence, 0.0), evidence=evidence,
                     fix=redact(str(data.get("fix", "")))[:2000], remedy=None, source="llm")
