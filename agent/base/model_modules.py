"""The module names of a pipeline's base model, for checking LoRA ``target_modules``.

The names come from the model's config built on the meta device (``python -m
core.stage.module_names``, a subprocess: the agent never imports torch/transformers), offline
(a hub id is inspected only when its config is in the local cache). Building costs seconds, so
the answer is cached on disk under a key that changes with the model: the config file's size
and modification time for a local folder, the cached revision for a hub id, the installed
version for a ``package:`` model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from agent.base.model_refs import is_hub_id

from core.model_refs import PACKAGE_PREFIX, STAGE_PREFIX
TIMEOUT_S = 180


def _cache_file() -> Path:
    return Path(os.environ.get("PALIER_HOME", ".state")) / "cache" / "model-modules.json"


def _hub_revision(ref: str, hub_cache: Path) -> str | None:
    folder = hub_cache / ("models--" + ref.replace("/", "--"))
    try:
        return (folder / "refs" / "main").read_text().strip()
    except OSError:
        return None


def model_key(ref: str, base_dir: Path | None, hub_cache: Path) -> str | None:
    """What identifies this model's architecture here; None: it cannot be inspected offline."""
    if ref.startswith(STAGE_PREFIX):
        return None
    if ref.startswith(PACKAGE_PREFIX):
        dist = ref[len(PACKAGE_PREFIX):].strip()
        try:
            return f"{ref}@{metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            return None
    path = Path(os.path.expanduser(ref))
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    config = path / "config.json"
    if config.is_file():
        st = config.stat()
        return f"{path.resolve()}@{st.st_size}-{st.st_mtime_ns}"
    if is_hub_id(ref, {}):
        revision = _hub_revision(ref, hub_cache)
        return f"{ref}@{revision}" if revision else None
    return None


def _read_cache() -> dict[str, Any]:
    try:
        return json.loads(_cache_file().read_text())
    except (OSError, ValueError):
        return {}


def _write_cache(key: str, value: dict[str, Any]) -> None:
    cache = _cache_file()
    try:
        data = _read_cache()
        data[key] = value
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(cache)
    except OSError:
        pass  # the cache is an optimisation; the inspection already succeeded


def inspect_model(ref: str, base_dir: Path | None) -> dict[str, Any]:
    """Run the stage-side probe. Returns its JSON, or {"error": why}."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    src = Path(__file__).resolve().parents[2] / "src"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(src), env.get("PYTHONPATH", "")) if p)
    cmd = [sys.executable, "-m", "core.stage.module_names", ref] + ([str(base_dir)] if base_dir else [])
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, env=env, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": last[:300]}
    try:
        return json.loads(done.stdout)
    except ValueError:
        return {"error": "the probe printed no JSON"}


def model_module_names(ref: str, base_dir: Path | None, hub_cache: Path) -> list[str] | None:
    """Every module name of the model (``model.layers.0.self_attn.q_proj`` ...), or None when
    the model cannot be inspected here (not local, not cached, no transformers)."""
    key = model_key(ref, base_dir, hub_cache)
    if key is None:
        return None
    known = _read_cache().get(key)
    if known is None:
        known = inspect_model(ref, base_dir)
        if "error" in known:
            return None
        _write_cache(key, known)
    return list(known.get("modules") or [])
