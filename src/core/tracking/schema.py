"""Names palier uses in MLflow: tags, metric keys, artifact paths. One place, so the flow
that writes and the agent/CLI that read agree."""

from __future__ import annotations

TAG_PREFIX = "palier."  # every tag palier writes starts with it (readers filter on it)
TAG_PARENT_RUN = "mlflow.parentRunId"  # MLflow's own: nests a stage run under its pipeline run
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
TAG_MODEL_VERSION = "palier.model_version"  # the registered model version of a stage run's output
TAG_SOURCE_RUN = "palier.source_run_id"  # on a model version: the stage run that trained it
TAG_LOGGED_MODEL = "palier.logged_model_id"  # on a stage run: its output's MLflow LoggedModel
TAG_UPSTREAM_MODEL_VERSION = "palier.upstream_model_version"  # on a model version: the version it started from
TAG_PREFLIGHT = "palier.preflight"  # "blocked": the preflight stopped the pipeline before any stage
TAG_BACKEND = "palier.backend"
TAG_JOB_ID = "palier.job_id"  # backend job handle id, for reattach
TAG_JOB_HANDLE = "palier.job_handle"  # the whole JobHandle (JSON): what poll/fetch need to reattach
TAG_JOB_PHASE = "palier.job_phase"  # queued | starting | running | finished
TAG_PENDING_S = "palier.pending_s"  # seconds from submit to the stage runner's first event
TAG_REATTACHED = "palier.reattached_to"  # job id this run resumed watching instead of submitting
TAG_TRANSIENT_ERRORS = "palier.transient_errors"  # service errors retried while watching
TAG_ATTEMPT = "palier.attempt"
TAG_DIAGNOSIS_KIND = "palier.diagnosis.kind"
TAG_DIAGNOSIS_FAILURE = "palier.diagnosis.failure_id"  # the playbook's failure id ("" when unknown)
TAG_REMEDY = "palier.remedy"  # the safe remedy applied before the retry
TAG_CHECKPOINT_SET_ASIDE = "palier.checkpoint.set_aside"  # torn checkpoints a resume renamed aside (and why)
TAG_BASELINE_FROM = "palier.baseline_from."  # + eval set: the upstream stage whose final evaluation is the baseline
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
# Written by core.tracking.outage / spool: the tracking server's outages a run lived through.
TAG_TRACKING_OUTAGES = "palier.tracking.outages"
TAG_REPLAYED_METRICS = "palier.tracking.replayed_metrics"  # step metrics sent late from the disk spool
# A stage that searches (tasks.search): each trial is a run nested under the stage run.
KIND_TRIAL = "trial"  # TAG_KIND of a trial run ("pipeline" and "stage" are the others)
TAG_TRIAL = "palier.trial"  # the trial's number in the stage's Optuna study
TAG_TRIAL_STAGE_KEY = "palier.trial.stage_key"  # the searching stage's key (the trial run's own key is its trial's)
TAG_SEARCH_WINNER = "palier.search.winner"  # "true" on the winning trial's run
TAG_SEARCH_WINNER_TRIAL = "palier.search.winner_trial"  # on the stage run: the winning trial's number
PARAM_TRIAL_PREFIX = "trial."  # a trial run's searched values, e.g. trial.training.learning_rate
PARAM_WINNER_PREFIX = "search.winner."  # the same on the stage run, for the winner
# Written by tasks.results / core.cost: what a stage run or trial used and cost.
METRIC_GPU_SECONDS = "cost/gpu_seconds"
METRIC_COST_USD = "cost/usd"
METRIC_TOTAL_GPU_SECONDS = "cost/total_gpu_seconds"  # on the pipeline run: every stage and trial
METRIC_TOTAL_COST_USD = "cost/total_usd"
# MLflow's UI shows an experiment with this tag in its model-training view, not the GenAI one.
TAG_EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_KIND_TRAINING = "custom_model_development"

ALIAS_CHAMPION = "champion"
ALIAS_CANDIDATE = "candidate"

ARTIFACT_CONFIG = "config/stage.json"
ARTIFACT_PREFLIGHT = "preflight/report.json"
ARTIFACT_DIAGNOSIS = "diagnosis/diagnosis.json"  # the latest attempt's
ARTIFACT_REMEDY = "diagnosis/remedy.json"
ARTIFACT_RESULTS = "results/metrics.json"  # the stage's StageResult
ARTIFACT_DATA_REPORT = "results/data_report.json"
ARTIFACT_GATE = "results/gate.json"
ARTIFACT_SEARCH_TRIALS = "search/trials.json"  # on a searching stage's run: every trial, the winner marked
ARTIFACT_SUMMARY = "results/summary.json"  # on the pipeline run: baseline vs final rows
ARTIFACT_SUMMARY_CHART = "charts/baseline_vs_final.png"
ARTIFACT_CURVES_CHART = "charts/training_curves.png"
# Artifact folders
DIR_PIPELINE_FILE = "config"  # the pipeline YAML, on the pipeline run
DIR_MODEL = "model"  # a run's plain model folder: the version's source when no MLflow model could be made
MLMODEL_FILE = "MLmodel"  # an MLflow model folder's description (MLflow's own file name)
DIR_STAGE_ARTIFACTS = "artifacts"  # whatever the recipe wrote under <stage folder>/artifacts
DIR_LOGS = "logs"  # stage.log

# Metric families a finished stage run carries (a skipped stage copies them from the run it reuses)
RESULT_METRIC_PREFIXES = ("baseline", "final", "delta", "delta_prev")


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


def train_summary_key(name: str) -> str:
    """A number the Trainer reported at the end (``train_summary/train_loss``)."""
    return f"train_summary/{name}"


def timing_key(phase: str) -> str:
    return f"timing_s/{phase}"


def pipeline_metric_key(stage: str, eval_set: str, metric: str, phase: str) -> str:
    """On the pipeline run: one stage's baseline or final number (``medical/medical_test/wer/final``)."""
    return f"{stage}/{eval_set}/{metric}/{phase}"


def predictions_table(phase: str, eval_set: str) -> str:
    return f"predictions/{phase}_{eval_set}.json"


def diagnosis_attempt(attempt: int) -> str:
    """Each failed attempt's diagnosis, kept beside the latest one (ARTIFACT_DIAGNOSIS)."""
    return f"diagnosis/attempt-{attempt}.json"
