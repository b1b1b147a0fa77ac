"""Environment facts the rules look at. ``EnvFacts`` is plain data (inject it in tests);
``collect_env_facts`` is the I/O that fills it. Secrets are never stored: presence only."""

from __future__ import annotations

import os
import platform
import re
import shutil
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.paths import home as palier_home
from core.model_refs import PACKAGE_PREFIX, PYPI_PREFIX

LIBRARIES = (
    "torch", "transformers", "tokenizers", "accelerate", "datasets", "peft", "trl", "bitsandbytes",
    "jiwer", "evaluate", "soundfile", "librosa", "seqeval", "scikit-learn", "ctranslate2",
    "faster-whisper", "huggingface-hub", "modal", "kaggle", "mlflow", "prefect", "openai",
)

_TRUE = {"1", "true", "yes", "on"}


class EnvFacts(BaseModel):
    model_config = ConfigDict(frozen=True)

    python: str = Field(default_factory=lambda: platform.python_version())
    system: str = "Linux"
    kernel: str | None = Field(default=None, description="this machine's kernel release")
    target_kernel: str | None = Field(
        default=None, description="kernel observed on the target backend (e.g. from a previous run's log)"
    )
    libraries: dict[str, str | None] = Field(default_factory=dict, description="dist name -> version, None = missing")
    cuda_available: bool = False
    gpu_name: str | None = None
    gpu_count: int = 0
    cpu_count: int = 1
    credentials: dict[str, bool] = Field(
        default_factory=dict, description="'modal' | 'kaggle' | 'huggingface' | 'openai' -> present"
    )
    hf_offline: bool = False
    network: bool | None = Field(default=None, description="None: not probed")
    hf_cached: list[str] = Field(default_factory=list, description="repo ids in the local HF cache")
    local_paths: dict[str, bool] = Field(default_factory=dict, description="config path -> exists")
    path_parents: dict[str, bool] = Field(
        default_factory=dict, description="config path -> its parent folder exists (a typo vs a hub id)"
    )
    data_sizes: dict[str, int] = Field(default_factory=dict, description="local csv/jsonl path -> records")
    model_packages: dict[str, bool] = Field(default_factory=dict, description="'package:<dist>' -> installed")
    registry_models: dict[str, str] = Field(
        default_factory=dict, description="'models:/...' base model -> '' when usable, else why not")
    model_modules: dict[str, list[str]] = Field(
        default_factory=dict, description="base model ref -> its module names (meta-device build)"
    )
    gated_repos: list[str] = Field(default_factory=list, description="hub ids known to be gated")
    runs_free_bytes: int | None = Field(default=None, description="free space where run folders go (PALIER_HOME)")
    model_params: dict[str, int] = Field(default_factory=dict,
                                         description="local base model path -> parameter count (safetensors headers)")
    api_signatures: dict[str, list[str]] = Field(
        default_factory=dict, description="'module:Object' -> accepted keyword names (injected or inspected)"
    )

    def has_library(self, dist: str) -> bool:
        return bool(self.libraries.get(_norm_dist(dist)))


def _norm_dist(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def library_versions(names: tuple[str, ...] = LIBRARIES) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[_norm_dist(name)] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[_norm_dist(name)] = None
    return out


def credential_presence(environ: dict[str, str] | None = None, home: Path | None = None) -> dict[str, bool]:
    env = os.environ if environ is None else environ
    home = home or Path.home()
    kaggle_dir = Path(env.get("KAGGLE_CONFIG_DIR", home / ".kaggle"))
    modal = bool(env.get("MODAL_TOKEN_ID") and env.get("MODAL_TOKEN_SECRET")) or (home / ".modal.toml").is_file()
    kaggle = (
        bool(env.get("KAGGLE_USERNAME") and env.get("KAGGLE_KEY"))
        or bool(env.get("KAGGLE_API_TOKEN"))
        or (kaggle_dir / "kaggle.json").is_file()
        or (kaggle_dir / "access_token").is_file()
    )
    hf_home = Path(env.get("HF_HOME", home / ".cache" / "huggingface"))
    huggingface = bool(
        env.get("HF_TOKEN") or env.get("HUGGING_FACE_HUB_TOKEN") or (hf_home / "token").is_file()
    )
    openai = bool(env.get("OPENAI_API_KEY"))
    return {"modal": modal, "kaggle": kaggle, "huggingface": huggingface, "openai": openai}


def hf_cache_dir(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"])
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]) / "hub"
    return Path.home() / ".cache" / "huggingface" / "hub"


def cached_repo_ids(cache: Path) -> list[str]:
    """``models--openai--whisper-large-v3`` -> ``openai/whisper-large-v3`` (models and datasets)."""
    if not cache.is_dir():
        return []
    ids = []
    for entry in cache.iterdir():
        for prefix in ("models--", "datasets--"):
            if entry.name.startswith(prefix):
                ids.append(entry.name[len(prefix):].replace("--", "/"))
    return sorted(ids)


def _gpu_from_nvidia_smi() -> tuple[str | None, int]:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None, 0
    try:
        out = subprocess.run([exe, "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None, 0
    names = [n.strip() for n in out.splitlines() if n.strip()]
    return (names[0] if names else None), len(names)


def _gpu_from_torch(import_torch: bool) -> tuple[bool, str | None, int]:
    if "torch" not in sys.modules and not import_torch:
        return False, None, 0
    try:
        import torch
    except ImportError:
        return False, None, 0
    if not torch.cuda.is_available():
        return False, None, 0
    return True, torch.cuda.get_device_name(0), torch.cuda.device_count()


def probe_network(host: str = "huggingface.co", port: int = 443, timeout_s: float = 1.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def config_paths(config: Any) -> list[str]:
    """Local paths a pipeline refers to (base model, data files/folders, lexicons)."""
    paths: list[str] = []
    if config is None:
        return paths
    base = getattr(config, "base_model", None)
    if isinstance(base, str):
        paths.append(base)
    for stage in getattr(config, "stages", []):
        dumped = stage.model_dump(mode="json")
        sources = [dumped.get("train")] + [e.get("data") for e in dumped.get("evals", []) if isinstance(e, dict)]
        for src in sources:
            if isinstance(src, dict) and src.get("kind") in ("csv", "folder", "jsonl") and src.get("path"):
                paths.append(src["path"])
        if dumped.get("lexicon"):
            paths.append(dumped["lexicon"])
    return list(dict.fromkeys(paths))


def _count_records(path: Path) -> int | None:
    """Data rows of a local CSV (minus its header) or JSONL file; None for anything else."""
    if not path.is_file() or path.suffix.lower() not in (".csv", ".jsonl", ".tsv"):
        return None
    try:
        with path.open("rb") as fh:
            lines = sum(1 for line in fh if line.strip())
    except OSError:
        return None
    return max(0, lines - 1) if path.suffix.lower() in (".csv", ".tsv") else lines


def _uses_lora(config: Any) -> bool:
    for stage in getattr(config, "stages", []):
        method = getattr(getattr(stage, "training", None), "method", None)
        if method in ("lora", "qlora"):
            return True
    return False


def _local_files(paths: list[str], roots: list[Path]
                 ) -> tuple[dict[str, bool], dict[str, bool], dict[str, int]]:
    """For each path the config names: found (relative paths under ``roots``, as the stage runner
    reads them), its parent folder exists there or in the current folder (a typo rather than a hub
    id), its record count."""

    def found(p: str) -> Path | None:
        given = Path(p).expanduser()
        candidates = [given] if given.is_absolute() else [r / p for r in roots]
        return next((c for c in candidates if c.exists()), None)

    local = {p: found(p) is not None for p in paths}
    parents = {p: any((r / p).parent.is_dir() for r in [*roots, Path.cwd()]) for p in paths if not local[p]}
    sizes = {}
    for p in paths:
        where = found(p)
        records = _count_records(where) if where else None
        if records is not None:
            sizes[p] = records
    return local, parents, sizes


def free_bytes(folder: Path) -> int | None:
    """Free space on the disk that holds ``folder`` (its nearest existing parent)."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            return shutil.disk_usage(candidate).free
    return None


def safetensors_params(folder: Path) -> int | None:
    """Parameters of a local model folder, from its safetensors headers (no tensor is read)."""
    import json
    import math
    import struct

    files = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    total = 0
    for path in files:
        with path.open("rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        total += sum(math.prod(t["shape"]) for k, t in header.items() if k != "__metadata__")
    return total or None


def _model_params(base: Any, local: dict[str, bool], roots: list[Path]) -> dict[str, int]:
    if not isinstance(base, str) or not local.get(base):
        return {}
    for root in roots:
        params = safetensors_params(root / base)
        if params:
            return {base: params}
    return {}


def _model_packages(base: Any) -> dict[str, bool]:
    """Whether a ``package:`` / ``pypi:`` base model is installed."""
    if isinstance(base, str) and base.startswith(PACKAGE_PREFIX):
        try:
            return {base: bool(metadata.version(base[len(PACKAGE_PREFIX):].strip()))}
        except metadata.PackageNotFoundError:
            return {base: False}
    if isinstance(base, str) and base.startswith(PYPI_PREFIX):
        from core.ct2.packaged import PackagedModelError, check_installed

        try:
            check_installed(base[len(PYPI_PREFIX):].strip())
            return {base: True}
        except PackagedModelError:
            return {base: False}
    return {}


def _registry_models(base: Any, family: str | None) -> dict[str, str]:
    """Whether a ``models:/`` base model exists on the tracking server and is of the pipeline's family."""
    from core.model_refs import is_registry_ref

    if not isinstance(base, str) or not is_registry_ref(base):
        return {}
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        return {base: "no MLflow server to ask: run `palier up` and `source .state/env` (or set MLFLOW_TRACKING_URI)"}
    from core.tracking.queries import RegistryRefError, registered_version, version_family

    try:
        version = registered_version(uri, base)
    except RegistryRefError as exc:
        return {base: str(exc)}
    found = version_family(uri, version)
    if family and found and found != family:
        return {base: f"version {version.version} of {version.name} is a model of family {found}, this pipeline's family is {family}"}
    return {base: ""}


def collect_env_facts(
    config: Any = None,
    *,
    base_dir: str | Path | None = None,
    import_torch: bool = False,
    check_network: bool = False,
    inspect_models: bool = True,
) -> EnvFacts:
    """Read this machine. GPU: nvidia-smi, else torch only if already imported (or
    ``import_torch``). Network: probed only when asked (a down network costs ~1.5 s). The
    base model's module names are read (subprocess, cached) only when a stage uses LoRA."""
    libs = library_versions()
    cuda, gpu, count = _gpu_from_torch(import_torch)
    if gpu is None:
        gpu, count = _gpu_from_nvidia_smi()
        cuda = cuda or gpu is not None
    hf_offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE
    network = probe_network() if (check_network and not hf_offline) else None
    # Relative paths start at the pipeline file's folder, as the stage runner reads them.
    roots = [Path(base_dir)] if base_dir else [Path.cwd()]
    local, parents, sizes = _local_files(config_paths(config), roots)
    base = getattr(config, "base_model", None) if config is not None else None
    modules = {}
    if inspect_models and isinstance(base, str) and _uses_lora(config):
        from agent.base.model_modules import model_module_names

        names = model_module_names(base, Path(base_dir) if base_dir else None, hf_cache_dir())
        if names is not None:
            modules[base] = names
    return EnvFacts(
        system=platform.system(),
        kernel=platform.release(),
        libraries=libs,
        cuda_available=cuda,
        gpu_name=gpu,
        gpu_count=count,
        cpu_count=os.cpu_count() or 1,
        credentials=credential_presence(),
        hf_offline=hf_offline,
        network=network,
        hf_cached=cached_repo_ids(hf_cache_dir()),
        local_paths=local,
        path_parents=parents,
        data_sizes=sizes,
        model_packages=_model_packages(base),
        registry_models=_registry_models(base, getattr(config, "family", None)),
        model_modules=modules,
        runs_free_bytes=free_bytes(palier_home()),
        model_params=_model_params(base, local, roots),
    )
