"""Fixtures every test folder may use, and the guard that keeps the speed markers honest.

Helper modules live in tests/support/ (on the path through pyproject's `pythonpath`); the
end-to-end services fixtures come from the `e2e_fixtures` plugin there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from repo_paths import ROOT
from speed_markers import marker_problems, tiny_model_fixture
from tiny import build_tiny_whisper

pytest_plugins = ["e2e_fixtures"]

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["PALIER_LANG"] = "en"  # palier's own words as the tests assert them, whatever the locale


# A test that uses a fixture registered with speed_markers (directly or through another fixture)
# runs a model or starts servers; collection fails unless it carries the matching marker.
@pytest.hookimpl(tryfirst=True)  # before `-m` deselects anything: every collected test is checked
def pytest_collection_modifyitems(config, items):
    problems = marker_problems(items)
    if problems:
        raise pytest.UsageError("speed markers missing (see tests/README.md):\n  " + "\n  ".join(problems))
    # The session's shared servers must stay as started for every other test, whatever the folders'
    # order: the tests that kill or move them run last (a stable sort keeps the rest in order).
    items.sort(key=lambda item: item.get_closest_marker("restarts_services") is not None)


@pytest.fixture(autouse=True)
def _heartbeats_end_with_their_test():
    """Runs created in-process (Tracker's owned runs) beat from a process-wide thread until
    discarded; a test's beats must not outlive it and write into a store it has deleted."""
    from core.liveness import HEARTBEAT

    before = set(HEARTBEAT.keys())
    yield
    for key in set(HEARTBEAT.keys()) - before:
        HEARTBEAT.discard(key)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


tiny_whisper = tiny_model_fixture("tiny_whisper", build_tiny_whisper)


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
