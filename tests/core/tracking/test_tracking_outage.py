"""The MLflow server is killed in the middle of a real stage and comes back on the same port:
the stage succeeds and every step metric it produced is in MLflow, once."""

import calendar
import json
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from core.tracking.mlflow_store import Tracker, client
from core.tracking import schema as S
from core.tracking.outage import PATIENCE_ENV, TrackingUnavailable, unreachable
from core.tracking.spool import SPOOL_DIR, MetricRelay
from speed_markers import starts_servers
from tiny import tiny_asr_pipeline

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
@starts_servers
def mlflow_server(tmp_path_factory):
    from mlflow_server import MlflowServer
    from palier.services import free_port

    server = MlflowServer(tmp_path_factory.mktemp("mlflow"), free_port())
    server.start()
    yield server
    server.kill()


@pytest.fixture
def store(mlflow_server):
    return Tracker(mlflow_server.url)


def _dead_uri() -> str:
    from palier.services import free_port

    return f"http://127.0.0.1:{free_port()}"


def test_a_bad_request_is_not_retried(store):
    from mlflow.exceptions import MlflowException

    started = time.time()
    with pytest.raises(MlflowException) as info:
        store.get_run("0" * 32)
    assert not isinstance(info.value, TrackingUnavailable) and not unreachable(info.value)
    assert time.time() - started < 5


def test_metrics_kept_while_down_are_replayed_to_the_run_once(tmp_path, monkeypatch, store):
    monkeypatch.setenv(PATIENCE_ENV, "1")
    reader = client(store.tracking_uri)
    run_id = reader.create_run(store.experiment_id("palier/spool")).info.run_id
    out_dir = tmp_path / "stage"

    down = MetricRelay(Tracker(_dead_uri()), run_id, out_dir, flush_every_s=0)
    for step in range(1, 4):
        down.add(step, {"loss": 1.0 / step, "eval_wer": 0.5})
    assert down.flush() is False and down.sent == 0
    assert down.close() is False  # past the patience: kept on disk, not lost
    assert (out_dir / SPOOL_DIR / f"{run_id}.jsonl").read_text().count("\n") == 6

    back = MetricRelay(store, run_id, out_dir)  # the next relay for this stage folder
    back.add(4, {"loss": 0.2})
    assert back.close() is True
    history = reader.get_metric_history(run_id, "train/loss")
    assert sorted((m.step, round(m.value, 3)) for m in history) == [(1, 1.0), (2, 0.5), (3, 0.333), (4, 0.2)]
    assert len(reader.get_metric_history(run_id, "eval/wer")) == 3
    tags = store.get_run(run_id).data.tags
    assert tags[S.TAG_REPLAYED_METRICS] == "7"
    assert back.close() is True and len(reader.get_metric_history(run_id, "train/loss")) == 4  # nothing twice
    assert S.TAG_TRACKING_OUTAGES not in tags  # this store never went down


def _step_metrics(events_file: Path) -> Counter:
    from core.tracking.spool import metric_name

    out: Counter = Counter()
    for line in events_file.read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        if event.get("type") == "metric":
            for key, value in event["metrics"].items():
                out[(metric_name(key), int(event.get("step", 0)), float(value))] += 1
    return out


def test_stage_survives_mlflow_restart_and_replays_every_metric(tmp_path, tiny_whisper, palier_home, mlflow_server):
    from mlflow import MlflowClient
    from prefect.logging import disable_run_logger

    from core.config import load_pipeline
    from core.paths import stage_dir
    from core.plan import plan
    from tasks.results import log_results
    from tasks.stage import run_stage_task

    t0 = time.time()
    marks: list[str] = []

    def mark(what: str) -> None:  # phase times, shown when an assertion fails
        marks.append(f"{time.time() - t0:.0f}s {what}")

    path = tiny_asr_pipeline(tmp_path / "p.yaml", tiny_whisper, stages=1, name="outage", steps=20)
    spec = plan(load_pipeline(path), code_version="test", pipeline_file=str(path))[0]
    out_dir = stage_dir(spec.pipeline, spec.name, spec.key)
    tracker = Tracker(mlflow_server.url)  # one client for the whole test: it must survive the restart
    parent = tracker.start_pipeline_run("palier/outage", "outage", str(path), {}, None)
    run_id = tracker.start_stage_run("palier/outage", parent, spec, attempt=1)

    outcome: dict = {}

    def stage() -> None:
        try:
            with disable_run_logger():
                result = run_stage_task.fn(spec, run_id, mlflow_server.url)
                mark("stage returned")
                log_results.fn(spec, result, None, run_id, out_dir, mlflow_server.url)
                mark("results logged")
                tracker.end_run(run_id, "succeeded")
        except BaseException as exc:  # reported by the main thread
            outcome["error"] = exc

    worker = threading.Thread(target=stage, daemon=True)
    worker.start()
    client = MlflowClient(mlflow_server.url)
    deadline = time.time() + 240
    while not client.get_run(run_id).data.metrics.get("train/loss"):  # some metrics went live
        assert worker.is_alive() and time.time() < deadline, outcome
        time.sleep(0.3)
    mlflow_server.kill()
    killed_at = time.time()
    mark("server killed")
    time.sleep(3)  # then the restart itself takes its time: the stage goes on meanwhile
    assert worker.is_alive(), f"the stage finished or failed while MLflow was down: {outcome}"
    mlflow_server.start()
    mark("server back")
    worker.join(timeout=300)
    assert not worker.is_alive(), "the stage did not finish after MLflow came back"
    assert "error" not in outcome, (repr(outcome.get("error")), marks)
    print(marks)

    run = MlflowClient(mlflow_server.url).get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags[S.TAG_STATUS] == "succeeded"
    expected = _step_metrics(out_dir / "events.jsonl")
    assert len({step for _, step, _ in expected}) >= 20  # a value at every one of the 20 steps
    in_mlflow: Counter = Counter()
    for key in {k for k, _, _ in expected}:
        for m in client.get_metric_history(run_id, key):
            in_mlflow[(key, m.step, m.value)] += 1
    # Every (metric, step, value) the stage produced is in MLflow, and none more often than produced
    # (the runner may report one value twice, e.g. the last step's epoch; MLflow keeps one).
    assert set(in_mlflow) == set(expected), f"missing {set(expected) - set(in_mlflow)}"
    assert all(in_mlflow[k] <= expected[k] for k in in_mlflow), in_mlflow - expected
    assert S.final_key("general_test", "wer") in run.data.metrics  # the results after the outage too

    # The run says what happened: when the server was away and how much was sent late.
    began, ended = (calendar.timegm(time.strptime(t, "%Y-%m-%d %H:%M:%S"))
                    for t in run.data.tags[S.TAG_TRACKING_OUTAGES].split(" UTC (")[0].split(" to "))
    assert killed_at - 1 <= began <= ended <= time.time(), run.data.tags[S.TAG_TRACKING_OUTAGES]
    assert int(run.data.tags[S.TAG_REPLAYED_METRICS]) > 0
    state = json.loads((out_dir / SPOOL_DIR / f"{run_id}.json").read_text())
    assert state["sent"] == sum(expected.values())  # the spool is fully acknowledged
    assert len(marks) == 4, marks
