"""Kaggle's answers, read into palier's terms (pure).

Kernel status has had several spellings: the 1.x CLI printed ``owner/slug has status "complete"``
(camelCase states such as ``cancelAcknowledged``); the 2.x client returns an enum whose text is
``KernelWorkerStatus.COMPLETE``. All of them map to one normalized state here.
"""

from __future__ import annotations

import re

from core.backends.errors import BackendError, QuotaExceeded
from core.contracts import JobStatus

KNOWN_STATES = ("queued", "running", "complete", "error", "cancel_requested", "cancel_acknowledged", "new_script")


def normalize_kernel_status(raw: object) -> str:
    """Any spelling of a kernel status -> one of KNOWN_STATES, or "unknown"."""
    name = getattr(raw, "name", None)  # the 2.x enum itself
    text = str(name if isinstance(name, str) else raw).strip()
    quoted = re.findall(r'"([^"]+)"', text)
    if quoted:  # 'owner/slug has status "..."'
        text = quoted[-1]
    text = text.rsplit(".", 1)[-1]  # KernelWorkerStatus.COMPLETE -> COMPLETE
    snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", text).lower().replace("-", "_").replace(" ", "_")
    return snake if snake in KNOWN_STATES else "unknown"


def job_status(state: str, failure_message: str = "") -> JobStatus:
    if state in ("queued", "new_script"):
        return JobStatus(state="pending", message="queued on Kaggle")
    if state == "running":
        return JobStatus(state="running")
    if state == "cancel_requested":
        return JobStatus(state="running", message="cancellation requested on Kaggle")
    if state == "complete":
        return JobStatus(state="succeeded", exit_code=0)
    if state == "cancel_acknowledged":
        return JobStatus(state="cancelled", message="the Kaggle session was stopped")
    if state == "error":
        quota = quota_problem(failure_message)
        return JobStatus(state="failed", message=quota or _error_message(failure_message))
    return JobStatus(state="failed", message=f"Kaggle reported an unrecognised kernel status ({failure_message or state})")


def _error_message(failure: str) -> str:
    detail = f": {failure}" if failure else ""
    return f"the Kaggle kernel ended with an error{detail}; see stage.log and kaggle.log in the output folder"


def quota_problem(message: str) -> str | None:
    """A clear explanation when a Kaggle message is about limits rather than the stage itself."""
    text = (message or "").lower()
    session = re.search(r"maximum batch (gpu|tpu|cpu) session count of (\d+)", text)
    if session:
        kind, count = session.group(1).upper(), session.group(2)
        return (
            f"Kaggle allows {count} {kind} sessions at once on this account and they are all in use. "
            "Wait for one to finish (or stop one at https://www.kaggle.com/code, 'Active events'), then retry."
        )
    if "quota" in text or "exceeded the number of hours" in text:
        return (
            f"Kaggle refused the run for accelerator quota ({message.strip()}). The weekly GPU quota resets on "
            "the date shown at https://www.kaggle.com/settings; use backend.device: cpu or another backend meanwhile."
        )
    return None


def push_error(message: str) -> BackendError:
    """The exception for a refused ``kernels push`` (the CLI prints these and still exits 0)."""
    quota = quota_problem(message)
    if quota:
        return QuotaExceeded(quota)
    if "not valid dataset sources" in message.lower():
        return BackendError(
            f"Kaggle did not accept the kernel's dataset sources ({message}). The inputs dataset may still be "
            "processing or be owned by another account; retry in a minute."
        )
    return BackendError(f"Kaggle refused the kernel push: {message}")
