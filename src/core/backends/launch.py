"""The command line that starts the stage runner, the same on every backend.

One process: ``python -m core.stage --spec S --out O [--cache-dir C]``.
N processes (``backend.gpus: N``): ``accelerate launch --multi_gpu --num_processes N -m core.stage ...``.

Why ``--multi_gpu`` even on a CPU: ``accelerate launch --cpu --num_processes 2`` takes accelerate's
*simple* launcher, which starts ONE process (multi-CPU needs an MPI hostfile there); measured with
accelerate 1.15. ``--multi_gpu`` takes the torchrun launcher, which starts N processes; with
``ACCELERATE_USE_CPU=true`` in their environment, transformers' Trainer and accelerate pick the
gloo backend on the CPU instead of NCCL.
"""

from __future__ import annotations

RUNNER_MODULE = "core.stage"
ACCELERATE_LAUNCH = "accelerate.commands.launch"


def runner_arguments(spec_path: str, out_dir: str, cache_dir: str | None = None) -> list[str]:
    args = ["--spec", spec_path, "--out", out_dir]
    if cache_dir:
        args += ["--cache-dir", cache_dir]
    return args


def stage_command(python: str, gpus: int, arguments: list[str], module: str = RUNNER_MODULE) -> list[str]:
    """``module`` is the stage runner; tests substitute a tiny script module to check the launch."""
    if gpus <= 1:
        return [python, "-m", module, *arguments]
    launcher = [
        python, "-m", ACCELERATE_LAUNCH,
        "--multi_gpu",
        "--num_processes", str(gpus),
        "--num_machines", "1",
        # 0 = pick a free port, so two multi-process stages on one machine do not collide on 29500.
        "--main_process_port", "0",
    ]
    return [*launcher, "-m", module, *arguments]


# backend.options key a search sets on each trial run by the local backend: CUDA_VISIBLE_DEVICES of its job.
CUDA_DEVICES_OPTION = "cuda_visible_devices"


def stage_environment(device: str, gpus: int) -> dict[str, str]:
    """Variables to add to the runner's environment (on top of the machine's own)."""
    env = {"PALIER_DEVICE": device, "PYTHONUNBUFFERED": "1"}
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
        if gpus > 1:
            env["ACCELERATE_USE_CPU"] = "true"
    return env
