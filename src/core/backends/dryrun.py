"""``palier run ... --dry-run``: what a remote backend would ship and ask for, without sending anything.

``describe`` computes exactly what ``submit`` would (same planning functions) and makes no network
call. Secrets appear by name only; credentials by where they would be read from, never by value.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from core.backends.kaggle.entry import INPUT_PLACEHOLDER, UPSTREAM_OUTPUT
from core.contracts import StageSpec
from core.model_refs import PYPI_PREFIX

UNKNOWN_KAGGLE_USER = "<your-kaggle-username>"
from core.model_refs import STAGE_PREFIX as STAGE_OUTPUT_PREFIX


def describe_pipeline(specs: list[StageSpec], only: list[str] | None = None) -> list[dict[str, Any]]:
    """One description per stage (those named in ``only``, when given), each on its own backend.

    A later stage's base model is the output of its upstream stage, which does not exist yet: the
    description says where that output will be on the stage's backend (the volume folder on Modal,
    the inputs dataset on Kaggle). A stage that cannot be submitted gets an ``error`` entry
    instead of stopping the others."""
    by_name = {spec.name: spec for spec in specs}
    selected = [spec for spec in specs if not only or spec.name in only]
    return [_describe_stage(spec, by_name) for spec in selected]


def _describe_stage(spec: StageSpec, by_name: dict[str, StageSpec]) -> dict[str, Any]:
    from core.backends.errors import BackendError
    from core.ct2.packaged import PackagedModelError

    backend = spec.stage.backend.kind
    upstream = by_name.get(spec.base_model[len(STAGE_OUTPUT_PREFIX):]) if spec.base_model.startswith(
        STAGE_OUTPUT_PREFIX) else None
    try:
        if upstream is None and spec.base_model.startswith(PYPI_PREFIX):
            return _describe_packaged(spec, backend)
        if upstream is None:
            return describe(spec, backend)
        from core.paths import stage_dir

        local_model = stage_dir(upstream.pipeline, upstream.name, upstream.key) / "model"
        description = describe(spec.with_base_model(str(local_model)), backend)
        description["base_model"] = (f"output of {upstream.name}: {description['base_model']}" if local_model.exists()
                                     else upstream_output(spec, upstream, local_model))
        return description
    except (BackendError, PackagedModelError, ValueError) as exc:  # an impossible setting, a missing file
        return {"backend": backend, "stage": spec.name, "sent": False, "error": str(exc)}


def _describe_packaged(spec: StageSpec, backend: str) -> dict[str, Any]:
    """``pypi:<name>``: the run imports it into palier's cache first (once), then that folder is the
    base model, shipped like any local folder."""
    from core.ct2.packaged import cached_import_dir, packaged_model
    from core.paths import cache_dir

    folder = cached_import_dir(packaged_model(spec.base_model[len(PYPI_PREFIX):]), cache_dir())
    description = describe(spec.with_base_model(str(folder)), backend)
    if folder.is_dir():
        description["base_model"] = f"{spec.base_model} = {folder}: {description['base_model']}"
    else:
        shipped = "" if backend == "local" else ", then shipped like any local folder"
        description["base_model"] = (f"{spec.base_model}: {folder}, imported there from the installed wheels when "
                                     f"the run starts (not imported yet){shipped}")
    return description


def upstream_output(spec: StageSpec, upstream: StageSpec, local_model: Path) -> str:
    """Where a stage will find its upstream stage's model (not produced yet) on its own backend."""
    backend, up_backend = spec.stage.backend.kind, upstream.stage.backend.kind
    if backend == "local":
        return f"output of {upstream.name}: {local_model}"
    if backend == "modal":
        from core.backends.modal.plan import ModalSettings, in_container, remote_out_dir

        volume = ModalSettings.from_options(dict(spec.stage.backend.options)).volume
        if up_backend == "modal" and ModalSettings.from_options(dict(upstream.stage.backend.options)).volume == volume:
            return (f"output of {upstream.name}: {in_container(remote_out_dir(upstream))}/model "
                    f"(already on volume {volume}; nothing uploaded)")
        return (f"output of {upstream.name}: fetched to {local_model}, then uploaded to volume {volume} "
                "under /vol/inputs/<content hash>/")
    from core.backends.kaggle.kernel import inputs_dataset_slug, kernel_slug

    user = _kaggle_user(spec)
    if up_backend == "kaggle" and _kaggle_user(upstream) == user:
        return (f"output of {upstream.name}: kernel {user}/{kernel_slug(upstream)}'s output, mounted as a kernel "
                "source under /kaggle/input (nothing uploaded)")
    return (f"output of {upstream.name}: {local_model}, then shipped in dataset "
            f"{user}/{inputs_dataset_slug(spec)} (mounted under /kaggle/input)")


def _kaggle_user(spec: StageSpec) -> str:
    from core.backends.kaggle.kernel import KaggleSettings

    return KaggleSettings.from_options(dict(spec.stage.backend.options)).user or kaggle_username_hint() or UNKNOWN_KAGGLE_USER


def describe(spec: StageSpec, backend: str, kernel_dir: Path | None = None) -> dict[str, Any]:
    """A JSON-serialisable description of the submission. ``kernel_dir`` (Kaggle): also write the
    kernel folder (kernel-metadata.json + run_stage.py) there for inspection."""
    if backend == "modal":
        return _describe_modal(spec)
    if backend == "kaggle":
        return _describe_kaggle(spec, kernel_dir)
    if backend == "local":
        from core.backends.local import LocalBackend

        return {"backend": "local", "stage": spec.name, "sent": False, "base_model": spec.base_model,
                "command": LocalBackend().command(spec, Path("<out>"))}
    raise ValueError(f"unknown backend {backend!r}: expected local, modal or kaggle")


def _inputs_table(inputs, remote_of) -> list[dict[str, Any]]:
    return [
        {"role": i.role, "local": str(i.local_path), "files": len(i.files), "bytes": i.size, "remote": remote_of(i)}
        for i in inputs
    ]


def _describe_modal(spec: StageSpec) -> dict[str, Any]:
    from core.backends.modal.backend import plan_submission
    from core.backends.modal.client import modal_credentials_source
    from core.backends.modal.plan import MOUNT, in_container, input_dir

    problems: list[str] = []
    settings, inputs, remote_spec, out_rel, launch = plan_submission(spec, problems=problems)
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
        **_missing(problems),
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
    from core.backends.kaggle.backend import plan_kernel
    from core.backends.kaggle.client import kaggle_credentials_source
    from core.backends.kaggle.kernel import (
        CODE_FILE,
        inputs_dataset_slug,
        inputs_marker,
        session_timeout_s,
        shape_note,
    )

    problems: list[str] = []
    settings, inputs, metadata, config, script = plan_kernel(spec, kaggle_username_hint() or UNKNOWN_KAGGLE_USER,
                                                             problems=problems)
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
        **({"machine_shape_warning": note} if (note := shape_note(metadata.get("machine_shape"))) else {}),
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
        **_missing(problems),
        "base_model": config_base_model(config),
        "hf_secret": settings.hf_secret or None,
        "command": config["command"],
        "runner_env": config["env"],
        "credentials": f"found ({credentials})" if credentials else "MISSING: see docs/backends.md (Kaggle setup)",
    }


def config_base_model(config: dict[str, Any]) -> str:
    value = json.loads(config["spec_json"])["base_model"]
    if config.get("upstream") and value.startswith(INPUT_PLACEHOLDER.format(digest=UPSTREAM_OUTPUT)):
        return (f"output of kernel {config['upstream']['kernel']} (a kernel source, mounted under /kaggle/input; "
                "nothing uploaded)")
    for digest in config["inputs"]:
        if value.startswith(INPUT_PLACEHOLDER.format(digest=digest)):
            return f"shipped in the inputs dataset as {digest}.tar, unpacked in the kernel"
    return value


def _missing(problems: list[str]) -> dict[str, Any]:
    """Inputs that are not on this disk yet: shown, since a submit now would stop on them."""
    return {"missing_inputs (submit would stop here)": problems} if problems else {}


def render(description: dict[str, Any]) -> str:
    """Plain text for the terminal (rich can print it as is)."""
    if "error" in description:
        return (f"Dry run: stage {description['stage']} on {description['backend']} cannot be submitted:\n"
                f"  {description['error']}")
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
        elif isinstance(value, list) and label.startswith("missing"):
            lines.append(f"{pad}{label}:")
            lines.extend(f"{pad}  - {item}" for item in value)
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
