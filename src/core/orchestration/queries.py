"""What palier reads back from Prefect: flow runs and their states, plus the one state it sets
(Crashed, for a flow run whose owner died). `palier watch`, the agent and the stale-run sweep ask
through here, so Prefect's client and its filter objects stay in this module.

``api_url`` is a Prefect API URL (``http://127.0.0.1:4200/api``); None means the client's own
settings (PREFECT_API_URL). Prefect is imported inside the functions: importing this is cheap.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any
from uuid import UUID

FINAL_STATES = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})


@dataclass(frozen=True)
class FlowRunRecord:
    id: str
    name: str
    state: str | None  # the state type: RUNNING, COMPLETED, ...; None before the first state
    state_name: str | None  # Prefect's display name: Running, Completed, Crashed, ...
    message: str | None

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _client(api_url: str | None, timeout_s: float | None = None):  # noqa: ANN202 - prefect is imported lazily
    from prefect.client.orchestration import SyncPrefectClient, get_client

    httpx_settings = {"timeout": timeout_s} if timeout_s else None
    if api_url:
        return SyncPrefectClient(api_url, httpx_settings=httpx_settings)
    return get_client(httpx_settings=httpx_settings, sync_client=True)


def _record(flow_run: Any) -> FlowRunRecord:
    state = flow_run.state
    return FlowRunRecord(str(flow_run.id), flow_run.name, state.type.value if state else None,
                         state.name if state else None, state.message if state else None)


def read_flow_run(flow_run_id: str, api_url: str | None = None, timeout_s: float | None = None) -> FlowRunRecord:
    """One flow run; raises ValueError for an id that is not a UUID and Prefect's ObjectNotFound
    for an unknown one."""
    with _client(api_url, timeout_s) as prefect:
        return _record(prefect.read_flow_run(UUID(str(flow_run_id))))


def running_flow_runs(flow_name: str, api_url: str | None = None, limit: int = 200) -> list[FlowRunRecord]:
    """The flow runs of ``flow_name`` whose state is Running."""
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    running = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING])))
    with _client(api_url) as prefect:
        found = prefect.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
                                       flow_run_filter=running, limit=limit)
    return [_record(flow_run) for flow_run in found]


def mark_crashed(flow_run_id: str, message: str, api_url: str | None = None) -> None:
    """Set a flow run Crashed (forced: its owner is gone, so no orchestration rule can wait for it)."""
    from prefect.states import Crashed

    with _client(api_url) as prefect:
        prefect.set_flow_run_state(UUID(str(flow_run_id)), Crashed(message=message), force=True)
