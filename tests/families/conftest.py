from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    from tiny_families import build_tiny_bert

    return build_tiny_bert(tmp_path_factory.mktemp("models") / "tiny-bert")


@pytest.fixture(scope="session")
def tiny_chat(tmp_path_factory) -> Path:
    from tiny_families import build_tiny_chat

    return build_tiny_chat(tmp_path_factory.mktemp("models") / "tiny-chat")


@pytest.fixture(scope="session")
def families_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("families-cache")
