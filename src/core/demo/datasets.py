"""Data recipes the project makes itself (``kind: generated`` in a pipeline file).

A recipe writes its data under the cache folder, keyed by its parameters, and returns the
file's path; the stage runner then reads it like user data. ASR recipes write a
CSV manifest (``audio,sentence``); ``pii_sentences`` writes token-classification
JSON Lines and ``sft_catalogue`` / ``document_qa`` chat ``messages`` JSON Lines. Recipes are
deterministic: same parameters, same data.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from core.demo import corpus, speech


def _french_speech(out: Path, pool: str, count: int, voices: str = "stage", seed: int = 0, domain: str = "general",
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


def _dictation_reports(out: Path, count: int, voices: str = "all", seed: int = 0) -> Path:
    """The dictation folder layout: ``audio/N.wav`` (a dictated sentence) and ``rapports/N.txt``
    (its report text, capitalised and punctuated as a written report is). Distinct sentences,
    so that the folder's seeded 80/20 split holds out sentences never heard in training."""
    sentences = corpus.dictation_sentences(count, seed=seed)
    speech.synthesize(sentences, out, voices, seed=seed)
    reports = out / "rapports"
    reports.mkdir(parents=True, exist_ok=True)
    for i, sentence in enumerate(sentences):
        (reports / f"{i}.txt").write_text(corpus.as_report(sentence) + "\n", encoding="utf-8")
    return out


def _pii_sentences(out: Path, **params) -> Path:
    from core.demo.pii import pii_sentences

    return pii_sentences(out, **params)


def _sft_catalogue(out: Path, **params) -> Path:
    from core.demo.catalogue import sft_catalogue

    return sft_catalogue(out, **params)


RECIPES: dict[str, Callable[..., Path]] = {
    "french_speech": _french_speech,
    "dictation_reports": _dictation_reports,
    "pii_sentences": _pii_sentences,
    "sft_catalogue": _sft_catalogue,
    "document_qa": _sft_catalogue,  # the same generator for any markdown/JSONL document
}
PRODUCED = ".produced"  # the finished output's path, relative to its folder


def _recipe_code_digest() -> str:
    """Generated data changes when the code that makes it changes (sentences, voices)."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).resolve().parent.glob("*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def generate(generator: str, params: dict, cache_dir: Path) -> Path:
    if generator not in RECIPES:
        raise ValueError(f"unknown data generator {generator!r}; known: {sorted(RECIPES)}")
    from core.demo.params import check_params

    check_params(generator, params)
    digest = hashlib.sha256(json.dumps([generator, params, _recipe_code_digest()], sort_keys=True).encode()).hexdigest()[:12]
    out = cache_dir / "generated" / f"{generator}-{digest}"
    manifest = out / "manifest.csv"
    if (out / PRODUCED).exists():
        return out / (out / PRODUCED).read_text(encoding="utf-8").strip()
    if manifest.exists():
        return manifest
    # One folder per process: a search's trials may generate the same set at the same time.
    tmp = out.with_name(f"{out.name}.partial-{os.getpid()}")
    if tmp.exists():  # left by an interrupted run with the same pid
        shutil.rmtree(tmp)
    produced = RECIPES[generator](tmp, **params)
    (tmp / PRODUCED).write_text(str(produced.relative_to(tmp)), encoding="utf-8")
    if (out / PRODUCED).exists():  # another process finished it first
        shutil.rmtree(tmp, ignore_errors=True)
        return out / (out / PRODUCED).read_text(encoding="utf-8").strip()
    if out.exists():  # a half-written folder from an interrupted run
        shutil.rmtree(out)
    tmp.replace(out)
    return out / produced.relative_to(tmp)
