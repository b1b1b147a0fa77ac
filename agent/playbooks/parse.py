"""Playbook Markdown -> rules, known failures, next steps and sections (parsing is pure;
``load_playbooks`` is the only function that reads files)."""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from agent.playbooks.models import KnownFailure, NextStep, Rule, Section, SourceRef

BLOCK_TAGS = {"palier-rule": Rule, "palier-failure": KnownFailure, "palier-next": NextStep}
_FENCE = re.compile(r"^(```|~~~)\s*(.*)$")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


class PlaybookError(ValueError):
    """A malformed block: names the file, the block's index among palier blocks and its line."""

    def __init__(self, file: str, block_index: int | None, line: int, message: str):
        self.file, self.block_index, self.line = file, block_index, line
        where = f"block #{block_index} (line {line})" if block_index is not None else f"line {line}"
        super().__init__(f"{file}: {where}: {message}")


@dataclass
class Playbook:
    file: str
    title: str
    sections: list[Section] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    failures: list[KnownFailure] = field(default_factory=list)
    next_steps: list[NextStep] = field(default_factory=list)


class _Every:
    """``PlaybookSet.<kind>``: the items of that kind of every playbook, in file order."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.kind = name

    def __get__(self, book: PlaybookSet | None, owner: type | None = None) -> Any:
        if book is None:
            return self
        return [item for p in book.playbooks for item in getattr(p, self.kind)]


@dataclass
class PlaybookSet:
    playbooks: list[Playbook] = field(default_factory=list)

    rules = _Every()
    failures = _Every()
    next_steps = _Every()
    sections = _Every()

    def failure(self, failure_id: str) -> KnownFailure | None:
        return next((f for f in self.failures if f.id == failure_id), None)

    def rule(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)


def slugify(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    return re.sub(r"[^a-z0-9]+", "-", folded).strip("-") or "section"


def _format_validation(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(block)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


class _Parser:
    """One pass over a playbook's lines: fenced blocks become items, headings open sections."""

    def __init__(self, text: str, file: str, checks: Collection[str] | None = None):
        self.checks = checks
        self.lines = text.splitlines()
        self.file = file
        self.playbook = Playbook(file=file, title=file)
        self.heading, self.anchor, self.level, self.line = file, "top", 0, 1
        self.section_lines: list[str] = []
        self.used_anchors: dict[str, int] = {}
        self.block_index = 0
        self.seen_ids: set[str] = set()

    def parse(self) -> Playbook:
        i = 0
        while i < len(self.lines):
            line = self.lines[i]
            fence = _FENCE.match(line)
            if fence:
                i = self._fence(i, fence.group(1), fence.group(2).strip())
                continue
            heading = _HEADING.match(line)
            if heading:
                self._open_section(len(heading.group(1)), heading.group(2), i)
            else:
                self.section_lines.append(line)
            i += 1
        self._close_section()
        return self.playbook

    def _close_section(self) -> None:
        body = "\n".join(self.section_lines).strip()
        if body or self.level:
            self.playbook.sections.append(Section(file=self.file, heading=self.heading, anchor=self.anchor,
                                                  level=self.level, line=self.line, text=body))

    def _open_section(self, level: int, text: str, i: int) -> None:
        self._close_section()
        if level == 1 and self.playbook.title == self.file:
            self.playbook.title = text
        anchor = slugify(text)
        n = self.used_anchors.get(anchor, 0)
        self.used_anchors[anchor] = n + 1
        self.heading, self.anchor = text, anchor if n == 0 else f"{anchor}-{n}"
        self.level, self.line = level, i + 1
        self.section_lines = []

    def _fence(self, start: int, marker: str, info: str) -> int:
        """Read the fenced block opening at ``start``; returns the index after its closing fence."""
        j = start + 1
        while j < len(self.lines) and not self.lines[j].startswith(marker):
            j += 1
        if j >= len(self.lines):
            raise PlaybookError(self.file, None, start + 1, f"unclosed {marker} fence")
        self.section_lines.extend(self.lines[start : j + 1])
        tags = [t for t in info.split() if t.startswith("palier-")]
        if tags:
            self.block_index += 1
            self._add(self._item(tags, self.lines[start + 1 : j], start))
        return j + 1

    def _item(self, tags: list[str], body: list[str], start: int) -> Rule | KnownFailure | NextStep:
        def error(message: str, at: int = start + 1) -> PlaybookError:
            return PlaybookError(self.file, self.block_index, at, message)

        if len(tags) > 1 or tags[0] not in BLOCK_TAGS:
            raise error(f"unknown block tag {' '.join(tags)!r}: use one of {', '.join(sorted(BLOCK_TAGS))}")
        try:
            data = yaml.safe_load("\n".join(body))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise error(f"not valid YAML ({getattr(exc, 'problem', exc)})",
                        start + 2 + mark.line if mark else start + 1) from None
        if not isinstance(data, dict):
            raise error(f"{tags[0]} block must be a YAML mapping")
        data["source"] = SourceRef(file=self.file, section=self.heading, anchor=self.anchor, line=start + 1)
        try:
            item = BLOCK_TAGS[tags[0]].model_validate(data)
        except ValidationError as exc:
            raise error(f"{tags[0]}: {_format_validation(exc)}") from None
        if isinstance(item, Rule) and item.check and self.checks is not None and item.check not in self.checks:
            raise error(f"rule {item.id!r} names unknown check {item.check!r} (see agent/rules/checks.py)")
        if item.id in self.seen_ids:
            raise error(f"duplicate id {item.id!r}")
        self.seen_ids.add(item.id)
        return item

    def _add(self, item: Rule | KnownFailure | NextStep) -> None:
        if isinstance(item, Rule):
            self.playbook.rules.append(item)
        elif isinstance(item, KnownFailure):
            self.playbook.failures.append(item)
        else:
            self.playbook.next_steps.append(item)


def parse_playbook(text: str, file: str, checks: Collection[str] | None = None) -> Playbook:
    """Parse one playbook. Raises PlaybookError on an unclosed fence, a block that is not a
    YAML mapping, an unknown ``palier-*`` tag, a field error, or a duplicate id in the file.
    ``checks``: the names of the named checks (the rules' check table, passed in so that the
    playbooks never import the rules); a rule naming another check is an error. None: not checked."""
    return _Parser(text, file, checks).parse()


def default_playbooks_dir() -> Path:
    env = os.environ.get("PALIER_PLAYBOOKS_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "playbooks"


def load_playbooks(directory: str | Path | None = None, checks: Collection[str] | None = None) -> PlaybookSet:
    """Every ``*.md`` in the folder, sorted by name. Ids must be unique across playbooks.
    ``checks``: as for parse_playbook (agent.rules.load_checked_playbooks passes its table)."""
    folder = Path(directory) if directory is not None else default_playbooks_dir()
    if not folder.is_dir():
        raise PlaybookError(str(folder), None, 0, "playbooks folder not found (set PALIER_PLAYBOOKS_DIR)")
    books = []
    owners: dict[str, str] = {}
    for path in sorted(folder.glob("*.md")):
        label = f"playbooks/{path.name}" if folder.name == "playbooks" else str(path)
        book = parse_playbook(path.read_text(encoding="utf-8"), label, checks)
        for item in [*book.rules, *book.failures, *book.next_steps]:
            if item.id in owners:
                line = item.source.line if item.source else 0
                raise PlaybookError(label, None, line, f"id {item.id!r} already defined in {owners[item.id]}")
            owners[item.id] = label
        books.append(book)
    return PlaybookSet(books)
