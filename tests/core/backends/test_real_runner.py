"""The real stage runner (tiny random Whisper, espeak speech, CPU) through the backends' launch,
ship, relay and fetch paths."""

from __future__ import annotations

import json
import os
from collections import Counter

import pytest
import yaml
from backend_fakes import fake_service

from core.backends.kaggle.backend import KaggleBackend
from core.backends.local import LocalBackend
from core.backends.modal.backend import ModalBackend
from core.config import load_pipeline
from core.contracts import StageResult
from core.plan import plan

pytestmark = pytest.mark.integration


def stage_spec(tmp_path, name, base_model, backend, train=None, evals=None):
    speech = {"kind": "generated", "generator": "french_speech", "params": {"pool": "stage", "count": 8, "voices": "stage"}}
    test = {"kind": "generated", "generator": "french_speech", "params": {"pool": "test", "count": 4, "voices": "stage"}}
    raw = {
        "name": name, "family": "asr", "base_model": str(base_model), "language": "french",
        "stages": [{
            "name": "general", "output_name": f"{name}-general", "train": train or speech,
            "evals": [{"name": "general_test", "role": "primary", "data": evals or test}],
            "whisper": {"chunk_length": 6},
            "training": {"max_steps": 2, "per_device_train_batch_size": 4, "learning_rate": 1e-3, "eval_strategy": "no",
                         "logging_steps": 1, "generation_max_length": 40},
            "backend": backend,
        }],
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return plan(load_pipeline(path), "test", pipeline_file=str(path))[0]


def run_local(spec, out, wait, env=None):
    backend = LocalBackend(extra_env=env or {})
    status = wait(backend, backend.submit(spec, out), timeout_s=600)
    assert status.state == "succeeded", (out / "stage.log").read_text()[-3000:]
    return StageResult.model_validate_json((out / "metrics.json").read_text())


@pytest.fixture(scope="module")
def one_and_two_processes(tmp_path_factory, tiny_whisper, speech_cache):
    """The same stage with 1 process, then 2 (the first run also warms the shared cache)."""
    from backend_fakes import wait_finished

    tmp = tmp_path_factory.mktemp("ddp")
    env = {"PALIER_CACHE_DIR": str(speech_cache)}
    results = {}
    for gpus in (1, 2):
        spec = stage_spec(tmp, f"ddp{gpus}", tiny_whisper, {"kind": "local", "device": "cpu", "gpus": gpus})
        out = tmp / f"out{gpus}"
        results[gpus] = (run_local(spec, out, wait_finished, env), out)
    return results


def test_two_cpu_processes_share_the_global_batch(one_and_two_processes):
    (one, _), (two, _) = one_and_two_processes[1], one_and_two_processes[2]
    assert one.train["global_step"] == two.train["global_step"] == 2
    # 8 utterances, 4 per device: one process needs 2 steps per epoch, two processes need 1.
    assert one.train["epoch"] == 1.0 and two.train["epoch"] == 2.0


def test_two_processes_write_one_set_of_events(one_and_two_processes):
    _, out = one_and_two_processes[2]
    counts = Counter(json.loads(line)["type"] for line in (out / "events.jsonl").read_text().splitlines())
    assert counts["done"] == 1


def manifest(speech_cache, pool, count):
    from core.demo.datasets import generate

    return generate("french_speech", {"pool": pool, "count": count, "voices": "stage"}, speech_cache)


def shipped_stage(kind, tmp_path, tiny_whisper, speech_cache, child_env):
    """A CPU stage on CSV manifests of real audio and a local base model (all shipped), and the
    fake service that will run the real stage runner for it."""
    train, test = manifest(speech_cache, "stage", 8), manifest(speech_cache, "test", 4)
    spec = stage_spec(tmp_path, f"shipped-{kind}", tiny_whisper, {"kind": kind, "device": "cpu", "options": {"hf_secret": ""}},
                      train={"kind": "csv", "path": str(train)}, evals={"kind": "csv", "path": str(test)})
    return spec, fake_service(kind, tmp_path, {**child_env, "HF_HUB_OFFLINE": "1"})


def run_and_fetch(backend, spec, out, wait, remote_log):
    """Submit, wait for success (else show the tail of `remote_log(handle)`), fetch; the handle and the result."""
    handle = backend.submit(spec, out)
    status = wait(backend, handle, timeout_s=600)
    assert status.state == "succeeded", remote_log(handle)[-3000:]
    backend.fetch(handle)
    return handle, StageResult.model_validate_json((out / "metrics.json").read_text())


def test_real_runner_on_the_modal_fake_with_shipped_csv_audio_and_base_model(tmp_path, tiny_whisper, speech_cache,
                                                                             child_env, wait):
    spec, fake = shipped_stage("modal", tmp_path, tiny_whisper, speech_cache, child_env)
    out = tmp_path / "out"
    handle, result = run_and_fetch(ModalBackend(transport=fake, log_sync_every_s=0), spec, out, wait,
                                   lambda _: (out / "stage.log").read_text())
    assert set(handle.details["inputs"]) == {"train", "eval:general_test", "base_model"}
    assert result.train["global_step"] == 2 and result.data["train"]["kept"] == 8
    remote = json.loads((out / "spec.remote.json").read_text())
    assert remote["base_model"].startswith("/vol/inputs/") and remote["stage"]["train"]["path"].startswith("/vol/inputs/")
    assert any(e["type"] == "metric" for e in map(json.loads, (out / "events.jsonl").read_text().splitlines()))
    assert (out / "model" / "config.json").is_file()


def test_real_runner_through_the_generated_kaggle_script(tmp_path, tiny_whisper, speech_cache, child_env, wait):
    spec, fake = shipped_stage("kaggle", tmp_path, tiny_whisper, speech_cache, child_env)
    out = tmp_path / "out"
    _, result = run_and_fetch(KaggleBackend(transport=fake, poll_dataset_every_s=0), spec, out, wait,
                              lambda handle: "".join(fake.sessions[handle.job_id]["lines"]))
    assert result.train["global_step"] == 2
    assert (out / "model" / "config.json").is_file() and (out / "predictions").is_dir()
    assert os.path.getsize(out / "kaggle.log") > 0
