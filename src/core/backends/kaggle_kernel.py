"""What a stage becomes on Kaggle, decided without talking to Kaggle (pure; the dry run shows it).

A stage is a private *script* kernel ``palier-<pipeline>-<stage>``; its code file installs the
runner's pinned dependencies, unpacks palier's own source (embedded in the script, so a kernel
version is an exact snapshot of the code that ran), unpacks the stage's local inputs from a
private dataset, then runs the stage runner under the supervisor. Outputs go to
/kaggle/working/out, which Kaggle keeps as the kernel's output.
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

from core.backends.launch import runner_arguments, stage_command, stage_environment
from core.backends.requirements import KAGGLE_PREINSTALLED, project_root, runner_requirements
from core.backends.shipping import LocalInput, system_packages
from core.config.common import BackendConfig
from core.contracts import StageSpec

CODE_FILE = "run_stage.py"
OUT = "/kaggle/working/out"
SCRATCH = "/tmp/palier"
MAX_SESSION_S = 12 * 3600  # Kaggle's limit for a GPU/CPU batch session
INSTALL_MARGIN_S = 20 * 60  # pip installs count against the session; stop the runner before Kaggle does
INPUT_PLACEHOLDER = "@@PALIER_INPUT_{digest}@@"
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


def kernel_metadata(user: str, slug: str, shape: str | None, dataset_refs: list[str], settings: KaggleSettings) -> dict[str, Any]:
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
        "kernel_sources": [],
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
                  runner_module: str = "core.stage") -> dict[str, Any]:
    config = remote_spec.stage.backend
    device = "cpu" if config.device == "cpu" else "cuda"
    drop = frozenset() if settings.pin_torch and not settings.p100_torch else KAGGLE_PREINSTALLED
    return {
        "stage": remote_spec.name,
        "spec_json": remote_spec.model_dump_json(indent=2),
        "inputs": sorted({i.digest for i in inputs}),
        "inputs_marker": inputs_marker(inputs) if inputs else None,
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
    encoded = base64.b64encode(archive).decode("ascii")
    lines = [encoded[i:i + 100] for i in range(0, len(encoded), 100)]
    return (
        _SCRIPT_HEAD.format(stage=config["stage"])
        + f"CONFIG = json.loads({json.dumps(json.dumps(config))})\n"
        + "SOURCE = (\n" + "".join(f'    "{line}"\n' for line in lines) + ")\n"
        + _SCRIPT_BODY
    )


_SCRIPT_HEAD = '''"""palier: stage {stage} on Kaggle. Generated by palier at each push; edits here are overwritten."""
import base64
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

'''

_SCRIPT_BODY = '''
# Overridden only by palier's offline tests, which run this script outside Kaggle.
KAGGLE = Path(os.environ.get("PALIER_KAGGLE_ROOT", "/kaggle"))
SCRATCH = Path(os.environ.get("PALIER_KAGGLE_SCRATCH", "/tmp/palier"))
INSTALL = os.environ.get("PALIER_SKIP_INSTALL") != "1"
OUT = KAGGLE / "working" / "out"


def here(text):
    """A path from CONFIG (written for the real Kaggle layout) on this machine."""
    return text.replace("/kaggle/", f"{KAGGLE}/").replace("/tmp/palier", str(SCRATCH))


def say(message):
    print(f"palier: {message}", flush=True)


def run(command):
    say("$ " + " ".join(command))
    subprocess.run(command, check=True)


def extract(tar, target):
    try:
        tar.extractall(target, filter="data")
    except TypeError:  # Python before 3.11.4 has no extraction filters
        tar.extractall(target)


def inputs_root():
    for depth in range(1, 5):
        for marker in (KAGGLE / "input").glob("*/" * depth + CONFIG["inputs_marker"]):
            return marker.parent
    raise SystemExit("palier: the inputs dataset is not mounted (is it still processing on Kaggle?)")


def unpack_inputs():
    if not CONFIG["inputs"]:
        return {}
    root, places = inputs_root(), {}
    for digest in CONFIG["inputs"]:
        packed, folder = root / f"{digest}.tar", root / digest
        if packed.is_file():
            target = SCRATCH / "inputs" / digest
            with tarfile.open(packed) as tar:
                extract(tar, target)
            places[digest] = target
        elif folder.is_dir():  # Kaggle unpacked the archive itself
            places[digest] = folder
        else:
            raise SystemExit(f"palier: input {digest} is missing from {root}")
    return places


def load_hf_token():
    name = CONFIG["hf_secret"]
    if not name:
        return
    try:
        from kaggle_secrets import UserSecretsClient

        os.environ["HF_TOKEN"] = UserSecretsClient().get_secret(name)
        say(f"Hugging Face token loaded from the Kaggle secret {name}")
    except Exception as exc:  # no secret attached: public models and data still work
        say(f"no Kaggle secret {name} attached to this kernel ({type(exc).__name__}); gated hub files will fail")


GPU_PROBE = """
import json, torch
n = torch.cuda.device_count()
devices = []
for i in range(n):
    major, minor = torch.cuda.get_device_capability(i)
    devices.append({"name": torch.cuda.get_device_name(i), "arch": f"sm_{major}{minor}", "cc": major * 10 + minor})
print(json.dumps({"count": n, "devices": devices, "archs": torch.cuda.get_arch_list() if n else []}))
"""


def unsupported_gpus(probe):
    """GPUs this torch has no kernels for (neither their sm_XY nor a compute_XY PTX at or below it)."""
    archs = probe["archs"]
    ptx = [int(a.split("_")[1]) for a in archs if a.startswith("compute_") and a.split("_")[1].isdigit()]
    return [d for d in probe["devices"] if d["arch"] not in archs and not any(p <= d["cc"] for p in ptx)]


def check_gpus():
    wanted = CONFIG["gpus_required"]
    if not wanted:
        return
    answer = subprocess.run([sys.executable, "-c", GPU_PROBE], capture_output=True, text=True)
    try:
        probe = json.loads(answer.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise SystemExit(f"palier: could not query the GPUs with torch: {answer.stderr.strip()[-500:]}")
    say(f"visible GPUs: {[d['name'] for d in probe['devices']] or 'none'}; torch kernels for {probe['archs']}")
    if probe["count"] < wanted:
        raise SystemExit(f"palier: {wanted} GPU(s) requested but {probe['count']} visible; check machine_shape and your GPU quota")
    missing = unsupported_gpus(probe)
    if missing:
        raise SystemExit(
            f"palier: this torch has no kernels for {missing[0]['name']} ({missing[0]['arch']}; it has {probe['archs']}), "
            "so the first CUDA operation would fail (https://github.com/Kaggle/kaggle-cli/issues/1151). "
            "Use backend.gpu: T4, or backend.options.p100_torch with a torch build that supports it."
        )


def main():
    SCRATCH.mkdir(parents=True, exist_ok=True)
    src = SCRATCH / "src"
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(SOURCE)), mode="r:gz") as tar:
        extract(tar, src)
    if INSTALL and CONFIG["system_packages"]:
        run(["apt-get", "update", "-qq"])
        run(["apt-get", "install", "-y", "-qq", *CONFIG["system_packages"]])
    if INSTALL and CONFIG["torch_install"]:
        run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", *CONFIG["torch_install"]])
    if INSTALL:
        run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", *CONFIG["requirements"]])
    spec = CONFIG["spec_json"]
    for digest, place in unpack_inputs().items():
        spec = spec.replace(f"@@PALIER_INPUT_{digest}@@", str(place))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "spec.json").write_text(spec, encoding="utf-8")
    load_hf_token()
    check_gpus()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]),
           "HF_HOME": str(SCRATCH / "hf"), "TQDM_MININTERVAL": "10"}
    command = [sys.executable if CONFIG["command"][0] == "python" else CONFIG["command"][0],
               *[here(arg) for arg in CONFIG["command"][1:]]]
    supervisor = [sys.executable, "-m", "core.backends.supervisor", "--out", str(OUT),
                  "--timeout-s", str(CONFIG["timeout_s"]), "--mirror-events",
                  *[f"--env={k}={v}" for k, v in CONFIG["env"].items()], "--", *command]
    code = subprocess.call(supervisor, env=env)
    if not CONFIG["keep_checkpoints"]:
        shutil.rmtree(OUT / "checkpoints", ignore_errors=True)
    say(f"stage runner exited with code {code}")
    sys.exit(code)


if __name__ == "__main__":
    main()
'''
