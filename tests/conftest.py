"""Fixtures every test folder may use, and the guard that keeps the speed markers honest.

Helper modules live in tests/support/ (on the path through pyproject's `pythonpath`); the
end-to-end services fixtures come from the `e2e_fixtures` plugin there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from repo_paths import ROOT

pytest_plugins = ["e2e_fixtures"]

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Fixtures that build or load a real model: a test that uses one (directly or through another
# fixture) runs a model and must be marked `integration` (or `e2e`, which runs models too).
MODEL_FIXTURES = frozenset({
    "tiny_whisper", "tiny_whisper_30s", "tiny_bert", "tiny_chat",
    "real_base", "real_tiny_en", "base_ct2", "base_model", "large_v3_ct2",
})
# Fixtures that start real servers or a browser: a test that uses one must be marked `e2e`.
SERVER_FIXTURES = frozenset({"services", "tiny_run", "mlflow_server", "browser"})


def marker_problems(items) -> list[str]:
    problems = []
    for item in items:
        used = set(getattr(item, "fixturenames", ()))  # the whole closure, not only the arguments
        marks = {mark.name for mark in item.iter_markers()}
        if used & SERVER_FIXTURES and "e2e" not in marks:
            problems.append(f"{item.nodeid}: uses {sorted(used & SERVER_FIXTURES)} but is not marked e2e")
        elif used & MODEL_FIXTURES and not marks & {"integration", "e2e"}:
            problems.append(f"{item.nodeid}: uses {sorted(used & MODEL_FIXTURES)} but is not marked integration")
    return problems


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects anything: every collected test is checked
def pytest_collection_modifyitems(config, items):
    problems = marker_problems(items)
    if problems:
        raise pytest.UsageError("speed markers missing (see tests/README.md):\n  " + "\n  ".join(problems))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def tiny_whisper(tmp_path_factory) -> Path:
    from tiny import build_tiny_whisper

    return build_tiny_whisper(tmp_path_factory.mktemp("models") / "tiny-whisper")


@pytest.fixture(scope="session")
def speech_cache(tmp_path_factory) -> Path:
    """One cache for generated speech and features, shared by the whole session."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def palier_home(tmp_path, monkeypatch, speech_cache) -> Path:
    home = tmp_path / "state"
    monkeypatch.setenv("PALIER_HOME", str(home))
    monkeypatch.setenv("PALIER_CACHE_DIR", str(speech_cache))
    return home
