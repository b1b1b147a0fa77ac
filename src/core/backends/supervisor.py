"""Runs the stage runner on the remote machine (Modal container, Kaggle kernel) and watches it.

It tees the runner's output to ``stage.log`` and to its own stdout (the service's log), calls
``on_tick`` every ``tick_every_s`` (Modal: commit the volume so the orchestrator sees events,
logs and checkpoints while the job runs), optionally mirrors each new events.jsonl line to stdout
behind ``EVENT_PREFIX`` (Kaggle: its live log is the only channel out while a kernel runs), stops
the runner at its deadline, forwards a cancellation as SIGTERM (the runner checkpoints, then
exits 130), and always leaves ``exit_code`` and ``supervisor.json`` in the output folder.

Standard library only: on Kaggle it runs right after the dependencies are installed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

EXIT_FILE = "exit_code"
REPORT_FILE = "supervisor.json"
EVENT_PREFIX = "PALIER_EVENT "
TIMEOUT_EXIT = 124


class _EventMirror:
    def __init__(self, path: Path, stdout: TextIO):
        self.path, self.stdout, self.offset = path, stdout, 0

    def flush(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as fh:
            fh.seek(self.offset)
            chunk = fh.read()
        end = chunk.rfind(b"\n")
        if end < 0:
            return
        self.offset += end + 1
        for line in chunk[: end + 1].decode("utf-8", errors="replace").splitlines():
            self.stdout.write(EVENT_PREFIX + line + "\n")
        self.stdout.flush()


def supervise(
    command: list[str],
    out_dir: Path,
    env: dict[str, str] | None = None,
    *,
    timeout_s: float | None = None,
    on_tick: Callable[[], None] | None = None,
    tick_every_s: float = 30.0,
    mirror_events: bool = False,
    grace_s: float = 90.0,
    stdout: TextIO | None = None,
) -> int:
    out = stdout or sys.stdout
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / EXIT_FILE).unlink(missing_ok=True)
    started = time.time()
    report: dict[str, object] = {"command": command, "started_at": started, "reason": "running"}
    mirror = _EventMirror(out_dir / "events.jsonl", out) if mirror_events else None
    log = _AppendLog(out_dir / "stage.log")
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})}, start_new_session=True,
    )
    reader = threading.Thread(target=_tee, args=(proc, log, out), name="palier-tee", daemon=True)
    reader.start()
    if on_tick:  # publish "started" at once rather than after the first tick interval
        _safe_tick(on_tick, out)
    last_tick = time.monotonic()
    try:
        while proc.poll() is None:
            try:
                proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                pass
            if mirror:
                mirror.flush()
            if on_tick and time.monotonic() - last_tick >= tick_every_s:
                _safe_tick(on_tick, out)
                last_tick = time.monotonic()
            if timeout_s is not None and time.time() - started > timeout_s and proc.poll() is None:
                out.write(f"palier: stage reached its time limit ({timeout_s:.0f} s); stopping it\n")
                _stop(proc, grace_s)
                report["reason"] = "timeout"
        code = proc.returncode
        if report["reason"] == "timeout":
            code = TIMEOUT_EXIT
        else:
            report["reason"] = "finished"
    except BaseException as exc:  # cancellation (Modal InputCancellation, SIGINT): let the runner checkpoint
        report["reason"] = f"interrupted: {type(exc).__name__}"
        _stop(proc, grace_s)
        code = proc.returncode if proc.returncode is not None else 143
        _finish(out_dir, code, report, reader, log, mirror, on_tick, out)
        raise
    _finish(out_dir, code, report, reader, log, mirror, on_tick, out)
    return code


class _AppendLog:
    """stage.log, opened only while a line is written: a Modal volume commit reloads the volume
    afterwards, and the reload fails while a file on it is open."""

    def __init__(self, path: Path):
        self.path = path

    def write(self, data: bytes) -> None:
        with self.path.open("ab") as fh:
            fh.write(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def _tee(proc: subprocess.Popen, log, out: TextIO) -> None:
    assert proc.stdout is not None
    for line in iter(proc.stdout.readline, b""):
        log.write(line)
        log.flush()
        out.write(line.decode("utf-8", errors="replace"))
        out.flush()


def _stop(proc: subprocess.Popen, grace_s: float) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace_s)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)


def _finish(out_dir: Path, code: int, report: dict, reader: threading.Thread, log, mirror, on_tick, out: TextIO) -> None:
    reader.join(timeout=30)
    log.close()
    if mirror:
        mirror.flush()
    report.update(exit_code=code, finished_at=time.time())
    (out_dir / REPORT_FILE).write_text(json.dumps(report), encoding="utf-8")
    (out_dir / EXIT_FILE).write_text(str(code), encoding="utf-8")
    if on_tick:
        _safe_tick(on_tick, out)


def _safe_tick(on_tick: Callable[[], None], out: TextIO) -> None:
    try:
        on_tick()
    except Exception as exc:  # a failed commit must not kill a training run; the next one retries
        out.write(f"palier: periodic sync failed ({type(exc).__name__}: {exc}); will retry\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.backends.supervisor", description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--timeout-s", type=float, default=None)
    parser.add_argument("--mirror-events", action="store_true")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the runner command")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given after --")
    env = dict(item.split("=", 1) for item in args.env)
    return supervise(command, args.out, env, timeout_s=args.timeout_s, mirror_events=args.mirror_events)


if __name__ == "__main__":
    sys.exit(main())
