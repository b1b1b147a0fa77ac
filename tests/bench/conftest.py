import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # the bench package lives at the repository root
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def french_audio(speech_cache) -> list[str]:
    """Four held-out espeak-ng French utterances (22.05 kHz WAV)."""
    import csv

    from core.demo.datasets import generate

    manifest = generate("french_speech", {"pool": "test", "count": 4, "voices": "stage"}, speech_cache)
    with manifest.open(newline="", encoding="utf-8") as fh:
        return [str(manifest.parent / row["audio"]) for row in csv.DictReader(fh)]


@pytest.fixture(scope="session")
def tiny_whisper_30s(tmp_path_factory) -> Path:
    """A random tiny Whisper with the real checkpoints' 30 s window (faster-whisper's own path)."""
    from tiny import build_tiny_whisper

    return build_tiny_whisper(tmp_path_factory.mktemp("models") / "tiny-whisper-30s", chunk_length=30)
