"""Pure summaries of MLflow run dicts (agent.base.state): stage table, metric comparison, the
pipeline state that selects next steps."""

from __future__ import annotations

import re
from typing import Any

from core.tracking import schema as S

LOWER_IS_BETTER = ("wer", "cer", "loss", "error", "perplexity")
HIGHER_IS_BETTER = ("accuracy", "f1", "precision", "recall", "exact_match", "bleu", "rouge", "auc", "score")
# Measured but not a quality: how long, how many. Never "better" or "worse".
_TIMING = re.compile(r"(seconds|_s$|runtime|duration|per_second|latency|_time$|^time)")
_COUNT = re.compile(r"(occurrences|^support|count|^n_|samples$|^num_|tokens$|steps$|_total$)")
_METRIC_KEY = re.compile(r"^(baseline|final|delta|delta_prev)/([^/]+)/(.+)$")


def lower_is_better(metric: str) -> bool:
    return any(m in metric.lower() for m in LOWER_IS_BETTER)


def metric_kind(metric: str) -> str:
    """error (lower is better) | score (higher is better) | timing | count | other (no direction)."""
    m = metric.lower()
    if _TIMING.search(m):
        return "timing"
    if _COUNT.search(m):
        return "count"
    if lower_is_better(m):
        return "error"
    if any(h in m for h in HIGHER_IS_BETTER):
        return "score"
    return "other"


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
        kind = metric_kind(row["metric"])
        row["kind"] = kind
        row["quality"] = kind in ("error", "score")
        delta, prev = row.get("delta"), row.get("delta_prev")
        row["improved"] = improvement(delta, kind)
        row["improved_vs_previous"] = improvement(prev, kind)
        out.append(row)
    return sorted(out, key=lambda r: (r["eval_set"], r["metric"]))


def improvement(delta: float | None, kind: str) -> bool | None:
    if delta is None or kind not in ("error", "score") or delta == 0:
        return None
    return delta < 0 if kind == "error" else delta > 0


_ROLE_ORDER = {"primary": 0, "guard": 1, "report": 2}


def order_metrics(rows: list[dict[str, Any]], roles: dict[str, str], gate_metric: str | None) -> list[dict[str, Any]]:
    """The primary set first, then guards, then reports; quality metrics before timings and
    counts; the gate's metric first within a set."""
    def key(r: dict[str, Any]) -> tuple:
        return (_ROLE_ORDER.get(roles.get(r["eval_set"], ""), 3), r["eval_set"], not r["quality"],
                r["metric"] != gate_metric, r["metric"])

    return sorted(rows, key=key)


def eval_roles(params: dict[str, str]) -> dict[str, str]:
    """``evals.<name>.role`` params (how the flow logs a stage's config) -> {name: role}."""
    out = {}
    for key, value in params.items():
        m = re.match(r"^evals\.(.+)\.role$", key)
        if m:
            out[m.group(1)] = value
    return out


def stage_summary(run: dict[str, Any]) -> dict[str, Any]:
    tags = run["tags"]
    params = run.get("params") or {}
    roles = eval_roles(params)
    gate_metric = params.get("gate.metric")
    metrics = order_metrics(metric_table(run["metrics"]), roles, gate_metric)
    primary = next((name for name, role in roles.items() if role == "primary"), None)
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
        "job_id": tags.get(S.TAG_JOB_ID),
        "output_name": params.get("output_name"),
        "description": params.get("description"),
        "roles": roles,
        "primary_eval": primary,
        "gate_metric": gate_metric,
        "max_regression": {name: params.get(f"evals.{name}.max_regression") for name in roles
                           if params.get(f"evals.{name}.max_regression") not in (None, "None")},
        "metrics": metrics,
        "progress": _progress(run["metrics"]),
        "start_time": run.get("start_time"),
        "end_time": run.get("end_time"),
        "key": tags.get(S.TAG_STAGE_KEY),
        "killed_reason": tags.get(S.TAG_KILLED_REASON),
        "timings": {k.removeprefix("timing_s/"): v for k, v in run["metrics"].items() if k.startswith("timing_s/")},
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


# --- which stage a question means -------------------------------------------------------

# A few words users write in one language for names written in the other.
_SYNONYMS = {"dictee": "dictation", "dicte": "dictation", "anglais": "english", "francais": "french",
             "parole": "speech", "medecin": "medical", "catalog": "catalogue", "etendu": "extended",
             "etendue": "extended", "generale": "general", "generaliste": "general"}
_IGNORED = {"model", "modele", "modeles", "models", "pipeline", "stage", "etape", "whisper", "baseline", "test",
            "final", "train", "training", "entrainement", "demo", "meilleur", "better", "worse", "pire", "compare",
            "comparer", "status", "statut", "where", "quel", "quelle", "what", "which", "dernier", "derniere",
            "latest", "last", "avec", "with", "from", "pour", "dans", "than", "that", "this", "mieux", "plus", "moins",
            "est", "sont", "does", "have", "avoir", "etre", "eval", "evaluation", "jeu", "set", "run", "exp"}


def _stem(word: str) -> str:
    word = _SYNONYMS.get(word, word)
    return word[:5] if len(word) >= 5 else word


def _words(text: str | None) -> set[str]:
    import unicodedata

    folded = unicodedata.normalize("NFKD", str(text or "")).encode("ascii", "ignore").decode("ascii").lower()
    return {_stem(w) for w in re.findall(r"[a-z]+", folded) if len(w) >= 4 and w not in _IGNORED}


def domain_score(stage: dict[str, Any], question: str) -> int:
    """How well a question's content words match a stage: its name and output model (3 each),
    its primary eval set (2), its description (1). "modèle médical" -> the medical stage."""
    asked = _words(question)
    if not asked:
        return 0
    score = 3 * len(asked & _words(stage.get("stage")))
    score += 3 * len(asked & _words(stage.get("output_name")))
    score += 2 * len(asked & _words(stage.get("primary_eval")))
    if score:  # the description only separates stages a named field already matched
        score += len(asked & _words(stage.get("description")))
    return score


def stage_by_domain(stages: list[dict[str, Any]], question: str) -> dict[str, Any] | None:
    scored = [(domain_score(s, question), i, s) for i, s in enumerate(stages)]
    scored = [x for x in scored if x[0] > 0]
    if not scored:
        return None
    best = max(x[0] for x in scored)
    top = [x for x in scored if x[0] == best]
    return top[-1][2] if len(top) == 1 else None  # a tie is no answer


def resolve_stage(stages: list[dict[str, Any]], ref: str | None) -> dict[str, Any] | None:
    """A stage by name, number ('exp 2', 'stage 2'), output model name, or domain word ('medical')."""
    if not ref:
        return None
    found = find_stage(stages, ref)
    if found:
        return found
    text = str(ref).strip().lower()
    for s in stages:
        if s.get("output_name") and str(s["output_name"]).lower() == text:
            return s
    return stage_by_domain(stages, text)
