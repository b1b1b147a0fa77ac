"""Documents -> sections (name, definition, key facts, raw text).

Markdown (``.md``, ``.markdown``, ``.txt``):
- every heading opens a section named after it; when the document has level-2 headings, its
  level-1 heading is the document title, not a section;
- the section's definition is the first sentence of its first paragraph;
- list items ``- **Key** : value`` / ``- Key: value`` are key facts;
- a paragraph line ``**Term** : explanation`` is a glossary definition (a section of its own).

JSON Lines (``.jsonl``): one section per object. The name is the first of ``name``, ``title``,
``nom``, ``application``, ``id``; the definition the first sentence of ``description``,
``definition``, ``summary``, ``content`` or ``text``; every other string or number field is a key fact.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from core.formats.jsonl import DatasetError, read_jsonl

NAME_KEYS = ("name", "title", "nom", "application", "id")
TEXT_KEYS = ("description", "definition", "summary", "content", "text")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FACT = re.compile(r"^\s*[-*+]\s+(?:\*\*(?P<k1>[^*]+?)\*\*|(?P<k2>[^:*]{1,60}?))\s*:\s*(?P<v>.+?)\s*$")
_GLOSSARY = re.compile(r"^\s*\*\*(?P<term>[^*]+?)\*\*\s*:\s*(?P<v>.+?)\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-ZÀ-Ý«\"])")


@dataclass(frozen=True)
class QAPair:
    """A question/answer pair drawn from one section (``kind``: definition | fact | llm)."""

    question: str
    answer: str
    section: str
    kind: str
    key: str = ""


@dataclass
class Section:
    name: str
    definition: str | None = None
    facts: list[tuple[str, str]] = field(default_factory=list)
    body: str = ""

    @property
    def useful(self) -> bool:
        return bool(self.definition or self.facts)


def first_sentence(text: str) -> str:
    text = " ".join(text.split())
    return _SENTENCE_END.split(text, maxsplit=1)[0].strip()


def _clean(text: str) -> str:
    text = re.sub(r"\*\*(.+?)\*\*", r"\1", text)
    text = re.sub(r"(?<!\w)[*_](.+?)[*_](?!\w)", r"\1", text)
    text = re.sub(r"`(.+?)`", r"\1", text)
    text = re.sub(r"\[(.+?)\]\([^)]*\)", r"\1", text)
    return " ".join(text.split())


def parse_markdown(text: str) -> tuple[str | None, list[Section]]:
    lines = text.splitlines()
    levels = [len(m.group(1)) for m in (_HEADING.match(l) for l in lines) if m]
    title_level = 1 if levels.count(1) >= 1 and any(lv > 1 for lv in levels) else 0
    title: str | None = None
    sections: list[Section] = []
    current: Section | None = None
    paragraph: list[str] = []
    body: list[str] = []
    glossary_entries: list[Section] = []  # listed after the section that holds them

    def flush_paragraph() -> None:
        nonlocal paragraph
        if current is not None and paragraph and current.definition is None:
            current.definition = first_sentence(_clean(" ".join(paragraph)))
        paragraph = []

    def close() -> None:
        flush_paragraph()
        if current is not None:
            current.body = "\n".join(body).strip()
            sections.append(current)
        sections.extend(glossary_entries)
        glossary_entries.clear()

    for line in lines:
        heading = _HEADING.match(line)
        if heading:
            close()
            body = []
            level, name = len(heading.group(1)), _clean(heading.group(2))
            if level == title_level:
                title, current = name, None
            else:
                current = Section(name=name)
            continue
        if current is None:
            continue
        body.append(line)
        if not line.strip():
            flush_paragraph()
            continue
        fact = _FACT.match(line)
        if fact:
            flush_paragraph()
            key = _clean(fact.group("k1") or fact.group("k2") or "")
            current.facts.append((key, _clean(fact.group("v"))))
            continue
        glossary = _GLOSSARY.match(line)
        if glossary:
            flush_paragraph()
            term, value = _clean(glossary.group("term")), _clean(glossary.group("v"))
            glossary_entries.append(Section(name=term, definition=first_sentence(value), body=value))
            continue
        if re.match(r"^\s*([-*+]|\d+\.)\s+", line):
            flush_paragraph()
            continue
        paragraph.append(line.strip())
    close()
    return title, [s for s in sections if s.useful]


def parse_jsonl_document(path: Path) -> tuple[str | None, list[Section]]:
    sections: list[Section] = []
    problems: list[tuple[int, str]] = []
    for line, obj in read_jsonl(path):
        if isinstance(obj, DatasetError):
            problems.extend(obj.problems)
            continue
        if not isinstance(obj, dict):
            problems.append((line, f"expected a JSON object, got {type(obj).__name__}"))
            continue
        name_key = next((k for k in NAME_KEYS if isinstance(obj.get(k), (str, int)) and str(obj[k]).strip()), None)
        if name_key is None:
            problems.append((line, f"no name: add one of {', '.join(NAME_KEYS)}"))
            continue
        text_key = next((k for k in TEXT_KEYS if isinstance(obj.get(k), str) and obj[k].strip()), None)
        facts = [(k, _clean(str(v))) for k, v in obj.items()
                 if k not in (name_key, text_key) and isinstance(v, (str, int, float)) and not isinstance(v, bool)
                 and str(v).strip()]
        section = Section(name=str(obj[name_key]).strip(),
                          definition=first_sentence(_clean(obj[text_key])) if text_key else None,
                          facts=facts, body=json.dumps(obj, ensure_ascii=False))
        if section.useful:
            sections.append(section)
    if problems:
        raise DatasetError(path, problems, "one JSON object a line, e.g. {\"name\": \"ORCHIS\", \"description\": \"...\", \"responsable\": \"...\"}")
    return None, sections


def parse_document(path: str | Path) -> tuple[str | None, list[Section]]:
    """(title, sections) of a markdown or JSON Lines document."""
    p = Path(path)
    if not p.is_file():
        raise DatasetError(p, [(0, "document not found")], "give a markdown (.md) or JSON Lines (.jsonl) file")
    if p.suffix.lower() == ".jsonl":
        title, sections = parse_jsonl_document(p)
    else:
        title, sections = parse_markdown(p.read_text(encoding="utf-8-sig"))
    if not sections:
        raise DatasetError(p, [(0, "no section with a definition or key facts")],
                           "use headings (## Name), a first paragraph, and '- **Key** : value' items")
    return title, sections
