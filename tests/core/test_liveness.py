"""Deciding that a run's owner died: only from evidence (core.liveness), never for a live process."""

import os
import subprocess
import sys

from core import liveness
from core.liveness import Owner, death_reason

HERE = Owner("host-a", "boot-1", 100, "555")


def test_live_owner_on_this_host_is_never_declared_dead():
    me = liveness.current_owner()
    assert liveness.owner_alive_here(me)
    # Even a run silent for days: the process is alive, so it stays open.
    assert death_reason(me, me, True, last_sign_of_life=0.0, now=10 ** 9) is None


def test_gone_process_on_this_host_is_dead():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    started = liveness.process_start(proc.pid)
    proc.wait()
    owner = Owner(HERE.host, HERE.boot_id, proc.pid, started or "1")
    assert not liveness.owner_alive_here(owner)
    assert death_reason(owner, HERE, False, None, 0.0) == f"process {proc.pid} on host-a is gone"


def test_recycled_pid_is_not_the_owner():
    # Our own pid, but a different start time: another process now holds the number.
    me = liveness.current_owner()
    impostor = Owner(me.host, me.boot_id, me.pid, str(int(me.started) + 1))
    assert not liveness.owner_alive_here(impostor)


def test_reboot_since_the_run_opened_is_death():
    owner = Owner("host-a", "boot-0", 100, "555")
    assert "restarted" in death_reason(owner, HERE, None, None, 0.0)


def test_other_host_needs_a_long_silence():
    owner = Owner("host-b", "boot-9", 7, "1")
    now = 1_000_000.0
    assert death_reason(owner, HERE, None, now - 120, now, silence_limit_s=3600) is None
    reason = death_reason(owner, HERE, None, now - 7200, now, silence_limit_s=3600)
    assert reason == "no heartbeat from process 7 on host-b for 120 min"


def test_unrecorded_owner_is_closed_only_after_a_long_silence():
    now = 1_000_000.0
    assert death_reason(None, HERE, None, now - 60, now) is None
    assert "not recorded" in death_reason(None, HERE, None, now - 10 * 3600, now)


def test_zombie_counts_as_gone():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    try:
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # wait until it has exited, without reaping it
        assert liveness.process_start(pid) is None
    finally:
        os.waitpid(pid, 0)


def test_heartbeat_beats_until_discarded_and_survives_a_failing_beat():
    import time

    beats = []

    def beat(key):
        beats.append(key)
        if len(beats) == 1:
            raise ConnectionError("tracking server down")

    hb = liveness.Heartbeat(every_s=0.05)
    hb.add("run-1", beat)
    deadline = time.time() + 10
    while len(beats) < 3 and time.time() < deadline:
        time.sleep(0.05)
    assert len(beats) >= 3 and set(beats) == {"run-1"}
    hb.discard("run-1")
    time.sleep(0.2)
    count = len(beats)
    time.sleep(0.3)
    assert len(beats) == count and hb.keys() == []
