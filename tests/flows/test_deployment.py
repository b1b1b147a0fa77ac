"""Real Prefect + MLflow servers on free loopback ports, a real served deployment, and
`prefect deployment run ... --watch`, then assertions in MLflow."""

import subprocess

import pytest

from e2e_services import BIN, deployment_run as _deployment_run

pytestmark = pytest.mark.e2e


def test_services_bind_loopback_and_status(services):
    from palier.services import status

    info = status()
    assert info["prefect"]["up"] and info["mlflow"]["up"] and info["deployments"]["up"]
    assert info["mlflow"]["url"].startswith("http://127.0.0.1:")
    from palier.services import up

    again = up(services["pipelines"], timeout_s=60)  # idempotent: same processes
    assert again["mlflow"]["pid"] == services["state"]["mlflow"]["pid"]
    assert again["serve"]["pid"] == services["state"]["serve"]["pid"]


def test_deployment_run_tracks_lineage_in_mlflow(services, tiny_run):
    from mlflow import MlflowClient

    from core.tracking import schema as S

    proc = tiny_run["proc"]
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]

    c = MlflowClient(services["env"]["MLFLOW_TRACKING_URI"])
    exp = c.get_experiment_by_name("palier/tiny")
    parents = c.search_runs([exp.experiment_id], f"tags.`{S.TAG_KIND}` = 'pipeline'")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    children = c.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    by_stage = {r.data.tags[S.TAG_STAGE]: r for r in children}
    assert set(by_stage) == {"general", "medical"}
    general, medical = by_stage["general"], by_stage["medical"]
    for run, primary in ((general, "general_test"), (medical, "medical_test")):
        m = run.data.metrics
        assert S.baseline_key(primary, "wer") in m and S.final_key(primary, "wer") in m
        assert S.delta_key(primary, "wer") in m
        assert run.data.params["training.max_steps"] == "2"
        assert any(k.startswith("train/") for k in m), "training curves relayed live"
        assert run.info.status == "FINISHED"
    assert S.final_key("medical_test", "medical_term_accuracy") in medical.data.metrics
    assert S.delta_prev_key("general_test", "wer") in medical.data.metrics  # vs previous stage

    # Lineage: stage 2 starts from stage 1's output, never from the original.
    assert medical.data.tags[S.TAG_UPSTREAM_STAGE] == "general"
    assert medical.data.tags[S.TAG_BASE_MODEL].endswith("/model")
    assert "general-" in medical.data.tags[S.TAG_BASE_MODEL]

    for name, run in (("tiny-general", general), ("tiny-medical", medical)):
        versions = c.search_model_versions(f"name = '{name}'")
        assert len(versions) == 1 and versions[0].run_id == run.info.run_id
        assert c.get_model_version_by_alias(name, "candidate").version == versions[0].version
    assert c.get_model_version("tiny-medical", "1").tags["palier.upstream_run_id"] == general.info.run_id

    tables = {a.path for a in c.list_artifacts(medical.info.run_id, "predictions")}
    assert "predictions/final_medical_test.json" in tables and "predictions/baseline_medical_test.json" in tables
    charts = {a.path for a in c.list_artifacts(parent.info.run_id, "charts")}
    assert "charts/baseline_vs_final.png" in charts


def test_rerun_skips_finished_stages(services):
    from mlflow import MlflowClient

    from core.tracking import schema as S

    proc = _deployment_run(services["env"], "tiny")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    c = MlflowClient(services["env"]["MLFLOW_TRACKING_URI"])
    exp = c.get_experiment_by_name("palier/tiny")
    latest = c.search_runs([exp.experiment_id], f"tags.`{S.TAG_KIND}` = 'pipeline'",
                           order_by=["attributes.start_time DESC"])[0]
    children = c.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{latest.info.run_id}'")
    assert len(children) == 2
    assert all(r.data.tags[S.TAG_STATUS] == "skipped" and r.data.tags.get(S.TAG_REUSED_FROM) for r in children)
    assert len(c.search_model_versions("name = 'tiny-medical'")) == 1  # nothing re-registered


def test_summary_command_reads_mlflow(services):
    proc = subprocess.run([str(BIN / "palier"), "summary", "tiny", "--json"], capture_output=True, text=True,
                          env=services["env"], timeout=120)
    assert proc.returncode == 0, proc.stderr
    import json

    info = json.loads(proc.stdout)
    assert [s["stage"] for s in info["stages"]] == ["general", "medical"]


def test_failed_stage_is_diagnosed_and_not_retried_blindly(services):
    from mlflow import MlflowClient

    from core.tracking import schema as S

    proc = _deployment_run(services["env"], "broken")
    assert proc.returncode != 0
    c = MlflowClient(services["env"]["MLFLOW_TRACKING_URI"])
    exp = c.get_experiment_by_name("palier/broken")
    parent = c.search_runs([exp.experiment_id], f"tags.`{S.TAG_KIND}` = 'pipeline'")[0]
    assert parent.info.status == "FAILED"
    stage = c.search_runs([exp.experiment_id], f"tags.`{S.TAG_KIND}` = 'stage'")[0]
    assert stage.info.status == "FAILED" and stage.data.tags[S.TAG_ATTEMPT] == "1"
    assert stage.data.tags.get(S.TAG_DIAGNOSIS_KIND)
    assert "palier.remedy" not in stage.data.tags
    assert {a.path for a in c.list_artifacts(stage.info.run_id, "diagnosis")} >= {S.ARTIFACT_DIAGNOSIS}
    assert not c.search_model_versions("name = 'broken-general'")
