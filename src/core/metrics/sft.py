"""Answer quality for SFT stages: exact match and token-overlap F1, SQuAD-style (pure).

The normaliser ``normalize_answer`` (applied to both sides before scoring):

1. Unicode NFKC, lower case; curly apostrophes become ``'``.
2. Punctuation becomes a space (apostrophes included, so "l'application" -> "l application").
3. Articles are dropped, English and French: a, an, the, le, la, les, l, un, une, des, du, de, d.
4. Whitespace is collapsed.

Accents are kept ("à" and "a" differ, as in ``core.metrics.text``). Token F1 is computed on the
multiset of normalised words; an empty reference scores 1 only against an empty prediction.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence

ARTICLES = frozenset({"a", "an", "the", "le", "la", "les", "l", "un", "une", "des", "du", "de", "d"})
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "ʼ": "'", "`": "'", "´": "'"})
_PUNCTUATION = re.compile(r"[^\w\s]|_")


def normalize_answer(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower().translate(_APOSTROPHES)
    text = _PUNCTUATION.sub(" ", text)
    return " ".join(w for w in text.split() if w not in ARTICLES)


def exact_match(reference: str, prediction: str) -> float:
    return float(normalize_answer(reference) == normalize_answer(prediction))


def token_f1(reference: str, prediction: str) -> float:
    ref, pred = normalize_answer(reference).split(), normalize_answer(prediction).split()
    if not ref or not pred:
        return float(ref == pred)
    common = Counter(ref) & Counter(pred)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred), overlap / len(ref)
    return 2 * precision * recall / (precision + recall)


def answer_metrics(references: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
    """Means over the set: ``exact_match`` and ``token_f1`` (fractions, 1.0 = perfect)."""
    if len(references) != len(predictions):
        raise ValueError(f"{len(references)} references but {len(predictions)} predictions")
    if not references:
        raise ValueError("cannot score an empty evaluation set")
    n = len(references)
    return {
        "exact_match": sum(exact_match(r, p) for r, p in zip(references, predictions)) / n,
        "token_f1": sum(token_f1(r, p) for r, p in zip(references, predictions)) / n,
    }
