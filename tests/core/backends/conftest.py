"""Fixtures for the remote backends' tests: stage specs over local data, fake services, and the
environment that lets a child process import the stub stage runner."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from backend_fakes import fake_service, stub_backend, wait_finished
from repo_paths import CHILD_PROCESSES, SRC


@pytest.fixture
def child_env() -> dict[str, str]:
    """Lets supervised children import the stub runner (tests/support/child_processes/) and palier (src/)."""
    path = os.pathsep.join([str(CHILD_PROCESSES), str(SRC), os.environ.get("PYTHONPATH", "")])
    return {"PYTHONPATH": path, "STUB_MODE": "ok"}


@pytest.fixture
def local_data(tmp_path) -> Path:
    """A CSV manifest (audio, sentence) whose audio sits partly beside it and partly elsewhere."""
    data = tmp_path / "data"
    (data / "clips").mkdir(parents=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    for i in range(3):
        (data / "clips" / f"{i}.wav").write_bytes(b"RIFF" + bytes([i]) * 64)
    (outside / "x.wav").write_bytes(b"RIFF-outside")
    (data / "train.csv").write_text(
        "audio,sentence\nclips/0.wav,bonjour\nclips/1.wav,au revoir\n" + f"{outside / 'x.wav'},merci\n",
        encoding="utf-8",
    )
    (data / "test.csv").write_text("audio,sentence\nclips/2.wav,salut\n", encoding="utf-8")
    (data / "lexicon.txt").write_text("tachycardie\n", encoding="utf-8")
    return data


@pytest.fixture
def make_spec(tmp_path, local_data):
    """StageSpec factory: ``make_spec(backend={...}, lexicon=True, base_model=...)``."""
    from core.config.pipeline import PipelineConfig
    from core.plan import plan

    def build(backend: dict | None = None, lexicon: bool = False, base_model: str = "openai/whisper-tiny",
              name: str = "fr", train: dict | None = None):
        stage = {
            "name": "general",
            "output_name": f"{name}-general",
            "train": train or {"kind": "csv", "path": "data/train.csv"},
            "evals": [{"name": "test", "role": "primary", "data": {"kind": "csv", "path": "data/test.csv"}}],
            "backend": backend or {"kind": "modal"},
        }
        if lexicon:
            stage["lexicon"] = "data/lexicon.txt"
        raw = {"name": name, "family": "asr", "base_model": base_model, "stages": [stage]}
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(raw), encoding="utf-8")
        return plan(PipelineConfig.model_validate(raw), "test-code", pipeline_file=str(path))[0]

    return build


@pytest.fixture
def no_credentials(tmp_path, monkeypatch):
    """No Modal or Kaggle token anywhere the clients look."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET", "MODAL_CONFIG_PATH", "KAGGLE_USERNAME", "KAGGLE_KEY",
                 "KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def wait():
    return wait_finished


@pytest.fixture
def fake(request, tmp_path, child_env):
    """The fake service named by the test module's ``SERVICE`` ("modal" or "kaggle")."""
    return fake_service(request.module.SERVICE, tmp_path, child_env)


@pytest.fixture
def backend(fake):
    return stub_backend(fake)
