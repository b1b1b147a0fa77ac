"""The runner's command line, and a REAL two-process data-parallel launch on the CPU (gloo)."""

from __future__ import annotations

import json
import pytest

from core.backends.launch import runner_arguments, stage_command, stage_environment
from core.backends.local import LocalBackend


def test_one_process_runs_the_runner_module():
    args = runner_arguments("/o/spec.json", "/o", "/c")
    assert stage_command("py", 1, args) == ["py", "-m", "core.stage", "--spec", "/o/spec.json", "--out", "/o", "--cache-dir", "/c"]


def test_n_processes_go_through_accelerate_multi_gpu_launcher():
    command = stage_command("py", 4, runner_arguments("/o/spec.json", "/o"))
    assert command[:3] == ["py", "-m", "accelerate.commands.launch"]
    assert "--multi_gpu" in command and "--cpu" not in command
    assert command[command.index("--num_processes") + 1] == "4"
    assert command[command.index("-m", 3):][:2] == ["-m", "core.stage"]


def test_cpu_data_parallel_environment_selects_gloo_on_cpu():
    assert stage_environment("cpu", 2)["ACCELERATE_USE_CPU"] == "true"
    assert stage_environment("cpu", 2)["CUDA_VISIBLE_DEVICES"] == ""
    assert "ACCELERATE_USE_CPU" not in stage_environment("cpu", 1)
    assert "CUDA_VISIBLE_DEVICES" not in stage_environment("cuda", 2)


@pytest.mark.integration
def test_two_cpu_processes_really_train_together(make_spec, tmp_path, child_env, wait):
    """gpus: 2 + device: cpu through LocalBackend: two ranks, gloo, identical weights after DDP steps."""
    spec = make_spec(backend={"kind": "local", "device": "cpu", "gpus": 2})
    backend = LocalBackend(runner_module="ddp_probe", extra_env=child_env)
    out = tmp_path / "out"
    handle = backend.submit(spec, out)
    status = wait(backend, handle, timeout_s=240)
    assert status.state == "succeeded", (out / "stage.log").read_text()[-3000:]
    ranks = [json.loads((out / f"rank-{i}.json").read_text()) for i in range(2)]
    assert [r["rank"] for r in ranks] == [0, 1]
    assert all(r["world"] == 2 and r["backend"] == "gloo" and "MULTI_CPU" in r["distributed_type"] for r in ranks)
    assert all(r["changed"] for r in ranks)
    assert ranks[0]["weights"] == ranks[1]["weights"]  # gradients were all-reduced


def test_the_cpu_flag_alone_would_start_one_process_only():
    """Why launch.py does not use `accelerate launch --cpu`: its simple launcher has no process count."""
    import inspect

    from accelerate.utils import launch

    source = inspect.getsource(launch.prepare_simple_launcher_cmd_env)
    assert "mpirun" in source  # multi-process CPU there means MPI, which palier does not set up
