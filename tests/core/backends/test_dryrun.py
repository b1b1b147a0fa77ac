"""`--dry-run`: the full description of a remote submission, with nothing sent."""

from __future__ import annotations

import json

import pytest

from core.backends.dryrun import describe, render
from core.backends.modal.client import ModalClient


@pytest.fixture(autouse=True)
def nothing_may_be_sent(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a dry run contacted a service")

    for name in ("spawn", "upload", "exists", "file_sizes", "remove"):
        monkeypatch.setattr(ModalClient, name, refuse)
    import core.backends.kaggle.client as kaggle_client

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


# -- whole shipped pipelines through the CLI ------------------------------------------------------
from repo_paths import ROOT, SHIPPED_PIPELINES  # noqa: E402 - the section that needs it starts here

# The shipped files by name: a user's own files in pipelines/ are not this test's input.
SHIPPED = [*SHIPPED_PIPELINES, ROOT / "pipelines" / "live-check.yaml"]
BACKENDS = ("local", "modal", "kaggle")
UPSTREAM_ON = {"local": "/runs/", "modal": "/vol/runs/", "kaggle": "'s output, mounted as a kernel source"}


@pytest.fixture
def cli(monkeypatch, tmp_path, no_credentials):
    from typer.testing import CliRunner

    from palier.cli import app

    monkeypatch.setenv("PALIER_HOME", str(tmp_path / "palier-home"))
    monkeypatch.setenv("COLUMNS", "80")
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("pipeline", SHIPPED, ids=lambda p: p.stem)
def test_dry_run_of_every_shipped_pipeline_shows_every_stage(cli, pipeline, backend):
    from core.config import load_pipeline

    config = load_pipeline(pipeline)
    result = cli("run", pipeline, "--backend", backend, "--dry-run")
    out = result.output
    assert result.exit_code == 0, out
    assert "Traceback" not in out and "cannot be submitted" not in out
    blocks = out.split("Dry run: stage ")[1:]
    assert [b.split(" on ")[0] for b in blocks] == [s.name for s in config.stages]
    assert all(b.split(" on ", 1)[1].startswith(f"{backend} (nothing sent)") for b in blocks)
    for upstream, block in zip(config.stages, blocks[1:]):
        line = next(line for line in block.splitlines() if line.strip().startswith("base_model:"))
        assert f"output of {upstream.name}: " in line and UPSTREAM_ON[backend] in line, line


def test_dry_run_honours_only_and_rejects_unknown_stages(cli):
    pipeline = ROOT / "pipelines" / "fr.yaml"
    result = cli("run", pipeline, "--backend", "modal", "--dry-run", "--only", "exp3-medical")
    assert result.exit_code == 0, result.output
    assert result.output.count("Dry run: stage ") == 1 and "Dry run: stage exp3-medical on modal" in result.output
    assert "output of exp2-common-voice: /vol/runs/fr/01-exp2-common-voice-" in result.output
    assert "missing_inputs (submit would stop here):" in result.output  # the medical data is the user's own
    bad = cli("run", pipeline, "--dry-run", "--only", "exp9")
    assert bad.exit_code == 2 and "--only exp9: no such stage" in bad.output and "Traceback" not in bad.output


@pytest.mark.parametrize("backend", ["modal", "kaggle"])
def test_a_pypi_base_model_is_shown_as_the_folder_that_would_be_shipped(cli, tmp_path, backend):
    import shutil

    from core.ct2.packaged import cached_import_dir, packaged_model

    pipeline = ROOT / "pipelines" / "medical-base.yaml"
    folder = cached_import_dir(packaged_model("whisper-base"), tmp_path / "palier-home" / "cache")
    before = cli("run", pipeline, "--backend", backend, "--dry-run")
    assert before.exit_code == 0, before.output
    line = next(x for x in before.output.splitlines() if x.strip().startswith("base_model:"))
    assert f"pypi:whisper-base: {folder}, imported there" in line and "not imported yet" in line, line

    shutil.copytree(ROOT / "models" / "nano-whisper-fr", folder)  # stands for the imported Transformers folder
    after = cli("run", pipeline, "--backend", backend, "--dry-run")
    assert after.exit_code == 0, after.output
    upload = next(x for x in after.output.splitlines() if "role=base_model" in x)
    assert f"local={folder}," in upload and "files=7" in upload, upload
    line = next(x for x in after.output.splitlines() if x.strip().startswith("base_model:"))
    assert line.strip().startswith(f"base_model: pypi:whisper-base = {folder}: ") and "not imported" not in line, line
