"""Who owns a run, and whether that owner is still alive.

A run that palier opens records its owner: host name, boot id, process id and the process's
start time (so a recycled pid is not mistaken for the owner), and the owner refreshes a
heartbeat while it lives. A later process decides that the owner died only from evidence:
on the same host, the process is gone or the machine rebooted since; on another host, no
heartbeat for ``silence_limit_s``. Without evidence, the run is left alone.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HEARTBEAT_EVERY_S = 60.0
# Another host's run is declared dead after this long without a heartbeat (60 missed beats).
SILENCE_LIMIT_S = 3600.0


@dataclass(frozen=True)
class Owner:
    host: str
    boot_id: str
    pid: int
    started: str  # the process start time in clock ticks since boot (/proc/PID/stat field 22)

    def describe(self) -> str:
        return f"process {self.pid} on {self.host}"


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def process_start(pid: int) -> str | None:
    """The start time of ``pid`` (clock ticks since boot), or None when no such process runs."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # the command name may hold spaces
    if fields[0] == "Z":
        return None  # exited, not yet reaped
    return fields[19]


def current_owner() -> Owner:
    pid = os.getpid()
    return Owner(socket.gethostname(), boot_id(), pid, process_start(pid) or "")


def owner_alive_here(owner: Owner) -> bool:
    """On this host: is the recorded process still the one running under that pid?"""
    started = process_start(owner.pid)
    return started is not None and (not owner.started or started == owner.started)


def death_reason(owner: Owner | None, here: Owner, alive_here: bool | None, last_sign_of_life: float | None,
                 now: float, silence_limit_s: float = SILENCE_LIMIT_S) -> str | None:
    """Why the owner of a run is known to be dead, or None when it may be alive.

    ``alive_here`` is whether the owner's process still runs (only meaningful on the owner's
    host, same boot); ``last_sign_of_life`` is the latest heartbeat or logged value (epoch s)."""
    if owner is not None and owner.host == here.host:
        if owner.boot_id and here.boot_id and owner.boot_id != here.boot_id:
            return f"{owner.host} restarted since {owner.describe()} opened the run"
        if alive_here is False:
            return f"{owner.describe()} is gone"
        return None
    if last_sign_of_life is not None and now - last_sign_of_life > silence_limit_s:
        who = owner.describe() if owner else "its process (not recorded)"
        return f"no heartbeat from {who} for {(now - last_sign_of_life) / 60:.0f} min"
    return None


class Heartbeat:
    """A daemon thread that calls ``beat(key)`` for every registered key every ``every_s``.

    Failures are ignored (the tracking server may be down); the next beat tries again."""

    def __init__(self, every_s: float = HEARTBEAT_EVERY_S):
        self.every_s = every_s
        self._beats: dict[str, Callable[[str], None]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, key: str, beat: Callable[[str], None]) -> None:
        with self._lock:
            self._beats[key] = beat
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="palier-heartbeat", daemon=True)
                self._thread.start()

    def discard(self, key: str) -> None:
        with self._lock:
            self._beats.pop(key, None)

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._beats)

    def _loop(self) -> None:
        while True:
            time.sleep(self.every_s)
            with self._lock:
                beats = list(self._beats.items())
            for key, beat in beats:
                try:
                    beat(key)
                except Exception:
                    pass


HEARTBEAT = Heartbeat()
