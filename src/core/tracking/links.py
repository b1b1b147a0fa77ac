"""Addresses of palier's things in the MLflow UI.

MLflow 3.17's UI chooses between its GenAI and its model-training views per browser (the
``workflowType`` query parameter, else a saved choice, else GenAI), not from the experiment's
``mlflow.experimentKind`` tag (which palier sets too). Every link palier prints carries the
training view, so a fresh browser opens the runs table, not the traces overview.
"""

from __future__ import annotations

from urllib.parse import quote

TRAINING_VIEW = "workflowType=machine_learning"


def _base(mlflow_url: str) -> str:
    return mlflow_url.rstrip("/")


def experiments_url(mlflow_url: str) -> str:
    return f"{_base(mlflow_url)}/#/experiments?{TRAINING_VIEW}"


def experiment_url(mlflow_url: str, experiment_id: str) -> str:
    return f"{_base(mlflow_url)}/#/experiments/{experiment_id}/runs?{TRAINING_VIEW}"


def run_url(mlflow_url: str, experiment_id: str, run_id: str) -> str:
    return f"{_base(mlflow_url)}/#/experiments/{experiment_id}/runs/{run_id}?{TRAINING_VIEW}"


def model_version_url(mlflow_url: str, name: str, version: str) -> str:
    return f"{_base(mlflow_url)}/#/models/{quote(name, safe='')}/versions/{version}?{TRAINING_VIEW}"


def ui_url(tracking_uri: str) -> str | None:
    """The UI address of a tracking server, or None for a local store (no UI to link to)."""
    return tracking_uri if tracking_uri.startswith(("http://", "https://")) else None
