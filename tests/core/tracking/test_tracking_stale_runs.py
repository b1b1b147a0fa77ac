"""Runs left RUNNING by a dead owner are closed as KILLED, and the Prefect side learns why from the
pipeline run of its flow run (a real MLflow sqlite store)."""

from core import liveness
from core.tracking import schema as S
from core.tracking.mlflow_store import client
from core.tracking.stale_runs import close_stale_runs, flow_run_death, owner_tags


def test_a_dead_owners_pipeline_run_is_killed_and_names_why_its_flow_run_died(tmp_path):
    c = client(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = c.create_experiment("palier/stale", artifact_location=str(tmp_path / "artifacts"))
    here = liveness.current_owner()
    dead = liveness.Owner(here.host, here.boot_id, 2 ** 22 + 7, here.started)  # no such pid on this host
    tags = {S.TAG_KIND: "pipeline", S.TAG_FLOW_RUN_ID: "flow-1", **owner_tags(dead)}
    run_id = c.create_run(exp, tags=tags).info.run_id
    alive = c.create_run(exp, tags={S.TAG_KIND: "pipeline", S.TAG_FLOW_RUN_ID: "flow-2", **owner_tags()}).info.run_id

    assert flow_run_death(c, "flow-1") is None  # still RUNNING: nothing proves it dead yet
    closed = close_stale_runs(c)
    assert [s.run_id for s in closed] == [run_id] and closed[0].flow_run_id == "flow-1"
    run = c.get_run(run_id)
    assert run.info.status == "KILLED" and run.data.tags[S.TAG_STATUS] == "killed"
    reason = flow_run_death(c, "flow-1")
    assert reason is not None and run.data.tags[S.TAG_KILLED_REASON] in reason and run_id in reason
    assert c.get_run(alive).info.status == "RUNNING" and flow_run_death(c, "flow-2") is None
    assert flow_run_death(c, "no-such-flow-run") is None
