"""Graceful cancellation: SIGTERM sets a flag; long loops check it at safe points (between
batches, at step ends) so training can checkpoint before it stops."""

from __future__ import annotations

import threading

CANCEL = threading.Event()


class Cancelled(KeyboardInterrupt):
    pass


def check_cancel(where: str) -> None:
    if CANCEL.is_set():
        raise Cancelled(f"cancelled during {where}")
