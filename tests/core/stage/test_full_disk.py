"""A stage whose run folder fills up mid-training (a real filesystem: a small tmpfs mounted on
the run folder): it fails with the ``disk_full`` diagnosis naming the folder and the space
the stage needs; once space is freed the rerun resumes from the last complete checkpoint, the
one the full disk tore being set aside."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from agent.diagnosis.diagnose import diagnose
from core.config import load_pipeline
from core.plan import plan
from core.stage.checkpoints import COMPLETE_MARKER, checkpoints_newest_first
from core.events import read_all
from tiny import tiny_asr_pipeline

pytestmark = pytest.mark.integration


@pytest.fixture
def small_disk(tmp_path):
    folder = tmp_path / "runs"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6M", "tmpfs", str(folder)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root or CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def _stage(spec, out, cache):
    spec_file = out.parent / f"{out.name}.spec.json"
    spec.write(spec_file)
    return subprocess.run([sys.executable, "-m", "core.stage", "--spec", str(spec_file), "--out", str(out),
                           "--cache-dir", str(cache)], capture_output=True, text=True, timeout=600)


def test_full_disk_is_diagnosed_and_the_rerun_resumes_after_space_is_freed(tmp_path, small_disk, tiny_whisper,
                                                                           speech_cache):
    path = tiny_asr_pipeline(tmp_path / "p.yaml", tiny_whisper, stages=1, training={
        "max_steps": 1000, "save_steps": 2, "save_total_limit": 1000, "logging_steps": 10,
        "per_device_train_batch_size": 2})
    spec = plan(load_pipeline(path), code_version="test", pipeline_file=str(path))[0]
    out = small_disk / "run"
    failed = _stage(spec, out, speech_cache)
    assert failed.returncode == 1, failed.stderr[-3000:]
    assert f"no space left on device under {out}" in failed.stderr and "this stage needs about" in failed.stderr

    result = diagnose(failed.stderr, None, use_llm=False)
    assert (result.kind, result.failure_id) == ("disk_full", "disk-full"), result.evidence
    assert any(str(out) in line for line in result.evidence), result.evidence

    good = [c for c in checkpoints_newest_first(out / "checkpoints") if (c / COMPLETE_MARKER).is_file()]
    assert good, "checkpoints were written before the disk filled up"
    last_good = int(good[0].name.split("-")[1])

    subprocess.run(["mount", "-o", "remount,size=256M", str(small_disk)], check=True)  # space freed
    resumed = spec.model_copy(update={"stage": spec.stage.model_copy(update={
        "training": spec.stage.training.model_copy(update={"max_steps": last_good + 2, "save_total_limit": 2})})})
    rerun = _stage(resumed, out, speech_cache)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    # the full disk cut one event line short: read as the orchestrator does, skipping it
    messages = [e.get("message", "") for e in read_all(out / "events.jsonl") if e["type"] == "log"]
    assert f"resuming training from checkpoint-{last_good}" in messages
    assert json.loads((out / "metrics.json").read_text())["train"]["global_step"] == last_good + 2
