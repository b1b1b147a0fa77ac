"""A deployment run's models as MLflow users meet them: LoggedModels of the stage runs, registered
versions that MLflow's own loaders and `mlflow models serve` accept, and lineage on the version."""

import base64

import pytest

from mlflow_serving import invoke, served_model, use_tracking_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def registry(services, tiny_run):
    from mlflow import MlflowClient

    proc = tiny_run["proc"]
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return MlflowClient(services["env"]["MLFLOW_TRACKING_URI"])


def _alias_uri(client, name: str) -> str:
    """models:/NAME@ALIAS with the alias the gate gave the version (champion when it won)."""
    from core.tracking import schema as S

    version = client.search_model_versions(f"name = '{name}'")[0]
    return f"models:/{name}@{version.tags[S.TAG_GATE]}"


def test_versions_come_from_logged_models_with_lineage(registry):
    from mlflow.entities import LoggedModelStatus

    from core.tracking import schema as S

    exp = registry.get_experiment_by_name("palier/tiny")
    models = {m.name: m for m in registry.search_logged_models([exp.experiment_id])}
    assert set(models) == {"tiny-general", "tiny-medical"}
    for name, model in models.items():
        version = registry.get_model_version(name, "1")
        # MLflow's SQL registry keeps the LoggedModel as the version's source (it does not store model_id)
        assert version.source == f"models:/{model.model_id}" and version.tags[S.TAG_LOGGED_MODEL] == model.model_id
        assert model.source_run_id == version.run_id and model.status == LoggedModelStatus.READY
        run = registry.get_run(version.run_id)
        assert run.data.tags[S.TAG_LOGGED_MODEL] == model.model_id
        assert model.model_id in {o.model_id for o in run.outputs.model_outputs}
    medical = registry.get_model_version("tiny-medical", "1")
    general = registry.get_model_version("tiny-general", "1")
    assert medical.tags[S.TAG_BASE_MODEL] == "models:/tiny-general/1"
    assert medical.tags[S.TAG_SOURCE_RUN] == medical.run_id
    assert "models:/tiny-general/1" in medical.description and medical.run_id in medical.description
    assert general.run_id in general.description


def test_asr_version_loads_and_serves_a_transcription(registry, services, tmp_path, monkeypatch):
    import mlflow.pyfunc
    import mlflow.transformers

    from core.demo.speech import VOICE_POOLS, synthesize

    use_tracking_server(services["env"]["MLFLOW_TRACKING_URI"], monkeypatch)
    uri = _alias_uri(registry, "tiny-medical")
    pipe = mlflow.transformers.load_model(uri)
    assert pipe.task == "automatic-speech-recognition"
    assert type(pipe.feature_extractor).__name__ == "WhisperFeatureExtractor"
    assert type(pipe.tokenizer).__name__ == "WhisperTokenizer"
    wav = synthesize(["Le patient présente une fièvre depuis trois jours."], tmp_path / "speech",
                     next(iter(VOICE_POOLS)))[0].path
    text = mlflow.pyfunc.load_model(uri).predict(wav.read_bytes())
    assert isinstance(text, list) and len(text) == 1 and isinstance(text[0], str)

    with served_model(uri, services["env"], tmp_path / "serve.log") as url:
        answer = invoke(url, {"inputs": [base64.b64encode(wav.read_bytes()).decode()]})
    assert answer["predictions"] == text  # the server transcribes the WAV as the loaded model does


def test_pipeline_starts_from_a_registered_version(registry, services, tmp_path):
    """`base_model: models:/NAME@ALIAS`: pinned to its version, downloaded once, the upstream of lineage."""
    import subprocess

    from core.tracking import schema as S
    from e2e_services import BIN
    from tiny import tiny_asr_pipeline

    ref = _alias_uri(registry, "tiny-medical")
    upstream = registry.get_model_version("tiny-medical", "1")
    pipeline = tiny_asr_pipeline(tmp_path / "from-registry.yaml", ref, stages=1, name="from-registry")
    proc = subprocess.run([str(BIN / "palier"), "run", str(pipeline)], env=services["env"], capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    version = registry.get_model_version("from-registry-general", "1")
    assert version.tags[S.TAG_BASE_MODEL] == "models:/tiny-medical/1"  # the alias, pinned to what it named
    assert version.tags[S.TAG_UPSTREAM_RUN] == upstream.run_id and version.tags[S.TAG_UPSTREAM_MODEL_VERSION] == "1"
    assert (services["home"] / "cache" / "registered" / "tiny-medical-v1" / "model" / "model.safetensors").is_file()
    parent = registry.get_run(registry.get_run(version.run_id).data.tags[S.TAG_PARENT_RUN])
    assert parent.data.params["base_model"] == "models:/tiny-medical/1"
    # The baseline belongs to the upstream's LoggedModel, the final score to the new one.
    upstream_scores = {m.key for m in registry.get_logged_model(upstream.source.split("/")[-1]).metrics}
    new_scores = {m.key for m in registry.get_logged_model(version.tags[S.TAG_LOGGED_MODEL]).metrics}
    assert S.baseline_key("general_test", "wer") in upstream_scores and S.final_key("general_test", "wer") in new_scores
    datasets = {d.dataset.name for d in registry.get_run(version.run_id).inputs.dataset_inputs}
    assert datasets == {"general-train", "general_test"}
