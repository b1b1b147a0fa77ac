"""Names palier uses in MLflow: tags, metric keys, artifact paths. One place, so the flow
that writes and the agent/CLI that read agree."""

from __future__ import annotations

TAG_KIND = "palier.kind"  # "pipeline" (parent run) | "stage" (child run)
TAG_PIPELINE = "palier.pipeline"
TAG_PIPELINE_FILE = "palier.pipeline_file"
TAG_FLOW_RUN_ID = "palier.prefect_flow_run_id"
TAG_STAGE = "palier.stage"
TAG_STAGE_INDEX = "palier.stage_index"
TAG_STAGE_KEY = "palier.stage_key"
TAG_FAMILY = "palier.family"
TAG_BASE_MODEL = "palier.base_model"
TAG_UPSTREAM_STAGE = "palier.upstream_stage"
TAG_UPSTREAM_RUN = "palier.upstream_run_id"
TAG_STATUS = "palier.status"  # running | succeeded | failed | skipped | cancelled
TAG_GATE = "palier.gate"  # champion | candidate | rejected
TAG_BACKEND = "palier.backend"
TAG_JOB_ID = "palier.job_id"  # backend job handle id, for reattach
TAG_JOB_HANDLE = "palier.job_handle"  # the whole JobHandle (JSON): what poll/fetch need to reattach
TAG_JOB_PHASE = "palier.job_phase"  # queued | starting | running | finished
TAG_PENDING_S = "palier.pending_s"  # seconds from submit to the stage runner's first event
TAG_REATTACHED = "palier.reattached_to"  # job id this run resumed watching instead of submitting
TAG_TRANSIENT_ERRORS = "palier.transient_errors"  # service errors retried while watching
TAG_ATTEMPT = "palier.attempt"
TAG_DIAGNOSIS_KIND = "palier.diagnosis.kind"
TAG_REUSED_FROM = "palier.reused_from_run"  # stage skipped: finished run with the same key
# Who runs a run (core.liveness): a later process closes it only when that owner is known dead.
TAG_OWNER_HOST = "palier.owner.host"
TAG_OWNER_BOOT = "palier.owner.boot_id"
TAG_OWNER_PID = "palier.owner.pid"
TAG_OWNER_STARTED = "palier.owner.started"
TAG_HEARTBEAT = "palier.heartbeat"  # epoch seconds, refreshed by the owner while it lives
TAG_KILLED_REASON = "palier.killed.reason"  # set when a dead owner's run is closed as KILLED
TAG_KILLED_AT = "palier.killed.at"  # ISO 8601, UTC
TAG_STOPPED_BY = "palier.stopped_by"  # SIGTERM | SIGINT: the run was stopped on purpose
# MLflow's UI shows an experiment with this tag in its model-training view, not the GenAI one.
TAG_EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_KIND_TRAINING = "custom_model_development"

ALIAS_CHAMPION = "champion"
ALIAS_CANDIDATE = "candidate"

ARTIFACT_CONFIG = "config/stage.json"
ARTIFACT_PREFLIGHT = "preflight/report.json"
ARTIFACT_DIAGNOSIS = "diagnosis/diagnosis.json"
ARTIFACT_REMEDY = "diagnosis/remedy.json"
ARTIFACT_SUMMARY_CHART = "charts/baseline_vs_final.png"
ARTIFACT_CURVES_CHART = "charts/training_curves.png"


def baseline_key(eval_set: str, metric: str) -> str:
    return f"baseline/{eval_set}/{metric}"


def final_key(eval_set: str, metric: str) -> str:
    return f"final/{eval_set}/{metric}"


def delta_key(eval_set: str, metric: str) -> str:
    """final - baseline (negative is better for error rates)."""
    return f"delta/{eval_set}/{metric}"


def delta_prev_key(eval_set: str, metric: str) -> str:
    """this stage's final - previous stage's final, on the same eval set."""
    return f"delta_prev/{eval_set}/{metric}"


def predictions_table(phase: str, eval_set: str) -> str:
    return f"predictions/{phase}_{eval_set}.json"
