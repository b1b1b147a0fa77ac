"""The job handle of a stage, kept on its MLflow stage run, so a restarted flow can find it.

The whole JobHandle (backend, job id, output folder, everything poll/fetch need) is a tag of the
stage run, written as soon as the job is submitted. A copy is kept as ``job.json`` in the stage's
output folder for when the tracking server does not answer.
"""

from __future__ import annotations

from pathlib import Path

from core.contracts import JobHandle
from core.tracking import schema as S

HANDLE_FILE = "job.json"
MAX_TAG_CHARS = 7500  # MLflow 3 keeps tag values up to 8000 characters


def record_handle(tracker, run_id: str, handle: JobHandle) -> None:
    text = handle.model_dump_json()
    Path(handle.out_dir).mkdir(parents=True, exist_ok=True)
    (Path(handle.out_dir) / HANDLE_FILE).write_text(text, encoding="utf-8")
    if len(text) > MAX_TAG_CHARS:  # keep what reattach needs; the file has the rest
        slim = handle.model_copy(update={"details": {k: v for k, v in handle.details.items() if k != "command"}})
        text = slim.model_dump_json()
    tracker.set_tags(run_id, {S.TAG_JOB_ID: handle.job_id, S.TAG_JOB_HANDLE: text})


def recorded_handles(tracker, run_id: str, stage_key: str, out_dir: Path) -> list[JobHandle]:
    """Handles of earlier runs of the same stage key, newest first (this run excluded)."""
    runs = tracker.stage_key_runs(tracker.get_run(run_id).info.experiment_id, stage_key, max_results=20)
    handles: list[JobHandle] = []
    for other in runs:
        text = other.data.tags.get(S.TAG_JOB_HANDLE)
        if other.info.run_id != run_id and text:
            handles.append(JobHandle.model_validate_json(text))
    local = Path(out_dir) / HANDLE_FILE
    if local.is_file():
        try:
            on_disk = JobHandle.model_validate_json(local.read_text(encoding="utf-8"))
        except ValueError:
            on_disk = None
        if on_disk is not None and all(h.job_id != on_disk.job_id for h in handles):
            handles.append(on_disk)
    return sorted(handles, key=lambda h: h.submitted_at, reverse=True)
