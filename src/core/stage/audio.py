"""Audio loading and inspection: any format libsndfile or audioread reads, to 16 kHz mono.

datasets' own audio decoding needs torchcodec, which has no CPU build beside the pinned
torch (STACK_NOTES), so palier decodes audio itself: soundfile for WAV/FLAC/Ogg/Opus/MP3
(libsndfile >= 1.1 reads MP3), librosa/audioread as a fallback, soxr (via librosa) to
resample.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

TARGET_RATE = 16_000


class AudioError(ValueError):
    """A file that cannot be used, with the reason in words a user can act on."""


@dataclass(frozen=True)
class AudioInfo:
    path: str
    format: str
    subtype: str
    sample_rate: int
    channels: int
    duration_s: float


@dataclass(frozen=True)
class Audio:
    samples: np.ndarray  # float32, mono, TARGET_RATE
    source_rate: int
    source_channels: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / TARGET_RATE


def _existing_file(p: Path) -> Path:
    if not p.exists():
        raise AudioError(f"{p}: file not found")
    if p.stat().st_size == 0:
        raise AudioError(f"{p}: file is empty (0 bytes)")
    return p


def inspect_audio(path: str | Path) -> AudioInfo:
    import soundfile as sf

    p = _existing_file(Path(path))
    try:
        info = sf.info(str(p))
    except Exception as exc:  # libsndfile's messages are already specific
        try:
            return _inspect_with_librosa(p)
        except Exception:
            raise AudioError(f"{p}: not a readable audio file ({exc})") from None
    return AudioInfo(str(p), info.format, info.subtype, int(info.samplerate), int(info.channels), float(info.duration))


def _librosa_decode(p: Path):
    """Fallback decoder (audioread) for what libsndfile cannot read; its warnings are noise
    here because the caller reports the failure itself."""
    import warnings

    import librosa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return librosa.load(str(p), sr=None, mono=False)


def _inspect_with_librosa(p: Path) -> AudioInfo:
    samples, rate = _librosa_decode(p)
    channels = 1 if samples.ndim == 1 else samples.shape[0]
    return AudioInfo(str(p), p.suffix.lstrip(".").upper(), "decoded", int(rate), channels, samples.shape[-1] / rate)


def load_audio(path: str | Path | bytes) -> Audio:
    """Decode, downmix to mono and resample to 16 kHz. ``path`` may be encoded bytes."""
    import io

    import soundfile as sf

    if isinstance(path, bytes):
        source, p = io.BytesIO(path), Path("<bytes>")
    else:
        p = _existing_file(Path(path))
        source = str(p)
    try:
        data, rate = sf.read(source, dtype="float32", always_2d=True)
    except Exception as exc:
        try:
            if isinstance(path, bytes):
                raise
            raw, rate = _librosa_decode(p)
            data = raw.T if raw.ndim == 2 else raw[:, None]
        except Exception:
            raise AudioError(f"{p}: not a readable audio file ({exc})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{p}: holds no samples")
    channels = data.shape[1]
    mono = data.mean(axis=1) if channels > 1 else data[:, 0]
    if rate != TARGET_RATE:
        import librosa

        mono = librosa.resample(mono, orig_sr=rate, target_sr=TARGET_RATE, res_type="soxr_hq")
    return Audio(np.ascontiguousarray(mono, dtype=np.float32), int(rate), int(channels))
