"""Numbers, metric rows and states as the chat writes them (pure): a metric gets a
better/worse verdict only when it is a quality metric (error rates, scores); timings and
counts are shown as what they are."""

from __future__ import annotations

import os
from typing import Any

from agent.chat.words import W


def num(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 10 else f"{v:.2f}"
    return str(v)


def signed(v: Any) -> str:
    if not isinstance(v, (int, float)):
        return "—"
    return f"{v:+.4f}" if abs(v) < 10 else f"{v:+.2f}"


def verdict(row: dict[str, Any], lang: str, key: str = "improved") -> str:
    w = W[lang]
    if not row.get("quality"):
        return w.get(row.get("kind", "other"), w["other"])
    flag = row.get(key)
    return w["same"] if flag is None else (w["better"] if flag else w["worse"])


def metric_text(row: dict[str, Any], lang: str) -> str:
    """``wer 0.6200 → 0.3100 (-0.3100, better)``; a timing: ``eval_seconds 0.68 → 8.37 (a timing...)``."""
    if row.get("baseline") is None or row.get("final") is None:
        value = row.get("final", row.get("baseline"))
        return f"{row['metric']} {num(value)}"
    delta = f"{signed(row.get('delta'))}, " if row.get("quality") else ""
    return f"{row['metric']} {num(row['baseline'])} → {num(row['final'])} ({delta}{verdict(row, lang)})"


def set_label(role: str | None, lang: str) -> str:
    """primary/guard/report in words; no role recorded: no label (never guess "primary")."""
    return W[lang].get(role, role) if role else W[lang]["set"]


def stage_metrics(stage: dict[str, Any], lang: str, rows: list[dict[str, Any]] | None = None) -> list[str]:
    """Per eval set (primary first), quality metrics; then the measurements that are not qualities."""
    w = W[lang]
    rows = stage.get("metrics", []) if rows is None else rows
    lines, measures = [], []
    sets: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        (sets.setdefault(r["eval_set"], []) if r["quality"] else measures).append(r)
    for eval_set, set_rows in sets.items():
        role = stage.get("roles", {}).get(eval_set) or ("primary" if eval_set == stage.get("primary_eval") else None)
        text = " ; ".join(metric_text(r, lang) for r in set_rows) if lang == "fr" else \
            "; ".join(metric_text(r, lang) for r in set_rows)
        tolerance = stage.get("max_regression", {}).get(eval_set)
        if tolerance is not None and role == "guard":
            text += f" [{w['tolerance'].format(value=tolerance)}]"
        lines.append("- " + w["set_line"].format(label=set_label(role, lang).capitalize(), eval_set=eval_set, metrics=text))
    if measures:
        lines.append("- " + w["measures"].format(metrics="; ".join(f"{r['eval_set']}/{metric_text(r, lang)}"
                                                               for r in measures)))
    return lines


def primary_summary(stage: dict[str, Any], lang: str) -> str:
    rows = [r for r in stage.get("metrics", []) if r["quality"] and r["eval_set"] == stage.get("primary_eval")]
    rows = rows or [r for r in stage.get("metrics", []) if r["quality"]]
    if not rows:
        return ""
    r = rows[0]
    return f"{r['eval_set']} {metric_text(r, lang)}"


def state_name(state: str | None, lang: str) -> str:
    return W[lang]["states"].get(state or "", state or "—")


def stage_status(s: dict[str, Any], lang: str) -> str:
    if s.get("process") == "dead":
        return W[lang]["process_dead"].format(pid=str(s.get("job_id", ""))[4:])
    return s["status"]


def row_text(row: dict[str, Any] | None, lang: str) -> str:
    return f"{row['eval_set']} {metric_text(row, lang)}" if row else "—"


def shown_path(path: str) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel
