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


def ct2_transcriber(ct2_dir: Path, recipe, prepared, threads: int, indices: list[int] | None = None):
    """CTranslate2 on the same features, batches and token budgets as palier's Transformers
    side (``AsrRecipe.decode_plan``): the same bound on looping outputs."""
    from core.ct2.export import Ct2Whisper

    ct2 = Ct2Whisper(ct2_dir, threads=threads)

    def transcribe() -> list[str]:
        out: dict[int, str] = {}
        for batch, max_new in recipe.decode_plan(prepared, indices):
            out.update(zip(batch, ct2.transcribe_features(prepared.features[batch], LANGUAGE, max_new)))
        return [out[i] for i in sorted(out)]

    return transcribe


def looping(references: list[str], predictions: list[str]) -> list[int]:
    """Utterances whose transcript runs on: more than twice its reference's words plus 3 (a
    model repeating itself until the token budget stops it)."""
    return [i for i, (r, p) in enumerate(zip(references, predictions, strict=True))
            if len(p.split()) > 2 * len(r.split()) + 3]


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
    """Every comparison on all utterances, then again without the looping ones (a model that
    loops decodes to its token budget: it must not decide the figure)."""
    prepared = recipe.eval_sets["test"]
    seed_model = load_seed_model(model.path, LANGUAGE)
    encoder_s = encoder_share(recipe, prepared)
    everything = list(range(len(prepared)))
    rows, seed_predictions = _comparison(recipe, model, seed_model, ct2_dirs, rounds, threads, everything, encoder_s)
    loops = looping([prepared.texts[i] for i in everything], seed_predictions)
    for row in rows:
        row["looping_utterances"] = len(loops)
    if loops and len(loops) < len(prepared):
        kept = [i for i in everything if i not in loops]
        subset, _ = _comparison(recipe, model, seed_model, ct2_dirs, rounds, threads, kept,
                                encoder_s * len(kept) / len(prepared))
        for row in subset:
            row["name"] += f" (without the {len(loops)} looping)"
        rows += subset
    return rows


def _comparison(recipe, model: BenchModel, seed_model, ct2_dirs: dict[str, Path], rounds: int, threads: int,
                indices: list[int], encoder_s: float) -> tuple[list[dict], list[str]]:
    prepared = recipe.eval_sets["test"]
    budget = seed003_max_new_tokens(seed_model)
    examples = [seed_examples(prepared)[i] for i in indices]
    texts = [prepared.texts[i] for i in indices]
    variants = {
        "seed003": lambda: seed003_evaluate(seed_model, recipe.processor, examples)[0],
        "palier-same-budget": lambda: recipe.transcribe(prepared, LANGUAGE, indices, max_new_tokens=budget),
        "palier": lambda: recipe.transcribe(prepared, LANGUAGE, indices),
        **{f"ct2-{q}": ct2_transcriber(path, recipe, prepared, threads, indices) for q, path in ct2_dirs.items()},
    }
    timed = interleave(variants, rounds)
    seed_predictions = timed.results["seed003"]
    seed_wer = _wer(texts, seed_predictions)
    bound = f"palier's bound ({recipe._tokens_per_second():.1f} tokens/s of audio + 8)"
    described = {
        "palier-same-budget": ("evaluation: palier AsrRecipe.transcribe vs seed 003 loop, same budget",
                               f"both max_new_tokens {budget}", f">= {REAL_EVAL_TARGET:g}x, identical transcripts"),
        "palier": ("evaluation: palier AsrRecipe.transcribe (its token bound) vs seed 003 loop",
                   f"seed {budget} tokens, palier {bound}", "informative: the bound stops looping outputs"),
        **{f"ct2-{q}": (f"evaluation: CTranslate2 export ({q}) vs seed 003 loop",
                        f"CT2 {bound}, the Transformers side's batches", f">= {REAL_CT2_TARGET:g}x, WER within 0.5 "
                        "points of palier's on the same bound") for q in ct2_dirs},
    }
    rows = []
    for name, (title, budgets, target) in described.items():
        summary = timed.summary("seed003", name)
        identical, differing = _differences(seed_predictions, timed.results[name])
        rows.append({"name": title, "target": target if model.window_s >= 30 else "informative",
                     "utterances": len(indices), **summary, "reference_wer": seed_wer,
                     "candidate_wer": _wer(texts, timed.results[name]),
                     "palier_bound_wer": _wer(texts, timed.results["palier"]),
                     "identical_transcripts": identical, "differing_examples": differing,
                     **_encoder_columns(encoder_s, summary),
                     "ceiling_if_decoding_were_free": round(summary["reference_median_s"] / encoder_s, 2),
                     "notes": f"token budgets: {budgets}; seed batch {SEED_003_BATCH_SIZE}, palier batch "
                              f"{recipe._eval_batch_size()} sorted by duration; {threads} thread(s)"})
    return rows, seed_predictions
