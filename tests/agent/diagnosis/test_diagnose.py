"""diagnose(log, heartbeat) on real-format log excerpts (tests/agent/logs), taken from the
libraries' own messages and public issue threads."""

from __future__ import annotations

import json

import pytest

from agent.diagnosis.diagnose import Diagnosis, diagnose
from agent.diagnosis.heartbeat import HeartbeatFacts

STALLED = HeartbeatFacts(seconds_since_progress=1800, last_phase="baseline", steps_done=0, total_steps=807, alive=True)
PROGRESSING = HeartbeatFacts(seconds_since_progress=4, last_phase="baseline", steps_done=9, total_steps=807, alive=True)

# (log file, heartbeat, kind, failure_id)
CASES = [
    ("cuda_oom_with_deprecation_warning.log", None, "cuda_oom", "cuda-oom"),
    ("cuda_oom_old_format.log", None, "cuda_oom", "cuda-oom"),
    ("deprecated_evaluation_strategy.log", None, "deprecated_arg", "removed-trainer-argument"),
    ("deprecated_sft_tokenizer.log", None, "deprecated_arg", "removed-trainer-argument"),
    ("missing_accelerate.log", None, "missing_dependency", "missing-module"),
    ("missing_module_peft.log", None, "missing_dependency", "missing-module"),
    ("kernel_hang_h200.log", STALLED, "kernel_hang", "kernel-hang-flagged-gpu"),
    ("kernel_warning_progressing.log", STALLED, "kernel_hang", "kernel-hang-flagged-gpu"),
    ("map_hang.log", HeartbeatFacts(seconds_since_progress=1200, last_phase="prepare", alive=True), "map_hang",
     "map-hang-progress-bar"),
    ("whisper_label_length.log", None, "whisper_label_length", "whisper-label-length"),
    ("whisper_generation_config.log", None, "whisper_generation_config", "whisper-generation-config-outdated"),
    ("nccl_timeout.log", None, "nccl_timeout", "nccl-watchdog-timeout"),
    ("disk_full.log", None, "disk_full", "disk-full"),
    # a Trainer resuming from a checkpoint cut as a crash leaves it (the installed libraries' own wording;
    # the safetensors one starts with the line run_trainer prints before resuming)
    ("torn_checkpoint_safetensors.log", None, "torn_checkpoint", "torn-checkpoint"),
    ("torn_checkpoint_optimizer.log", None, "torn_checkpoint", "torn-checkpoint"),
    ("torn_checkpoint_trainer_state.log", None, "torn_checkpoint", "torn-trainer-state"),
    ("torn_checkpoint_rng_empty.log", None, "torn_checkpoint", "torn-torch-file"),
    ("bf16_unsupported.log", None, "bf16_unsupported", "bf16-unsupported"),
    ("fp16_unscale.log", None, "fp16_unscale", "fp16-unscale"),
    ("rich_traceback_fp16.log", None, "fp16_unscale", "fp16-unscale"),
    ("modal_function_timeout.log", None, "backend_timeout", "modal-function-timeout"),
    ("modal_client_disconnect.log", None, "backend_timeout", "modal-client-disconnect"),
    ("kaggle_gpu_quota.log", None, "backend_quota", "kaggle-gpu-quota"),
    ("hf_gated_repo.log", None, "auth_error", "hf-auth"),
    ("modal_token_missing.log", None, "auth_error", "modal-auth"),
    ("kaggle_auth.log", None, "auth_error", "kaggle-auth"),
    ("ct2_export.log", None, "export_error", "ct2-export-error"),
    ("mlflow_param_changed.log", None, "tracking_error", "mlflow-param-changed"),
    ("loss_nan.log", None, "divergence", "loss-nan"),
    ("invalid_dataset.log", None, "unknown", "invalid-dataset"),
    ("kaggle_p100_no_kernel_image.log", None, "unknown", "kaggle-p100-no-kernel-image"),
    ("hf_offline_not_cached.log", None, "unknown", "hf-hub-offline"),
    ("unknown_keyerror.log", None, "unknown", None),
    ("clean_run.log", None, "none", None),
    # no heartbeat: the log ends on a bar stopped near its start after the kernel warning, a
    # probable (unconfirmed) hang; the next test checks that it is said so
    ("kernel_warning_progressing.log", None, "kernel_hang", "kernel-hang-flagged-gpu"),
    ("kernel_warning_progressing.log", PROGRESSING, "none", "accelerate-kernel-warning"),
    ("map_hang.log", None, "map_hang", "map-hang-progress-bar"),
]


@pytest.mark.parametrize(("name", "heartbeat", "kind", "failure_id"), CASES,
                         ids=[f"{c[0]}-{'hb' if c[1] else 'nohb'}" for c in CASES])
def test_known_log(book, log, name, heartbeat, kind, failure_id):
    result = diagnose(log(name), heartbeat, playbooks=book, use_llm=False)
    assert (result.kind, result.failure_id) == (kind, failure_id), result.evidence
    assert result.source == "rules"
    if kind not in ("none",):
        assert result.evidence, "a diagnosis must show its evidence"
        assert result.fix


def test_a_torn_checkpoint_names_its_path_and_the_fix(book, log):
    result = diagnose(log("torn_checkpoint_safetensors.log"), playbooks=book, use_llm=False)
    assert any("checkpoint-4" in line for line in result.evidence), result.evidence
    assert "torn-checkpoint-N" in result.fix and result.confidence >= 0.8


def test_fixed_json_schema(book, log):
    payload = json.loads(diagnose(log("cuda_oom_old_format.log"), playbooks=book, use_llm=False).to_json())
    assert {"kind", "failure_id", "confidence", "evidence", "fix", "remedy"} <= set(payload)
    assert payload["remedy"] == {"action": "halve_batch", "safe": True, "params": {}}
    assert Diagnosis.model_validate(payload).kind == "cuda_oom"


def test_deprecation_warnings_next_to_a_real_oom_do_not_win(book, log):
    result = diagnose(log("cuda_oom_with_deprecation_warning.log"), playbooks=book, use_llm=False)
    assert result.kind == "cuda_oom"
    assert result.evidence[0].startswith("torch.OutOfMemoryError: CUDA out of memory")
    assert not any("FutureWarning" in e for e in result.evidence)


def test_kernel_warning_alone_is_not_a_hang(book, log):
    # Modal (gVisor) prints this warning on every GPU; progress means the run is healthy.
    for hb in (PROGRESSING, HeartbeatFacts(seconds_since_progress=5000, alive=False, finished=True)):
        result = diagnose(log("kernel_warning_progressing.log"), hb, playbooks=book, use_llm=False)
        assert result.kind == "none"


def test_a_stall_needs_the_stall_limit(book, log):
    short = HeartbeatFacts(seconds_since_progress=120, last_phase="baseline", alive=True)
    assert diagnose(log("kernel_hang_h200.log"), short, playbooks=book, use_llm=False).kind == "none"
    custom = short.model_copy(update={"stall_limit_s": 60})
    assert diagnose(log("kernel_hang_h200.log"), custom, playbooks=book, use_llm=False).kind == "kernel_hang"


def test_hang_evidence_includes_heartbeat_and_remedy(book, log):
    result = diagnose(log("kernel_hang_h200.log"), STALLED, playbooks=book, use_llm=False)
    assert result.evidence[0].startswith("Detected kernel version 4.4.0")
    assert result.evidence[-1].startswith("heartbeat: no progress for 1800 s")
    assert result.remedy == {"action": "fallback_gpu", "safe": True, "params": {"map": {"H200": "H100"}}}


def test_finished_map_bar_is_not_a_stuck_map(book):
    # tqdm redraws with \r: only the final state of the line counts.
    text = "Map (num_proc=4):  37%|███▋      | 370/1000\rMap (num_proc=4): 100%|██████████| 1000/1000\n"
    hb = HeartbeatFacts(seconds_since_progress=1200, last_phase="train", alive=True)
    result = diagnose(text, hb, playbooks=book, use_llm=False)
    assert result.kind == "unknown" and result.failure_id is None  # stalled, no evidence


def test_stall_in_prepare_without_map_output_is_a_map_hang(book):
    hb = HeartbeatFacts(seconds_since_progress=1200, last_phase="prepare", alive=True)
    result = diagnose("INFO preparing 254341 utterances\n", hb, playbooks=book, use_llm=False)
    assert (result.kind, result.failure_id) == ("map_hang", "map-hang-prepare-phase")
    assert result.remedy["action"] == "single_process_map"


def test_stalled_with_no_evidence_is_unknown(book):
    hb = HeartbeatFacts(seconds_since_progress=3600, last_phase="train", steps_done=120, alive=True)
    result = diagnose("{'loss': 0.5, 'epoch': 0.3}\n", hb, playbooks=book, use_llm=False)
    assert result.kind == "unknown" and result.remedy is None
    assert any(e.startswith("heartbeat:") for e in result.evidence)


def test_empty_log_is_none(book):
    assert diagnose("", None, playbooks=book, use_llm=False).kind == "none"


def test_evidence_is_redacted(book, monkeypatch):
    token = "hf_ZyXwVuTsRqPoNmLkJiHgFeDcBa98765432"
    text = (f"Downloading with token={token}\nhuggingface_hub.errors.GatedRepoError: 401 Client Error. "
            f"Cannot access gated repo (Authorization: Bearer {token})\n")
    result = diagnose(text, playbooks=book, use_llm=False)
    assert result.kind == "auth_error"
    assert token not in result.to_json()


def test_a_finished_run_is_none_even_with_a_caught_error(book, log):
    done = HeartbeatFacts(seconds_since_progress=0, alive=False, finished=True)
    result = diagnose(log("deprecated_evaluation_strategy.log"), done, playbooks=book, use_llm=False)
    assert result.kind == "none"
    failed = done.model_copy(update={"error": "TypeError: unexpected keyword argument"})
    assert diagnose(log("deprecated_evaluation_strategy.log"), failed, playbooks=book, use_llm=False).kind == "deprecated_arg"


# --- issue 11: real-world wording, noise, probable hangs and the log's age -------------------

def _diag(book, text, hb=None, **kw):
    return diagnose(text, hb, playbooks=book, use_llm=False, **kw)


def test_probable_hang_from_the_log_alone_says_what_would_confirm_it(book, log):
    result = _diag(book, log("kernel_warning_progressing.log"))
    assert result.kind == "kernel_hang" and result.remedy is None  # no automatic retry on a guess
    assert result.confidence < 0.5 and "modification time" in result.to_confirm and "heartbeat" in result.to_confirm
    assert result.evidence[0].startswith("Detected kernel version 4.4.0")
    assert result.evidence[-1].startswith("unconfirmed: the log ends on a progress bar stopped at 1 %")


def test_the_log_age_confirms_or_clears_a_probable_hang(book, log):
    text = log("kernel_warning_progressing.log")
    stale = _diag(book, text, log_age_s=3600)
    assert (stale.kind, stale.to_confirm) == ("kernel_hang", None)
    assert stale.remedy["action"] == "fallback_gpu"
    assert stale.evidence[-1] == "log file: last written 3600 s ago (no heartbeat events; process liveness unknown)"
    writing = _diag(book, text, log_age_s=20)
    assert writing.kind == "none"  # the file is still being written: the run moves


def test_an_old_finished_log_is_not_a_hang(book):
    text = ("Detected kernel version 4.4.0, which is below the recommended minimum of 5.5.0; this can cause "
            "the process to hang.\n{'loss': 0.41, 'epoch': 1.0}\n"
            "100%|██████████| 807/807 [40:02<00:00,  2.98s/it]\n{'train_runtime': 2402.1, 'epoch': 1.0}\n")
    assert _diag(book, text, log_age_s=30 * 86400).kind == "none"


def test_map_bar_frozen_at_zero_with_num_proc(book):
    text = "Loading cached shuffled indices\npreprocess train dataset (num_proc=16):   0%|          | 0/6540 [00:00<?, ? examples/s]\n"
    result = _diag(book, text)
    assert (result.kind, result.failure_id) == ("map_hang", "map-hang-progress-bar") and result.to_confirm
    assert _diag(book, text, log_age_s=1800).remedy["action"] == "single_process_map"


def test_map_worker_died(book):
    text = ("  File \"/x/datasets/utils/py_utils.py\", line 711, in iflatmap_unordered\n    raise RuntimeError(\n"
            "RuntimeError: One of the subprocesses has abruptly died during map operation.To debug the error, "
            "disable multiprocessing.\n")
    result = _diag(book, text)
    assert (result.kind, result.failure_id) == ("map_hang", "map-subprocess-died")
    assert result.remedy["action"] == "single_process_map" and result.to_confirm is None


@pytest.mark.parametrize("name", ["LoraConfig", "get_peft_model", "SFTTrainer", "bnb"])
def test_name_of_an_optional_package_not_defined(book, name):
    result = _diag(book, f"Traceback (most recent call last):\n  File \"train.py\", line 9\nNameError: name '{name}' is not defined\n")
    assert (result.kind, result.failure_id) == ("missing_dependency", "optional-package-name-undefined")


def test_a_plain_name_error_is_not_a_missing_package(book):
    assert _diag(book, "NameError: name 'trainng_args' is not defined\n").kind == "unknown"


@pytest.mark.parametrize("line", [
    "/pytorch/aten/src/ATen/native/cuda/Loss.cu:250: nll_loss_forward_reduce_cuda_kernel_2d: block: [0,0,0], "
    "thread: [1,0,0] Assertion `t >= 0 && t < n_classes` failed.",
    "../aten/src/ATen/native/cuda/IndexKernel.cu:92: operator(): block: [1,0,0], thread: [0,0,0] Assertion "
    "`-sizes[i] <= index && index < sizes[i] && \"index out of bounds\"` failed.",
    "IndexError: Target 7 is out of bounds.",
])
def test_label_out_of_range_under_noise(book, line):
    # colours, a deprecation warning, accelerate's kernel warning and a bar at 0 % around it
    text = ("\x1b[33m/x/training_args.py:1525: FutureWarning: `evaluation_strategy` is deprecated\x1b[0m\n"
            "Detected kernel version 4.18.0, which is below the recommended minimum of 5.5.0; this can cause "
            "the process to hang.\n  0%|          | 0/1900 [00:00<?, ?it/s]" + line + "\n"
            "RuntimeError: CUDA error: device-side assert triggered\n")
    result = _diag(book, text)
    assert (result.kind, result.failure_id) == ("whisper_label_length", "label-index-out-of-range")
    assert result.to_confirm is None


def test_the_cause_of_a_chained_exception_counts_as_final(book):
    text = ("huggingface_hub.errors.GatedRepoError: 401 Client Error.\nCannot access gated repo for url x\n\n"
            "The above exception was the direct cause of the following exception:\n\n"
            "Traceback (most recent call last):\n  File \"a.py\", line 3\n"
            "OSError: You are trying to access a gated repo.\n")
    result = _diag(book, text)
    assert result.kind == "auth_error" and result.confidence == 0.9  # in the final block, not discounted


def test_an_exception_handled_on_the_way_is_not_the_reason(book):
    text = ("KeyError: 'cached'\n\nDuring handling of the above exception, another exception occurred:\n\n"
            "Traceback (most recent call last):\n  File \"t.py\", line 1\n"
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n")
    assert _diag(book, text).kind == "cuda_oom"


@pytest.mark.parametrize("text", [
    "[rank0]: \x1b[31mValueError: Some non-default generation parameters are set in the model config.\x1b[0m\n",
    "ValueError : the sizes do not match\n",
    "Exception: Could not find the transformer layer class to wrap in the model.\n",
    "Loading checkpoint shards:  38%|██████▊           | 3/8 [00:02<00:03,  1.28it/s]Killed\n",
    "traceback : Traceback (most recent call last):\n    File \"train.py\", line 190, in main\n      raise ValueError(\"\n",
])
def test_other_crashes_are_unknown_not_healthy_nor_hung(book, text):
    result = _diag(book, text)
    assert result.kind == "unknown", result


def test_isolated_nan_grad_norm_is_a_skipped_fp16_step_repeated_is_divergence(book):
    ok = "{'loss': 0.15, 'grad_norm': nan, 'epoch': 0.1}\n{'loss': 0.14, 'grad_norm': 0.3, 'epoch': 0.2}\n"
    assert _diag(book, ok).kind == "none"
    bad = "".join(f" iteration {i} | loss scale: 1.0 | grad norm: nan |\n" for i in range(3))
    assert _diag(book, bad).kind == "divergence"
    custom = "batch: 1, GD_loss: nan, RD_loss: nan, combined_loss: nan,\n"
    assert _diag(book, custom).kind == "divergence"


def test_wrapped_message_is_matched_across_the_line_break(book):
    text = ("ValueError: The generation config is outdated and is thus not compatible with the `language` argument \n"
            "to `generate`. Either set the language using the `forced_decoder_ids` in the model config\n")
    assert _diag(book, text).failure_id == "whisper-generation-config-outdated"
    wrapped = ("18:57:53-195282 ERROR    Load model: 401 Client Error.\n                         Cannot access gated repo for url\n"
               "                         https://huggingface.co/api/models/x/auth-check.\n")
    assert _diag(book, wrapped).kind == "auth_error"


@pytest.mark.parametrize(("text", "kind"), [
    ("slurmstepd: error: *** JOB 494583 ON n1 CANCELLED AT 2024-04-20T09:09:37 DUE TO TIME LIMIT ***\n", "backend_timeout"),
    ("ValueError: --tf32 requires Ampere or a newer GPU arch, cuda>=11 and torch>=1.7\n", "bf16_unsupported"),
    ("/x/cextension.py:34: UserWarning: The installed version of bitsandbytes was compiled without GPU support.\n",
     "missing_dependency"),
    ("ImportError: peft>=0.17.0 is required for a normal functioning of this module, but found peft==0.14.0.\n",
     "missing_dependency"),
    ("ImportError: cannot import name 'get_peft_model' from 'peft' (unknown location)\n", "missing_dependency"),
    ("ImportError: cannot import name 'prepare_model_for_int8_training' from 'peft' (/x/peft/__init__.py)\n",
     "deprecated_arg"),
    ("ConnectionError: HTTPConnectionPool(host='h', port=5001): Max retries exceeded with url: "
     "/api/2.0/mlflow/experiments/get-by-name?experiment_name=x (Caused by NewConnectionError('x'))\n", "tracking_error"),
    ("UserWarning: Not enough free disk space to download the file. The expected file size is: 3945.44 MB.\n",
     "disk_full"),
    ("Process ForkPoolWorker-3:\nTraceback (most recent call last):\n    with self._rlock:\nKeyboardInterrupt\n",
     "map_hang"),
    ('RuntimeError: "LayerNormKernelImpl" not implemented for \'Half\'\n', "bf16_unsupported"),
])
def test_same_failure_in_other_wording(book, text, kind):
    assert _diag(book, text).kind == kind


def test_modal_capacity_wait_is_a_quota_only_when_nothing_follows(book):
    waiting = "Function 'f' (fu-x) is waiting to be scheduled on a GPU_L40S worker. Time in queue: 0:00:38\n"
    result = _diag(book, waiting)
    assert (result.kind, result.failure_id) == ("backend_quota", "modal-gpu-capacity-wait") and result.to_confirm
    assert _diag(book, waiting + "Training step 1/500\n{'loss': 2.1, 'epoch': 0.01}\n").kind == "none"


def test_attribute_removed_from_a_library_vs_a_none_value(book):
    removed = _diag(book, "AttributeError: 'Function' object has no attribute 'with_options'\n")
    assert (removed.kind, removed.failure_id) == ("deprecated_arg", "removed-attribute")
    assert _diag(book, "AttributeError: 'NoneType' object has no attribute 'shape'\n").kind == "unknown"


def test_fp16_overflow_messages_are_normal_a_collapsed_loss_scale_is_not(book):
    settling = "Gradient overflow. Skipping step, loss scaler 0 reducing loss scale to 262144.0\n"
    assert _diag(book, settling).kind == "none"
    collapsed = "".join(f"Gradient overflow.  Skipping step, loss scaler 0 reducing loss scale to {x}e-30{i}\n"
                        for i, x in enumerate((1.4, 2.9, 3.6)))
    assert _diag(book, collapsed).failure_id == "fp16-loss-scale-collapse"


def test_a_name_removed_from_any_library_vs_a_circular_import(book):
    assert _diag(book, "ImportError: cannot import name 'compute_measures' from 'jiwer'\n").kind == "deprecated_arg"
    circular = ("ImportError: cannot import name 'A' from partially initialized module 'pkg' "
                "(most likely due to a circular import)\n")
    assert _diag(book, circular).kind == "unknown"
