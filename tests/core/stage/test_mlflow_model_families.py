"""Token classification and SFT outputs as MLflow models: a one-step stage of each tiny family,
its MLflow model logged and registered as palier does, then loaded by `mlflow.transformers`
and `mlflow.pyfunc` and served by `mlflow models serve` from `models:/NAME@champion`."""

import os

import pytest

from mlflow_serving import invoke, served_model, use_tracking_server
from tiny_families import CHAT_ROWS, PII_ROWS, run_pipeline_stages, sft_pipeline, token_cls_pipeline, write_jsonl

pytestmark = pytest.mark.e2e


def _register(tracking_uri: str, out, name: str) -> str:
    """What the flow does with a finished stage: LoggedModel of the stage run, version, champion."""
    from core.tracking.mlflow_store import Tracker

    tracker = Tracker(tracking_uri)
    run_id = tracker._client.create_run(tracker.experiment_id("palier/families")).info.run_id
    model_id = tracker.log_model(run_id, out / "mlflow-model", name)
    tracker.register(run_id, name, out / "model", {}, "champion", model_id=model_id)
    assert tracker.register(run_id, name, out / "model", {}, "champion", model_id=model_id) == "1"  # no duplicate
    return f"models:/{name}@champion"


@pytest.fixture
def registry_env(services, monkeypatch):
    use_tracking_server(services["env"]["MLFLOW_TRACKING_URI"], monkeypatch)
    monkeypatch.setenv("PALIER_MLFLOW_MODEL", "1")  # as the local backend asks the stage runner
    return services["env"]


def test_token_classifier_loads_and_serves_tags(tmp_path, tiny_bert, families_cache, registry_env):
    import mlflow.pyfunc
    import mlflow.transformers

    rows = write_jsonl(tmp_path / "pii.jsonl", PII_ROWS)
    pipeline = token_cls_pipeline(tmp_path / "pii.yaml", str(tiny_bert), rows, rows, stages=1, name="fam-pii")
    run_pipeline_stages(pipeline, tmp_path / "runs", families_cache)
    uri = _register(os.environ["MLFLOW_TRACKING_URI"], tmp_path / "runs" / "first", "fam-pii-first")
    tagger = mlflow.transformers.load_model(uri)
    assert tagger.task == "token-classification"
    assert set(tagger.model.config.id2label.values()) >= {"O", "B-PER", "I-PER", "B-EMAIL"}
    text = "Marie Curie habite ici"
    local = mlflow.pyfunc.load_model(uri).predict([text])
    with served_model(uri, registry_env, tmp_path / "serve.log") as url:
        served = invoke(url, {"inputs": [text]})["predictions"]
    assert served == list(local)  # one string of "entity_group" spans per input, as loaded locally


def test_chat_model_loads_and_serves_a_generation(tmp_path, tiny_chat, families_cache, registry_env):
    import mlflow.pyfunc
    import mlflow.transformers

    rows = write_jsonl(tmp_path / "chat.jsonl", CHAT_ROWS)
    pipeline = sft_pipeline(tmp_path / "sft.yaml", str(tiny_chat), rows, rows, stages=1, name="fam-sft")
    run_pipeline_stages(pipeline, tmp_path / "runs", families_cache)
    out = tmp_path / "runs" / "facts"
    assert (out / "mlflow-model" / "model" / "palier_sft.json").is_file()  # palier's files ride along
    uri = _register(os.environ["MLFLOW_TRACKING_URI"], out, "fam-sft-facts")
    generator = mlflow.transformers.load_model(uri)
    assert generator.task == "text-generation"
    prompt = "Qui pilote PLANEO ?"
    local = mlflow.pyfunc.load_model(uri).predict([prompt], params={"max_new_tokens": 4, "do_sample": False})
    with served_model(uri, registry_env, tmp_path / "serve.log") as url:
        served = invoke(url, {"inputs": [prompt], "params": {"max_new_tokens": 4, "do_sample": False}})["predictions"]
    assert served == list(local) and isinstance(served[0], str) and served[0]
