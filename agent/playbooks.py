"""Playbook Markdown -> rules, known failures, next steps and sections (parsing is pure;
``load_playbooks`` is the only function that reads files)."""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from agent.checks import CHECKS
from agent.playbook_models import KnownFailure, NextStep, Rule, Section, SourceRef

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


@dataclass
class PlaybookSet:
    playbooks: list[Playbook] = field(default_factory=list)

    @property
    def rules(self) -> list[Rule]:
        return [r for p in self.playbooks for r in p.rules]

    @property
    def failures(self) -> list[KnownFailure]:
        return [f for p in self.playbooks for f in p.failures]

    @property
    def next_steps(self) -> list[NextStep]:
        return [n for p in self.playbooks for n in p.next_steps]

    @property
    def sections(self) -> list[Section]:
        return [s for p in self.playbooks for s in p.sections]

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


def parse_playbook(text: str, file: str) -> Playbook:
    """Parse one playbook. Raises PlaybookError on an unclosed fence, a block that is not a
    YAML mapping, an unknown ``palier-*`` tag, a field error, or a duplicate id in the file."""
    lines = text.splitlines()
    title = file
    sections: list[Section] = []
    playbook = Playbook(file=file, title=title)
    current_heading, current_anchor, current_level, current_line = file, "top", 0, 1
    section_lines: list[str] = []
    used_anchors: dict[str, int] = {}
    block_index = 0
    seen_ids: set[str] = set()

    def close_section() -> None:
        body = "\n".join(section_lines).strip()
        if body or current_level:
            sections.append(
                Section(file=file, heading=current_heading, anchor=current_anchor, level=current_level,
                        line=current_line, text=body)
            )

    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence:
            marker, info = fence.group(1), fence.group(2).strip()
            start = i
            j = i + 1
            while j < len(lines) and not lines[j].startswith(marker):
                j += 1
            if j >= len(lines):
                raise PlaybookError(file, None, start + 1, f"unclosed {marker} fence")
            body = lines[start + 1 : j]
            tags = [t for t in info.split() if t.startswith("palier-")]
            section_lines.extend(lines[start : j + 1])
            if tags:
                block_index += 1
                if len(tags) > 1 or tags[0] not in BLOCK_TAGS:
                    raise PlaybookError(
                        file, block_index, start + 1,
                        f"unknown block tag {' '.join(tags)!r}: use one of {', '.join(sorted(BLOCK_TAGS))}",
                    )
                model = BLOCK_TAGS[tags[0]]
                try:
                    data = yaml.safe_load("\n".join(body))
                except yaml.YAMLError as exc:
                    mark = getattr(exc, "problem_mark", None)
                    at = start + 2 + mark.line if mark else start + 1
                    raise PlaybookError(file, block_index, at, f"not valid YAML ({getattr(exc, 'problem', exc)})") from None
                if not isinstance(data, dict):
                    raise PlaybookError(file, block_index, start + 1, f"{tags[0]} block must be a YAML mapping")
                data["source"] = SourceRef(file=file, section=current_heading, anchor=current_anchor, line=start + 1)
                try:
                    item = model.model_validate(data)
                except ValidationError as exc:
                    raise PlaybookError(file, block_index, start + 1, f"{tags[0]}: {_format_validation(exc)}") from None
                if isinstance(item, Rule) and item.check and item.check not in CHECKS:
                    raise PlaybookError(file, block_index, start + 1,
                                        f"rule {item.id!r} names unknown check {item.check!r} (see agent/checks.py)")
                if item.id in seen_ids:
                    raise PlaybookError(file, block_index, start + 1, f"duplicate id {item.id!r}")
                seen_ids.add(item.id)
                if isinstance(item, Rule):
                    playbook.rules.append(item)
                elif isinstance(item, KnownFailure):
                    playbook.failures.append(item)
                else:
                    playbook.next_steps.append(item)
            i = j + 1
            continue
        heading = _HEADING.match(line)
        if heading:
            close_section()
            level, text_ = len(heading.group(1)), heading.group(2)
            if level == 1 and playbook.title == file:
                playbook.title = text_
            anchor = slugify(text_)
            n = used_anchors.get(anchor, 0)
            used_anchors[anchor] = n + 1
            current_heading, current_anchor = text_, anchor if n == 0 else f"{anchor}-{n}"
            current_level, current_line = level, i + 1
            section_lines = []
        else:
            section_lines.append(line)
        i += 1
    close_section()
    playbook.sections = sections
    return playbook


def default_playbooks_dir() -> Path:
    env = os.environ.get("PALIER_PLAYBOOKS_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "playbooks"


def load_playbooks(directory: str | Path | None = None) -> PlaybookSet:
    """Every ``*.md`` in the folder, sorted by name. Ids must be unique across playbooks."""
    folder = Path(directory) if directory is not None else default_playbooks_dir()
    if not folder.is_dir():
        raise PlaybookError(str(folder), None, 0, "playbooks folder not found (set PALIER_PLAYBOOKS_DIR)")
    books = []
    owners: dict[str, str] = {}
    for path in sorted(folder.glob("*.md")):
        label = f"playbooks/{path.name}" if folder.name == "playbooks" else str(path)
        book = parse_playbook(path.read_text(encoding="utf-8"), label)
        for item in [*book.rules, *book.failures, *book.next_steps]:
            if item.id in owners:
                line = item.source.line if item.source else 0
                raise PlaybookError(label, None, line, f"id {item.id!r} already defined in {owners[item.id]}")
            owners[item.id] = label
        books.append(book)
    return PlaybookSet(books)
