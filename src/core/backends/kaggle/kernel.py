"""What a stage becomes on Kaggle, decided without talking to Kaggle (pure; the dry run shows it).

A stage is a private *script* kernel ``palier-<pipeline>-<stage>``. Its code file is a short
bootstrap holding the stage's configuration and palier's own source (embedded, so a kernel
version is an exact snapshot of the code that ran); it unpacks the source and runs
``core.backends.kaggle.entry``, which installs the runner's pinned dependencies, unpacks the
stage's local inputs from a private dataset, then runs the stage runner under the supervisor.
Outputs go to /kaggle/working/out, which Kaggle keeps as the kernel's output.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.backends.kaggle.entry import KAGGLE_ROOT, KAGGLE_SCRATCH, MODULE, SCRATCH_ENV
from core.backends.launch import runner_arguments, stage_command, stage_environment
from core.backends.requirements import KAGGLE_PREINSTALLED, project_root, runner_requirements
from core.backends.shipping import LocalInput, system_packages
from core.config.common import BackendConfig
from core.contracts import StageSpec

CODE_FILE = "run_stage.py"
OUT = f"{KAGGLE_ROOT}/working/out"
SCRATCH = KAGGLE_SCRATCH
MAX_SESSION_S = 12 * 3600  # Kaggle's limit for a GPU/CPU batch session
INSTALL_MARGIN_S = 20 * 60  # pip installs count against the session; stop the runner before Kaggle does
SLUG_MAX = 50

ACCELERATORS = {  # short names accepted in backend.gpu -> Kaggle's machine_shape ids
    "T4": "NvidiaTeslaT4", "T4X2": "NvidiaTeslaT4", "P100": "NvidiaTeslaP100", "L4": "NvidiaL4",
    "L4X1": "NvidiaL4X1", "A100": "NvidiaTeslaA100", "H100": "NvidiaH100", "RTX-PRO-6000": "NvidiaRtxPro6000",
}
# The machine shapes Kaggle documents for `kernels push` today. NvidiaTeslaT4 is "GPU T4 x2" (a
# single T4 is not offered); NvidiaTeslaT4Highmem is an internal admin-only pool
# (https://github.com/Kaggle/kaggle-cli/pull/1198). Other Nvidia ids are passed through, flagged
# as undocumented in the dry run.
DOCUMENTED_SHAPES = ("NvidiaTeslaT4", "NvidiaTeslaP100")
ADMIN_ONLY_SHAPES = ("NvidiaTeslaT4Highmem",)
GPUS_PER_SHAPE = {"NvidiaTeslaT4": 2, "NvidiaTeslaP100": 1, "NvidiaL4X1": 1}
# Kaggle's default image ships a cu128 torch without Pascal (sm_60) kernels: on a P100 the first
# CUDA operation fails (https://github.com/Kaggle/kaggle-cli/issues/1151, PR #1156).
P100_SHAPE = "NvidiaTeslaP100"
P100_HELP = (
    "Kaggle's image has no torch build for the P100 (sm_60; https://github.com/Kaggle/kaggle-cli/issues/1151): "
    "use backend.gpu: T4 (GPU T4 x2, the default), or set backend.options.p100_torch to the pip arguments of a "
    "torch build with sm_60 kernels, e.g. 'torch==2.7.1 --index-url https://download.pytorch.org/whl/cu126'"
)


@dataclass(frozen=True)
class KaggleSettings:
    user: str = ""  # default: the authenticated account
    enable_internet: bool = True  # pip installs and hub downloads need it
    pin_torch: bool = False  # True: install palier's torch pin instead of Kaggle's preinstalled CUDA build
    keep_checkpoints: bool = False  # checkpoints count against Kaggle's 20 GB output limit
    hf_secret: str = "HF_TOKEN"  # Kaggle secret attached to the kernel ("" = none)
    p100_torch: str = ""  # pip arguments installing a torch with sm_60 kernels (required for P100)

    pending_limit_s: int = 0  # read by the watch loop (core.backends.watch); 0 = the backend's default

    OPTION_KEYS = ("pending_limit_s", "user", "enable_internet", "pin_torch", "keep_checkpoints", "hf_secret", "p100_torch")

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> KaggleSettings:
        unknown = sorted(set(options) - set(cls.OPTION_KEYS))
        if unknown:
            raise ValueError(f"backend.options {unknown} are not Kaggle options; known: {list(cls.OPTION_KEYS)}")
        return cls(**options)


def slugify(text: str) -> str:
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", text.lower())).strip("-")


def bounded_slug(*parts: str) -> str:
    slug = slugify("-".join(parts))
    if len(slug) <= SLUG_MAX:
        return slug
    tail = hashlib.sha256(slug.encode()).hexdigest()[:8]
    return f"{slug[: SLUG_MAX - 9].rstrip('-')}-{tail}"


def kernel_slug(spec: StageSpec) -> str:
    return bounded_slug("palier", spec.pipeline, spec.name)


def inputs_dataset_slug(spec: StageSpec) -> str:
    return bounded_slug("palier", spec.pipeline, spec.name, "inputs")


def inputs_marker(inputs: list[LocalInput]) -> str:
    """A file name that changes whenever any input's content does (so unchanged data is not re-uploaded)."""
    combined = hashlib.sha256("\n".join(sorted(i.digest for i in inputs)).encode()).hexdigest()[:16]
    return f"palier-inputs-{combined}.json"


def machine_shape(config: BackendConfig, settings: KaggleSettings | None = None) -> str | None:
    if config.device == "cpu":
        return None
    wanted = (config.gpu or "T4").strip()
    shape = ACCELERATORS.get(wanted.upper(), wanted)
    if not shape.startswith(("Nvidia", "Tpu")):
        raise ValueError(f"backend.gpu {wanted!r} is not a Kaggle accelerator; use one of {sorted(ACCELERATORS)}")
    if shape in ADMIN_ONLY_SHAPES:
        raise ValueError(f"backend.gpu {shape} is an admin-only Kaggle pool (https://github.com/Kaggle/kaggle-cli/pull/1198); "
                         "use T4 (NvidiaTeslaT4 is already GPU T4 x2)")
    if shape == P100_SHAPE and not (settings and settings.p100_torch):
        raise ValueError(f"backend.gpu P100: {P100_HELP}")
    available = GPUS_PER_SHAPE.get(shape, 1)
    if config.gpus > available:
        raise ValueError(f"backend.gpus {config.gpus}: Kaggle's {shape} has {available} GPU(s)")
    return shape


def shape_note(shape: str | None) -> str | None:
    """A warning for a machine shape Kaggle does not document (the dry run shows it)."""
    if shape is None or shape in DOCUMENTED_SHAPES:
        return None
    return (f"{shape} is not among the machine shapes Kaggle documents ({', '.join(DOCUMENTED_SHAPES)}); "
            "the push may be refused or run on another accelerator")


def session_timeout_s(config: BackendConfig) -> int:
    return min(config.timeout_s, MAX_SESSION_S)


def kernel_metadata(user: str, slug: str, shape: str | None, dataset_refs: list[str], settings: KaggleSettings,
                    kernel_refs: list[str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "id": f"{user}/{slug}",
        "title": slug,  # Kaggle derives the slug from the title: keep them identical
        "code_file": CODE_FILE,
        "language": "python",
        "kernel_type": "script",
        "is_private": True,
        "enable_gpu": shape is not None,
        "enable_tpu": False,
        "enable_internet": settings.enable_internet,
        "dataset_sources": dataset_refs,
        "competition_sources": [],
        "kernel_sources": list(kernel_refs or []),  # their output is mounted under /kaggle/input
        "model_sources": [],
        "keywords": [],
    }
    if shape:
        meta["machine_shape"] = shape  # without it Kaggle gives a P100
    return meta


def dataset_metadata(user: str, slug: str) -> dict[str, Any]:
    return {"title": slug, "id": f"{user}/{slug}", "licenses": [{"name": "CC0-1.0"}]}


def source_archive(root: Path | None = None) -> bytes:
    """palier's ``core`` package as a tar.gz (the stage runner and its helpers)."""
    src = (root or project_root()) / "src" / "core"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(src.rglob("*")):
            if "__pycache__" in path.parts or path.suffix == ".pyc" or not path.is_file():
                continue
            info = tar.gettarinfo(str(path), arcname=f"core/{path.relative_to(src).as_posix()}")
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""  # reproducible bytes
            with path.open("rb") as fh:
                tar.addfile(info, fh)
    return buffer.getvalue()


def script_config(remote_spec: StageSpec, inputs: list[LocalInput], settings: KaggleSettings,
                  runner_module: str = "core.stage", upstream: dict[str, str] | None = None) -> dict[str, Any]:
    config = remote_spec.stage.backend
    device = "cpu" if config.device == "cpu" else "cuda"
    drop = frozenset() if settings.pin_torch and not settings.p100_torch else KAGGLE_PREINSTALLED
    return {
        "stage": remote_spec.name,
        "spec_json": remote_spec.model_dump_json(indent=2),
        "inputs": sorted({i.digest for i in inputs}),
        "inputs_marker": inputs_marker(inputs) if inputs else None,
        "upstream": {"kernel": upstream["kernel"], "key": upstream["key"]} if upstream else None,
        "requirements": runner_requirements(drop=drop),
        "torch_install": settings.p100_torch.split() if settings.p100_torch else [],
        "system_packages": system_packages(remote_spec),
        "command": stage_command("python", config.gpus,
                                 runner_arguments(f"{OUT}/spec.json", OUT, f"{SCRATCH}/cache"), module=runner_module),
        "env": stage_environment(device, config.gpus),
        "gpus_required": 0 if device == "cpu" else config.gpus,
        "timeout_s": max(600, session_timeout_s(config) - INSTALL_MARGIN_S),
        "keep_checkpoints": settings.keep_checkpoints,
        "hf_secret": settings.hf_secret,
    }


def kernel_script(config: dict[str, Any], archive: bytes) -> str:
    """The kernel's code file: the configuration and the source archive, then a call to the
    kernel program (``core.backends.kaggle.entry.main``) from the unpacked source."""
    encoded = base64.b64encode(archive).decode("ascii")
    lines = [encoded[i:i + 100] for i in range(0, len(encoded), 100)]
    return (
        _BOOTSTRAP_HEAD.format(stage=config["stage"], module=MODULE)
        + f"CONFIG = json.loads({json.dumps(json.dumps(config))})\n"
        + "SOURCE = (\n" + "".join(f'    "{line}"\n' for line in lines) + ")\n"
        + _BOOTSTRAP_RUN.format(module=MODULE, scratch_env=SCRATCH_ENV, scratch=KAGGLE_SCRATCH)
    )


_BOOTSTRAP_HEAD = '''"""palier: stage {stage} on Kaggle. Generated by palier at each push; edits here are overwritten.

The program is palier's {module}, unpacked from the source archive below."""
import base64
import io
import json
import os
import sys
import tarfile
from pathlib import Path

'''

_BOOTSTRAP_RUN = '''
src = Path(os.environ.get("{scratch_env}", "{scratch}")) / "src"
with tarfile.open(fileobj=io.BytesIO(base64.b64decode(SOURCE)), mode="r:gz") as tar:
    tar.extractall(src, **({{"filter": "data"}} if hasattr(tarfile, "data_filter") else {{}}))
sys.path.insert(0, str(src))
from {module} import main  # noqa: E402

sys.exit(main(CONFIG, src))
'''
