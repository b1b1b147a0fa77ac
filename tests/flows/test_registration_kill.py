"""The orchestrator killed with SIGKILL (a real kill of the real flow process, at a named point:
``core.fault_points``) between a model version's creation and its alias move, and between a
stage's end and its MLflow logging. The rerun reconciles: the stage is not trained again, one
model version per stage key, aliases right, metrics logged once, the dead run closed KILLED.
Real Prefect and MLflow servers, a real tiny stage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tiny import tiny_asr_pipeline

pytestmark = pytest.mark.e2e

FLOW = "import sys; from flows.exp_pipeline import exp_pipeline; exp_pipeline(pipeline=sys.argv[1])"


def _flow(env: dict, pipeline, kill_at: str | None = None) -> subprocess.CompletedProcess:
    from core import fault_points

    env = {k: v for k, v in env.items() if k != fault_points.ENV}
    if kill_at:
        env[fault_points.ENV] = kill_at
    return subprocess.run([sys.executable, "-c", FLOW, str(pipeline)], env=env, capture_output=True, text=True,
                          timeout=900)


def _stage_runs(c, experiment: str):
    from core.tracking import schema as S

    exp = c.get_experiment_by_name(experiment)
    return c.search_runs([exp.experiment_id], f"tags.`{S.TAG_KIND}` = 'stage'", order_by=["attributes.start_time ASC"])


def _trainings(out_root, stage: str) -> int:
    from stage_files import read_events

    folders = [p for p in out_root.glob(f"{stage}-*") if p.is_dir()]
    assert len(folders) == 1, folders
    return sum(e["type"] == "phase" and e["phase"] == "train" and e["status"] == "start" for e in read_events(folders[0]))


@pytest.mark.parametrize("kill_at", ["after_model_version", "after_stage_end"])
def test_a_kill_during_registration_is_reconciled_by_the_rerun(services, tiny_whisper, kill_at):
    from mlflow import MlflowClient

    from core.tracking import schema as S

    name = f"regkill{kill_at.split('_')[1]}"  # regkillmodel, regkillstage
    pipeline = tiny_asr_pipeline(services["pipelines"].parent / f"{name}.yaml", tiny_whisper, stages=1, name=name)
    env = {**services["env"], "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    c = MlflowClient(env["MLFLOW_TRACKING_URI"])
    model = f"{name}-general"

    killed = _flow(env, pipeline, kill_at)
    assert killed.returncode == -signal.SIGKILL, killed.stdout[-3000:] + killed.stderr[-3000:]
    versions = c.search_model_versions(f"name = '{model}'")
    assert len(versions) == (1 if kill_at == "after_model_version" else 0)
    if versions:
        assert c.get_registered_model(model).aliases == {}  # killed before any alias moved
    [dead] = _stage_runs(c, f"palier/{name}")
    # Results are logged before the gate: only a kill right after the stage leaves the run bare.
    assert (S.final_key("general_test", "wer") in dead.data.metrics) == (kill_at == "after_model_version")

    rerun = _flow(env, pipeline)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "never logged" in rerun.stdout + rerun.stderr
    assert _trainings(services["home"] / "runs" / name, "general") == 1  # not trained again

    [version] = c.search_model_versions(f"name = '{model}'")
    aliases = c.get_registered_model(model).aliases
    assert aliases[S.ALIAS_CANDIDATE] == version.version
    runs = _stage_runs(c, f"palier/{name}")
    assert [r.info.status for r in runs] == ["KILLED", "FINISHED"]
    done = runs[1]
    assert done.data.tags[S.TAG_MODEL_VERSION] == version.version
    assert done.data.tags[S.TAG_STAGE_KEY] == version.tags[S.TAG_STAGE_KEY]
    if done.data.tags[S.TAG_GATE] == S.ALIAS_CHAMPION:
        assert aliases[S.ALIAS_CHAMPION] == version.version
    for key in (S.final_key("general_test", "wer"), S.baseline_key("general_test", "wer")):
        assert len(c.get_metric_history(done.info.run_id, key)) == 1, key  # logged once
