"""Question/answer pairs from document sections, then chat examples.

Definitions are answered with the definition sentence; key facts with the value alone (short
answers keep exact match and token F1 meaningful). Known keys (responsable, hébergement,
technologie, mise en service, utilisateurs, ...) have natural question templates; any other
key gets a generic template naming it. ``rule-based`` uses each item's first template,
``augmented`` all of them; ``count`` then samples (seeded) when more pairs exist.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Literal

from core.formats.messages import ChatExample, example_id
from core.qa.document import QAPair, Section

Method = Literal["rule-based", "augmented", "llm-based"]
METHODS: tuple[str, ...] = ("rule-based", "augmented", "llm-based")

SYSTEM_PROMPTS = {
    "fr": "Tu es un assistant qui répond aux questions sur {topic}.",
    "en": "You are an assistant that answers questions about {topic}.",
}
DEFAULT_TOPIC = {"fr": "le catalogue des applications", "en": "the application catalogue"}

DEFINITION_TEMPLATES = {
    "fr": ["Qu'est-ce que {n} ?", "À quoi sert {n} ?", "Peux-tu me présenter {n} ?",
           "Que fait {n} ?", "Décris {n} en une phrase.", "{n}, c'est quoi ?"],
    "en": ["What is {n}?", "What is {n} used for?", "Can you describe {n}?",
           "What does {n} do?", "Describe {n} in one sentence.", "Tell me about {n}."],
}
FACT_TEMPLATES: dict[str, dict[str, list[str]]] = {
    "fr": {
        "responsable": ["Qui est le responsable de {n} ?", "Qui pilote {n} ?", "Quel est le nom du responsable de {n} ?",
                        "À qui s'adresser pour {n} ?", "{n} : qui en est responsable ?"],
        "hebergement": ["Où est hébergée {n} ?", "Qui héberge {n} ?", "Sur quelle infrastructure tourne {n} ?",
                        "Quel est l'hébergement de {n} ?", "{n} : où est-elle hébergée ?"],
        "technologie": ["Quelle est la technologie de {n} ?", "Avec quoi {n} est-elle développée ?",
                        "Sur quelle pile technique repose {n} ?", "En quelle technologie est écrite {n} ?",
                        "{n} : quelle technologie ?"],
        "mise en service": ["Quand {n} a-t-elle été mise en service ?", "Depuis quand {n} est-elle en service ?",
                            "Quelle est l'année de mise en service de {n} ?", "En quelle année {n} a-t-elle démarré ?",
                            "{n} : date de mise en service ?"],
        "utilisateurs": ["Combien d'utilisateurs a {n} ?", "Qui utilise {n} ?", "Quels sont les utilisateurs de {n} ?",
                         "Pour qui est faite {n} ?", "{n} : combien d'utilisateurs ?"],
        "editeur": ["Qui édite {n} ?", "Quel est l'éditeur de {n} ?", "Qui a développé {n} ?", "{n} : quel éditeur ?"],
        "version": ["Quelle est la version de {n} ?", "En quelle version est {n} ?", "{n} : quelle version ?"],
        "statut": ["Quel est le statut de {n} ?", "Où en est {n} ?", "{n} : quel statut ?"],
        "domaine": ["Quel est le domaine de {n} ?", "À quel domaine appartient {n} ?", "{n} : quel domaine ?"],
        "*": ["Quelle est la valeur « {k} » de {n} ?", "Pour {n}, que vaut « {k} » ?", "{n} : {k} ?",
              "Donne-moi « {k} » pour {n}."],
    },
    "en": {
        "owner": ["Who owns {n}?", "Who is responsible for {n}?", "Who runs {n}?", "{n}: who is the owner?"],
        "responsable": ["Who is responsible for {n}?", "Who runs {n}?", "Who is the owner of {n}?", "{n}: who is in charge?"],
        "hosting": ["Where is {n} hosted?", "Who hosts {n}?", "What infrastructure does {n} run on?", "{n}: hosting?"],
        "technology": ["What technology is {n} built with?", "What is the stack of {n}?", "What is {n} written in?",
                       "{n}: which technology?"],
        "users": ["How many users does {n} have?", "Who uses {n}?", "{n}: how many users?"],
        "*": ["What is the {k} of {n}?", "For {n}, what is the {k}?", "{n}: {k}?", "Give me the {k} of {n}."],
    },
}
KEY_ALIASES = {"hébergement": "hebergement", "technologies": "technologie", "techno": "technologie",
               "date de mise en service": "mise en service", "mise en production": "mise en service",
               "éditeur": "editeur", "nombre d'utilisateurs": "utilisateurs", "tech stack": "technology",
               "stack": "technology", "hosted by": "hosting"}


def _key(text: str) -> str:
    lowered = " ".join(text.lower().split())
    lowered = KEY_ALIASES.get(lowered, lowered)
    stripped = "".join(c for c in unicodedata.normalize("NFKD", lowered) if not unicodedata.combining(c))
    return KEY_ALIASES.get(stripped, stripped)


@dataclass
class GenerationReport:
    method: str
    sections: int
    available: int
    kept: int
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.method, "sections": self.sections, "available": self.available,
                "kept": self.kept, "warnings": self.warnings}


def _templates_for(language: str) -> tuple[list[str], dict[str, list[str]]]:
    if language not in DEFINITION_TEMPLATES:
        raise ValueError(f"language {language!r} has no question templates; use one of {sorted(DEFINITION_TEMPLATES)}")
    return DEFINITION_TEMPLATES[language], FACT_TEMPLATES[language]


def pairs_for(section: Section, language: str = "fr", all_templates: bool = False) -> list[QAPair]:
    definitions, facts = _templates_for(language)
    pairs: list[QAPair] = []
    if section.definition:
        for t in definitions if all_templates else definitions[:1]:
            pairs.append(QAPair(t.format(n=section.name), section.definition, section.name, "definition"))
    for key, value in section.facts:
        templates = facts.get(_key(key)) or facts["*"]
        for t in templates if all_templates else templates[:1]:
            question = t.format(n=section.name, k=key.lower() if language == "en" else key)
            pairs.append(QAPair(question, value, section.name, "fact", key))
    return pairs


def _dedupe(pairs: list[QAPair]) -> list[QAPair]:
    seen: set[tuple[str, str]] = set()
    out = []
    for p in pairs:
        if (p.question, p.answer) not in seen:
            seen.add((p.question, p.answer))
            out.append(p)
    return out


def generate_training(
    sections: list[Section],
    method: str = "rule-based",
    count: int | None = None,
    seed: int = 42,
    language: str = "fr",
    system: str | None = None,
    topic: str | None = None,
    llm: Any = None,
) -> tuple[list[ChatExample], GenerationReport]:
    """Chat examples (system, user question, assistant answer) and a report.

    ``count`` None or 0 keeps every pair; a smaller count samples with ``seed``; a larger one
    keeps them all and says so in the report (rule-based has one pair per fact: use augmented
    for more). ``llm`` is a ``core.llm.LlmClient`` for ``llm-based``.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    warnings: list[str] = []
    if method == "llm-based":
        from core.qa.llm_generation import llm_pairs

        if llm is None:
            raise ValueError("method llm-based needs an OpenAI-compatible endpoint (core.llm.LlmClient)")
        per_section = max(1, -(-count // len(sections))) if count else 5
        pairs, llm_warnings = llm_pairs(llm, sections, per_section, language)
        warnings += llm_warnings
    else:
        pairs = [p for s in sections for p in pairs_for(s, language, all_templates=method == "augmented")]
    pairs = _dedupe(pairs)
    available = len(pairs)
    if count and count < available:
        pairs = random.Random(seed).sample(pairs, count)
    elif count and count > available:
        warnings.append(f"asked for {count} examples but the document yields {available} with {method}"
                        + (" (augmented gives several phrasings per fact)" if method == "rule-based" else ""))
    prompt = system if system is not None else SYSTEM_PROMPTS.get(language, SYSTEM_PROMPTS["en"]).format(
        topic=topic or DEFAULT_TOPIC.get(language, DEFAULT_TOPIC["en"]))
    examples = []
    for p in pairs:
        messages = ([{"role": "system", "content": prompt}] if prompt else []) + [
            {"role": "user", "content": p.question}, {"role": "assistant", "content": p.answer}]
        examples.append(ChatExample(example_id(messages), messages))
    return examples, GenerationReport(method, len(sections), available, len(examples), warnings)
