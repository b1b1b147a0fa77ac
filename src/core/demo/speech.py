"""Synthetic French speech with espeak-ng, for the offline demo and the tests.

espeak-ng is robotic but real audio: varied voices, speeds and pitches give the models
something to learn and to generalise over. Files are written at espeak's native 22,050 Hz
so that the stage runner's resampling path is exercised for real.
"""

from __future__ import annotations

import csv
import random
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

# Voices are split into disjoint "speaker" pools so that a stage can meet speakers the base
# model never heard (a real improvement to measure), as with new dictating doctors.
VOICE_POOLS = {
    "pretrain": ["fr-fr+m1", "fr-fr+m2", "fr-fr+m3", "fr-fr+f1", "fr-fr+f2", "fr-fr", "fr-fr+m7"],
    "stage": ["fr-be+m4", "fr-ch+f3", "fr-be+f4", "fr-ch+m5", "fr-be", "fr-ch+m6"],
    "all": [
        "fr-fr+m1", "fr-fr+m2", "fr-fr+f1", "fr-be+m4", "fr-ch+f3", "fr-be+f4", "fr-ch+m5",
        "fr-fr+m3", "fr-fr+f2",
    ],
}


class EspeakMissing(RuntimeError):
    pass


@dataclass(frozen=True)
class Utterance:
    path: Path
    sentence: str
    voice: str
    speed: int
    pitch: int


def espeak_binary() -> str:
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise EspeakMissing(
            "espeak-ng is not installed; it speaks the demo's French sentences. "
            "Install it with `apt-get install espeak-ng` (the Makefile's `setup` target does)."
        )
    return binary


def synthesize(
    sentences: list[str],
    out_dir: Path,
    voice_pool: str,
    seed: int = 0,
    speed_range: tuple[int, int] = (150, 195),
    pitch_range: tuple[int, int] = (35, 65),
    workers: int = 2,
) -> list[Utterance]:
    """Speak every sentence into ``out_dir/audio/N.wav``; returns the utterances in order."""
    binary = espeak_binary()
    voices = VOICE_POOLS[voice_pool]
    rng = random.Random(f"{voice_pool}:{seed}")
    audio_dir = out_dir / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    jobs = [
        Utterance(
            path=audio_dir / f"{i}.wav",
            sentence=sentence,
            voice=rng.choice(voices),
            speed=rng.randint(*speed_range),
            pitch=rng.randint(*pitch_range),
        )
        for i, sentence in enumerate(sentences)
    ]

    def speak(u: Utterance) -> None:
        if u.path.exists() and u.path.stat().st_size > 44:
            return
        tmp = u.path.with_suffix(".tmp.wav")
        subprocess.run(
            [binary, "-v", u.voice, "-s", str(u.speed), "-p", str(u.pitch), "-w", str(tmp),
             u.sentence],
            check=True,
            capture_output=True,
        )
        tmp.replace(u.path)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(speak, jobs))
    return jobs


def write_manifest(utterances: list[Utterance], manifest: Path) -> Path:
    """The CSV manifest layout: ``audio,sentence`` with paths relative to the manifest."""
    manifest.parent.mkdir(parents=True, exist_ok=True)
    with manifest.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["audio", "sentence"])
        for u in utterances:
            writer.writerow([u.path.relative_to(manifest.parent).as_posix(), u.sentence])
    return manifest
