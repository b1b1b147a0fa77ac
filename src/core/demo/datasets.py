"""Data recipes the project makes itself (``kind: generated`` in a pipeline file).

A recipe writes a seed-001-style CSV manifest (``audio,sentence``) under the cache folder,
keyed by its parameters, and returns the manifest's path; the stage runner then reads it
like any user CSV. Recipes are deterministic: same parameters, same sentences, same voices.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

from core.demo import corpus, speech


def _french_speech(out: Path, pool: str, count: int, voices: str, seed: int = 0, domain: str = "general",
                   general_mix: int = 0) -> Path:
    """``general_mix`` adds that many general sentences (same pool) to a medical set: the usual
    guard against forgetting when a stage specialises."""
    if domain == "general":
        sentences = corpus.general_sentences(pool, count, seed=seed)
    elif domain == "medical":
        sentences = corpus.medical_sentences(pool, count, seed=seed)
        if general_mix:
            sentences += corpus.general_sentences(pool, general_mix, seed=seed + 1)
    else:
        raise ValueError(f"unknown domain {domain!r}: expected 'general' or 'medical'")
    utterances = speech.synthesize(sentences, out, voices, seed=seed)
    return speech.write_manifest(utterances, out / "manifest.csv")


RECIPES: dict[str, Callable[..., Path]] = {"french_speech": _french_speech}


def generate(generator: str, params: dict, cache_dir: Path) -> Path:
    if generator not in RECIPES:
        raise ValueError(f"unknown data generator {generator!r}; known: {sorted(RECIPES)}")
    digest = hashlib.sha256(json.dumps([generator, params], sort_keys=True).encode()).hexdigest()[:12]
    out = cache_dir / "generated" / f"{generator}-{digest}"
    manifest = out / "manifest.csv"
    if manifest.exists():
        return manifest
    tmp = out.with_name(out.name + ".partial")
    produced = RECIPES[generator](tmp, **params)
    if out.exists():  # a half-written folder from an interrupted run
        shutil.rmtree(out)
    tmp.replace(out)
    return out / produced.relative_to(tmp)
