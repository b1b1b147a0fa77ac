"""The user's entry points on the real services: the Prefect and MLflow UIs in a real headless
Chromium, the results as Prefect artifacts, stale runs of dead processes, stopping on SIGTERM,
and servers that come back on their own address after a kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import headless_chromium
from e2e_services import BIN, flow_run_id
from speed_markers import starts_servers

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not headless_chromium.available(), reason="needs Debian's chromium")]

CANT_CONNECT = ("Can't connect", "Can’t connect")


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    folder = os.environ.get("PALIER_TEST_SCREENSHOTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
@starts_servers
def browser():
    with headless_chromium.Browser() as b:
        yield b


def _prefect(services):
    from prefect.client.orchestration import SyncPrefectClient

    return SyncPrefectClient(services["env"]["PREFECT_API_URL"])


def _mlflow(services):
    from mlflow import MlflowClient

    return MlflowClient(services["env"]["MLFLOW_TRACKING_URI"])


def _parent_of(c, flow_run: str):
    from core.tracking import schema as S

    exp = c.get_experiment_by_name("palier/tiny")
    runs = c.search_runs([exp.experiment_id], f"tags.`{S.TAG_FLOW_RUN_ID}` = '{flow_run}'")
    assert len(runs) == 1
    return exp, runs[0]


def _wait(predicate, timeout_s: float, what: str, every_s: float = 0.5):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


# -- the UIs ----------------------------------------------------------------------------
def test_prefect_ui_shows_the_flow_run_its_task_runs_and_artifacts(services, tiny_run, browser, screenshots):
    assert tiny_run["proc"].returncode == 0, tiny_run["proc"].stdout[-3000:]
    ui = services["env"]["PREFECT_API_URL"].removesuffix("/api")
    import urllib.request

    with urllib.request.urlopen(f"{ui}/ui-settings", timeout=10) as resp:
        assert json.loads(resp.read())["api_url"] == services["env"]["PREFECT_API_URL"]
    with _prefect(services) as client:
        flow_run = client.read_flow_run(tiny_run["flow_run_id"])

    # The address `prefect deployment run` prints, in the default UI.
    browser.open(f"{ui}/runs/flow-run/{tiny_run['flow_run_id']}")
    browser.wait_for_text(flow_run.name, "Completed", "exp-pipeline", "tiny", absent=CANT_CONNECT, timeout_s=90)
    browser.click_text("Task Runs")
    browser.wait_for_text("general: baseline, train, evaluate", "medical: baseline, train, evaluate",
                          "medical: gate and register", "pipeline summary", absent=CANT_CONNECT)
    browser.screenshot(screenshots / "prefect-v1-task-runs.png")
    browser.click_text("Artifacts")
    browser.wait_for_text("tiny-results", "tiny-mlflow", absent=CANT_CONNECT)
    browser.screenshot(screenshots / "prefect-v1-artifacts.png")

    browser.open(f"{ui}/v2/runs/flow-run/{tiny_run['flow_run_id']}")
    browser.wait_for_text(flow_run.name, "Completed", absent=CANT_CONNECT, timeout_s=90)
    # The v2 page renders its tabs late on a busy machine: a click that lands before the tab list
    # is ready does nothing, so click again until the task runs show (or the last wait fails).
    for attempt in range(3):
        try:
            browser.click_text("Task Runs")
            browser.wait_for_text("general: baseline, train, evaluate", "medical: gate and register",
                                  absent=CANT_CONNECT, timeout_s=40)
            break
        except AssertionError:
            if attempt == 2:
                raise
    browser.screenshot(screenshots / "prefect-v2-task-runs.png")


def test_flow_run_artifacts_hold_the_results_and_the_mlflow_links(services, tiny_run):
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from core.tracking import schema as S

    c = _mlflow(services)
    exp, parent = _parent_of(c, tiny_run["flow_run_id"])
    with _prefect(services) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[tiny_run["flow_run_id"]])))
    by_key = {a.key: a for a in artifacts}
    assert set(by_key) == {"tiny-results", "tiny-mlflow"}
    assert by_key["tiny-results"].type == "table" and by_key["tiny-mlflow"].type == "markdown"

    table = json.loads(by_key["tiny-results"].data)
    children = {r.data.tags[S.TAG_STAGE]: r for r in
                c.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")}
    medical_wer = [r for r in table if (r["stage"], r["eval set"], r["metric"]) == ("medical", "medical_test", "wer")]
    assert len(medical_wer) == 1
    m = children["medical"].data.metrics
    assert float(medical_wer[0]["baseline"]) == pytest.approx(m[S.baseline_key("medical_test", "wer")], abs=1e-4)
    assert float(medical_wer[0]["final"]) == pytest.approx(m[S.final_key("medical_test", "wer")], abs=1e-4)
    for row in table:
        stage = children[row["stage"]]
        assert row["gate"] == stage.data.tags[S.TAG_GATE] and row["gate"] in ("champion", "candidate")
        assert row["model version"] == f"tiny-{row['stage']} v{stage.data.tags['palier.model_version']}"
    assert {(r["stage"], r["eval set"]) for r in table} == {
        ("general", "general_test"), ("medical", "medical_test"), ("medical", "general_test")}

    markdown = by_key["tiny-mlflow"].data
    mlflow_url = services["env"]["MLFLOW_TRACKING_URI"]
    for run_id in [parent.info.run_id] + [r.info.run_id for r in children.values()]:
        assert f"({mlflow_url}/#/experiments/{exp.experiment_id}/runs/{run_id}?workflowType=machine_learning)" in markdown
    for stage in ("general", "medical"):
        assert f"({mlflow_url}/#/models/tiny-{stage}/versions/1?workflowType=machine_learning)" in markdown


def test_mlflow_ui_opens_the_experiment_in_the_training_view_with_parent_and_child_runs(
        services, tiny_run, browser, screenshots):
    from core.tracking import links
    from core.tracking import schema as S

    c = _mlflow(services)
    exp, parent = _parent_of(c, tiny_run["flow_run_id"])
    assert exp.tags[S.TAG_EXPERIMENT_KIND] == S.EXPERIMENT_KIND_TRAINING
    browser.open(links.experiment_url(services["env"]["MLFLOW_TRACKING_URI"], exp.experiment_id))
    browser.wait_for_text(parent.info.run_name, "Run Name", timeout_s=90)
    # Child runs are folded under their parent: unfold every parent row.
    assert browser.click_all('button[data-component-id*="runnamecellrenderer"]') >= 1
    text = browser.wait_for_text(parent.info.run_name, "1-general", "2-medical")
    browser.screenshot(screenshots / "mlflow-experiment-runs.png")
    assert "workflowType=machine_learning" in browser.evaluate("location.href")
    assert "/runs" in browser.evaluate("location.href")
    for genai_only in ("Token Usage", "Tool calls", "Cost Breakdown"):
        assert genai_only not in text


# -- stale runs -------------------------------------------------------------------------
def test_sweep_closes_the_runs_of_a_dead_process_and_leaves_live_ones(services):
    from prefect.states import Running

    from core import liveness
    from core.tracking import schema as S
    from core.tracking.stale_runs import owner_tags
    from flows.exp_pipeline import exp_pipeline
    from flows.stale_runs import sweep

    # A real process that ran and died (kill -9), recorded as the owner of a pipeline run.
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = liveness.Owner(liveness.current_owner().host, liveness.boot_id(), victim.pid,
                          liveness.process_start(victim.pid))
    victim.kill()
    victim.wait()

    c = _mlflow(services)
    exp_id = c.create_experiment("palier/orphans")
    with _prefect(services) as client:
        orphan_flow = client.create_flow_run(exp_pipeline, parameters={"pipeline": "orphans.yaml"}, state=Running())
        live_flow = client.create_flow_run(exp_pipeline, parameters={"pipeline": "live.yaml"}, state=Running())
    dead_parent = c.create_run(exp_id, run_name="dead", tags={
        S.TAG_KIND: "pipeline", S.TAG_FLOW_RUN_ID: str(orphan_flow.id), **owner_tags(dead)}).info.run_id
    dead_stage = c.create_run(exp_id, run_name="dead-stage", tags={
        S.TAG_KIND: "stage", "mlflow.parentRunId": dead_parent, **owner_tags(dead)}).info.run_id
    live_parent = c.create_run(exp_id, run_name="live", tags={
        S.TAG_KIND: "pipeline", S.TAG_FLOW_RUN_ID: str(live_flow.id), **owner_tags()}).info.run_id

    report = sweep(services["env"]["MLFLOW_TRACKING_URI"], prefect_api=services["env"]["PREFECT_API_URL"])

    assert {s.run_id for s in report.mlflow_runs} == {dead_parent, dead_stage}
    for run_id in (dead_parent, dead_stage):
        run = c.get_run(run_id)
        assert run.info.status == "KILLED"
        assert run.data.tags[S.TAG_KILLED_REASON] == f"process {victim.pid} on {dead.host} is gone"
        assert run.data.tags[S.TAG_KILLED_AT].endswith("Z")
    assert c.get_run(live_parent).info.status == "RUNNING"  # its owner (this test) lives
    with _prefect(services) as client:
        crashed = client.read_flow_run(orphan_flow.id).state
        assert crashed.type.value == "CRASHED" and str(victim.pid) in crashed.message
        assert client.read_flow_run(live_flow.id).state.type.value == "RUNNING"
    assert [fid for fid, _ in report.flow_runs] == [str(orphan_flow.id)]
    c.set_terminated(live_parent, "FINISHED")


# -- stopping ---------------------------------------------------------------------------
def _stage_folder(services, pipeline: str) -> Path:
    return _wait(lambda: next(iter((services["home"] / "runs" / pipeline).glob("*/events.jsonl")), None),
                 240, f"{pipeline}'s stage folder").parent


def _training(events: Path) -> bool:
    return events.exists() and '"type": "metric"' in events.read_text()


def test_palier_run_stops_within_seconds_on_sigterm(services):
    from core.processes import pid_alive
    from core.tracking import schema as S

    pipeline = services["pipelines"] / "long.yaml"
    proc = subprocess.Popen([str(BIN / "palier"), "run", str(pipeline)], env=services["env"], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        folder = _stage_folder(services, "long")
        _wait(lambda: _training(folder / "events.jsonl"), 240, "training to start")
        c = _mlflow(services)
        exp = c.get_experiment_by_name("palier/long")
        stage = c.search_runs([exp.experiment_id], f"tags.`{S.TAG_KIND}` = 'stage'")[0]
        stage_pid = int(stage.data.tags[S.TAG_JOB_ID].removeprefix("pid-"))
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=90)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    print(f"palier run stopped {took:.1f}s after SIGTERM")
    assert proc.returncode == 143, err[-3000:]
    assert "stopped by SIGTERM" in err
    assert not pid_alive(stage_pid), "the stage process was left training"
    assert any((folder / "checkpoints").glob("checkpoint-*")), "the stage saved no checkpoint"
    runs = c.search_runs([exp.experiment_id], "")
    assert runs and all(r.info.status == "KILLED" and r.data.tags[S.TAG_STOPPED_BY] == "SIGTERM" for r in runs)
    parent = next(r for r in runs if r.data.tags[S.TAG_KIND] == "pipeline")
    with _prefect(services) as client:
        state = client.read_flow_run(parent.data.tags[S.TAG_FLOW_RUN_ID]).state
    assert state.type.value in ("CRASHED", "CANCELLED")


# -- services keep their addresses ------------------------------------------------------
@pytest.mark.restarts_services
def test_killed_servers_come_back_on_their_port_and_a_killed_deployment_run_is_closed(services):
    from core.processes import pid_alive
    from core.tracking import schema as S
    from flows.stale_runs import sweep
    from palier import services as svc

    before = svc.read_state()
    os.kill(before["mlflow"]["pid"], signal.SIGKILL)  # its uvicorn worker lives on, holding the port
    os.kill(before["prefect"]["pid"], signal.SIGKILL)
    down = svc.status()
    assert not down["prefect"]["up"] and "is gone" in down["prefect"]["problem"]
    assert "is gone" in down["mlflow"]["problem"]

    after = svc.up(services["pipelines"], timeout_s=180)
    print("deployments process", "kept" if after["serve"]["pid"] == before["serve"]["pid"] else "restarted")
    assert after["prefect"]["port"] == before["prefect"]["port"]
    assert after["mlflow"]["port"] == before["mlflow"]["port"]
    assert after["mlflow"]["pid"] != before["mlflow"]["pid"] and after["prefect"]["pid"] != before["prefect"]["pid"]
    # Same addresses: a deployments process that lived through the outage is kept (Prefect's runner
    # may also give up while its server is gone; then `palier up` starts it again).
    assert after["serve"]["env"] == svc.client_env(after) and pid_alive(after["serve"]["pid"])
    assert after["serve"]["pid"] == before["serve"]["pid"] or not pid_alive(before["serve"]["pid"])
    assert (services["home"] / "env").read_text() == "".join(
        f"export {k}={v}\n" for k, v in svc.client_env(after).items())
    assert all(s["up"] and s["problem"] is None for s in svc.status().values())

    # The served deployments reach the restarted servers: a run starts, trains, then dies hard.
    started = subprocess.run([str(BIN / "prefect"), "deployment", "run", "exp-pipeline/long"],
                             capture_output=True, text=True, env=services["env"], timeout=120)
    assert started.returncode == 0, started.stdout + started.stderr
    flow_run = flow_run_id(started.stdout)
    c = _mlflow(services)

    def live_stage():
        exp = c.get_experiment_by_name("palier/long")  # made by this run when no earlier test did
        if exp is None:
            return None
        runs = c.search_runs([exp.experiment_id], f"tags.`{S.TAG_FLOW_RUN_ID}` = '{flow_run}'")
        if not runs:
            return None
        stages = c.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{runs[0].info.run_id}' "
                                                    f"and attributes.status = 'RUNNING'")
        return (runs[0], stages[0]) if stages and S.TAG_JOB_ID in stages[0].data.tags else None

    parent, stage = _wait(live_stage, 240, "the deployment run's stage to start")
    assert not sweep(services["env"]["MLFLOW_TRACKING_URI"], prefect=False).mlflow_runs  # alive: left open

    owner = int(parent.data.tags[S.TAG_OWNER_PID])
    stage_pid = int(stage.data.tags[S.TAG_JOB_ID].removeprefix("pid-"))
    os.kill(owner, signal.SIGKILL)  # the flow-run process, as on a power loss...
    os.killpg(stage_pid, signal.SIGKILL)  # ...with its stage
    _wait(lambda: not pid_alive(owner), 30, "the flow-run process to die")
    assert c.get_run(parent.info.run_id).info.status == "RUNNING"

    status = subprocess.run([str(BIN / "palier"), "status", "--json"], capture_output=True, text=True,
                            env=services["env"], timeout=120)
    assert status.returncode == 0, status.stdout + status.stderr
    closed = {r["run_id"] for r in json.loads(status.stdout)["stale_runs"]["closed"]["mlflow_runs"]}
    assert {parent.info.run_id, stage.info.run_id} <= closed
    for run_id in (parent.info.run_id, stage.info.run_id):
        run = c.get_run(run_id)
        assert run.info.status == "KILLED"
        assert run.data.tags[S.TAG_KILLED_REASON].startswith(f"process {owner} on ")
    with _prefect(services) as client:  # the runner or the sweep marked it Crashed
        _wait(lambda: client.read_flow_run(flow_run).state.type.value == "CRASHED", 60, "the flow run to crash")


@pytest.mark.restarts_services
def test_a_port_taken_by_another_program_moves_the_server_and_everything_that_points_at_it(services):
    import socket

    from palier import services as svc

    before = svc.read_state()
    os.killpg(before["mlflow"]["pid"], signal.SIGKILL)  # the whole server, workers included
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    _wait(lambda: _bind(squatter, before["mlflow"]["port"]), 30, "the old port to be free for the squatter")
    squatter.listen()
    try:
        after = svc.up(services["pipelines"], timeout_s=180, release_wait_s=2)
    finally:
        squatter.close()
    assert after["mlflow"]["port"] != before["mlflow"]["port"]
    assert after["prefect"] == before["prefect"]
    # In the same step: the deployments were restarted with the new address, and the env file says it.
    assert after["serve"]["pid"] != before["serve"]["pid"]
    assert after["serve"]["env"]["MLFLOW_TRACKING_URI"] == f"http://127.0.0.1:{after['mlflow']['port']}"
    assert f"MLFLOW_TRACKING_URI=http://127.0.0.1:{after['mlflow']['port']}\n" in (services["home"] / "env").read_text()
    assert all(s["up"] for s in svc.status().values())


def _bind(sock, port: int) -> bool:
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        return False
    return True
