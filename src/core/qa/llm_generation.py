"""``llm-based`` generation: an OpenAI-compatible Chat Completions endpoint writes the pairs.

The endpoint is ``core.llm.LlmClient`` (``OPENAI_BASE_URL``, ``OPENAI_API_KEY``,
``PALIER_LLM_MODEL``; ``--llm-base-url`` / ``--llm-model`` win over them).

For each section the model receives the section's text and must answer with a JSON array of
``{"question": ..., "answer": ...}`` objects (a fenced ```json block is accepted). Sections whose
reply cannot be parsed are skipped with a warning; if no section yields a pair, generation fails
with the replies' problems.
"""

from __future__ import annotations

import json
import re

from core.llm import LlmClient, LlmError
from core.qa.document import QAPair, Section

PROMPTS = {
    "fr": ("Tu écris des données d'entraînement. À partir du texte fourni, écris exactement {n} paires "
           "question/réponse en français, dont les réponses sont courtes et tirées du texte. Réponds uniquement "
           "par un tableau JSON d'objets {{\"question\": ..., \"answer\": ...}}."),
    "en": ("You write training data. From the given text, write exactly {n} question/answer pairs in English "
           "whose answers are short and taken from the text. Reply with a JSON array of "
           "{{\"question\": ..., \"answer\": ...}} objects only."),
}
TEMPERATURE = 0.7  # varied phrasings are the point of generated training data


def generation_client(base_url: str | None = None, model: str | None = None) -> LlmClient:
    """The endpoint for ``llm-based`` generation; none configured: ``LlmError`` saying what to set."""
    return LlmClient.required(
        base_url, model, purpose="llm-based generation",
        hint=", or pass --llm-base-url/--llm-model (params llm_base_url/llm_model in a pipeline); "
             "rule-based and augmented need no endpoint")


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


def llm_pairs(llm: LlmClient, sections: list[Section], per_section: int,
              language: str = "fr") -> tuple[list[QAPair], list[str]]:
    system = PROMPTS.get(language, PROMPTS["en"]).format(n=per_section)
    pairs: list[QAPair] = []
    warnings: list[str] = []
    for section in sections:
        text = section.body or "\n".join(filter(None, [section.definition] + [f"{k}: {v}" for k, v in section.facts]))
        reply = llm.chat(system, f"# {section.name}\n{text}", temperature=TEMPERATURE)
        try:
            found = parse_pairs(reply)
        except (ValueError, json.JSONDecodeError) as exc:
            warnings.append(f"section {section.name!r}: unusable reply ({exc}): {reply[:120]!r}")
            continue
        pairs += [QAPair(p["question"], p["answer"], section.name, "llm") for p in found[:per_section]]
    if not pairs:
        raise LlmError("the endpoint returned no usable question/answer pair:\n  " + "\n  ".join(warnings))
    return pairs, warnings
