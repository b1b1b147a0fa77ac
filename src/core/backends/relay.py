"""Bring a remote job's events.jsonl and stage.log into the local output folder while it runs.

The orchestrator tails the local events.jsonl by byte offset (core.events.EventTail), so the relay
only ever appends, and appends whole event lines. How far each remote file has been relayed is
kept in ``.relay.json`` in the output folder, so a restarted orchestrator carries on where the
last one stopped instead of duplicating curves.
"""

from __future__ import annotations

import json
from pathlib import Path

from core.backends.supervisor import EVENT_PREFIX

STATE_FILE = ".relay.json"
EVENTS = "events.jsonl"
LOG = "stage.log"


class RelayState:
    def __init__(self, out_dir: Path, initial: dict[str, int] | None = None):
        self.path = out_dir / STATE_FILE
        self.values: dict[str, int] = dict(initial or {})
        if self.path.exists():
            self.values.update(json.loads(self.path.read_text(encoding="utf-8")))

    def get(self, key: str) -> int:
        return int(self.values.get(key, 0))

    def set(self, key: str, value: int) -> None:
        self.values[key] = value
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.values), encoding="utf-8")
        tmp.replace(self.path)


def append_remote_tail(local: Path, remote: bytes, state: RelayState, key: str, whole_lines: bool) -> int:
    """Append what ``remote`` holds past the relayed offset; returns the number of bytes appended."""
    offset = state.get(key)
    if len(remote) < offset:  # the remote file was recreated: start over rather than skip its lines
        offset = 0
    new = remote[offset:]
    if whole_lines:
        end = new.rfind(b"\n")
        new = new[: end + 1] if end >= 0 else b""
    if new:
        local.parent.mkdir(parents=True, exist_ok=True)
        with local.open("ab") as fh:
            fh.write(new)
    state.set(key, offset + len(new))
    return len(new)


def merge_final_events(local: Path, remote: bytes) -> int:
    """At the end, make the local events.jsonl hold every remote event without rewriting what a
    reader may already have consumed: append the remote lines the local file lacks, in order."""
    have = local.read_bytes() if local.exists() else b""
    if remote.startswith(have):
        missing = remote[len(have):]
    else:
        seen = {line.strip() for line in have.splitlines()}
        missing = b"".join(line + b"\n" for line in remote.splitlines() if line.strip() and line.strip() not in seen)
    if missing:
        with local.open("ab") as fh:
            fh.write(missing)
    return len(missing)


class StreamRouter:
    """Splits a live console stream (Kaggle's kernel log) into events.jsonl and stage.log.

    Chunks may cut lines anywhere; lines behind EVENT_PREFIX are events, the rest is the log.
    ``skip`` chunks are ignored first: the service replays the stream from its start on reconnect.
    """

    def __init__(self, out_dir: Path, state: RelayState):
        self.out_dir, self.state = out_dir, state
        self.pending = ""
        self.to_skip = state.get("stream_chunks")
        self.seen = 0

    def feed(self, chunk: str) -> None:
        self.seen += 1
        if self.seen <= self.to_skip:
            return
        self.pending += chunk
        *lines, self.pending = self.pending.split("\n")
        events, log = [], []
        for line in lines:
            (events if line.startswith(EVENT_PREFIX) else log).append(line)
        if events:
            with (self.out_dir / EVENTS).open("a", encoding="utf-8") as fh:
                fh.writelines(line[len(EVENT_PREFIX):] + "\n" for line in events)
        if log:
            with (self.out_dir / LOG).open("a", encoding="utf-8") as fh:
                fh.writelines(line + "\n" for line in log)
        self.state.set("stream_chunks", self.seen)
