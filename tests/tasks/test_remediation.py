"""The flow's failure path: diagnose a real failed stage folder, record it in MLflow, and
retry once only with a remedy the playbook marks safe."""

import logging
import shutil
from pathlib import Path

import pytest

from core.config import load_pipeline
from core.plan import plan
from core.tracking import schema as S
from core.tracking.mlflow_store import Tracker, client
from tasks.remediation import after_failure
from tasks.stage import WatchOutcome
from repo_paths import STAGE_LOGS as LOGS
from tiny import tiny_asr_pipeline


@pytest.fixture
def stage(tmp_path):
    # The remediation reads the stage's log and config only: the base model is never loaded.
    spec = plan(load_pipeline(tiny_asr_pipeline(tmp_path / "p.yaml", tmp_path / "base-model", stages=1,
                                                training={"per_device_train_batch_size": 8,
                                                          "gradient_accumulation_steps": 2})),
                code_version="test", pipeline_file=str(tmp_path / "p.yaml"))[0]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    reader = client(uri)
    exp = reader.create_experiment("palier/tiny", artifact_location=str(tmp_path / "artifacts"))
    run_id = reader.create_run(exp).info.run_id
    tracker = Tracker(uri)
    return spec, tracker, run_id


def _failed_folder(tmp_path: Path, log_name: str) -> Path:
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    shutil.copy(LOGS / log_name, out / "stage.log")
    return out


def test_oom_gets_one_safe_retry_with_the_same_effective_batch(tmp_path, stage):
    spec, tracker, run_id = stage
    out = _failed_folder(tmp_path, "cuda_oom_with_deprecation_warning.log")
    failed = WatchOutcome("failed", "stage runner exited with code 1", 1.0, "train", 3)
    retry = after_failure(spec, failed, "", out, 1, tracker, run_id, logging.getLogger("test"))
    assert retry is not None and retry.key == spec.key  # same folder: resumes from checkpoints
    t = retry.stage.training
    assert (t.per_device_train_batch_size, t.gradient_accumulation_steps) == (4, 4)
    run = tracker.get_run(run_id)
    assert run.data.tags[S.TAG_DIAGNOSIS_KIND] == "cuda_oom"
    assert "per_device_train_batch_size 8 -> 4" in run.data.tags[S.TAG_REMEDY]
    artifacts = {a.path for a in client(tracker.tracking_uri).list_artifacts(run_id, "diagnosis")}
    assert {S.ARTIFACT_DIAGNOSIS, S.ARTIFACT_REMEDY, S.diagnosis_attempt(1)} <= artifacts

    # The retried attempt fails the same way: stop, never a second blind retry.
    assert after_failure(retry, failed, "", out, 2, tracker, run_id, logging.getLogger("test")) is None


def test_unsafe_failure_stops_with_the_diagnosis(tmp_path, stage):
    spec, tracker, run_id = stage
    out = _failed_folder(tmp_path, "deprecated_evaluation_strategy.log")
    failed = WatchOutcome("failed", "stage runner exited with code 1", 1.0, "train", None)
    assert after_failure(spec, failed, "", out, 1, tracker, run_id, logging.getLogger("test")) is None
    assert tracker.get_run(run_id).data.tags[S.TAG_DIAGNOSIS_KIND] == "deprecated_arg"
