"""Reattach or submit: a recorded handle whose job is still queued or running is watched again;
only a finished or unknown one leads to a new submit (never two jobs for one stage)."""

from __future__ import annotations

from core.contracts import JobHandle, JobStatus


def live_job(backend, handles: list[JobHandle]) -> tuple[JobHandle, JobStatus] | None:
    """The newest handle of ``backend`` whose job is still pending or running, with its status.

    A ServiceUnavailable while checking propagates: when the service cannot say whether the old job
    runs, submitting a second one could bill twice, so the caller stops and says to retry."""
    for handle in handles:
        if handle.backend != backend.name:
            continue
        if not backend.reattach(handle):
            continue
        status = backend.poll(handle)
        if not status.finished:
            return handle, status
    return None
