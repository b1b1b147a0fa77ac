"""The one client palier uses for OpenAI-compatible Chat Completions endpoints (OpenAI, vLLM,
Ollama, ``transformers serve``...): the agent's chat and log diagnosis, and ``llm-based``
training-set generation.

Configuration: the ``openai`` SDK's own variables, plus the model name. Arguments (e.g.
``--llm-base-url`` / ``--llm-model``) win over the environment.

    OPENAI_BASE_URL    the endpoint, e.g. http://127.0.0.1:8000/v1; unset: api.openai.com
    OPENAI_API_KEY     the key; a local server usually needs none
    PALIER_LLM_MODEL   the model name the endpoint expects

An LLM is configured when the model is named and an endpoint or a key is given. The former
palier-only names (``PALIER_LLM_BASE_URL``, ``PALIER_LLM_API_KEY``) are no longer read: when one
is set the client refuses to start and names the variable to set instead, so that a
configuration is never silently ignored.

One error type, ``LlmError``: ``misconfigured`` is True when the settings are wrong (a usage
error: say what to set), False when the endpoint failed. Retries and timeouts are the openai
client's own (``max_retries`` with its backoff, ``timeout``). The API key is sent only in the
Authorization header: it is scrubbed from every error message this module raises.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MODEL_ENV = "PALIER_LLM_MODEL"
BASE_URL_ENV = "OPENAI_BASE_URL"
API_KEY_ENV = "OPENAI_API_KEY"
# Names older palier versions read: a set one is an error naming its replacement.
RETIRED_ENV = {"PALIER_LLM_BASE_URL": BASE_URL_ENV, "PALIER_LLM_API_KEY": API_KEY_ENV}

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_RETRIES = 1
NO_KEY = "not-needed"  # the openai client insists on a key; local servers accept any
MASK = "[REDACTED]"

HOW_TO_CONFIGURE = (f"set {MODEL_ENV} (the model name) and {BASE_URL_ENV} (an OpenAI-compatible endpoint, e.g. "
                    f"http://127.0.0.1:8000/v1) or {API_KEY_ENV} (api.openai.com)")


class LlmError(RuntimeError):
    """An LLM could not be used: ``misconfigured`` (what to set is in the message) or the call failed."""

    def __init__(self, message: str, *, misconfigured: bool = False):
        super().__init__(message)
        self.misconfigured = misconfigured


def _check_retired(env: Mapping[str, str]) -> None:
    stale = [(old, new) for old, new in RETIRED_ENV.items() if env.get(old)]
    if stale:
        raise LlmError("; ".join(f"{old} is no longer read: set {new} instead" for old, new in stale),
                       misconfigured=True)


@dataclass(frozen=True)
class LlmClient:
    """One endpoint and model. ``chat`` / ``complete`` raise ``LlmError`` (key scrubbed)."""

    model: str
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)  # never in a repr, a log line or an error
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_retries: int = DEFAULT_MAX_RETRIES

    @classmethod
    def from_env(cls, base_url: str | None = None, model: str | None = None, api_key: str | None = None,
                 environ: Mapping[str, str] | None = None, **options: Any) -> LlmClient | None:
        """The configured client, or None when no LLM is configured (no model, or neither an
        endpoint nor a key). Raises ``LlmError(misconfigured=True)`` for a retired variable."""
        env = os.environ if environ is None else environ
        _check_retired(env)
        model = model or env.get(MODEL_ENV) or None
        base_url = base_url or env.get(BASE_URL_ENV) or None
        api_key = api_key or env.get(API_KEY_ENV) or None
        if not model or not (base_url or api_key):
            return None
        return cls(model=model, base_url=base_url, api_key=api_key, **options)

    @classmethod
    def required(cls, base_url: str | None = None, model: str | None = None, api_key: str | None = None,
                 purpose: str = "this", hint: str = "", **options: Any) -> LlmClient:
        """Like ``from_env``, but no configuration is an error saying what to set (``hint``: the
        caller's own ways, e.g. its command-line options)."""
        client = cls.from_env(base_url, model, api_key, **options)
        if client is None:
            raise LlmError(f"{purpose} needs an OpenAI-compatible LLM: {HOW_TO_CONFIGURE}{hint}", misconfigured=True)
        return client

    def scrub(self, text: str) -> str:
        """``text`` without this client's API key."""
        return text.replace(self.api_key, MASK) if self.api_key and len(self.api_key) >= 4 else text

    def _openai(self) -> Any:
        try:
            from openai import OpenAI
        except ImportError as exc:  # pragma: no cover - openai is a dependency
            raise LlmError("the openai package is not installed") from exc
        return OpenAI(base_url=self.base_url, api_key=self.api_key or NO_KEY, timeout=self.timeout_s,
                      max_retries=self.max_retries)

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None,
                 temperature: float | None = None) -> Any:
        """One Chat Completions call; returns the first choice's message (content, tool_calls)."""
        options: dict[str, Any] = {"tools": tools} if tools else {}
        if temperature is not None:
            options["temperature"] = temperature
        client = self._openai()
        try:
            reply = client.chat.completions.create(model=self.model, messages=messages, **options)
        except Exception as exc:  # noqa: BLE001 - any transport or API error means "no LLM answer"
            where = self.base_url or "api.openai.com"
            raise LlmError(self.scrub(f"the endpoint {where} (model {self.model}) failed: "
                                      f"{type(exc).__name__}: {exc}")) from None
        if not reply.choices:
            raise LlmError(f"the endpoint returned no choices (model {self.model})")
        return reply.choices[0].message

    def chat(self, system: str, user: str, temperature: float | None = None) -> str:
        """The reply's text to one system + user exchange ("" when the model says nothing)."""
        message = self.complete([{"role": "system", "content": system}, {"role": "user", "content": user}],
                                temperature=temperature)
        return message.content or ""
