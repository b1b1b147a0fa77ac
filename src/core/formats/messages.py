"""Chat ``messages`` JSON Lines for SFT, validated line by line.

    {"messages": [{"role": "system", "content": "Tu réponds sur le catalogue."},
                  {"role": "user", "content": "Qu'est-ce que ORCHIS ?"},
                  {"role": "assistant", "content": "ORCHIS gère les congés des agents."}]}

Rules (each broken rule is reported with its line number):
- the line is a JSON object with a non-empty ``messages`` list;
- every message is an object with ``role`` in system / user / assistant and a non-empty string
  ``content``;
- a ``system`` message may only come first; user and assistant turns alternate;
- there is at least one ``user`` message and the **last message is from the assistant**: it is
  the answer the model learns (the completion) and is scored against at evaluation.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.formats.jsonl import DatasetError, read_jsonl, write_jsonl

ROLES = ("system", "user", "assistant")
HINT = ('each line: {"messages": [{"role": "system", "content": "..."}, {"role": "user", "content": "..."}, '
        '{"role": "assistant", "content": "..."}]} (docs/families.md)')


@dataclass(frozen=True)
class ChatExample:
    id: str
    messages: list[dict[str, str]]

    @property
    def prompt(self) -> list[dict[str, str]]:
        return self.messages[:-1]

    @property
    def completion(self) -> list[dict[str, str]]:
        return self.messages[-1:]

    @property
    def question(self) -> str:
        return next(m["content"] for m in reversed(self.messages[:-1]) if m["role"] == "user")

    @property
    def answer(self) -> str:
        return self.messages[-1]["content"]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "messages": self.messages}


def validate_messages(obj: Any) -> list[str]:
    if not isinstance(obj, dict):
        return [f"expected a JSON object with a 'messages' list, got {type(obj).__name__}"]
    if "messages" not in obj:
        alt = " (a prompt/completion pair: wrap it as messages)" if {"prompt", "completion"} <= set(obj) else ""
        return [f"missing 'messages'{alt}; found keys {sorted(obj)}"]
    messages = obj["messages"]
    if not isinstance(messages, list) or not messages:
        return ["'messages' must be a non-empty list"]
    problems: list[str] = []
    roles: list[str | None] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            problems.append(f"messages[{i}] must be an object with 'role' and 'content'")
            roles.append(None)
            continue
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            problems.append(f"messages[{i}].role is {role!r}; expected one of {', '.join(ROLES)}")
        if not isinstance(content, str):
            problems.append(f"messages[{i}].content must be a string, got {type(content).__name__}")
        elif not content.strip():
            problems.append(f"messages[{i}].content is empty")
        roles.append(role if role in ROLES else None)
    if problems:
        return problems
    if "system" in roles[1:]:
        problems.append(f"messages[{roles.index('system', 1)}] is a system message: only the first message may be 'system'")
    turns = [r for r in roles if r != "system"]
    for i in range(1, len(turns)):
        if turns[i] == turns[i - 1]:
            problems.append(f"two '{turns[i]}' messages in a row: user and assistant turns must alternate")
            break
    if "user" not in roles:
        problems.append("no 'user' message: add the question")
    if roles[-1] != "assistant":
        problems.append(f"the last message is '{roles[-1]}': it must be the 'assistant' answer the model learns")
    return problems


def example_id(messages: list[dict[str, str]]) -> str:
    return hashlib.sha256(json.dumps(messages, ensure_ascii=False, sort_keys=True).encode()).hexdigest()[:12]


def load_messages(path: str | Path, max_samples: int | None = None) -> list[ChatExample]:
    """Read and validate the whole file; raise ``DatasetError`` listing every bad line."""
    p = Path(path)
    examples: list[ChatExample] = []
    problems: list[tuple[int, str]] = []
    for line, obj in read_jsonl(p):
        if isinstance(obj, DatasetError):
            problems.extend(obj.problems)
            continue
        errors = validate_messages(obj)
        if errors:
            problems.extend((line, e) for e in errors)
            continue
        messages = [{"role": m["role"], "content": m["content"]} for m in obj["messages"]]
        examples.append(ChatExample(str(obj.get("id", f"{p.name}:{line}")), messages))
    if problems:
        raise DatasetError(p, problems, HINT)
    if not examples:
        raise DatasetError(p, [(0, "no example: the file is empty")], HINT)
    return examples[:max_samples] if max_samples else examples


def split_part(key: str, seed: int, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> str:
    """``train`` / ``val`` / ``test`` from a seeded hash of the example's key.

    A hash, not a shuffle: an example keeps its part when the document grows (stage 2's extended
    catalogue holds out the same questions stage 1 held out), and parts are about 80/10/10."""
    digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < fractions[0]:
        return "train"
    return "val" if u < fractions[0] + fractions[1] else "test"


def split_examples(
    examples: list[ChatExample], seed: int = 42, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
) -> dict[str, list[ChatExample]]:
    parts: dict[str, list[ChatExample]] = {"train": [], "val": [], "test": []}
    for ex in examples:
        key = json.dumps([ex.question, ex.answer], ensure_ascii=False)
        parts[split_part(key, seed, fractions)].append(ex)
    return parts


def write_messages(path: str | Path, examples: list[ChatExample]) -> Path:
    return write_jsonl(path, (ex.to_json() for ex in examples))
