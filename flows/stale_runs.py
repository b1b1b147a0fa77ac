"""Close what a dead process left open: MLflow runs (KILLED) and their Prefect flow runs (Crashed).

Called at the start of every pipeline run (in-process or deployment) and by `palier status`.
A Prefect flow run is marked Crashed only through evidence: the MLflow pipeline run it owns was
closed because its owner died (now or at an earlier sweep), and the flow run still says Running.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from core.orchestration.queries import mark_crashed, running_flow_runs
from core.tracking.mlflow_store import client
from core.tracking.stale_runs import StaleRun, close_stale_runs, flow_run_death

FLOW_NAME = "exp-pipeline"


@dataclass
class SweepReport:
    mlflow_runs: list[StaleRun] = field(default_factory=list)
    flow_runs: list[tuple[str, str]] = field(default_factory=list)  # (flow run id, message)
    problems: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"closed MLflow {s.kind} run {s.run_name} ({s.run_id}) as KILLED: {s.reason}" for s in self.mlflow_runs]
        out += [f"marked Prefect flow run {fid} Crashed: {msg}" for fid, msg in self.flow_runs]
        return out + self.problems

    def to_dict(self) -> dict:
        return {"mlflow_runs": [asdict(s) for s in self.mlflow_runs],
                "flow_runs": [{"id": fid, "message": msg} for fid, msg in self.flow_runs], "problems": self.problems}


def sweep(tracking_uri: str | None = None, prefect: bool = True, prefect_api: str | None = None) -> SweepReport:
    """``prefect_api``: the Prefect API URL (default: the client's settings, PREFECT_API_URL)."""
    report = SweepReport()
    c = client(tracking_uri)
    report.mlflow_runs = close_stale_runs(c)
    if prefect:
        try:
            report.flow_runs = crash_orphaned_flow_runs(c, prefect_api)
        except Exception as exc:  # Prefect down: the next sweep will do it
            report.problems.append(f"Prefect flow runs not checked: {type(exc).__name__}: {exc}")
    return report


def crash_orphaned_flow_runs(c, prefect_api: str | None = None) -> list[tuple[str, str]]:
    crashed = []
    for flow_run in running_flow_runs(FLOW_NAME, prefect_api):
        message = flow_run_death(c, flow_run.id)
        if message:
            mark_crashed(flow_run.id, message, prefect_api)
            crashed.append((flow_run.id, message))
    return crashed
