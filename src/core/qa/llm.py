"""``llm-based`` generation through any OpenAI-compatible Chat Completions endpoint.

Configuration (arguments win over the environment):

    PALIER_LLM_BASE_URL   e.g. http://127.0.0.1:8000/v1 (vLLM, Ollama, transformers serve, OpenAI)
    PALIER_LLM_MODEL      the model name the endpoint expects
    PALIER_LLM_API_KEY    optional (local servers accept anything; OPENAI_API_KEY is read too)

For each section the model receives the section's text and must answer with a JSON array of
``{"question": ..., "answer": ...}`` objects (a fenced ```json block is accepted). Sections whose
reply cannot be parsed are skipped with a warning; if no section yields a pair, generation fails
with the replies' problems.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any

from core.qa.document import Section

PROMPTS = {
    "fr": ("Tu écris des données d'entraînement. À partir du texte fourni, écris exactement {n} paires "
           "question/réponse en français, dont les réponses sont courtes et tirées du texte. Réponds uniquement "
           "par un tableau JSON d'objets {{\"question\": ..., \"answer\": ...}}."),
    "en": ("You write training data. From the given text, write exactly {n} question/answer pairs in English "
           "whose answers are short and taken from the text. Reply with a JSON array of "
           "{{\"question\": ..., \"answer\": ...}} objects only."),
}


class LlmConfigError(ValueError):
    pass


class LlmGenerationError(RuntimeError):
    pass


@dataclass(frozen=True)
class LlmClient:
    base_url: str
    model: str
    api_key: str = "not-needed"
    temperature: float = 0.7
    timeout_s: float = 60.0
    max_retries: int = 1

    @classmethod
    def from_settings(cls, base_url: str | None = None, model: str | None = None, api_key: str | None = None,
                      **kwargs: Any) -> LlmClient:
        base_url = base_url or os.environ.get("PALIER_LLM_BASE_URL") or os.environ.get("OPENAI_BASE_URL")
        model = model or os.environ.get("PALIER_LLM_MODEL")
        api_key = api_key or os.environ.get("PALIER_LLM_API_KEY") or os.environ.get("OPENAI_API_KEY") or "not-needed"
        missing = [name for name, value in (("base URL", base_url), ("model", model)) if not value]
        if missing:
            raise LlmConfigError(
                f"llm-based generation needs an OpenAI-compatible endpoint: missing {' and '.join(missing)}. "
                "Set PALIER_LLM_BASE_URL (e.g. http://127.0.0.1:8000/v1) and PALIER_LLM_MODEL, or pass "
                "--llm-base-url/--llm-model (params llm_base_url/llm_model in a pipeline); "
                "rule-based and augmented need no endpoint")
        return cls(base_url=base_url, model=model, api_key=api_key, **kwargs)

    def chat(self, system: str, user: str) -> str:
        from openai import OpenAI, OpenAIError

        client = OpenAI(base_url=self.base_url, api_key=self.api_key, timeout=self.timeout_s, max_retries=self.max_retries)
        try:
            response = client.chat.completions.create(
                model=self.model, temperature=self.temperature,
                messages=[{"role": "system", "content": system}, {"role": "user", "content": user}])
        except OpenAIError as exc:
            raise LlmGenerationError(f"the endpoint {self.base_url} (model {self.model}) failed: "
                                     f"{type(exc).__name__}: {exc}") from None
        content = response.choices[0].message.content if response.choices else None
        return content or ""


def parse_pairs(reply: str) -> list[dict[str, str]]:
    """A JSON array of {question, answer} objects from an LLM reply (fences and prose tolerated)."""
    fenced = re.search(r"```(?:json)?\s*(.+?)```", reply, flags=re.S)
    text = fenced.group(1) if fenced else reply
    start, end = text.find("["), text.rfind("]")
    if start < 0 or end <= start:
        raise ValueError("no JSON array in the reply")
    data = json.loads(text[start : end + 1])
    if not isinstance(data, list):
        raise ValueError("the JSON is not an array")
    pairs = []
    for item in data:
        if isinstance(item, dict):
            q, a = item.get("question"), item.get("answer")
            if isinstance(q, str) and isinstance(a, str) and q.strip() and a.strip():
                pairs.append({"question": q.strip(), "answer": a.strip()})
    if not pairs:
        raise ValueError("the array holds no {question, answer} object")
    return pairs


def llm_pairs(llm: LlmClient, sections: list[Section], per_section: int, language: str = "fr"):
    from core.qa.generate import QAPair

    system = PROMPTS.get(language, PROMPTS["en"]).format(n=per_section)
    pairs: list[QAPair] = []
    warnings: list[str] = []
    for section in sections:
        text = section.body or "\n".join(filter(None, [section.definition] + [f"{k}: {v}" for k, v in section.facts]))
        reply = llm.chat(system, f"# {section.name}\n{text}")
        try:
            found = parse_pairs(reply)
        except (ValueError, json.JSONDecodeError) as exc:
            warnings.append(f"section {section.name!r}: unusable reply ({exc}): {reply[:120]!r}")
            continue
        pairs += [QAPair(p["question"], p["answer"], section.name, "llm") for p in found[:per_section]]
    if not pairs:
        raise LlmGenerationError("the endpoint returned no usable question/answer pair:\n  " + "\n  ".join(warnings))
    return pairs, warnings
