"""diagnose(log, heartbeat) on real-format log excerpts (tests/agent/logs), taken from the
libraries' own messages and public issue threads."""

from __future__ import annotations

import json

import pytest

from agent.diagnose import Diagnosis, diagnose
from agent.heartbeat import HeartbeatFacts

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
    ("kernel_warning_progressing.log", None, "none", "accelerate-kernel-warning"),
    ("kernel_warning_progressing.log", PROGRESSING, "none", "accelerate-kernel-warning"),
    ("map_hang.log", None, "none", "accelerate-kernel-warning"),
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
    for hb in (None, PROGRESSING, HeartbeatFacts(seconds_since_progress=5000, alive=False, finished=True)):
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
