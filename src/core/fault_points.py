"""Named points where a test can kill the orchestrator for real (SIGKILL, as a power loss
would): ``PALIER_FAULT_KILL_AT=<point>`` in its environment. Unset, nothing happens.

Points: ``after_model_version`` (a model version exists, no alias moved yet), ``after_stage_end``
(the stage finished, nothing of it logged to MLflow yet)."""

from __future__ import annotations

import os
import signal

ENV = "PALIER_FAULT_KILL_AT"


def reached(point: str) -> None:
    if os.environ.get(ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)
