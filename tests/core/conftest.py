"""Fixtures shared by the stage runner's tests (tests/core/stage/) and the CTranslate2 ones
(tests/core/ct2/): a tiny Whisper with the real checkpoints' 30 s window and held-out French speech."""

from __future__ import annotations

import pytest

from speed_markers import tiny_model_fixture
from tiny import build_tiny_whisper

# The real checkpoints' 30 s window (faster-whisper's own path).
tiny_whisper_30s = tiny_model_fixture("tiny_whisper_30s", build_tiny_whisper, chunk_length=30)


@pytest.fixture(scope="session")
def french_audio(speech_cache) -> list[str]:
    """Four held-out espeak-ng French utterances (22.05 kHz WAV)."""
    import csv

    from core.demo.datasets import generate

    manifest = generate("french_speech", {"pool": "test", "count": 4, "voices": "stage"}, speech_cache)
    with manifest.open(newline="", encoding="utf-8") as fh:
        return [str(manifest.parent / row["audio"]) for row in csv.DictReader(fh)]
