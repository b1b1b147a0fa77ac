"""events.jsonl: the stage runner's only channel to the orchestrator.

One JSON object a line, appended and flushed as they happen, so a tailing reader (local
file, Modal volume, Kaggle output) sees them live. Every event has ``t`` (unix seconds) and
``type``:

- ``phase``      {"phase": "prepare"|"baseline"|"train"|"final"|"save"|"export", "status": "start"|"end"}
- ``heartbeat``  {"phase": ..., "step": int|None, "total": int|None} at least every 30 s
- ``progress``   {"phase": ..., "done": int, "total": int}
- ``metric``     {"step": int, "metrics": {name: value}}  (training/eval curves)
- ``log``        {"level": "info"|"warning"|"error", "message": str}
- ``done``       {"status": "succeeded"}
- ``error``      {"error": str, "traceback": str}
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HEARTBEAT_EVERY_S = 10.0


def _ends_mid_line(path: Path) -> bool:
    with path.open("rb") as fh:
        if fh.seek(0, 2) == 0:
            return False
        fh.seek(-1, 2)
        return fh.read(1) != b"\n"


class EventLog:
    """Append-only writer, safe to share between the runner and its heartbeat thread.

    The file is opened for each event and closed at once: on Modal a volume commit reloads the
    volume afterwards, and the reload fails while any file on it is open."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        # A full disk can leave part of a line (this process's or an earlier attempt's): the
        # next event then starts on a line of its own, so readers lose one event, not two.
        self._torn = _ends_mid_line(path)
        self._lock = threading.Lock()
        self.phase = "start"
        self.step: int | None = None
        self.total: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def emit(self, type_: str, **fields: Any) -> None:
        record = {"t": round(time.time(), 3), "type": type_, **fields}
        line = json.dumps(record, ensure_ascii=False, default=float)
        with self._lock:
            try:
                with self.path.open("a", encoding="utf-8") as fh:
                    fh.write(("\n" if self._torn else "") + line + "\n")
            except OSError:
                self._torn = True
                raise
            self._torn = False

    def set_phase(self, phase: str, status: str = "start") -> None:
        if status == "start":
            self.phase, self.step, self.total = phase, None, None
        self.emit("phase", phase=phase, status=status)

    def progress(self, done: int, total: int) -> None:
        self.step, self.total = done, total
        self.emit("progress", phase=self.phase, done=done, total=total)

    def metric(self, step: int, metrics: dict[str, float]) -> None:
        self.emit("metric", step=step, metrics=metrics)

    def log(self, message: str, level: str = "info") -> None:
        self.emit("log", level=level, message=message)

    def start_heartbeat(self, every_s: float = HEARTBEAT_EVERY_S) -> None:
        def beat() -> None:
            while not self._stop.wait(every_s):
                self.emit("heartbeat", phase=self.phase, step=self.step, total=self.total)

        self.emit("heartbeat", phase=self.phase, step=None, total=None)
        self._thread = threading.Thread(target=beat, name="palier-heartbeat", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)


class EventTail:
    """Reads new complete lines from an events file; tolerant of a half-written last line."""

    def __init__(self, path: Path, offset: int = 0):
        self.path = path
        self._offset = offset  # a retry in the same folder starts after the previous attempt's events

    def read_new(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as fh:
            fh.seek(self._offset)
            chunk = fh.read()
        if not chunk:
            return []
        end = chunk.rfind(b"\n")
        if end < 0:
            return []
        self._offset += end + 1
        out = []
        for raw in chunk[: end + 1].splitlines():
            try:
                out.append(json.loads(raw))
            except json.JSONDecodeError:
                continue
        return out


def read_all(path: Path) -> Iterator[dict[str, Any]]:
    tail = EventTail(path)
    yield from tail.read_new()
