"""The remote-side supervisor: tee, periodic sync, event mirroring, deadline, cancellation."""

from __future__ import annotations

import io
import json
import signal
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from core.backends.supervisor import EVENT_PREFIX, TIMEOUT_EXIT, supervise


def script(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "job.py"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return [sys.executable, str(path)]


def test_tees_output_mirrors_events_ticks_and_leaves_exit_marker(tmp_path):
    out = tmp_path / "out"
    command = script(tmp_path, f"""
        import json, time
        from pathlib import Path
        events = Path({str(out)!r}) / "events.jsonl"
        for i in range(3):
            with events.open("a") as fh:
                fh.write(json.dumps({{"t": 0, "type": "metric", "step": i}}) + "\\n")
            print("step", i, flush=True)
            time.sleep(0.3)
        raise SystemExit(3)
    """)
    ticks, stdout = [], io.StringIO()
    code = supervise(command, out, timeout_s=60, on_tick=lambda: ticks.append(1), tick_every_s=0.2,
                     mirror_events=True, stdout=stdout)
    assert code == 3
    assert (out / "exit_code").read_text() == "3"
    assert json.loads((out / "supervisor.json").read_text())["reason"] == "finished"
    assert "step 2" in (out / "stage.log").read_text()
    mirrored = [line for line in stdout.getvalue().splitlines() if line.startswith(EVENT_PREFIX)]
    assert [json.loads(line[len(EVENT_PREFIX):])["step"] for line in mirrored] == [0, 1, 2]
    assert len(ticks) >= 3  # at start, periodically, and after the exit marker


def test_deadline_stops_the_runner_with_sigterm_and_reports_a_timeout(tmp_path):
    command = script(tmp_path, """
        import signal, sys, time
        signal.signal(signal.SIGTERM, lambda *_: (print("checkpoint saved", flush=True), sys.exit(130)))
        time.sleep(60)
    """)
    out = tmp_path / "out"
    started = time.time()
    assert supervise(command, out, timeout_s=1.0, grace_s=10, stdout=io.StringIO()) == TIMEOUT_EXIT
    assert time.time() - started < 15
    assert "checkpoint saved" in (out / "stage.log").read_text()
    assert json.loads((out / "supervisor.json").read_text())["reason"] == "timeout"


def test_cancellation_forwards_sigterm_then_re_raises(tmp_path):
    command = script(tmp_path, """
        import signal, sys, time
        signal.signal(signal.SIGTERM, lambda *_: (print("stopping cleanly", flush=True), sys.exit(130)))
        print("started", flush=True)
        time.sleep(60)
    """)
    out = tmp_path / "out"
    ticks = []

    def cancel_soon():
        while not (out / "stage.log").exists() or "started" not in (out / "stage.log").read_text():
            time.sleep(0.05)
        signal.raise_signal(signal.SIGINT)  # what Modal's InputCancellation looks like to user code

    threading.Thread(target=cancel_soon, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        supervise(command, out, on_tick=lambda: ticks.append(1), tick_every_s=100, grace_s=10, stdout=io.StringIO())
    assert (out / "exit_code").read_text() == "130"
    assert "stopping cleanly" in (out / "stage.log").read_text()
    assert ticks  # the volume is committed even on the way out


def test_a_failing_sync_does_not_kill_the_job(tmp_path):
    command = script(tmp_path, "print('ok')")

    def broken_commit():
        raise ConnectionError("network down")

    stdout = io.StringIO()
    assert supervise(command, tmp_path / "out", on_tick=broken_commit, stdout=stdout) == 0
    assert "periodic sync failed (ConnectionError" in stdout.getvalue()


def test_command_line_entry(tmp_path):
    import subprocess

    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "core.backends.supervisor", "--out", str(out), "--env=GREETING=salut",
                           "--", sys.executable, "-c", "import os; print(os.environ['GREETING'])"],
                          capture_output=True, text=True)
    assert done.returncode == 0 and "salut" in (out / "stage.log").read_text()
