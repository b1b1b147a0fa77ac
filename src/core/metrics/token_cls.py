"""Token-classification metrics: entity-level F1 with seqeval, a word-level confusion
matrix with scikit-learn, and an error analysis of misclassified spans. Pure: tag lists in,
numbers and rows out (the confusion-matrix picture is drawn by ``plot_confusion``).

Conventions
- Tags are IOB2 strings per word (``O``, ``B-EMAIL``, ``I-EMAIL``). seqeval's default (lenient,
  conlleval-like) mode is used: an ``I-X`` after ``O`` opens an entity, as conlleval does.
- Entity-level scores count a predicted entity as correct only when its type **and** both
  boundaries match a reference entity.
- ``f1_weighted`` weights each entity type's F1 by its number of reference entities (support);
  ``f1_macro`` is the plain mean over types; ``f1_micro`` pools every entity.
- The confusion matrix is per word, over entity types (B-/I- folded) plus ``O``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

OUTSIDE = "O"


def entity_type(tag: str) -> str:
    return tag[2:] if tag[:2] in ("B-", "I-", "E-", "S-") else tag


def _check(references: Sequence[Sequence[str]], predictions: Sequence[Sequence[str]]) -> None:
    if len(references) != len(predictions):
        raise ValueError(f"{len(references)} reference sentences but {len(predictions)} predicted ones")
    for i, (r, p) in enumerate(zip(references, predictions)):
        if len(r) != len(p):
            raise ValueError(f"sentence {i}: {len(r)} reference tags but {len(p)} predicted tags")


def entity_metrics(references: Sequence[Sequence[str]], predictions: Sequence[Sequence[str]]) -> dict[str, float]:
    """F1 weighted/macro/micro, precision/recall (weighted and micro), word accuracy, and per
    entity type ``f1_T``, ``precision_T``, ``recall_T``, ``support_T``."""
    from seqeval.metrics import classification_report

    _check(references, predictions)
    refs, preds = [list(r) for r in references], [list(p) for p in predictions]
    words = sum(len(r) for r in refs)
    correct = sum(a == b for r, p in zip(refs, preds) for a, b in zip(r, p))
    metrics: dict[str, float] = {"token_accuracy": correct / words if words else 0.0}
    has_entities = any(t != OUTSIDE for r in refs for t in r) or any(t != OUTSIDE for p in preds for t in p)
    if not has_entities:
        # Nothing to find and nothing found: seqeval would divide by zero.
        metrics.update({k: 0.0 for k in ("f1_weighted", "f1_macro", "f1_micro", "precision_weighted",
                                          "recall_weighted", "precision_micro", "recall_micro")})
        metrics["entities"] = 0.0
        return metrics
    report = classification_report(refs, preds, output_dict=True, zero_division=0)
    micro, macro, weighted = report["micro avg"], report["macro avg"], report["weighted avg"]
    metrics.update(
        f1_weighted=float(weighted["f1-score"]),
        f1_macro=float(macro["f1-score"]),
        f1_micro=float(micro["f1-score"]),
        precision_weighted=float(weighted["precision"]),
        recall_weighted=float(weighted["recall"]),
        precision_micro=float(micro["precision"]),
        recall_micro=float(micro["recall"]),
        entities=float(micro["support"]),
    )
    for name, row in report.items():
        if name.endswith(" avg"):
            continue
        metrics[f"f1_{name}"] = float(row["f1-score"])
        metrics[f"precision_{name}"] = float(row["precision"])
        metrics[f"recall_{name}"] = float(row["recall"])
        metrics[f"support_{name}"] = float(row["support"])
    return metrics


def confusion(
    references: Sequence[Sequence[str]], predictions: Sequence[Sequence[str]], types: Sequence[str] | None = None
) -> tuple[list[str], list[list[int]]]:
    """Word-level confusion matrix over entity types + ``O``: rows are references, columns predictions."""
    from sklearn.metrics import confusion_matrix

    _check(references, predictions)
    ref = [entity_type(t) for r in references for t in r]
    pred = [entity_type(t) for p in predictions for t in p]
    found = set(ref) | set(pred)
    labels = sorted(set(types or []) | found - {OUTSIDE}) + [OUTSIDE]
    if not ref:
        return labels, [[0] * len(labels) for _ in labels]
    matrix = confusion_matrix(ref, pred, labels=labels)
    return labels, matrix.tolist()


def spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """Entities as (type, first word, last word inclusive), seqeval's reading of the tags."""
    from seqeval.metrics.sequence_labeling import get_entities

    return [(t, s, e) for t, s, e in get_entities(list(tags))]


def span_errors(
    tokens: Sequence[str], references: Sequence[str], predictions: Sequence[str]
) -> list[dict[str, Any]]:
    """Misclassified spans of one sentence, one row per problem:

    - ``missed``: a reference entity no prediction overlaps;
    - ``wrong_type``: same words, another type;
    - ``boundary``: overlapping prediction of the same type with other boundaries;
    - ``wrong_type_and_boundary``: overlapping, another type and other boundaries;
    - ``spurious``: a predicted entity that overlaps no reference entity.
    """
    gold, pred = spans(references), spans(predictions)
    rows: list[dict[str, Any]] = []

    def text(s: int, e: int) -> str:
        return " ".join(tokens[s : e + 1])

    def overlaps(a: tuple[str, int, int], b: tuple[str, int, int]) -> bool:
        return a[1] <= b[2] and b[1] <= a[2]

    pred_set = set(pred)
    for g in gold:
        if g in pred_set:
            continue
        hits = [p for p in pred if overlaps(g, p)]
        if not hits:
            rows.append({"error": "missed", "gold_type": g[0], "pred_type": "", "gold_text": text(g[1], g[2]), "pred_text": ""})
            continue
        for p in hits:
            same_bounds = (p[1], p[2]) == (g[1], g[2])
            kind = "wrong_type" if same_bounds else ("boundary" if p[0] == g[0] else "wrong_type_and_boundary")
            rows.append({"error": kind, "gold_type": g[0], "pred_type": p[0],
                         "gold_text": text(g[1], g[2]), "pred_text": text(p[1], p[2])})
    for p in pred:
        if not any(overlaps(p, g) for g in gold):
            rows.append({"error": "spurious", "gold_type": "", "pred_type": p[0], "gold_text": "", "pred_text": text(p[1], p[2])})
    return rows


def plot_confusion(labels: Sequence[str], matrix: Sequence[Sequence[int]], path: Path, title: str) -> Path:
    """Row-normalised heat map with the raw counts written in the cells (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    counts = np.asarray(matrix, dtype=float)
    totals = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    size = max(4.0, 0.6 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("reference")
    ax.set_title(title)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if counts[i, j]:
                ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=7,
                        color="white" if share[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the reference row")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
