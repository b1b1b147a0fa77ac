"""The pipeline's results where Prefect users look: artifacts on the flow run.

A table (each stage's baseline vs final on every eval set, with the gate decision and the
registered version) and a markdown page linking the MLflow runs and model versions. Both are
read back from MLflow, like `palier summary`, so the three views agree.
"""

from __future__ import annotations

import re

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from core.tracking import links
from core.tracking.summary import pipeline_summary


def artifact_key(pipeline: str, what: str) -> str:
    """Prefect keys allow lower-case letters, digits and dashes only."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", f"{pipeline}-{what}".lower())).strip("-")


def table_rows(summary: dict) -> list[dict]:
    rows = []
    for st in summary["stages"]:
        for r in st["rows"] or [{"set": "", "metric": "", "baseline": None, "final": None, "delta": None}]:
            rows.append({"stage": st["stage"], "eval set": r["set"], "metric": r["metric"],
                         "baseline": _num(r["baseline"]), "final": _num(r["final"]), "delta": _num(r["delta"], True),
                         "gate": st["gate"] or "", "model version": _version(st),
                         "status": st["status"] or ""})
    return rows


def _num(v, signed: bool = False) -> str:
    if v is None:
        return ""
    return f"{v:+.4f}" if signed else f"{v:.4f}"


def _version(stage: dict) -> str:
    if not stage.get("model_version"):
        return ""
    return f"{stage.get('model_name') or ''} v{stage['model_version']}".strip()


def links_markdown(summary: dict, mlflow_url: str | None) -> str:
    exp_id, parent = summary["experiment_id"], summary["parent_run_id"]

    def link(text: str, url: str | None) -> str:
        return f"[{text}]({url})" if url else f"`{text}`"

    def at(make, *args) -> str | None:
        return make(mlflow_url, *args) if mlflow_url else None

    lines = [f"# {summary['experiment']}", "",
             f"- Experiment: {link(summary['experiment'], at(links.experiment_url, exp_id))}",
             f"- Pipeline run: {link(parent, at(links.run_url, exp_id, parent))}",
             "", "| stage | MLflow run | gate | registered model |", "|---|---|---|---|"]
    for st in summary["stages"]:
        run = link(st["run_id"], at(links.run_url, exp_id, st["run_id"]))
        model = "—"
        if st.get("model_version") and st.get("model_name"):
            model = link(_version(st), at(links.model_version_url, st["model_name"], st["model_version"]))
        note = f" (skipped: same as run {st['reused_from']})" if st.get("reused_from") else ""
        lines.append(f"| {st['stage']}{note} | {run} | {st['gate'] or '—'} | {model} |")
    return "\n".join(lines) + "\n"


def publish_artifacts(pipeline: str, experiment: str, parent_run_id: str, tracking_uri: str) -> dict:
    """Called from the flow itself (not a task), so the artifacts belong to the flow run."""
    summary = pipeline_summary(experiment, parent_run_id, tracking_uri)
    table_id = create_table_artifact(
        table=table_rows(summary), key=artifact_key(pipeline, "results"),
        description=f"{pipeline}: baseline vs final per stage and eval set, gate decision, registered version")
    markdown_id = create_markdown_artifact(
        markdown=links_markdown(summary, links.ui_url(tracking_uri)), key=artifact_key(pipeline, "mlflow"),
        description=f"{pipeline}: MLflow runs and registered model versions")
    return {"table": str(table_id), "markdown": str(markdown_id)}
