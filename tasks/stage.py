"""run_stage_task: the Prefect task that runs one stage on its backend. It submits the stage (or
reattaches to its live job), watches it, relays its events and fetches its outputs; a failed
attempt goes to tasks.remediation. How the watching works is core.backends.watch. (The stage
runner's own entry point, inside the job, is core.stage.runner.run_stage.)"""

from __future__ import annotations

import time
from pathlib import Path

from prefect import get_run_logger, task

from core.backends.factory import get_backend
from core.backends.errors import ServiceUnavailable
from core.backends.watch import PHASE_TEXT, WatchLimits, WatchOutcome, watch_job
from core.contracts import JobHandle, StageResult, StageSpec
from core.paths import stage_dir
from core.progress_lines import due
from core.tracking import schema as S
from core.tracking.mlflow_store import Tracker
from core.tracking.spool import MetricRelay
from tasks.jobs import StageFailed, start_job

__all__ = ["StageFailed", "WatchOutcome", "run_stage_task", "watch"]


def _progress_line(spec: StageSpec, phase: str, done: int, total: int) -> str:
    return f"[{spec.name}] {phase}: {done}/{total} ({done / max(total, 1):.0%})"


class EventRelay:
    """Stage-runner events -> MLflow metrics and Prefect log lines."""

    def __init__(self, spec: StageSpec, relay: MetricRelay | None, logger):
        self.spec, self.relay, self.logger = spec, relay, logger
        self.phase: str | None = None
        self.logged: dict[str, tuple[float, float]] = {}  # phase -> (fraction, time) of its last line
        self.set_aside: list[str] = []

    def __call__(self, event: dict) -> None:
        name, logger, kind = self.spec.name, self.logger, event.get("type")
        if kind == "metric" and self.relay is not None:
            self.relay.add(int(event.get("step", 0)), event.get("metrics", {}))
        elif kind == "phase":
            self.phase = event["phase"]
            logger.info(f"[{name}] {event['phase']} {'started' if event['status'] == 'start' else 'done'}")
        elif kind == "progress":
            total = event.get("total") or 0
            fraction = (event["done"] / total) if total else 0.0
            key = event.get("phase", self.phase or "")
            at = float(event.get("t", time.time()))
            if due(*self.logged.get(key, (None, None)), fraction, at):  # each quarter, at least once a minute
                self.logged[key] = (fraction, at)
                logger.info(_progress_line(self.spec, key, event["done"], total))
        elif kind == "log":
            level = event.get("level", "info")
            (logger.warning if level == "warning" else logger.error if level == "error" else logger.info)(
                f"[{name}] {event.get('message', '')}")
        elif kind == "error":
            logger.error(f"[{name}] {event.get('error')}")
        elif kind == "checkpoint_set_aside" and self.relay is not None:  # its warning came as a "log" event
            self.set_aside.append(f"{event.get('checkpoint')} -> {Path(event.get('moved_to', '')).name}: {event.get('reason')}")
            self.relay.tracker.set_tags(self.relay.run_id, {S.TAG_CHECKPOINT_SET_ASIDE: "; ".join(self.set_aside)[:4900]})


def watch(backend, handle: JobHandle, spec: StageSpec, relay: MetricRelay | None, logger,
          limits: WatchLimits, tracker: Tracker | None = None, stage_run_id: str | None = None,
          events_offset: int = 0) -> WatchOutcome:
    """Watch one job; its phase (queued/starting/running) goes to the Prefect log and the MLflow run."""

    def on_phase(phase: str, seconds: float) -> None:
        logger.info(f"[{spec.name}] {handle.backend} job {handle.job_id}: {PHASE_TEXT[phase]} after {seconds:.0f} s")
        if tracker is not None and stage_run_id:
            tags = {S.TAG_JOB_PHASE: phase}
            if phase == "running":
                tags[S.TAG_PENDING_S] = f"{seconds:.0f}"
            tracker.set_tags(stage_run_id, tags)

    def on_transient(exc: ServiceUnavailable, count: int, delay: float) -> None:
        logger.warning(f"[{spec.name}] {handle.backend} did not answer ({exc}); retry {count} in {delay:.0f} s")

    outcome = watch_job(backend, handle, limits, EventRelay(spec, relay, logger), on_phase, on_transient,
                        events_offset=events_offset)
    if relay is not None:
        relay.flush()
    if tracker is not None and stage_run_id:
        tracker.set_tags(stage_run_id, {S.TAG_JOB_PHASE: "finished" if not outcome.job_may_still_run else outcome.job_phase,
                                        S.TAG_TRANSIENT_ERRORS: str(outcome.transient_errors)})
    return outcome


def log_tail(out_dir: Path, max_bytes: int = 200_000) -> str:
    log = out_dir / "stage.log"
    if not log.exists():
        return ""
    with log.open("rb") as fh:
        size = log.stat().st_size
        fh.seek(max(0, size - max_bytes))
        return fh.read().decode("utf-8", errors="replace")


# "run-stage" is what the Prefect UI lists; the function name says the layer, the task name what it does.
@task(name="run-stage", task_run_name="{spec.name}: baseline, train, evaluate")
def run_stage_task(spec: StageSpec, stage_run_id: str, tracking_uri: str) -> StageResult:
    from tasks.remediation import after_failure

    logger = get_run_logger()
    tracker = Tracker(tracking_uri)
    backend = get_backend(spec.stage.backend.kind)
    out_dir = stage_dir(spec.pipeline, spec.name, spec.key)
    attempt = 1
    while True:
        limits = WatchLimits.for_backend(spec.stage.backend)
        handle, offset = start_job(backend, spec, out_dir, tracker, stage_run_id, attempt, logger)
        relay = MetricRelay(tracker, stage_run_id, out_dir)
        try:
            outcome = watch(backend, handle, spec, relay, logger, limits, tracker, stage_run_id, offset)
        except BaseException:
            # Stopped (SIGTERM, Ctrl-C) or broken: a local stage is our child and would train on as
            # an orphan; cancelling it makes it checkpoint. Remote jobs run on and are reattached.
            if handle.backend == "local":
                backend.cancel(handle)
            raise
        relay.close()  # waits out a tracking outage (bounded); the metrics stay on disk until sent
        if outcome.state == "succeeded":
            folder = backend.fetch(handle)
            return StageResult.model_validate_json((folder / "metrics.json").read_text(encoding="utf-8"))
        if outcome.state == "lost":
            raise StageFailed(f"stage {spec.name}: {outcome.message}")
        if outcome.job_may_still_run:
            logger.error(f"[{spec.name}] {outcome.state}: {outcome.message}; cancelling the job")
            result = backend.cancel(handle)
            (logger.info if result.stopped else logger.error)(f"[{spec.name}] cancel: {result.message}")
            if not result.stopped:
                raise StageFailed(f"stage {spec.name} {outcome.state}: {outcome.message}. {result.message}")
        retry_spec = after_failure(spec, outcome, log_tail(out_dir), out_dir, attempt, tracker, stage_run_id, logger)
        if retry_spec is None:
            raise StageFailed(f"stage {spec.name} {outcome.state}: {outcome.message} (see {out_dir / 'stage.log'})")
        spec, attempt = retry_spec, attempt + 1
