"""What a stage becomes on Modal, decided without talking to Modal (pure; the dry run shows it).

Volume layout (one volume, mounted at /vol in the container):
  runs/<pipeline>/<NN>-<stage>-<key>/  the stage's output folder. Keyed by the stage key, so a
                                       retry of the same stage resumes from its checkpoints/.
  inputs/<digest>/                     shipped local data and models, content-addressed
  cache/                               the runner's --cache-dir (preprocessed data, reused)
  hf/                                  HF_HOME (hub downloads, reused)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.backends.launch import runner_arguments, stage_command, stage_environment
from core.backends.requirements import runner_requirements
from core.backends.shipping import system_packages
from core.config.common import BackendConfig
from core.contracts import StageSpec

MOUNT = "/vol"
FUNCTION_NAME = "run_stage"
PYTHON_VERSION = "3.11"  # the project's requires-python; the function is pickled, so versions must match
MAX_GPUS = 8
# Stop the runner this long before Modal's hard timeout, so it can checkpoint and the volume be committed.
STOP_MARGIN_S = 300

GPU_NEEDS_PERMISSION = {"H200": "allow_h200"}


@dataclass(frozen=True)
class ModalSettings:
    app: str = "palier"
    volume: str = "palier"
    hf_secret: str = "huggingface"  # "" = no secret (public models and data only)
    allow_h200: bool = False
    nonpreemptible: bool = False
    commit_every_s: int = 60
    fetch_checkpoints: bool = False

    pending_limit_s: int = 0  # read by the watch loop (core.backends.watch); 0 = the backend's default

    OPTION_KEYS = ("pending_limit_s", "app", "volume", "hf_secret", "allow_h200", "nonpreemptible", "commit_every_s", "fetch_checkpoints")

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> ModalSettings:
        unknown = sorted(set(options) - set(cls.OPTION_KEYS))
        if unknown:
            raise ValueError(
                f"backend.options {unknown} are not Modal options; known: {list(cls.OPTION_KEYS)}"
            )
        return cls(**options)


def gpu_request(config: BackendConfig, settings: ModalSettings) -> str | None:
    """Modal's ``gpu=`` value: "H100" by default, "H100:N" for N data-parallel processes."""
    if config.device == "cpu":
        return None
    gpu = (config.gpu or "H100").strip()
    if gpu.upper() == "H100":
        # "H100!" is Modal's strict form: the job lands on an H100, never on another card Modal
        # considers equivalent (an H200 it substituted hung on its 4.4.0 kernel).
        gpu = "H100!"
    if ":" in gpu:
        raise ValueError(f"backend.gpu {gpu!r}: give the type only (e.g. H100) and the count in backend.gpus")
    permission = GPU_NEEDS_PERMISSION.get(gpu.upper().rstrip("!"))
    if permission and not getattr(settings, permission):
        raise ValueError(
            f"backend.gpu {gpu} is not allowed by default (a fine-tuning job on Modal's H200 hung on its 4.4.0 kernel). "
            f"Set backend.options.{permission}: true only when a playbook rule allows it."
        )
    if not 1 <= config.gpus <= MAX_GPUS:
        raise ValueError(f"backend.gpus {config.gpus}: Modal gives 1 to {MAX_GPUS} GPUs to one container")
    return gpu if config.gpus == 1 else f"{gpu}:{config.gpus}"


def remote_out_dir(spec: StageSpec) -> str:
    """Volume-relative output folder of a stage (the same for every retry of the same key)."""
    return f"runs/{spec.pipeline}/{spec.index:02d}-{spec.name}-{spec.key}"


def input_dir(digest: str) -> str:
    return f"inputs/{digest}"


def in_container(volume_path: str) -> str:
    return f"{MOUNT}/{volume_path.strip('/')}"


@dataclass(frozen=True)
class ModalLaunch:
    """Everything Modal is asked for; secrets appear by name only."""

    app: str
    volume: str
    gpu: str | None
    timeout_s: int
    secrets: tuple[str, ...]
    requirements: tuple[str, ...]
    system_packages: tuple[str, ...]
    image_env: dict[str, str]
    nonpreemptible: bool
    request: dict[str, Any] = field(repr=False)  # the container's argument: spec, command, env, limits
    python_version: str = PYTHON_VERSION
    local_sources: tuple[str, ...] = ("core",)
    function_name: str = FUNCTION_NAME
    mount: str = MOUNT


def modal_launch(remote_spec: StageSpec, settings: ModalSettings, out_rel: str, runner_module: str = "core.stage") -> ModalLaunch:
    config = remote_spec.stage.backend
    gpu = gpu_request(config, settings)
    out = in_container(out_rel)
    device = "cpu" if gpu is None else "cuda"
    command = stage_command(
        "python", config.gpus,
        runner_arguments(f"{out}/spec.json", out, in_container("cache")),
        module=runner_module,
    )
    request = {
        "spec_json": remote_spec.model_dump_json(indent=2),
        "out_dir": out,
        "command": command,
        "env": stage_environment(device, config.gpus),
        "timeout_s": max(60, config.timeout_s - STOP_MARGIN_S),
        "commit_every_s": settings.commit_every_s,
        "volume": settings.volume,
    }
    return ModalLaunch(
        app=settings.app,
        volume=settings.volume,
        gpu=gpu,
        timeout_s=config.timeout_s,
        secrets=(settings.hf_secret,) if settings.hf_secret else (),
        requirements=tuple(runner_requirements()),
        system_packages=tuple(system_packages(remote_spec)),
        image_env={"HF_HOME": in_container("hf"), "PYTHONUNBUFFERED": "1", "TQDM_MININTERVAL": "10"},
        nonpreemptible=settings.nonpreemptible,
        request=request,
    )
