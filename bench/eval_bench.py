"""Evaluation throughput: seed 003's loop vs palier's ``AsrRecipe.transcribe`` (and, optionally,
the CTranslate2 export), on the same model and the same prepared features."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.seeds import SEED_003_BATCH_SIZE, load_seed_model, seed003_evaluate, seed003_max_new_tokens
from bench.timing import compare
from bench.workload import LANGUAGE, BenchModel

EVAL_TARGET = 4.0
CT2_BATCH_SIZE = 32


def _wer(references: list[str], predictions: list[str]) -> float:
    import jiwer

    return float(jiwer.wer(references, predictions))


def _agreement(a: list[str], b: list[str]) -> int:
    return sum(x.strip() == y.strip() for x, y in zip(a, b, strict=True))


def seed_examples(prepared) -> list[dict]:
    # The features palier prepared, in the form seed 001's map leaves them (float32 arrays).
    return [{"input_features": prepared.features[i].astype(np.float32), "labels": prepared.labels[i].tolist()}
            for i in range(len(prepared))]


def palier_vs_seed003(recipe, model: BenchModel, rounds: int) -> dict[str, Any]:
    prepared = recipe.eval_sets["test"]
    seed_model = load_seed_model(model.path, LANGUAGE)
    examples = seed_examples(prepared)

    comparison = compare(lambda: seed003_evaluate(seed_model, recipe.processor, examples),
                         lambda: recipe.transcribe(prepared, LANGUAGE), rounds)
    seed_predictions, seed_references = comparison.reference_result
    palier_predictions = comparison.candidate_result
    return {
        "name": "evaluation: palier transcribe vs seed 003 loop",
        "target": f">= {EVAL_TARGET:g}x, same WER",
        "utterances": len(prepared),
        **comparison.summary(),
        "reference_wer": round(_wer(seed_references, seed_predictions), 4),
        "candidate_wer": round(_wer(list(prepared.texts), palier_predictions), 4),
        "identical_transcripts": _agreement(seed_predictions, palier_predictions),
        "notes": (f"seed: batch {SEED_003_BATCH_SIZE}, max_new_tokens {seed003_max_new_tokens(seed_model)}, "
                  f"float32, no autocast; palier: batch {recipe._eval_batch_size()}, sorted by duration, "
                  "max_new_tokens from the train set's tokens/s"),
    }


def ct2_vs_seed003(recipe, model: BenchModel, ct2_dir: Path, rounds: int) -> dict[str, Any]:
    """The exported int8 model decoding the same features in duration-sorted batches."""
    from core.stage.export import Ct2Whisper

    prepared = recipe.eval_sets["test"]
    seed_model = load_seed_model(model.path, LANGUAGE)
    examples = seed_examples(prepared)
    ct2 = Ct2Whisper(ct2_dir)

    def ct2_transcribe() -> list[str]:
        order = np.argsort(prepared.durations, kind="stable")
        out: dict[int, str] = {}
        for start in range(0, len(order), CT2_BATCH_SIZE):
            batch = order[start : start + CT2_BATCH_SIZE]
            feats = prepared.features[batch].astype(np.float32)
            out.update(zip(batch.tolist(), ct2.transcribe_features(feats, LANGUAGE)))
        return [out[i] for i in range(len(prepared))]

    comparison = compare(lambda: seed003_evaluate(seed_model, recipe.processor, examples), ct2_transcribe, rounds)
    seed_predictions, seed_references = comparison.reference_result
    ct2_predictions = comparison.candidate_result
    return {
        "name": "evaluation: CTranslate2 int8 export vs seed 003 loop",
        "target": "informative (int8 may change a few words)",
        "utterances": len(prepared),
        **comparison.summary(),
        "reference_wer": round(_wer(seed_references, seed_predictions), 4),
        "candidate_wer": round(_wer(list(prepared.texts), ct2_predictions), 4),
        "identical_transcripts": _agreement(seed_predictions, ct2_predictions),
        "notes": f"ctranslate2 greedy, batch {CT2_BATCH_SIZE} sorted by duration, {ct2.model.model.compute_type}",
    }
