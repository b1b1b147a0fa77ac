"""``python -m bench.demo_time``: wall time of the main job against its 10-minute budget.

Runs ``scripts/demo.sh`` (services up, ``prefect deployment run exp-pipeline/demo``, progress,
summary) in a fresh state folder on free loopback ports, so nothing is cached, then stops
the services. Writes ``bench/results/demo_time.md``. The venv must exist (``make setup``).
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 600


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="palier-demo-bench-"))
    env = {**os.environ, "PALIER_HOME": str(home), "PALIER_PREFECT_PORT": str(_free_port()),
           "PALIER_MLFLOW_PORT": str(_free_port())}
    load = os.getloadavg()
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(["bash", str(ROOT / "scripts" / "demo.sh")], cwd=ROOT, env=env,
                              capture_output=True, text=True)
    finally:
        subprocess.run([str(ROOT / ".venv" / "bin" / "palier"), "down"], cwd=ROOT, env=env, capture_output=True)
    seconds = time.perf_counter() - t0
    verdict = "met" if proc.returncode == 0 and seconds <= BUDGET_S else "MISSED"
    report = (f"# Demo wall time\n\nRun {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on "
              f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average at start "
              f"{load[0]:.1f}; fresh state folder (no cache).\n\n| job | budget | wall time | result |\n|---|---|---|---|\n"
              f"| `scripts/demo.sh` (services + deployment run + summary) | {BUDGET_S} s | {seconds:.0f} s | {verdict} |\n")
    if proc.returncode != 0:
        report += f"\nThe demo failed (exit {proc.returncode}):\n\n```\n{(proc.stdout + proc.stderr)[-3000:]}\n```\n"
    out = ROOT / "bench" / "results" / "demo_time.md"
    out.write_text(report)
    print(report)
    return 0 if verdict == "met" else 1


if __name__ == "__main__":
    sys.exit(main())
