"""The chat's answer: text, language, intent, sources, and the data it was written from."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from agent.base.redact import redact


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
