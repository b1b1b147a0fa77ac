"""Every backend honours the same contract (core.backends.base.Backend), checked the same way."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
from backend_fakes import fake_service, stub_backend

from core.backends.base import Backend
from core.backends.kaggle.backend import KaggleBackend
from core.backends.local import LocalBackend
from core.backends.modal.backend import ModalBackend
from core.backends.factory import get_backend
from core.contracts import JobHandle


def build(kind, tmp_path, env):
    if kind == "local":
        return LocalBackend(runner_module="stub_stage", extra_env=env), {"kind": "local", "device": "cpu"}
    if kind == "modal":
        return stub_backend(fake_service(kind, tmp_path, env)), {"kind": "modal"}
    return stub_backend(fake_service(kind, tmp_path, env)), {"kind": "kaggle", "device": "cpu"}


@pytest.mark.parametrize("kind", ["local", "modal", "kaggle"])
def test_backend_contract(kind, tmp_path, make_spec, child_env, wait):
    backend, config = build(kind, tmp_path, child_env)
    for method in ("submit", "poll", "fetch", "cancel", "reattach"):
        assert list(inspect.signature(getattr(backend, method)).parameters) == \
            list(inspect.signature(getattr(Backend, method)).parameters)[1:]
    assert backend.name == kind
    out = tmp_path / "out"
    handle = backend.submit(make_spec(backend=config), out)
    assert JobHandle.model_validate_json(handle.model_dump_json()) == handle  # recordable
    assert Path(handle.out_dir) == out and handle.backend == kind
    assert wait(backend, handle).state == "succeeded"
    assert backend.fetch(handle) == out
    assert json.loads((out / "metrics.json").read_text())["stage"] == "general"
    types = [json.loads(line)["type"] for line in (out / "events.jsonl").read_text().splitlines()]
    assert types.count("done") == 1 and "metric" in types
    assert backend.reattach(handle)


def test_get_backend_builds_the_remote_backends_without_contacting_anyone(no_credentials):
    assert isinstance(get_backend("modal"), ModalBackend)
    assert isinstance(get_backend("kaggle"), KaggleBackend)
