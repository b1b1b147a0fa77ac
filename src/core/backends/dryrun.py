"""``palier run ... --dry-run``: what a remote backend would ship and ask for, without sending anything.

``describe`` computes exactly what ``submit`` would (same planning functions) and makes no network
call. Secrets appear by name only; credentials by where they would be read from, never by value.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from core.contracts import StageSpec

UNKNOWN_KAGGLE_USER = "<your-kaggle-username>"


def describe(spec: StageSpec, backend: str, kernel_dir: Path | None = None) -> dict[str, Any]:
    """A JSON-serialisable description of the submission. ``kernel_dir`` (Kaggle): also write the
    kernel folder (kernel-metadata.json + run_stage.py) there for inspection."""
    if backend == "modal":
        return _describe_modal(spec)
    if backend == "kaggle":
        return _describe_kaggle(spec, kernel_dir)
    if backend == "local":
        from core.backends.local import LocalBackend

        return {"backend": "local", "stage": spec.name, "sent": False,
                "command": LocalBackend().command(spec, Path("<out>"))}
    raise ValueError(f"unknown backend {backend!r}: expected local, modal or kaggle")


def _inputs_table(inputs, remote_of) -> list[dict[str, Any]]:
    return [
        {"role": i.role, "local": str(i.local_path), "files": len(i.files), "bytes": i.size, "remote": remote_of(i)}
        for i in inputs
    ]


def _describe_modal(spec: StageSpec) -> dict[str, Any]:
    from core.backends.modal_backend import plan_submission
    from core.backends.modal_client import modal_credentials_source
    from core.backends.modal_plan import MOUNT, in_container, input_dir

    settings, inputs, remote_spec, out_rel, launch = plan_submission(spec)
    credentials = modal_credentials_source()
    return {
        "backend": "modal",
        "stage": spec.name,
        "sent": False,
        "app": launch.app,
        "function": launch.function_name,
        "gpu": launch.gpu or "none (CPU)",
        "timeout_s": launch.timeout_s,
        "nonpreemptible": launch.nonpreemptible,
        "image": {
            "base": f"debian_slim, python {launch.python_version}",
            "system_packages": list(launch.system_packages),
            "pip": list(launch.requirements),
            "local_sources": list(launch.local_sources),
            "env": launch.image_env,
        },
        "volume": {"name": launch.volume, "mount": MOUNT, "output": in_container(out_rel),
                   "cache": in_container("cache"), "hf_home": launch.image_env["HF_HOME"]},
        "secrets": list(launch.secrets),
        "uploads": _inputs_table(inputs, lambda i: in_container(input_dir(i.digest))),
        "base_model": remote_spec.base_model,
        "command": launch.request["command"],
        "runner_env": launch.request["env"],
        "credentials": f"found ({credentials})" if credentials else "MISSING: run `modal setup`",
    }


def kaggle_username_hint(env: dict[str, str] | None = None, home: Path | None = None) -> str | None:
    """The account name from the environment or kaggle.json, without contacting Kaggle."""
    env = dict(os.environ) if env is None else env
    if env.get("KAGGLE_USERNAME"):
        return env["KAGGLE_USERNAME"]
    config = Path(env.get("KAGGLE_CONFIG_DIR") or (home or Path.home()) / ".kaggle") / "kaggle.json"
    if config.is_file():
        try:
            return json.loads(config.read_text(encoding="utf-8")).get("username")
        except json.JSONDecodeError:
            return None
    return None


def _describe_kaggle(spec: StageSpec, kernel_dir: Path | None) -> dict[str, Any]:
    from core.backends.kaggle_backend import plan_kernel
    from core.backends.kaggle_client import kaggle_credentials_source
    from core.backends.kaggle_kernel import CODE_FILE, inputs_dataset_slug, inputs_marker, session_timeout_s

    user = kaggle_username_hint() or UNKNOWN_KAGGLE_USER
    settings, inputs, metadata, config, script = plan_kernel(spec, user)
    user = metadata["id"].split("/")[0]
    if kernel_dir is not None:
        kernel_dir.mkdir(parents=True, exist_ok=True)
        (kernel_dir / "kernel-metadata.json").write_text(json.dumps(metadata, indent=2), encoding="utf-8")
        (kernel_dir / CODE_FILE).write_text(script, encoding="utf-8")
    credentials = kaggle_credentials_source()
    return {
        "backend": "kaggle",
        "stage": spec.name,
        "sent": False,
        "kernel": metadata["id"],
        "kernel_metadata": metadata,
        "code_file": CODE_FILE,
        "script_bytes": len(script.encode("utf-8")),
        "kernel_folder": str(kernel_dir) if kernel_dir else None,
        "session_timeout_s": session_timeout_s(spec.stage.backend),
        "requirements": config["requirements"],
        "system_packages": config["system_packages"],
        "dataset": None if not inputs else {
            "ref": f"{user}/{inputs_dataset_slug(spec)}", "private": True, "marker": inputs_marker(inputs),
            "inputs": _inputs_table(inputs, lambda i: f"{i.digest}.tar"),
        },
        "hf_secret": settings.hf_secret or None,
        "command": config["command"],
        "runner_env": config["env"],
        "credentials": f"found ({credentials})" if credentials else "MISSING: see docs/backends.md (Kaggle setup)",
    }


def render(description: dict[str, Any]) -> str:
    """Plain text for the terminal (rich can print it as is)."""
    lines = [f"Dry run: stage {description['stage']} on {description['backend']} (nothing sent)"]

    def add(label: str, value: Any, indent: int = 2) -> None:
        pad = " " * indent
        if isinstance(value, dict):
            lines.append(f"{pad}{label}:")
            for key, inner in value.items():
                add(key, inner, indent + 2)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            lines.append(f"{pad}{label}:")
            for row in value:
                lines.append(f"{pad}  - " + ", ".join(f"{k}={v}" for k, v in row.items()))
        elif isinstance(value, list):
            joined = " ".join(map(str, value)) if label == "command" else ", ".join(map(str, value))
            lines.append(f"{pad}{label}: {joined or 'none'}")
        else:
            lines.append(f"{pad}{label}: {value}")

    for key, value in description.items():
        if key in ("stage", "backend", "sent"):
            continue
        add(key, value)
    return "\n".join(lines)
