"""`base_model: models:/...` in a pipeline, judged by the preflight against a real registry (SQLite store)."""

import pytest

from test_preflight_variants import by_rule, run_preflight, variant


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """demo-whisper-fr-medical v1 (@champion) and v2, both ASR models."""
    from mlflow import MlflowClient

    from core.tracking import schema as S

    root = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{root}/mlflow.db"
    client = MlflowClient(uri)
    exp = client.create_experiment("x", artifact_location=(root / "a").as_uri())
    client.create_registered_model("demo-whisper-fr-medical")
    for _ in range(2):
        run = client.create_run(exp).info.run_id
        client.create_model_version("demo-whisper-fr-medical", f"runs:/{run}/model", run, tags={S.TAG_FAMILY: "asr"})
    client.set_registered_model_alias("demo-whisper-fr-medical", "champion", "1")
    return uri


@pytest.mark.parametrize(("ref", "family", "why"), [
    ("models:/demo-whisper-fr-medical@champion", "asr", None),
    ("models:/demo-whisper-fr-medical/2", "asr", None),
    ("models:/demo-whisper-fr-medical@best", "asr", "versions 1, 2 and aliases @champion -> v1"),
    ("models:/demo-whisper-fr-medical/7", "asr", "versions 1, 2"),
    ("models:/demo-whisper-fr-medicla@champion", "asr", "registered: demo-whisper-fr-medical"),
    ("models:/demo-whisper-fr-medical@champion", "sft", "is a model of family asr, this pipeline's family is sft"),
])
def test_registered_base_model_is_checked(book, make_facts_, registry, monkeypatch, ref, family, why):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry)
    name = "demo" if family == "asr" else "sft-demo"
    config, path = variant(name, lambda raw: raw.update(base_model=ref))
    found = by_rule(run_preflight(config, path, book, make_facts_), "model.base-model-resolves")
    if why is None:
        assert not found
    else:
        assert found[0].blocking and ref in found[0].message and why in found[0].message, found[0].message


def test_registry_down_or_unknown_blocks_before_any_stage(book, make_facts_, monkeypatch):
    from palier.services import free_port

    config, path = variant("demo", lambda raw: raw.update(base_model="models:/demo-whisper-fr-medical@champion"))
    [unset] = by_rule(run_preflight(config, path, book, make_facts_), "model.base-model-resolves")
    assert "no MLflow server to ask" in unset.message
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    [down] = by_rule(run_preflight(config, path, book, make_facts_), "model.base-model-resolves")
    assert "does not answer" in down.message and "palier up" in down.message
