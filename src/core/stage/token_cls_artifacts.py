"""What a token-classification evaluation leaves beside its metrics: one row per sentence
(reference and predicted entities), and per eval set and phase a confusion-matrix picture, a
CSV of misclassified spans and a JSON report. Torch-free: tags in, files out."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

from core.metrics.token_cls import confusion, entity_type, plot_confusion, span_errors, spans
from core.stage.token_cls_data import EncodedSet

ERROR_COLUMNS = ["id", "error", "gold_type", "pred_type", "gold_text", "pred_text", "sentence"]


def entities_text(tokens: list[str], tags: list[str]) -> str:
    """``TYPE: words | TYPE: words`` for the entities a tag sequence marks."""
    return " | ".join(f"{t}: {' '.join(tokens[s : e + 1])}" for t, s, e in spans(tags))


def prediction_rows(encoded: EncodedSet, predictions: list[list[str]]) -> tuple[list[dict], list[dict]]:
    """(one row per sentence, one row per span error)."""
    rows, errors = [], []
    for item, pred in zip(encoded.items, predictions):
        ex = item.example
        problems = span_errors(ex.tokens, ex.tags, pred)
        sentence = ex.text or " ".join(ex.tokens)
        rows.append({"id": ex.id, "language": ex.language or "", "text": sentence,
                     "reference": entities_text(ex.tokens, ex.tags), "prediction": entities_text(ex.tokens, pred),
                     "errors": len(problems)})
        errors.extend({"id": ex.id, **p, "sentence": sentence} for p in problems)
    return rows, errors


def write_eval_artifacts(folder: Path, title: str, tag: str, model_labels: list[str], references, predictions,
                         errors: list[dict], metrics: dict[str, float], error_rows: int) -> None:
    """``confusion_<tag>.png``, ``errors_<tag>.csv`` (the first ``error_rows`` errors) and
    ``report_<tag>.json`` in ``folder``; ``tag`` is ``<phase>_<eval set>``."""
    folder.mkdir(parents=True, exist_ok=True)
    types = sorted({entity_type(x) for x in model_labels} - {"O"})
    labels, matrix = confusion(references, predictions, types)
    plot_confusion(labels, matrix, folder / f"confusion_{tag}.png", f"{title} (F1 weighted {metrics['f1_weighted']:.2f})")
    with (folder / f"errors_{tag}.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=ERROR_COLUMNS)
        writer.writeheader()
        writer.writerows(errors[:error_rows])
    summary = {"labels": labels, "confusion": matrix, "metrics": metrics,
               "errors_by_kind": dict(Counter(e["error"] for e in errors)), "errors_total": len(errors),
               "errors_listed": min(error_rows, len(errors))}
    (folder / f"report_{tag}.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
