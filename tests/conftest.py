from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


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
