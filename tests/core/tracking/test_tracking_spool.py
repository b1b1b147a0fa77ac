"""The metric spool, and the bounded wait against a port nobody listens on (connection refused,
as while a tracking server restarts). With a live server: tests/core/tracking/test_tracking_outage.py."""

import time

import pytest

from core.tracking.mlflow_store import Tracker
from core.tracking.outage import PATIENCE_ENV, TrackingUnavailable, unreachable
from core.tracking.spool import MetricSpool


def _dead_uri() -> str:
    from palier.services import free_port

    return f"http://127.0.0.1:{free_port()}"


def test_spool_is_append_only_and_remembers_what_was_sent(tmp_path):
    spool = MetricSpool(tmp_path, "run1")
    spool.append([("train/loss", 1.5, 1000, 1), ("train/loss", 1.2, 2000, 2)])
    metrics, offset = spool.pending()
    assert [(m.key, m.value, m.step) for m in metrics] == [("train/loss", 1.5, 1), ("train/loss", 1.2, 2)]
    spool.mark_sent(offset, len(metrics), replayed=0)
    spool.append([("train/loss", 0.9, 3000, 3)])
    with spool.file.open("a") as fh:
        fh.write('{"key": "train/loss", "val')  # a line still being written is not read
    again = MetricSpool(tmp_path, "run1")  # a new process reading the same folder
    metrics, _ = again.pending()
    assert [(m.step, m.timestamp) for m in metrics] == [(3, 3000)]
    assert again.state["sent"] == 2


def test_unreachable_server_waits_the_patience_once_per_outage(monkeypatch):
    monkeypatch.setenv(PATIENCE_ENV, "2")
    uri = _dead_uri()
    first = Tracker(uri)
    started = time.time()
    with pytest.raises(TrackingUnavailable) as info:
        first.experiment_id("x")
    assert 1.5 <= time.time() - started < 30
    assert uri in str(info.value) and PATIENCE_ENV in str(info.value)
    assert unreachable(info.value.__cause__)
    later = Tracker(uri)  # another task of the same process: the outage is already too old
    started = time.time()
    with pytest.raises(TrackingUnavailable):
        later.experiment_id("x")
    assert time.time() - started < 1.5
