"""Registration against a real SQLite MLflow store: a LoggedModel per stage run, one version per output."""

from pathlib import Path

import pytest

from core.tracking import schema as S


@pytest.fixture
def tracker(tmp_path, monkeypatch):
    from core.tracking.mlflow_store import Tracker

    # MLflow's SQL registry resolves a models:/<model_id> source through the global tracking URI.
    import mlflow

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    previous = mlflow.get_tracking_uri()  # fixtures elsewhere set the global URI; this test needs its own
    mlflow.set_tracking_uri(uri)
    t = Tracker()
    t._client.create_experiment("e", artifact_location=(tmp_path / "artifacts").as_uri())
    yield t
    mlflow.set_tracking_uri(previous)


def _mlflow_folder(path: Path) -> Path:
    from mlflow.models import Model

    path.mkdir(parents=True)
    (path / "weights.bin").write_bytes(b"\0" * 16)
    Model().save(str(path / S.MLMODEL_FILE))
    return path


def test_logged_model_is_made_once_per_run_and_is_the_version_source(tracker, tmp_path):
    from mlflow.models import Model

    run = tracker._client.create_run(tracker.experiment_id("e")).info.run_id
    folder = _mlflow_folder(tmp_path / "mlflow-model")
    model_id = tracker.log_model(run, folder, "m")
    assert tracker.log_model(run, folder, "m") == model_id  # a retry reuses the READY model
    mlmodel = Model.load(str(folder / S.MLMODEL_FILE))
    assert mlmodel.model_id == model_id and mlmodel.run_id == run
    version = tracker.register(run, "m", tmp_path / "unused", {S.TAG_STAGE_KEY: "k1"}, "champion", model_id=model_id,
                               version_description="Trained by run x")
    mv = tracker._client.get_model_version("m", version)
    assert mv.source == f"models:/{model_id}" and mv.tags[S.TAG_LOGGED_MODEL] == model_id
    assert mv.description == "Trained by run x"
    assert str(tracker._client.get_model_version_by_alias("m", "champion").version) == version


def test_same_output_registered_by_a_later_run_is_not_a_new_version(tracker, tmp_path):
    plain = tmp_path / "model"
    plain.mkdir()
    (plain / "config.json").write_text("{}", encoding="utf-8")
    exp = tracker.experiment_id("e")
    first, later = (tracker._client.create_run(exp).info.run_id for _ in range(2))
    assert tracker.register(first, "m", plain, {S.TAG_STAGE_KEY: "k1"}, "candidate") == "1"
    assert tracker.register(first, "m", plain, {S.TAG_STAGE_KEY: "k1"}, "candidate") == "1"
    assert tracker.register(later, "m", plain, {S.TAG_STAGE_KEY: "k1"}, "champion") == "1"  # same stage key
    assert tracker.register(later, "m", plain, {S.TAG_STAGE_KEY: "k2"}, "candidate") == "2"
    assert len(tracker._client.search_model_versions("name = 'm'")) == 2
    assert str(tracker._client.get_model_version_by_alias("m", "champion").version) == "1"


def test_a_version_names_the_logged_model_it_came_from(tracker, tmp_path):
    from core.tracking.queries import version_model_id

    run = tracker._client.create_run(tracker.experiment_id("e")).info.run_id
    model_id = tracker.log_model(run, _mlflow_folder(tmp_path / "mlflow-model"), "m")
    version = tracker.register(run, "m", tmp_path / "unused", {}, "candidate", model_id=model_id)
    assert version_model_id(tracker._client.get_model_version("m", version)) == model_id
