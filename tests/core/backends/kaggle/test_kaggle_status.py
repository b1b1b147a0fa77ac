"""Kaggle's status strings (1.x CLI text, 2.x enum) and refusal messages, as found in the wild."""

from __future__ import annotations

import pytest
from kagglesdk.kernels.types.kernels_enums import KernelWorkerStatus

from core.backends.errors import QuotaExceeded
from core.backends.kaggle.status import job_status, normalize_kernel_status, push_error


@pytest.mark.parametrize("raw, expected", [
    ('user/kernel-slug has status "KernelWorkerStatus.RUNNING"', "running"),
    ('edithatogo/qwen3-v4-peft-lm-eval-selected-full has status "KernelWorkerStatus.COMPLETE"', "complete"),
    ('a/b has status "KernelWorkerStatus.ERROR"', "error"),
    ("KernelWorkerStatus.CANCEL_ACKNOWLEDGED", "cancel_acknowledged"),
    ('user/kernel has status "complete"', "complete"),
    ('user/kernel has status "running"', "running"),
    ('user/kernel has status "queued"', "queued"),
    ("cancelAcknowledged", "cancel_acknowledged"),
    ("cancelRequested", "cancel_requested"),
    ("newScript", "new_script"),
    (KernelWorkerStatus.COMPLETE, "complete"),
    (KernelWorkerStatus.QUEUED, "queued"),
    ("something new", "unknown"),
])
def test_every_spelling_normalizes(raw, expected):
    assert normalize_kernel_status(raw) == expected


@pytest.mark.parametrize("state, expected", [
    ("queued", "pending"), ("new_script", "pending"), ("running", "running"), ("cancel_requested", "running"),
    ("complete", "succeeded"), ("error", "failed"), ("cancel_acknowledged", "cancelled"), ("unknown", "failed"),
])
def test_states_map_to_job_states(state, expected):
    assert job_status(state).state == expected


def test_session_limit_on_push_is_a_quota_error_that_says_what_to_do():
    error = push_error("Maximum batch GPU session count of 2 reached.")
    assert isinstance(error, QuotaExceeded)
    assert "2 GPU sessions at once" in str(error) and "retry" in str(error)


def test_weekly_quota_failure_is_explained():
    status = job_status("error", "Accelerator Quota Exceeded: You've exceeded the number of hours allowed to use GPU.")
    assert status.state == "failed" and "weekly GPU quota" in status.message


def test_other_errors_point_to_the_logs():
    assert "stage.log and kaggle.log" in job_status("error", "Your notebook tried to run, but exited with code 1").message
    assert "dataset sources" in str(push_error("The following are not valid dataset sources: ['u/x']"))
