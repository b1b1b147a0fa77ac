"""Orchestration overhead: one stage through the exp-pipeline flow (Prefect tasks, MLflow runs
and metric relay, heartbeats, registration) vs the stage runner called directly on the same
stage, both as fresh processes, against Prefect and MLflow servers started for the bench."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.timing import interleave
from bench.workload import ROOT, BenchModel, pipeline_file, stage_spec

FLOW_TARGET = 1.05
FLOW_STAGE = {"max_steps": 4, "per_device_train_batch_size": 4, "logging_steps": 1}
SERVER_START_TIMEOUT_S = 180


def not_measured(reason: str) -> dict[str, Any]:
    return {"name": "orchestration: stage through the flow vs runner directly",
            "target": f"<= {FLOW_TARGET:g}x", "ratio": None, "notes": f"not measured yet: {reason}"}


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except Exception:
        return False


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _servers(home: Path):
    """A private Prefect server and MLflow server (SQLite), stopped on exit."""
    home.mkdir(parents=True, exist_ok=True)
    prefect_port, mlflow_port = _free_port(), _free_port()
    py = sys.executable
    env = {**os.environ, "PREFECT_HOME": str(home / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    commands = {
        "prefect": ([py, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(prefect_port)],
                    f"http://127.0.0.1:{prefect_port}/api/health"),
        "mlflow": ([py, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1",
                    "--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}",
                    "--artifacts-destination", str(home / "artifacts")],
                   f"http://127.0.0.1:{mlflow_port}/health"),
    }
    procs = []
    try:
        for name, (cmd, health) in commands.items():
            log = (home / f"{name}.log").open("ab")
            procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True))
            deadline = time.time() + SERVER_START_TIMEOUT_S
            while not _healthy(health):
                if time.time() > deadline or procs[-1].poll() is not None:
                    raise RuntimeError(f"{name} server did not start; see {home / f'{name}.log'}")
                time.sleep(0.5)
        yield {"PREFECT_API_URL": f"http://127.0.0.1:{prefect_port}/api",
               "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{mlflow_port}",
               "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)


def _run(cmd: list[str], env: dict[str, str], log: Path) -> None:
    with log.open("w") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, **env}, cwd=ROOT,
                              timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed ({proc.returncode}); see {log}")


def run_direct(work: Path, model: BenchModel, train_manifest: Path, eval_manifest: Path, home: Path, name: str,
               env: dict[str, str]) -> None:
    """The bench stage through the stage runner alone (no flow, no MLflow): the reference side."""
    spec = stage_spec(work, model, train_manifest, eval_manifest, name, **FLOW_STAGE)
    out = home / "direct" / name
    out.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "core.stage", "--spec", str(spec.write(out / "spec.json")), "--out", str(out),
          "--cache-dir", str(home / "cache")], env, out.parent / f"{name}.log")


def flow_overhead(work: Path, model: BenchModel, train_manifest: Path, eval_manifest: Path,
                  rounds: int) -> dict[str, Any]:
    try:
        import flows.exp_pipeline  # noqa: F401
    except ImportError as exc:
        return not_measured(f"flows.exp_pipeline is not importable ({exc})")
    home = work / "flow-home"
    env_base = {"PALIER_HOME": str(home), "PALIER_CACHE_DIR": str(home / "cache")}
    counter = {"direct": 0, "flow": 0}

    def direct(env: dict[str, str]) -> None:
        counter["direct"] += 1
        run_direct(work, model, train_manifest, eval_manifest, home, f"bench-direct-{counter['direct']}", env)

    def through_flow(env: dict[str, str]) -> None:
        counter["flow"] += 1
        name = f"bench-flow-{counter['flow']}"
        path = pipeline_file(work, model, train_manifest, eval_manifest, name, **FLOW_STAGE)
        call = f"from flows.exp_pipeline import exp_pipeline; exp_pipeline({str(path)!r})"
        _run([sys.executable, "-c", call], env, work / f"{name}.log")

    try:
        with _servers(home) as server_env:
            env = {**server_env, **env_base}
            direct(env)  # warm the feature cache and the page cache for both sides
            timed = interleave({"direct": lambda: direct(env), "flow": lambda: through_flow(env)}, rounds)
    except Exception as exc:
        return not_measured(f"{type(exc).__name__}: {exc}")
    summary = timed.summary("flow", "direct")
    return {
        "name": "orchestration: stage through the flow vs runner directly",
        "target": f"<= {FLOW_TARGET:g}x",
        **summary,
        "fixed_overhead_s": round(summary["reference_median_s"] - summary["candidate_median_s"], 1),
        "notes": (f"one {FLOW_STAGE['max_steps']}-step stage (baseline + train + final eval); both sides start a "
                  "fresh process; flow = exp_pipeline against private Prefect + MLflow servers; "
                  "ratio = flow seconds / direct seconds (lower is better); the overhead is a fixed cost per "
                  "stage, so the ratio falls as stages get longer"),
    }
