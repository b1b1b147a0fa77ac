"""The Kaggle kernel folder decided offline: metadata, slugs, dataset, generated script."""

from __future__ import annotations

import ast
import json

import pytest

from core.backends.kaggle.backend import plan_kernel
from core.backends.kaggle.client import kaggle_credentials_source
from core.backends.kaggle.kernel import (
    INSTALL_MARGIN_S,
    MAX_SESSION_S,
    KaggleSettings,
    bounded_slug,
    machine_shape,
)
from core.config.common import BackendConfig


def test_metadata_is_private_with_a_t4_gpu_internet_and_the_inputs_dataset(make_spec):
    _, inputs, meta, _, _ = plan_kernel(make_spec(backend={"kind": "kaggle"}), "alice")
    assert meta["id"] == "alice/palier-fr-general" and meta["title"] == "palier-fr-general"
    assert meta["is_private"] is True and meta["enable_gpu"] is True and meta["enable_internet"] is True
    assert meta["machine_shape"] == "NvidiaTeslaT4"  # without it Kaggle hands out a P100
    assert meta["dataset_sources"] == ["alice/palier-fr-general-inputs"]
    assert meta["kernel_type"] == "script" and meta["code_file"] == "run_stage.py" and meta["language"] == "python"
    assert {i.role for i in inputs} == {"train", "eval:test"}


def test_cpu_stage_asks_for_no_accelerator(make_spec):
    _, _, meta, config, _ = plan_kernel(make_spec(backend={"kind": "kaggle", "device": "cpu"}), "alice")
    assert meta["enable_gpu"] is False and "machine_shape" not in meta and config["gpus_required"] == 0


def test_accelerator_names_and_counts():
    pascal = KaggleSettings(p100_torch="torch==2.7.1 --index-url https://download.pytorch.org/whl/cu126")
    assert machine_shape(BackendConfig(kind="kaggle")) == "NvidiaTeslaT4"  # GPU T4 x2 by default
    assert machine_shape(BackendConfig(kind="kaggle", gpus=2)) == "NvidiaTeslaT4"
    assert machine_shape(BackendConfig(kind="kaggle", gpu="P100"), pascal) == "NvidiaTeslaP100"
    with pytest.raises(ValueError, match="has 1 GPU"):
        machine_shape(BackendConfig(kind="kaggle", gpu="P100", gpus=2), pascal)
    with pytest.raises(ValueError, match="not a Kaggle accelerator"):
        machine_shape(BackendConfig(kind="kaggle", gpu="H200"))


def test_p100_needs_a_torch_with_sm60_kernels_and_admin_pools_are_refused(make_spec):
    with pytest.raises(ValueError, match="sm_60.*kaggle-cli/issues/1151.*p100_torch"):
        machine_shape(BackendConfig(kind="kaggle", gpu="P100"))
    with pytest.raises(ValueError, match="admin-only"):
        machine_shape(BackendConfig(kind="kaggle", gpu="NvidiaTeslaT4Highmem"))
    spec = make_spec(backend={"kind": "kaggle", "gpu": "P100", "options": {
        "p100_torch": "torch==2.7.1 --index-url https://download.pytorch.org/whl/cu126"}})
    _, _, meta, config, script = plan_kernel(spec, "alice")
    assert meta["machine_shape"] == "NvidiaTeslaP100"
    assert config["torch_install"] == ["torch==2.7.1", "--index-url", "https://download.pytorch.org/whl/cu126"]
    assert not any(r.startswith("torch==2.13") for r in config["requirements"])


def test_slugs_stay_within_kaggle_limits():
    slug = bounded_slug("palier", "a-very-long-pipeline-name-for-french-medical-speech", "stage_with_Under_scores")
    assert len(slug) <= 50 and slug == slug.lower() and "_" not in slug
    assert bounded_slug("palier", "x" * 80) != bounded_slug("palier", "x" * 81)


def test_script_configuration(make_spec, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_SECRETVALUE")
    spec = make_spec(backend={"kind": "kaggle", "gpus": 2, "timeout_s": 20 * 3600})
    _, inputs, _, config, script = plan_kernel(spec, "alice")
    assert config["timeout_s"] == MAX_SESSION_S - INSTALL_MARGIN_S  # capped to Kaggle's 12 h session
    assert not any(r.startswith("torch==") for r in config["requirements"])  # Kaggle's own CUDA torch
    assert config["command"][:4] == ["python", "-m", "accelerate.commands.launch", "--multi_gpu"]
    assert config["command"][-6:] == ["--spec", "/kaggle/working/out/spec.json", "--out", "/kaggle/working/out",
                                      "--cache-dir", "/tmp/palier/cache"]
    shipped = json.loads(config["spec_json"])
    assert shipped["stage"]["train"]["path"].startswith("@@PALIER_INPUT_")
    ast.parse(script)  # valid Python
    assert "hf_SECRETVALUE" not in script and "is_private" not in script
    assert KaggleSettings(pin_torch=True) and "torch==2.13.0" in plan_kernel(
        make_spec(backend={"kind": "kaggle", "options": {"pin_torch": True}}), "alice")[3]["requirements"]


def test_options_typos_are_errors(make_spec):
    with pytest.raises(ValueError, match=r"\['machine'\] are not Kaggle options"):
        plan_kernel(make_spec(backend={"kind": "kaggle", "options": {"machine": "T4"}}), "alice")


def test_credentials_are_found_in_every_standard_place(tmp_path):
    assert kaggle_credentials_source({}, tmp_path) is None
    assert kaggle_credentials_source({"KAGGLE_API_TOKEN": "x"}, tmp_path) == "KAGGLE_API_TOKEN environment variable"
    assert "KAGGLE_USERNAME" in kaggle_credentials_source({"KAGGLE_USERNAME": "a", "KAGGLE_KEY": "b"}, tmp_path)
    (tmp_path / ".kaggle").mkdir()
    (tmp_path / ".kaggle" / "kaggle.json").write_text('{"username": "a", "key": "b"}')
    assert kaggle_credentials_source({}, tmp_path).endswith(".kaggle/kaggle.json")
    (tmp_path / ".kaggle" / "access_token").write_text("tok")
    assert kaggle_credentials_source({}, tmp_path) == "~/.kaggle/access_token"
