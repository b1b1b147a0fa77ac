"""Real audio files in the formats users bring (WAV 16/24-bit, FLAC, Ogg Vorbis/Opus, MP3),
mono to multi-channel, 8-48 kHz, plus broken ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

GOOD = [
    # name, rate, channels, format, subtype, seconds
    ("pcm16_16k_mono.wav", 16000, 1, "WAV", "PCM_16", 1.0),
    ("pcm24_48k_stereo.wav", 48000, 2, "WAV", "PCM_24", 1.5),
    ("flac_44k_mono.flac", 44100, 1, "FLAC", "PCM_16", 1.2),
    ("vorbis_22k_stereo.ogg", 22050, 2, "OGG", "VORBIS", 1.0),
    ("opus_48k_mono.opus", 48000, 1, "OGG", "OPUS", 1.0),
    ("mp3_44k_stereo.mp3", 44100, 2, "MP3", "MPEG_LAYER_III", 1.3),
    ("pcm16_8k_4ch.wav", 8000, 4, "WAV", "PCM_16", 0.8),
]


def tone(rate: int, channels: int, seconds: float) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    mono = 0.3 * np.sin(2 * np.pi * 220 * t)
    return np.stack([mono * (1 - 0.1 * c) for c in range(channels)], axis=1).astype(np.float32)


def write_audio_zoo(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, rate, channels, fmt, subtype, seconds in GOOD:
        path = folder / name
        sf.write(path, tone(rate, channels, seconds), rate, format=fmt, subtype=subtype)
        paths[name] = path
    (folder / "empty.wav").write_bytes(b"")
    (folder / "html_error_page.wav").write_text("<html><body>502 Bad Gateway</body></html>")
    truncated = (folder / "pcm16_16k_mono.wav").read_bytes()[:30]
    (folder / "truncated.wav").write_bytes(truncated)
    sf.write(folder / "too_long.wav", tone(16000, 1, 7.0), 16000)
    for name in ("empty.wav", "html_error_page.wav", "truncated.wav", "too_long.wav"):
        paths[name] = folder / name
    return paths
