"""The read-only queries the agent, `palier watch` and `palier evaluate` ask MLflow, on a real
SQLite store: stage runs of a flow run, JSON artifacts, registered models by alias and version."""

import json

import pytest

from core.tracking import queries
from core.tracking import schema as S


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.create_experiment("palier/demo", artifact_location=(root / "artifacts").as_uri())
    parent = client.create_run(exp, tags={S.TAG_KIND: "pipeline", S.TAG_FLOW_RUN_ID: "flow-1"})
    stages = []
    for i, name in enumerate(("exp1", "exp2")):
        run = client.create_run(exp, start_time=1_000 + i, tags={S.TAG_KIND: "stage", S.TAG_STAGE: name,
                                           S.TAG_PARENT_RUN: parent.info.run_id, "other.tag": "x"})
        stages.append(run.info.run_id)
    model = root / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "whisper"}')
    client.log_artifacts(stages[1], str(model), "model")
    client.log_text(stages[1], json.dumps({"wer": 0.25}), "results.json")
    client.create_registered_model("palier-demo-exp2")
    version = client.create_model_version("palier-demo-exp2", f"runs:/{stages[1]}/model", run_id=stages[1])
    client.set_registered_model_alias("palier-demo-exp2", "champion", version.version)
    return uri, client, exp, parent.info.run_id, stages


def test_stage_runs_are_found_from_the_flow_run_in_start_order(store):
    uri, client, exp, parent, stages = store
    assert [r.info.run_id for r in queries.flow_run_stage_runs(client, "flow-1")] == stages
    assert queries.flow_run_stage_runs(client, "flow-never-started") == []
    records = queries.stage_runs(client, exp, parent)
    assert [r["run_id"] for r in records] == stages
    assert set(records[0]["tags"]) == {S.TAG_KIND, S.TAG_STAGE, S.TAG_PARENT_RUN}  # palier's own tags only
    assert [e["pipeline"] for e in queries.pipeline_experiments(client)] == ["demo"]
    assert [r["run_id"] for r in queries.pipeline_runs(client, exp, 5)] == [parent]


def test_json_artifact_reads_a_result_and_absent_is_none(store):
    _, client, _, _, stages = store
    assert queries.json_artifact(client, stages[1], "results.json") == {"wer": 0.25}
    assert queries.json_artifact(client, stages[0], "results.json") is None


def test_registered_model_downloads_once_by_alias_or_version(store, tmp_path):
    uri = store[0]
    by_alias = queries.download_registered_model(uri, "models:/palier-demo-exp2@champion", tmp_path)
    assert json.loads((by_alias / "config.json").read_text()) == {"model_type": "whisper"}
    stamp = (by_alias / "config.json").stat().st_mtime_ns
    by_version = queries.download_registered_model(uri, "models:/palier-demo-exp2/1", tmp_path)
    assert by_version == by_alias and (by_alias / "config.json").stat().st_mtime_ns == stamp


@pytest.mark.parametrize(("ref", "says"), [("models:/palier-demo-exp2@nobody", "not in the MLflow model registry"),
                                           ("models:/palier-demo-exp2/7", "not in the MLflow model registry"),
                                           ("models:/no-version-given", "is written models:/NAME@ALIAS")])
def test_a_bad_registry_reference_names_itself(store, tmp_path, ref, says):
    with pytest.raises(queries.RegistryRefError, match=says) as info:
        queries.download_registered_model(store[0], ref, tmp_path)
    assert ref in str(info.value)
