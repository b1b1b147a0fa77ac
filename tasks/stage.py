"""run_stage: submit a stage to its backend, watch it, relay its events, fetch its outputs."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from prefect import get_run_logger, task

from core.backends import get_backend
from core.contracts import JobHandle, StageResult, StageSpec
from core.events import EventTail
from core.paths import stage_dir
from core.tracking import schema as S
from core.tracking.mlflow_store import Tracker
from core.tracking.spool import MetricRelay

POLL_INTERVAL_S = 1.0
PROGRESS_LOG_EVERY = 0.25  # log to Prefect at each quarter of a phase


class StageFailed(RuntimeError):
    pass


@dataclass
class WatchOutcome:
    state: str  # succeeded | failed | cancelled | stalled
    message: str
    seconds_since_event: float
    last_phase: str | None
    last_step: int | None


def _progress_line(spec: StageSpec, phase: str, done: int, total: int) -> str:
    return f"[{spec.name}] {phase}: {done}/{total} ({done / max(total, 1):.0%})"


def watch(backend, handle: JobHandle, spec: StageSpec, relay: MetricRelay | None, logger,
          stall_limit_s: float, poll_interval_s: float = POLL_INTERVAL_S) -> WatchOutcome:
    """Poll until the job finishes or stops sending events for ``stall_limit_s``."""
    tail = EventTail(Path(handle.out_dir) / "events.jsonl")
    last_event = time.monotonic()
    phase, step = None, None
    logged_fraction: dict[str, float] = {}
    while True:
        status = backend.poll(handle)
        for event in tail.read_new():
            last_event = time.monotonic()
            kind = event.get("type")
            if kind == "metric" and relay is not None:
                relay.add(int(event.get("step", 0)), event.get("metrics", {}))
            elif kind == "phase":
                phase = event["phase"]
                logger.info(f"[{spec.name}] {event['phase']} {'started' if event['status'] == 'start' else 'done'}")
            elif kind == "progress":
                step = event.get("done")
                total = event.get("total") or 0
                fraction = (event["done"] / total) if total else 0.0
                key = event.get("phase", phase or "")
                if fraction - logged_fraction.get(key, -1.0) >= PROGRESS_LOG_EVERY or event["done"] == total:
                    logged_fraction[key] = fraction
                    logger.info(_progress_line(spec, key, event["done"], total))
            elif kind == "log":
                level = event.get("level", "info")
                (logger.warning if level == "warning" else logger.error if level == "error" else logger.info)(
                    f"[{spec.name}] {event.get('message', '')}")
            elif kind == "error":
                logger.error(f"[{spec.name}] {event.get('error')}")
        if status.finished:
            if relay is not None:
                relay.flush()
            return WatchOutcome(status.state, status.message, time.monotonic() - last_event, phase, step)
        idle = time.monotonic() - last_event
        if idle > stall_limit_s:
            if relay is not None:
                relay.flush()
            return WatchOutcome("stalled", f"no event for {idle:.0f}s (limit {stall_limit_s:.0f}s)", idle, phase, step)
        time.sleep(poll_interval_s)


def log_tail(out_dir: Path, max_bytes: int = 200_000) -> str:
    log = out_dir / "stage.log"
    if not log.exists():
        return ""
    with log.open("rb") as fh:
        size = log.stat().st_size
        fh.seek(max(0, size - max_bytes))
        return fh.read().decode("utf-8", errors="replace")


@task(name="run-stage", task_run_name="{spec.name}: baseline, train, evaluate")
def run_stage(spec: StageSpec, stage_run_id: str, tracking_uri: str) -> StageResult:
    from tasks.remediation import after_failure

    logger = get_run_logger()
    tracker = Tracker(tracking_uri)
    backend = get_backend(spec.stage.backend.kind)
    out_dir = stage_dir(spec.pipeline, spec.name, spec.key)
    attempt = 1
    while True:
        handle = backend.submit(spec, out_dir)
        tracker.set_tags(stage_run_id, {S.TAG_JOB_ID: handle.job_id, S.TAG_ATTEMPT: str(attempt)})
        logger.info(f"[{spec.name}] attempt {attempt} on {spec.stage.backend.kind} ({handle.job_id}); outputs in {out_dir}")
        relay = MetricRelay(tracker, stage_run_id, out_dir)
        outcome = watch(backend, handle, spec, relay, logger, spec.stage.backend.heartbeat_stall_s)
        relay.close()  # waits out a tracking outage (bounded); the metrics stay on disk until sent
        if outcome.state == "succeeded":
            folder = backend.fetch(handle)
            return StageResult.model_validate_json((folder / "metrics.json").read_text(encoding="utf-8"))
        if outcome.state == "stalled":
            logger.error(f"[{spec.name}] stalled: {outcome.message}; cancelling the job")
            backend.cancel(handle)
        retry_spec = after_failure(spec, outcome, log_tail(out_dir), out_dir, attempt, tracker, stage_run_id, logger)
        if retry_spec is None:
            raise StageFailed(f"stage {spec.name} {outcome.state}: {outcome.message} (see {out_dir / 'stage.log'})")
        spec, attempt = retry_spec, attempt + 1
