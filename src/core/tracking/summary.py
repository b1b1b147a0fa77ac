"""A pipeline run read back from MLflow: per stage, the baseline vs final rows, gate and version.

Shared by `palier summary` and the flow's Prefect artifacts, so both show the same numbers."""

from __future__ import annotations

from core.tracking import schema as S
from core.tracking.mlflow_store import client

HEADLINE = ("wer", "cer", "medical_term_accuracy", "f1_weighted", "f1_macro", "f1_micro", "exact_match", "token_f1")


def latest_pipeline_summary(experiment: str, tracking_uri: str | None = None) -> dict:
    c = client(tracking_uri)
    exp = c.get_experiment_by_name(experiment)
    if exp is None:
        raise LookupError(f"no MLflow experiment {experiment!r}: has the pipeline run yet?")
    parents = c.search_runs([exp.experiment_id], filter_string=f"tags.`{S.TAG_KIND}` = 'pipeline'",
                            order_by=["attributes.start_time DESC"], max_results=1)
    if not parents:
        raise LookupError(f"experiment {experiment!r} has no pipeline run")
    return pipeline_run_summary(c, exp, parents[0])


def pipeline_summary(experiment: str, parent_run_id: str, tracking_uri: str | None = None) -> dict:
    """The summary of one pipeline run, by its experiment name and parent run id."""
    c = client(tracking_uri)
    return pipeline_run_summary(c, c.get_experiment_by_name(experiment), c.get_run(parent_run_id))


def pipeline_run_summary(c, exp, parent) -> dict:
    """``exp``/``parent``: the MLflow experiment and the pipeline's parent run."""
    experiment = exp.name
    children = c.search_runs([exp.experiment_id],
                             filter_string=f"tags.`{S.TAG_PARENT_RUN}` = '{parent.info.run_id}'",
                             order_by=["attributes.start_time ASC"])
    stages = []
    for run in sorted(children, key=lambda r: int(r.data.tags.get(S.TAG_STAGE_INDEX, 0))):
        m, t = run.data.metrics, run.data.tags
        rows = []
        for key, final in sorted(m.items()):
            parts = key.split("/")
            if len(parts) != 3 or parts[0] != "final" or parts[2] not in HEADLINE:
                continue
            _, eval_set, metric = parts
            rows.append({"set": eval_set, "metric": metric, "baseline": m.get(S.baseline_key(eval_set, metric)),
                         "final": final, "delta": m.get(S.delta_key(eval_set, metric))})
        stages.append({"stage": t.get(S.TAG_STAGE), "run_id": run.info.run_id, "status": t.get(S.TAG_STATUS),
                       "gate": t.get(S.TAG_GATE), "model_name": run.data.params.get("output_name"),
                       "model_version": t.get(S.TAG_MODEL_VERSION),
                       "base_model": t.get(S.TAG_BASE_MODEL), "reused_from": t.get(S.TAG_REUSED_FROM), "rows": rows})
    return {"experiment": experiment, "experiment_id": exp.experiment_id, "parent_run_id": parent.info.run_id,
            "status": parent.data.tags.get(S.TAG_STATUS), "stages": stages}
