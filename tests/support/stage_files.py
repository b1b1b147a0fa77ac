"""Reading what a stage wrote into its folder, strictly: a malformed line fails the test (the
orchestrator's `core.events.read_all` skips such lines, which a test of the writer must not)."""

from __future__ import annotations

import json
from pathlib import Path


def read_events(out: Path) -> list[dict]:
    """Every event of `out`/events.jsonl, in order."""
    return [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
