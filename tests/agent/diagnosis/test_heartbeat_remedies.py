"""Heartbeat facts from events.jsonl, the watchdog decision, and the safe remedies."""

from __future__ import annotations

import json

import pytest

from agent.diagnosis.diagnose import Diagnosis, diagnose
from agent.diagnosis.heartbeat import (
    HeartbeatFacts,
    heartbeat_from_events,
    heartbeat_from_file,
    is_stalled,
    log_text_from_events,
)
from agent.diagnosis.remedies import safe_remedy

T0 = 1_700_000_000.0


def events_file(tmp_path, records):
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n{\"t\": 1, \"type\": \"heart", encoding="utf-8")
    return path


def baseline_then_silence():
    """The H200 story: baseline starts, the heartbeat thread keeps beating, no step moves."""
    return [
        {"t": T0, "type": "phase", "phase": "prepare", "status": "start"},
        {"t": T0 + 60, "type": "phase", "phase": "prepare", "status": "end"},
        {"t": T0 + 61, "type": "phase", "phase": "baseline", "status": "start"},
        {"t": T0 + 70, "type": "progress", "phase": "baseline", "done": 0, "total": 807},
        *[{"t": T0 + 70 + 10 * i, "type": "heartbeat", "phase": "baseline", "step": 0, "total": 807} for i in range(1, 180)],
        {"t": T0 + 80, "type": "log", "level": "warning",
         "message": "Detected kernel version 4.4.0, which is below the recommended minimum of 5.5.0; this can cause "
                    "the process to hang. It is recommended to upgrade the kernel to the minimum version or higher."},
    ]


def test_stall_from_events_file(tmp_path):
    path = events_file(tmp_path, baseline_then_silence())
    now = T0 + 70 + 10 * 180
    hb = heartbeat_from_file(path, now=now)
    assert hb.alive is True and not hb.finished
    assert hb.last_phase == "baseline" and (hb.steps_done, hb.total_steps) == (0, 807)
    assert hb.seconds_since_progress == pytest.approx(1800, abs=1)
    assert is_stalled(hb, 900) and not is_stalled(hb, 3600)


def test_the_whole_chain_stall_diagnose_remedy(tmp_path, book, make_config_):
    records = baseline_then_silence()
    hb = heartbeat_from_events(records, now=T0 + 70 + 10 * 180)
    result = diagnose(log_text_from_events(records), hb, playbooks=book, use_llm=False)
    assert result.kind == "kernel_hang"
    stage = make_config_({"backend": {"gpu": "H200"}}).stages[0]
    new_stage, description = safe_remedy(stage, result)
    assert new_stage.backend.gpu == "H100" and description == "backend.gpu H200 -> H100"
    assert type(new_stage) is type(stage)


def test_steps_that_move_are_progress():
    records = [{"t": T0 + i * 10, "type": "heartbeat", "phase": "train", "step": i, "total": 100} for i in range(10)]
    hb = heartbeat_from_events(records, now=T0 + 95)
    assert hb.seconds_since_progress == pytest.approx(5) and hb.steps_done == 9
    assert not is_stalled(hb, 60)


def test_done_and_error_events_end_liveness():
    ok = heartbeat_from_events([{"t": T0, "type": "done", "status": "succeeded"}], now=T0 + 10_000)
    assert ok.finished and ok.alive is False and not is_stalled(ok, 60)
    failed = heartbeat_from_events([{"t": T0, "type": "error", "error": "RuntimeError: boom", "traceback": "tb"}],
                                   now=T0 + 5)
    assert failed.error == "RuntimeError: boom" and not is_stalled(failed, 1)


def test_silent_process_has_unknown_liveness():
    hb = heartbeat_from_events([{"t": T0, "type": "heartbeat", "phase": "train", "step": 3}], now=T0 + 3600)
    assert hb.alive is None and is_stalled(hb, 900)  # unknown liveness still counts for the watchdog
    assert not is_stalled(None, 1) and not is_stalled(HeartbeatFacts(), 1)


def test_log_text_from_events_carries_errors_and_nan_metrics():
    text = log_text_from_events([
        {"t": T0, "type": "metric", "step": 10, "metrics": {"loss": float("nan"), "grad_norm": float("nan")}},
        {"t": T0, "type": "error", "error": "ValueError: x",
         "traceback": "Traceback (most recent call last):\nValueError: Attempting to unscale FP16 gradients.\n"},
    ])
    assert "'loss': nan" in text and "Attempting to unscale FP16 gradients" in text


# --- remedies ---------------------------------------------------------------------------

def _diag(kind, action=None, params=None, source="rules"):
    remedy = {"action": action, "safe": True, "params": params or {}} if action else None
    return Diagnosis(kind=kind, failure_id="x", confidence=0.9, evidence=[], fix="", remedy=remedy, source=source)


def test_oom_halves_batch_and_doubles_accumulation(make_config_):
    stage = make_config_({"training": {"per_device_train_batch_size": 16, "gradient_accumulation_steps": 2,
                                       "per_device_eval_batch_size": 32}}).stages[0]
    new, description = safe_remedy(stage, _diag("cuda_oom", "halve_batch"))
    t = new.training
    assert (t.per_device_train_batch_size, t.gradient_accumulation_steps, t.per_device_eval_batch_size) == (8, 4, 16)
    assert "effective batch unchanged" in description
    assert stage.training.per_device_train_batch_size == 16  # input untouched


def test_oom_at_batch_one_has_no_safe_remedy(make_config_):
    stage = make_config_({"training": {"per_device_train_batch_size": 1}}).stages[0]
    assert safe_remedy(stage, _diag("cuda_oom", "halve_batch")) is None


def test_map_hang_goes_single_process(make_config_):
    stage = make_config_({"training": {"preprocessing_num_workers": 8}}).stages[0]
    new, description = safe_remedy(stage, _diag("map_hang", "single_process_map"))
    assert new.training.preprocessing_num_workers == 1 and "8 -> 1" in description
    already = make_config_({"training": {"preprocessing_num_workers": 1}}).stages[0]
    assert safe_remedy(already, _diag("map_hang", "single_process_map")) is None


def test_fallback_gpu_only_for_the_flagged_gpu(make_config_):
    h100 = make_config_().stages[0]
    assert safe_remedy(h100, _diag("kernel_hang", "fallback_gpu", {"map": {"H200": "H100"}})) is None


@pytest.mark.parametrize("diagnosis", [
    _diag("deprecated_arg"),  # a code issue: nothing to change in palier's config
    _diag("unknown"),
    _diag("none"),
    _diag("cuda_oom", "halve_batch", source="llm"),  # an LLM answer never triggers a retry
    _diag("cuda_oom", "reformat_disk"),
])
def test_no_blind_retry(make_config_, diagnosis):
    assert safe_remedy(make_config_().stages[0], diagnosis) is None


def test_real_logs_to_remedies(book, log, make_config_):
    stage = make_config_({"training": {"per_device_train_batch_size": 16}}).stages[0]
    oom = diagnose(log("cuda_oom_old_format.log"), playbooks=book, use_llm=False)
    assert safe_remedy(stage, oom)[0].training.per_device_train_batch_size == 8
    deprecated = diagnose(log("deprecated_evaluation_strategy.log"), playbooks=book, use_llm=False)
    assert deprecated.kind == "deprecated_arg" and safe_remedy(stage, deprecated) is None


def test_diagnose_run_dir_reads_stage_log_and_events(tmp_path, book):
    from agent.diagnosis.run_dir import diagnose_run_dir

    (tmp_path / "stage.log").write_bytes(
        b"Map (num_proc=8):   0%|          | 0/254341\rMap (num_proc=8):  37%|###7      | 94000/254341\n")
    (tmp_path / "events.jsonl").write_text(
        json.dumps({"t": T0, "type": "phase", "phase": "prepare", "status": "start"}) + "\n"
        + json.dumps({"t": T0 + 10, "type": "heartbeat", "phase": "prepare", "step": None, "total": None}) + "\n",
        encoding="utf-8")
    early = diagnose_run_dir(tmp_path, now=T0 + 60, stall_limit_s=900, playbooks=book, use_llm=False)
    assert early.kind == "none"
    late = diagnose_run_dir(tmp_path, now=T0 + 1000, stall_limit_s=900, playbooks=book, use_llm=False)
    assert (late.kind, late.remedy["action"]) == ("map_hang", "single_process_map")
    assert diagnose_run_dir(tmp_path / "empty", playbooks=book, use_llm=False).kind == "none"


def test_preflight_lines_for_logs(book, make_config_, make_facts_):
    from agent.rules.preflight import preflight

    lines = [line for line in preflight(make_config_({"backend": {"gpu": "H200"}}), make_facts_(), playbooks=book).lines()
             if "disk-space" not in line]  # the space a large-v3 stage needs: tests/agent/test_preflight.py
    assert lines[0].startswith("[fixed] whisper.h200-flagged-kernel (exp1)")
    assert "[AUTOFIX] [whisper.h200-flagged-kernel] exp1: backend.gpu 'H200' -> 'H100'" in lines
    assert lines[-1] == "preflight: OK"


def test_diagnose_run_dir_without_events_uses_the_log_age(tmp_path, book):
    import os

    from agent.diagnosis.run_dir import diagnose_run_dir

    log = tmp_path / "stage.log"
    log.write_text("Detected kernel version 4.4.0, which is below the recommended minimum of 5.5.0; this can "
                   "cause the process to hang.\n  0%|          | 0/807 [00:00<?, ?it/s]\n", encoding="utf-8")
    t0 = log.stat().st_mtime
    os.utime(log, (t0, t0))
    fresh = diagnose_run_dir(tmp_path, now=t0 + 30, stall_limit_s=900, playbooks=book, use_llm=False)
    assert fresh.kind == "none"
    stale = diagnose_run_dir(tmp_path, now=t0 + 1000, stall_limit_s=900, playbooks=book, use_llm=False)
    assert (stale.kind, stale.to_confirm) == ("kernel_hang", None) and stale.remedy["action"] == "fallback_gpu"
    dead = diagnose_run_dir(tmp_path, now=t0 + 1000, alive=False, stall_limit_s=900, playbooks=book, use_llm=False)
    assert dead.kind != "kernel_hang"  # a dead process is not hung
