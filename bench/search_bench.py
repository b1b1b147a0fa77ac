"""A stage that searches (4 trials, one after another) against the same stage run once, both
through the exp-pipeline flow, and the stage runner called directly as the reference: the
orchestration time each trial adds (Optuna study, nested MLflow run, Prefect task run, winner
promotion) set against what one plain stage adds."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

import yaml

from bench.flow_bench import FLOW_STAGE, _run, _servers, run_direct
from bench.timing import interleave
from bench.workload import BenchModel, pipeline_file

TRIALS = 4
NAME = "search: orchestration per trial vs per stage"
TARGET = 1.5  # a trial may cost at most 1.5x a plain stage's orchestration (it adds a study and a nested run)


def _searching(path: Path) -> Path:
    plan = yaml.safe_load(path.read_text(encoding="utf-8"))
    plan["stages"][0]["search"] = {"parameters": {"training.learning_rate": {"choices": [1.0e-5, 1.0e-4, 3.0e-4, 1.0e-3]}},
                                   "sampler": "grid", "trials": TRIALS, "parallel": 1}
    path.write_text(yaml.safe_dump(plan, sort_keys=False), encoding="utf-8")
    return path


def search_overhead(work: Path, model: BenchModel, train_manifest: Path, eval_manifest: Path,
                    rounds: int) -> dict[str, Any]:
    home = work / "search-home"
    env_base = {"PALIER_HOME": str(home), "PALIER_CACHE_DIR": str(home / "cache")}
    counter = {"direct": 0, "stage": 0, "search": 0}

    def direct(env: dict[str, str]) -> None:
        counter["direct"] += 1
        run_direct(work, model, train_manifest, eval_manifest, home, f"bench-direct-{counter['direct']}", env)

    def through_flow(env: dict[str, str], kind: str) -> None:
        counter[kind] += 1
        name = f"bench-{kind}-{counter[kind]}"  # a new pipeline each time: nothing reused
        path = pipeline_file(work, model, train_manifest, eval_manifest, name, **FLOW_STAGE)
        if kind == "search":
            _searching(path)
        call = f"from flows.exp_pipeline import exp_pipeline; exp_pipeline({str(path)!r})"
        _run([sys.executable, "-c", call], env, work / f"{name}.log")

    try:
        with _servers(home) as server_env:
            env = {**server_env, **env_base}
            direct(env)  # warm the feature cache and the page cache
            timed = interleave({"direct": lambda: direct(env), "stage": lambda: through_flow(env, "stage"),
                                "search": lambda: through_flow(env, "search")}, rounds)
    except Exception as exc:
        return {"name": NAME, "target": f"<= {TARGET:g}x", "ratio": None,
                "notes": f"not measured: {type(exc).__name__}: {exc}"}
    median = {k: statistics.median(v) for k, v in timed.seconds.items()}
    per_stage = median["stage"] - median["direct"]
    per_trial = (median["search"] - TRIALS * median["direct"]) / TRIALS
    return {
        "name": NAME, "target": f"<= {TARGET:g}x", "rounds": rounds,
        "ratio": round(per_trial / per_stage, 2) if per_stage > 0 else None,
        "reference_median_s": round(median["stage"], 1), "candidate_median_s": round(median["search"], 1),
        "direct_median_s": round(median["direct"], 1),
        "orchestration_per_stage_s": round(per_stage, 1), "orchestration_per_trial_s": round(per_trial, 1),
        "notes": (f"one {FLOW_STAGE['max_steps']}-step stage; search = the same stage with {TRIALS} grid trials "
                  "one after another; orchestration = flow seconds minus the runner's own (direct) seconds, per "
                  "stage and per trial (a trial's share includes a quarter of the flow run's fixed start-up); ratio = per "
                  "trial / per stage (lower is better)"),
    }
