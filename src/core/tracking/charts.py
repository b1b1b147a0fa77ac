"""Pictures for the MLflow UI: baseline vs final per stage, and training curves."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

CHART_METRICS = ("wer", "cer", "medical_term_accuracy", "f1_weighted", "token_f1", "exact_match")


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def baseline_vs_final(rows: list[dict[str, Any]]):
    """``rows``: {"stage", "set", "role", "metric", "baseline", "final"}. One panel per metric,
    grouped bars per (stage, eval set)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in CHART_METRICS if any(r["metric"] == m for r in rows)]
    if not metrics:
        return None
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4.2), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        sel = [r for r in rows if r["metric"] == metric]
        labels = [f"{r['stage']}\n{r['set']}{' (guard)' if r['role'] == 'guard' else ''}" for r in sel]
        xs = range(len(sel))
        ax.bar([x - 0.2 for x in xs], [r["baseline"] for r in sel], width=0.4, label="baseline", color="#b0b7c3")
        ax.bar([x + 0.2 for x in xs], [r["final"] for r in sel], width=0.4, label="final", color="#2f6fdb")
        for x, r in zip(xs, sel):
            ax.annotate(f"{r['final']:.2f}", (x + 0.2, r["final"]), ha="center", va="bottom", fontsize=8)
        ax.set_xticks(list(xs), labels, fontsize=8)
        better = "lower is better" if metric in ("wer", "cer") else "higher is better"
        ax.set_title(f"{metric} ({better})")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def training_curves(events: list[dict[str, Any]]):
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for e in events:
        if e.get("type") != "metric":
            continue
        for k, v in e.get("metrics", {}).items():
            if k in ("loss", "eval_loss", "eval_wer", "learning_rate", "eval_f1_weighted", "mean_token_accuracy"):
                series[k].append((int(e.get("step", 0)), float(v)))
    if not series:
        return None
    fig, ax = _figure(7, 4)
    for name, points in sorted(series.items()):
        if name == "learning_rate":
            continue
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=2, label=name)
    ax.set_xlabel("step")
    ax.legend()
    ax.set_title("training curves")
    fig.tight_layout()
    return fig
