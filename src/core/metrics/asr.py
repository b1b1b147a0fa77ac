"""ASR metrics: WER, CER, normalized WER/CER (jiwer) and medical-term accuracy."""

from __future__ import annotations

import re
from collections.abc import Sequence

import jiwer

from core.metrics.text import normalize_fr


def _error_rate(kind: str, references: Sequence[str], predictions: Sequence[str]) -> float:
    # jiwer rejects empty references; the stage runner drops empty transcripts before this,
    # so an empty reference here is a caller bug worth failing on.
    fn = jiwer.wer if kind == "wer" else jiwer.cer
    return float(fn(list(references), list(predictions)))


def medical_term_accuracy(
    references: Sequence[str], predictions: Sequence[str], lexicon: Sequence[str]
) -> tuple[float | None, int, int]:
    """Share of lexicon-term occurrences in the references that the prediction also contains.

    Both sides are normalised with ``normalize_fr`` and matched on word boundaries, so
    "l'hépatite" counts as "hépatite" but "hépatites" does not count as "hépatite". Returns
    ``(accuracy, hits, occurrences)``; accuracy is None when no reference holds a term.
    """
    terms = sorted({normalize_fr(t) for t in lexicon if t.strip()}, key=len, reverse=True)
    patterns = [(t, re.compile(rf"(?<![\w]){re.escape(t)}(?![\w])")) for t in terms]
    hits = occurrences = 0
    for reference, prediction in zip(references, predictions, strict=True):
        ref, pred = normalize_fr(reference), normalize_fr(prediction)
        for _term, pattern in patterns:
            n_ref = len(pattern.findall(ref))
            if n_ref:
                occurrences += n_ref
                hits += min(n_ref, len(pattern.findall(pred)))
    return (hits / occurrences if occurrences else None), hits, occurrences


def asr_metrics(
    references: Sequence[str], predictions: Sequence[str], lexicon: Sequence[str] | None = None
) -> dict[str, float]:
    """Corpus-level metrics as fractions (0.12 = 12 %), the way jiwer reports them."""
    if len(references) != len(predictions):
        raise ValueError(f"{len(references)} references but {len(predictions)} predictions")
    if not references:
        raise ValueError("cannot score an empty evaluation set")
    norm_refs = [normalize_fr(r) for r in references]
    norm_preds = [normalize_fr(p) for p in predictions]
    metrics = {
        "wer": _error_rate("wer", references, predictions),
        "cer": _error_rate("cer", references, predictions),
        "normalized_wer": _error_rate("wer", norm_refs, norm_preds),
        "normalized_cer": _error_rate("cer", norm_refs, norm_preds),
    }
    if lexicon:
        accuracy, _hits, occurrences = medical_term_accuracy(references, predictions, lexicon)
        if accuracy is not None:
            metrics["medical_term_accuracy"] = accuracy
            metrics["medical_term_occurrences"] = float(occurrences)
    return metrics


def utterance_wer(reference: str, prediction: str) -> float:
    """One utterance's WER after ``normalize_fr``; an empty reference scores its predicted
    words (each one an insertion), so a hallucination on silence still ranks as an error."""
    ref, pred = normalize_fr(reference or ""), normalize_fr(prediction or "")
    if not ref.split():
        return float(len(pred.split()))
    return float(jiwer.wer(ref, pred))
