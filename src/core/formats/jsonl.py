"""JSON Lines reading with line-precise errors."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

MAX_LISTED = 20


class DatasetError(ValueError):
    """A dataset file that cannot be used. ``problems`` holds ``(line, reason)`` pairs (line 0:
    the whole file); the message lists the first ``MAX_LISTED`` of them."""

    def __init__(self, path: str | Path, problems: list[tuple[int, str]], hint: str = ""):
        self.path = str(path)
        self.problems = problems
        self.hint = hint
        listed = [f"  line {line}: {reason}" if line else f"  {reason}" for line, reason in problems[:MAX_LISTED]]
        more = len(problems) - MAX_LISTED
        if more > 0:
            listed.append(f"  ... and {more} more problem(s)")
        head = f"{self.path}: {len(problems)} problem(s)" if len(problems) != 1 else f"{self.path}: invalid dataset"
        super().__init__("\n".join([head, *listed] + ([f"  hint: {hint}"] if hint else [])))


def read_jsonl(path: str | Path) -> Iterator[tuple[int, Any | DatasetError]]:
    """Yields ``(line number, parsed object)`` for every non-blank line; a line that is not JSON
    yields a one-problem ``DatasetError`` in place of the object (the caller collects them)."""
    p = Path(path)
    if not p.exists():
        raise DatasetError(p, [(0, "file not found")], "check the path (relative paths start at the pipeline file's folder)")
    if p.is_dir():
        raise DatasetError(p, [(0, "is a folder, expected a .jsonl file")])
    try:
        handle = p.open(encoding="utf-8-sig")
    except OSError as exc:
        raise DatasetError(p, [(0, f"cannot open: {exc}")]) from None
    with handle:
        try:
            for number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                try:
                    yield number, json.loads(raw)
                except json.JSONDecodeError as exc:
                    yield number, DatasetError(p, [(number, f"not valid JSON ({exc.msg} at column {exc.colno})")])
        except UnicodeDecodeError as exc:
            raise DatasetError(p, [(0, f"not UTF-8 text ({exc.reason} at byte {exc.start})")],
                               "save the file as UTF-8") from None


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(p)
    return p
