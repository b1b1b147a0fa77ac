"""Which fixtures run a real model or start real servers, and the check that every test using one
carries its speed marker (tests/README.md). A fixture registers itself where it is defined:

    @pytest.fixture(scope="session")
    @runs_model
    def real_base(...): ...
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

MODEL_FIXTURES: set[str] = set()
SERVER_FIXTURES: set[str] = set()


def runs_model(function: Callable) -> Callable:
    """A fixture that builds or loads a real model: its users are `integration` (or `e2e`) tests."""
    MODEL_FIXTURES.add(function.__name__)
    return function


def starts_servers(function: Callable) -> Callable:
    """A fixture that starts real Prefect/MLflow servers or a browser: its users are `e2e` tests."""
    SERVER_FIXTURES.add(function.__name__)
    return function


def tiny_model_fixture(name: str, build: Callable[..., Path], **options):
    """The session fixture `name`: `build(<tmp>/models/<name>, **options)` once, for every test that asks."""

    def fixture(tmp_path_factory) -> Path:
        return build(tmp_path_factory.mktemp("models") / name.replace("_", "-"), **options)

    fixture.__name__ = name
    fixture.__doc__ = build.__doc__
    return pytest.fixture(scope="session", name=name)(runs_model(fixture))


def marker_problems(items) -> list[str]:
    """One line per collected test that uses a registered fixture without the matching marker."""
    problems = []
    for item in items:
        used = set(getattr(item, "fixturenames", ()))  # the whole closure, not only the arguments
        marks = {mark.name for mark in item.iter_markers()}
        if used & SERVER_FIXTURES and "e2e" not in marks:
            problems.append(f"{item.nodeid}: uses {sorted(used & SERVER_FIXTURES)} but is not marked e2e")
        elif used & MODEL_FIXTURES and not marks & {"integration", "e2e"}:
            problems.append(f"{item.nodeid}: uses {sorted(used & MODEL_FIXTURES)} but is not marked integration")
    return problems
