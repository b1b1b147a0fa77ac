"""Stopping on purpose (SIGTERM, Ctrl-C) versus failing, and closing runs quickly when stopping."""

from __future__ import annotations

import signal

from core.bounded import call_within
from core.tracking import schema as S

STOP_CLEANUP_S = 5.0


class StopRequested(BaseException):
    """SIGTERM outside a running flow (raised by the handler the CLI installs)."""


def raise_stop_requested(signum, frame) -> None:
    raise StopRequested(signum)


def stop_signal(exc: BaseException) -> str | None:
    """"SIGTERM" / "SIGINT" when ``exc`` is how a stop request reached the flow, else None."""
    if isinstance(exc, KeyboardInterrupt):
        return "SIGINT"
    if isinstance(exc, StopRequested):
        return "SIGTERM"
    from prefect.exceptions import TerminationSignal

    if isinstance(exc, TerminationSignal):
        try:
            return signal.Signals(exc.signal).name
        except ValueError:
            return f"signal {exc.signal}"
    return None


def close_run(tracker, run_id: str, exc: BaseException) -> None:
    """End ``run_id`` as cancelled (a stop) or failed. A stop waits at most a few seconds for
    MLflow: a run left open is closed as KILLED by the next sweep (its owner will be gone)."""
    by = stop_signal(exc)
    if by is None:
        tracker.end_run(run_id, "failed")
        return

    def work() -> None:
        tracker.set_tags(run_id, {S.TAG_STOPPED_BY: by})
        tracker.end_run(run_id, "cancelled")

    call_within(STOP_CLEANUP_S, work)
