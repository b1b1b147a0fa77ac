"""bench/gpu.py's dry run: every evaluation and training path of the GPU script on tiny
shapes on the CPU, so that the first minutes on a GPU are not lost to a silly error."""

import json
import subprocess
import sys

import pytest

from repo_paths import ROOT

pytestmark = pytest.mark.integration


def test_dry_run_times_every_path_and_projects_seed_000(tmp_path):
    proc = subprocess.run([str(ROOT / "bench" / "gpu.sh"), "--dry", "--device", "cpu", "--skip-base", "--rounds", "1",
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    result = json.loads((tmp_path / "gpu-dry.json").read_text())
    assert result["dry"] and result["shape"]["mel"] == 128 and result["device"].startswith("CPU")
    (evaluation,) = result["evaluation"]
    for precision in ("fp16", "bf16"):
        assert evaluation[precision]["ratio"] > 0 and evaluation[precision]["seconds_per_utterance"] > 0
    projection = result["projection"]
    assert projection["utterances"] == 2426 and projection["verdict"] in ("met", "MISSED")
    assert projection["palier_s"] > 0 and projection["target_s"] == 360
    methods = {row["method"]: row for row in result["training"]}
    assert list(methods) == ["full", "lora", "frozen-encoder", "decoder-only"]
    assert all(row["step_s"] > 0 and row["projected_seed000_training_h"] > 0 for row in methods.values())
    # What each method trains: LoRA a sliver, the frozen encoder the decoder, decoder-only less still.
    full = methods["full"]["trainable_parameters"]
    assert methods["lora"]["trainable_parameters"] < full / 10
    assert methods["decoder-only"]["trainable_parameters"] < methods["frozen-encoder"]["trainable_parameters"] < full
    assert (tmp_path / "gpu-dry.md").read_text().startswith("# GPU figures: CPU")
