"""Run a clean-up call for at most a few seconds, so a stop request is never held up by it."""

from __future__ import annotations

import threading
from collections.abc import Callable


def call_within(seconds: float, fn: Callable[[], object]) -> bool:
    """Run ``fn`` in a daemon thread; True when it finished (without raising) within ``seconds``.

    Used on the way out after SIGTERM or Ctrl-C: a tracking server that is down would otherwise
    keep the process in HTTP retries for minutes."""
    done = threading.Event()

    def target() -> None:
        try:
            fn()
        except Exception:
            return
        done.set()

    threading.Thread(target=target, name="palier-cleanup", daemon=True).start()
    return done.wait(seconds)
