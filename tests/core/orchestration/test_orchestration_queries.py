"""core.orchestration.queries against the session's real Prefect server: a flow run read back,
found among the running ones, marked Crashed, and the errors for a bad or unknown id."""

from __future__ import annotations

import uuid

import pytest

from core.orchestration.queries import mark_crashed, read_flow_run, running_flow_runs

pytestmark = pytest.mark.e2e


def test_a_flow_run_is_read_found_running_and_marked_crashed(services):
    from prefect import flow
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.exceptions import ObjectNotFound
    from prefect.states import Running

    api = services["env"]["PREFECT_API_URL"]

    @flow(name="palier-queries-probe")
    def probe() -> None: ...

    with SyncPrefectClient(api) as client:
        created = client.create_flow_run(probe, name="probe-run", state=Running(message="started by the test"))

    record = read_flow_run(str(created.id), api, timeout_s=10)
    assert (record.id, record.name, record.state, record.state_name) == (str(created.id), "probe-run", "RUNNING", "Running")
    assert record.message == "started by the test" and not record.final
    assert record.as_dict()["state"] == "RUNNING"
    assert [r.id for r in running_flow_runs("palier-queries-probe", api)] == [str(created.id)]

    mark_crashed(record.id, "owner process died", api)
    crashed = read_flow_run(record.id, api)
    assert (crashed.state, crashed.message, crashed.final) == ("CRASHED", "owner process died", True)
    assert running_flow_runs("palier-queries-probe", api) == []

    with pytest.raises(ObjectNotFound):
        read_flow_run(str(uuid.uuid4()), api)
    with pytest.raises(ValueError):
        read_flow_run("not-a-flow-run-id", api)
