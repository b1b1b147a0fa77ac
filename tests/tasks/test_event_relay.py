"""``tasks.stage.EventRelay``: a checkpoint set aside by the stage runner reaches the Prefect log
(its warning event) and the stage's MLflow run (tag ``palier.checkpoint.set_aside``). A real
MLflow store (SQLite, no server)."""

from __future__ import annotations

import logging

from mlflow import MlflowClient

from core.tracking import schema as S
from core.tracking.mlflow_store import Tracker
from core.tracking.spool import MetricRelay
from tasks.stage import EventRelay


class _Spec:
    name = "exp2"


def test_set_aside_checkpoints_are_tagged_on_the_stage_run_and_logged(tmp_path, caplog):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("relay")).info.run_id
    relay = EventRelay(_Spec(), MetricRelay(Tracker(uri), run_id, tmp_path), logging.getLogger("relay-test"))
    with caplog.at_level(logging.INFO, logger="relay-test"):
        relay({"type": "log", "level": "warning", "message": "checkpoint checkpoint-100 does not load (...)"})
        for step in (100, 80):
            relay({"type": "checkpoint_set_aside", "checkpoint": f"checkpoint-{step}",
                   "moved_to": str(tmp_path / f"torn-checkpoint-{step}"), "reason": "model.safetensors holds 12 bytes"})
    tag = client.get_run(run_id).data.tags[S.TAG_CHECKPOINT_SET_ASIDE]
    assert tag == ("checkpoint-100 -> torn-checkpoint-100: model.safetensors holds 12 bytes; "
                   "checkpoint-80 -> torn-checkpoint-80: model.safetensors holds 12 bytes")
    mine = [r for r in caplog.records if r.name == "relay-test"]
    assert [r.levelname for r in mine] == ["WARNING"]
    assert mine[0].getMessage().startswith("[exp2] checkpoint checkpoint-100 does not load")
