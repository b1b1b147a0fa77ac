"""Evaluation throughput on the same model and the same prepared features:
seed 003's loop (reference) vs palier's ``AsrRecipe.transcribe``, and vs the CTranslate2
export decoding the same features (palier's optional evaluation path)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from bench.seeds import SEED_003_BATCH_SIZE, load_seed_model, seed003_evaluate, seed003_max_new_tokens
from bench.timing import interleave
from bench.workload import LANGUAGE, BenchModel

EVAL_TARGET = 4.0
# Real 30 s checkpoints on a CPU: the encoder is the floor (issue 9, section 5).
REAL_EVAL_TARGET, REAL_ENCODER_BOUND, REAL_CT2_TARGET = 1.75, 1.15, 3.0
CT2_BATCH_SIZE = 32
DIFFERENCES_SHOWN = 3


def _wer(references: list[str], predictions: list[str]) -> float:
    import jiwer

    return round(float(jiwer.wer(list(references), list(predictions))), 4)


def _differences(reference: list[str], candidate: list[str]) -> tuple[int, list[dict]]:
    pairs = [(a.strip(), b.strip()) for a, b in zip(reference, candidate, strict=True)]
    differing = [{"seed": a, "candidate": b} for a, b in pairs if a != b]
    return len(pairs) - len(differing), differing[:DIFFERENCES_SHOWN]


def seed_examples(prepared) -> list[dict]:
    # The features palier prepared, in the form seed 001's map leaves them (float32 arrays).
    return [{"input_features": prepared.features[i].astype(np.float32), "labels": prepared.labels[i].tolist()}
            for i in range(len(prepared))]


def ct2_transcriber(ct2_dir: Path, prepared, threads: int):
    from core.ct2.export import Ct2Whisper

    ct2 = Ct2Whisper(ct2_dir, threads=threads)

    def transcribe() -> list[str]:
        order = np.argsort(prepared.durations, kind="stable")
        out: dict[int, str] = {}
        for start in range(0, len(order), CT2_BATCH_SIZE):
            batch = order[start : start + CT2_BATCH_SIZE]
            out.update(zip(batch.tolist(), ct2.transcribe_features(prepared.features[batch], LANGUAGE)))
        return [out[i] for i in range(len(prepared))]

    return transcribe


def encoder_share(recipe, prepared, repeats: int = 2) -> float:
    """Seconds the encoder alone takes on the whole set: the floor both loops share, since
    every utterance is a fixed-size window."""
    import torch

    model = recipe.model
    best = float("inf")
    with torch.inference_mode():
        for _ in range(repeats):
            t0 = time.perf_counter()
            for start in range(0, len(prepared), SEED_003_BATCH_SIZE):
                feats = torch.from_numpy(prepared.features[start : start + SEED_003_BATCH_SIZE].astype(np.float32))
                model.model.encoder(feats)
            best = min(best, time.perf_counter() - t0)
    return best


def _encoder_columns(encoder_s: float, summary: dict) -> dict:
    """The Transformers encoder alone on the same set, next to each candidate: on a CPU with 30 s
    windows it is the floor, so ``candidate_over_encoder`` near 1 means decoding costs nothing."""
    return {"encoder_only_s": round(encoder_s, 3),
            "encoder_share_of_seed": round(encoder_s / summary["reference_median_s"], 3),
            "candidate_over_encoder": round(summary["candidate_median_s"] / encoder_s, 3)}


def evaluation_rows(recipe, model: BenchModel, ct2_dirs: dict[str, Path], rounds: int, threads: int) -> list[dict]:
    prepared = recipe.eval_sets["test"]
    seed_model = load_seed_model(model.path, LANGUAGE)
    examples = seed_examples(prepared)
    variants = {
        "seed003": lambda: seed003_evaluate(seed_model, recipe.processor, examples),
        "palier": lambda: recipe.transcribe(prepared, LANGUAGE),
        **{f"ct2-{q}": ct2_transcriber(path, prepared, threads) for q, path in ct2_dirs.items()},
    }
    timed = interleave(variants, rounds)
    seed_predictions, seed_references = timed.results["seed003"]
    seed_wer = _wer(seed_references, seed_predictions)
    encoder_s = encoder_share(recipe, prepared)
    seed_median = timed.summary("seed003", "palier")["reference_median_s"]

    rows = []
    identical, differing = _differences(seed_predictions, timed.results["palier"])
    rows.append({
        "name": "evaluation: palier AsrRecipe.transcribe vs seed 003 loop",
        "target": (f">= {EVAL_TARGET:g}x, same WER" if model.window_s < 30 else
                   f">= {REAL_EVAL_TARGET:g}x and <= {REAL_ENCODER_BOUND:g}x encoder alone, identical transcripts"),
        "utterances": len(prepared),
        **timed.summary("seed003", "palier"),
        "reference_wer": seed_wer,
        "candidate_wer": _wer(prepared.texts, timed.results["palier"]),
        "identical_transcripts": identical,
        "differing_examples": differing,
        **_encoder_columns(encoder_s, timed.summary("seed003", "palier")),
        "ceiling_if_decoding_were_free": round(seed_median / encoder_s, 2),
        "notes": (f"seed: batch {SEED_003_BATCH_SIZE}, max_new_tokens {seed003_max_new_tokens(seed_model)}, "
                  f"float32, no autocast; palier: batch {recipe._eval_batch_size()} sorted by duration, "
                  f"max_new_tokens bounded from the train set's tokens/s; torch threads {threads}"),
    })
    for name in variants:
        if not name.startswith("ct2-"):
            continue
        identical, differing = _differences(seed_predictions, timed.results[name])
        rows.append({
            "name": f"evaluation: CTranslate2 export ({name[4:]}) vs seed 003 loop",
            "target": "informative" if model.window_s < 30 else f">= {REAL_CT2_TARGET:g}x, WER within 0.5 points",
            "utterances": len(prepared),
            **timed.summary("seed003", name),
            "reference_wer": seed_wer,
            "candidate_wer": _wer(prepared.texts, timed.results[name]),
            "identical_transcripts": identical,
            "differing_examples": differing,
            **_encoder_columns(encoder_s, timed.summary("seed003", name)),
            "notes": f"ctranslate2 greedy on the same features, batch {CT2_BATCH_SIZE} sorted by duration, "
                     f"{threads} thread(s)",
        })
    return rows
