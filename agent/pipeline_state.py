"""Pure summaries of MLflow run dicts (agent.state): stage table, metric comparison, the
pipeline state that selects next steps."""

from __future__ import annotations

import re
from typing import Any

from core.tracking import schema as S

LOWER_IS_BETTER = ("wer", "cer", "loss", "error", "perplexity")
_METRIC_KEY = re.compile(r"^(baseline|final|delta|delta_prev)/([^/]+)/(.+)$")


def lower_is_better(metric: str) -> bool:
    return any(m in metric.lower() for m in LOWER_IS_BETTER)


def latest_per_stage(stage_runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One run per stage (retries leave several): the latest attempt, in stage order."""
    by_stage: dict[str, dict[str, Any]] = {}
    for run in stage_runs:
        name = run["tags"].get(S.TAG_STAGE) or run["run_name"]
        previous = by_stage.get(name)
        if previous is None or (run["start_time"] or 0) >= (previous["start_time"] or 0):
            by_stage[name] = run

    def order(run: dict[str, Any]) -> tuple[int, int]:
        idx = run["tags"].get(S.TAG_STAGE_INDEX)
        return (int(idx) if str(idx).isdigit() else 10_000, run["start_time"] or 0)

    return sorted(by_stage.values(), key=order)


def metric_table(metrics: dict[str, float]) -> list[dict[str, Any]]:
    """baseline/final/delta/delta_prev keys -> one row per (eval set, metric)."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for key, value in metrics.items():
        m = _METRIC_KEY.match(key)
        if not m:
            continue
        phase, eval_set, metric = m.groups()
        row = rows.setdefault((eval_set, metric), {"eval_set": eval_set, "metric": metric})
        row[phase] = value
    out = []
    for row in rows.values():
        if "delta" not in row and "baseline" in row and "final" in row:
            row["delta"] = row["final"] - row["baseline"]
        better = lower_is_better(row["metric"])
        delta = row.get("delta")
        row["improved"] = None if delta is None else (delta < 0 if better else delta > 0)
        prev = row.get("delta_prev")
        row["improved_vs_previous"] = None if prev is None else (prev < 0 if better else prev > 0)
        out.append(row)
    return sorted(out, key=lambda r: (r["eval_set"], r["metric"]))


def stage_summary(run: dict[str, Any]) -> dict[str, Any]:
    tags = run["tags"]
    return {
        "stage": tags.get(S.TAG_STAGE) or run["run_name"],
        "index": tags.get(S.TAG_STAGE_INDEX),
        "family": tags.get(S.TAG_FAMILY),
        "status": run["status"],
        "gate": tags.get(S.TAG_GATE),
        "attempt": tags.get(S.TAG_ATTEMPT),
        "base_model": tags.get(S.TAG_BASE_MODEL),
        "upstream_stage": tags.get(S.TAG_UPSTREAM_STAGE),
        "diagnosis_kind": tags.get(S.TAG_DIAGNOSIS_KIND),
        "backend": tags.get(S.TAG_BACKEND),
        "run_id": run["run_id"],
        "metrics": metric_table(run["metrics"]),
        "progress": _progress(run["metrics"]),
    }


def _progress(metrics: dict[str, float]) -> dict[str, float]:
    # Live curves the flow relays while a stage runs (train/loss, train/step, ...).
    return {k: v for k, v in metrics.items() if not _METRIC_KEY.match(k)}


def pipeline_state(stages: list[dict[str, Any]], parent_status: str | None, planned: int | None = None) -> str:
    """no_runs | running | failed | gate_rejected | candidate | partial | succeeded."""
    if parent_status is None and not stages:
        return "no_runs"
    statuses = [s["status"] for s in stages]
    if any(s == "running" for s in statuses) or (parent_status == "running" and not statuses):
        return "running"
    if any(s in ("failed", "cancelled", "killed") for s in statuses) or parent_status in ("failed", "cancelled"):
        return "failed"
    finished = [s for s in stages if s["status"] in ("succeeded", "skipped", "finished")]
    if finished and finished[-1].get("gate") == "rejected":
        return "gate_rejected"
    if planned is not None and len(finished) < planned:
        return "running" if parent_status == "running" else "partial"
    if parent_status == "running":
        return "running"
    if finished and finished[-1].get("gate") == "candidate":
        return "candidate"
    return "succeeded"


def find_stage(stages: list[dict[str, Any]], ref: str | int | None) -> dict[str, Any] | None:
    """A stage by name, by its 'exp N' / 'stage N' number (1-based), or None."""
    if ref is None or not stages:
        return None
    text = str(ref).strip().lower()
    norm = re.sub(r"[^a-z0-9]", "", text)
    for s in stages:
        if str(s["stage"]).lower() == text or re.sub(r"[^a-z0-9]", "", str(s["stage"]).lower()) == norm:
            return s
    number = re.search(r"(\d+)$", text)
    if number:
        n = int(number.group(1))
        for s in stages:  # a stage whose name ends with that number (exp2, exp_2, stage-2)
            m = re.search(r"(\d+)$", str(s["stage"]))
            if m and int(m.group(1)) == n:
                return s
        for s in stages:
            if str(s.get("index")) == str(n - 1):
                return s
        if 1 <= n <= len(stages):
            return stages[n - 1]
    return None
