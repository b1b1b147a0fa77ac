"""The Modal submission decided offline: GPU, timeout, image, volume, secrets, command."""

from __future__ import annotations

import json

import pytest

from core.backends.modal.backend import plan_submission
from core.backends.modal.client import build_app, call_state_from_result, modal_credentials_source
from core.backends.modal.plan import STOP_MARGIN_S, ModalSettings, gpu_request
from core.config.common import BackendConfig


def test_h100_is_the_pinned_default_and_gpus_become_a_count():
    settings = ModalSettings()
    assert gpu_request(BackendConfig(kind="modal"), settings) == "H100!"
    assert gpu_request(BackendConfig(kind="modal", gpu="H100", gpus=8), settings) == "H100!:8"
    assert gpu_request(BackendConfig(kind="modal", gpu="A100-80GB", gpus=2), settings) == "A100-80GB:2"
    assert gpu_request(BackendConfig(kind="modal", device="cpu"), settings) is None


def test_h200_needs_an_explicit_permission():
    with pytest.raises(ValueError, match="allow_h200: true only when a playbook rule allows it"):
        gpu_request(BackendConfig(kind="modal", gpu="H200"), ModalSettings())
    assert gpu_request(BackendConfig(kind="modal", gpu="H200"), ModalSettings(allow_h200=True)) == "H200"


def test_bad_gpu_settings_say_how_to_fix_them():
    with pytest.raises(ValueError, match="count in backend.gpus"):
        gpu_request(BackendConfig(kind="modal", gpu="H100:2"), ModalSettings())
    with pytest.raises(ValueError, match="1 to 8 GPUs"):
        gpu_request(BackendConfig(kind="modal", gpus=9), ModalSettings())
    with pytest.raises(ValueError, match=r"\['volumee'\] are not Modal options"):
        ModalSettings.from_options({"volumee": "x"})


def test_submission_plan(make_spec):
    spec = make_spec(backend={"kind": "modal", "gpus": 2, "timeout_s": 7200, "options": {"volume": "asr"}})
    settings, inputs, remote, out_rel, launch = plan_submission(spec)
    assert launch.gpu == "H100!:2" and launch.timeout_s == 7200 and launch.volume == "asr"
    assert launch.secrets == ("huggingface",)
    assert "mlflow==3.17.2" not in launch.requirements and "transformers==5.23.0" in launch.requirements
    assert launch.image_env["HF_HOME"] == "/vol/hf"
    assert out_rel == f"runs/fr/00-general-{spec.key}"
    request = launch.request
    assert request["timeout_s"] == 7200 - STOP_MARGIN_S  # the runner stops first, so the volume gets committed
    assert request["command"][:6] == ["python", "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    assert request["command"][-6:] == ["--spec", f"/vol/{out_rel}/spec.json", "--out", f"/vol/{out_rel}", "--cache-dir", "/vol/cache"]
    shipped = json.loads(request["spec_json"])
    assert shipped["stage"]["train"]["path"].startswith("/vol/inputs/") and shipped["pipeline_file"] is None


def test_no_secret_in_the_request(make_spec, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_SECRETVALUE")
    _, _, _, _, launch = plan_submission(make_spec())
    assert "hf_SECRETVALUE" not in json.dumps(launch.request) + repr(launch)


def test_app_and_function_build_offline_with_the_planned_settings(make_spec):
    _, _, _, _, launch = plan_submission(make_spec(backend={"kind": "modal", "gpus": 2}))
    app, function = build_app(launch)
    spec = function._spec_  # private, but the only offline view of what Modal will be asked for
    assert spec.gpus == "H100!:2"
    assert list(spec.volumes) == ["/vol"]
    assert [repr(s) for s in spec.secrets] == ["modal.Secret.from_name('huggingface')"]
    assert function._tag_ == "run_stage"


def test_modal_gpu_strings_parse_as_modal_parses_them():
    from modal._utils.function_utils import parse_gpu_config

    config = parse_gpu_config("H100!:8")
    assert (config.gpu_type, config.count) == ("H100!", 8)


def test_credentials_are_found_where_modal_reads_them(tmp_path):
    assert modal_credentials_source({}, tmp_path) is None
    assert "environment" in modal_credentials_source({"MODAL_TOKEN_ID": "a", "MODAL_TOKEN_SECRET": "b"}, tmp_path)
    (tmp_path / ".modal.toml").write_text('[default]\ntoken_id = "ak-1"\ntoken_secret = "as-1"\n')
    assert modal_credentials_source({}, tmp_path) == str(tmp_path / ".modal.toml")


@pytest.mark.parametrize("code, state", [(0, "succeeded"), (1, "failed"), (124, "failed"), (130, "cancelled"), (143, "cancelled")])
def test_function_results_map_to_states(code, state):
    assert call_state_from_result({"exit_code": code}).state == state
