"""`palier watch FLOW_RUN_ID`: progress bars in the terminal for a flow run served elsewhere.

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
from core.paths import stage_dir
from core.tracking import schema as S
from core.tracking.mlflow_store import client
from core.tracking.queries import flow_run_stage_runs


def _flow_state(flow_run_id: str) -> tuple[str, str]:
    run = read_flow_run(flow_run_id)
    return run.state or "PENDING", run.message or ""


def watch(flow_run_id: str, console: Console | None = None, poll_s: float = 2.0) -> str:
    console = console or Console()
    mlflow = client()
    tails: dict[str, EventTail] = {}
    tasks: dict[tuple[str, str], int] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        while True:
            state, message = _flow_state(flow_run_id)
            for run in flow_run_stage_runs(mlflow, flow_run_id):
                tags = run.data.tags
                stage, key = tags.get(S.TAG_STAGE), tags.get(S.TAG_STAGE_KEY)
                if not stage or not key:
                    continue
                if tags.get(S.TAG_STATUS) == "skipped" and (stage, "skipped") not in tasks:
                    tasks[(stage, "skipped")] = progress.add_task(f"{stage}: already done (skipped)", total=1, completed=1)
                    continue
                folder = stage_dir(tags[S.TAG_PIPELINE], stage, key)
                tail = tails.setdefault(stage, EventTail(Path(folder) / "events.jsonl"))
                for event in tail.read_new():
                    phase = event.get("phase")
                    if event.get("type") == "phase" and event.get("status") == "start" and phase not in ("load", "save"):
                        tasks[(stage, phase)] = progress.add_task(f"{stage}: {phase}", total=None)
                    elif event.get("type") == "progress" and (stage, phase) in tasks:
                        progress.update(tasks[(stage, phase)], completed=event["done"], total=event["total"])
                    elif event.get("type") == "phase" and event.get("status") == "end" and (stage, phase) in tasks:
                        t = progress.tasks[tasks[(stage, phase)]]
                        progress.update(tasks[(stage, phase)], total=t.total or 1, completed=t.total or 1)
            if state in FINAL_STATES:
                break
            time.sleep(poll_s)
    if message:
        console.print(f"flow run {flow_run_id}: {state} — {message}")
    return state
