"""Where palier keeps its state: ``$PALIER_HOME`` (default ``./.state``).

.state/
  prefect/         Prefect server home (SQLite prefect.db)
  mlflow/          MLflow SQLite store (mlflow.db) and artifacts
  runs/<pipeline>/<stage>-<key>/   stage outputs (checkpoints, model, events, metrics)
  cache/           preprocessed data and generated datasets, shared by stages and reruns
  logs/ pids/      services started by `palier up`
  env              shell exports for the running services (`source .state/env`)
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    return Path(os.environ.get("PALIER_HOME", ".state")).resolve()


def stage_dir(pipeline: str, stage: str, key: str) -> Path:
    return home() / "runs" / pipeline / f"{stage}-{key}"


def cache_dir() -> Path:
    return home() / "cache"
