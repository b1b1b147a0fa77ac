"""`palier watch FLOW_RUN_ID`: the progress of a flow run served elsewhere: bars on a terminal,
plain lines (``core.progress_lines``) in a pipe or a log.

The flow run's MLflow parent run carries its Prefect id; its child runs carry the stage keys,
which name the stage folders whose events.jsonl the bars follow.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from core.events import EventTail
from core.orchestration.queries import FINAL_STATES, read_flow_run
from core.progress_lines import ProgressLines
from core.paths import stage_dir
from core.tracking import schema as S
from core.tracking.mlflow_store import client
from core.tracking.queries import flow_run_stage_runs


def _flow_state(flow_run_id: str) -> tuple[str, str]:
    run = read_flow_run(flow_run_id)
    return run.state or "PENDING", run.message or ""


class _Bars:
    """Rich progress bars, on a terminal."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[tuple[str, str], int] = {}

    def skipped(self, pipeline: str, stage: str) -> None:
        if (stage, "skipped") not in self.tasks:
            self.tasks[(stage, "skipped")] = self.progress.add_task(f"{stage}: already done (skipped)", total=1,
                                                                    completed=1)

    def event(self, pipeline: str, stage: str, event: dict) -> None:
        progress, tasks, phase = self.progress, self.tasks, event.get("phase")
        if event.get("type") == "phase" and event.get("status") == "start" and phase not in ("load", "save"):
            tasks[(stage, phase)] = progress.add_task(f"{stage}: {phase}", total=None)
        elif event.get("type") == "progress" and (stage, phase) in tasks:
            progress.update(tasks[(stage, phase)], completed=event["done"], total=event["total"])
        elif event.get("type") == "phase" and event.get("status") == "end" and (stage, phase) in tasks:
            t = progress.tasks[tasks[(stage, phase)]]
            progress.update(tasks[(stage, phase)], total=t.total or 1, completed=t.total or 1)

    def tick(self, now: float) -> None:
        pass


class _Lines:
    """Plain lines (a pipe, a log file, CI): per phase change, per quarter, at least once a minute."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.stages: dict[str, ProgressLines] = {}
        self.said_skipped: set[str] = set()

    def _print(self, lines: list[str]) -> None:
        for line in lines:
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)
        if lines:
            self.console.file.flush()  # a pipe is block-buffered: each line is news when it is written

    def skipped(self, pipeline: str, stage: str) -> None:
        if stage not in self.said_skipped:
            self.said_skipped.add(stage)
            self._print([f"{pipeline}/{stage}: already done (skipped)"])

    def event(self, pipeline: str, stage: str, event: dict) -> None:
        self._print(self.stages.setdefault(stage, ProgressLines(f"{pipeline}/{stage}")).feed(event))

    def tick(self, now: float) -> None:
        for lines in self.stages.values():
            self._print(lines.tick(now))


def watch(flow_run_id: str, console: Console | None = None, poll_s: float = 2.0) -> str:
    """Follow the flow run until it ends: bars on a terminal, plain lines elsewhere. Returns its state."""
    console = console or Console()
    if not console.is_terminal:
        state, message = _follow(flow_run_id, _Lines(console), poll_s)
    else:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=False) as progress:
            state, message = _follow(flow_run_id, _Bars(progress), poll_s)
    if message or not console.is_terminal:
        console.print(f"flow run {flow_run_id}: {state}" + (f" — {message}" if message else ""),
                      markup=False, highlight=False, soft_wrap=True)
    return state


def _follow(flow_run_id: str, view: _Bars | _Lines, poll_s: float) -> tuple[str, str]:
    mlflow = client()
    tails: dict[str, EventTail] = {}
    while True:
        state, message = _flow_state(flow_run_id)
        for run in flow_run_stage_runs(mlflow, flow_run_id):
            tags = run.data.tags
            stage, key, pipeline = tags.get(S.TAG_STAGE), tags.get(S.TAG_STAGE_KEY), tags.get(S.TAG_PIPELINE, "")
            if not stage or not key:
                continue
            if tags.get(S.TAG_STATUS) == "skipped":
                view.skipped(pipeline, stage)
                continue
            tail = tails.setdefault(stage, EventTail(Path(stage_dir(pipeline, stage, key)) / "events.jsonl"))
            for event in tail.read_new():
                view.event(pipeline, stage, event)
        view.tick(time.time())
        if state in FINAL_STATES:
            return state, message
        time.sleep(poll_s)
