"""`--dry-run`: the full description of a remote submission, with nothing sent."""

from __future__ import annotations

import json

import pytest

from core.backends.dryrun import describe, render
from core.backends.modal_client import ModalClient


@pytest.fixture(autouse=True)
def nothing_may_be_sent(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a dry run contacted a service")

    for name in ("spawn", "upload", "exists", "file_sizes", "remove"):
        monkeypatch.setattr(ModalClient, name, refuse)
    import core.backends.kaggle_client as kaggle_client

    monkeypatch.setattr(kaggle_client, "authenticated_api", refuse)


def test_modal_description(make_spec, no_credentials, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_SECRETVALUE")
    spec = make_spec(backend={"kind": "modal", "gpus": 2, "timeout_s": 3600}, lexicon=True)
    d = describe(spec, "modal")
    assert d["sent"] is False and d["gpu"] == "H100!:2" and d["timeout_s"] == 3600
    assert d["secrets"] == ["huggingface"] and "hf_SECRETVALUE" not in json.dumps(d)
    assert "torch==2.13.0" in d["image"]["pip"] and d["image"]["local_sources"] == ["core"]
    assert d["volume"]["output"] == f"/vol/runs/fr/00-general-{spec.key}" and d["volume"]["cache"] == "/vol/cache"
    assert {u["role"] for u in d["uploads"]} == {"train", "eval:test", "lexicon"}
    assert d["credentials"].startswith("MISSING")
    text = render(d)
    assert text.startswith("Dry run: stage general on modal (nothing sent)")
    assert "gpu: H100!:2" in text and "secrets: huggingface" in text and "role=train" in text


def test_kaggle_description_writes_an_inspectable_kernel_folder(make_spec, no_credentials, tmp_path, monkeypatch):
    monkeypatch.setenv("KAGGLE_USERNAME", "alice")
    d = describe(make_spec(backend={"kind": "kaggle"}), "kaggle", kernel_dir=tmp_path / "kernel")
    assert d["kernel"] == "alice/palier-fr-general" and d["kernel_metadata"]["is_private"] is True
    assert d["kernel_metadata"]["machine_shape"] == "NvidiaTeslaT4"
    assert d["dataset"]["ref"] == "alice/palier-fr-general-inputs" and d["dataset"]["private"] is True
    assert json.loads((tmp_path / "kernel" / "kernel-metadata.json").read_text()) == d["kernel_metadata"]
    assert (tmp_path / "kernel" / "run_stage.py").stat().st_size == d["script_bytes"]
    assert "MISSING" in d["credentials"]
    assert "machine_shape: NvidiaTeslaT4" in render(d)


def test_kaggle_user_unknown_without_credentials_is_a_placeholder(make_spec, no_credentials):
    assert describe(make_spec(backend={"kind": "kaggle"}), "kaggle")["kernel"].startswith("<your-kaggle-username>/")


def test_local_and_unknown_backends(make_spec):
    assert describe(make_spec(backend={"kind": "local"}), "local")["command"][1:3] == ["-m", "core.stage"]
    with pytest.raises(ValueError, match="expected local, modal or kaggle"):
        describe(make_spec(), "colab")
