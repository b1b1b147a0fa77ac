"""``python -m bench.demo_time [--pipeline NAME]``: wall time of a demo job against its budget.

Runs ``scripts/demo.sh NAME`` (services up, ``prefect deployment run exp-pipeline/NAME``,
progress, summary) in a fresh state folder on free loopback ports, so nothing is cached (the
shipped whisper-base is imported from its wheels again), then stops the services. Budgets:
``demo-base`` (whisper-base, two stages, ``make demo``) 10 minutes (480 s the aim); ``demo``
(the nano model, ``make demo-nano``) 10 minutes; ``medical-base`` (seed 001 on real
whisper-base, ``make demo-real``) 20 minutes. The machine's load average is sampled during
the run: on a shared machine the wall time says as much about the neighbours as about palier.
Writes ``bench/results/demo_time.md`` (``make demo``) or ``demo_time_NAME.md``. Needs the venv (``make setup``).
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGETS_S = {"demo-base": 600, "demo": 600, "medical-base": 1200}
TARGETS = {"demo-base": "make demo", "demo": "make demo-nano", "medical-base": "make demo-real"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.demo_time", description=__doc__)
    parser.add_argument("--pipeline", default="demo-base", choices=sorted(BUDGETS_S))
    args = parser.parse_args(argv)
    budget = BUDGETS_S[args.pipeline]
    home = Path(tempfile.mkdtemp(prefix=f"palier-{args.pipeline}-bench-"))
    env = {**os.environ, "PALIER_HOME": str(home), "PALIER_PREFECT_PORT": str(_free_port()),
           "PALIER_MLFLOW_PORT": str(_free_port())}
    loads: list[float] = []
    done = threading.Event()

    def sample_load() -> None:
        while not done.is_set():
            loads.append(os.getloadavg()[0])
            done.wait(30)

    sampler = threading.Thread(target=sample_load, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(["bash", str(ROOT / "scripts" / "demo.sh"), args.pipeline], cwd=ROOT, env=env,
                              capture_output=True, text=True)
    finally:
        subprocess.run([str(ROOT / ".venv" / "bin" / "palier"), "down"], cwd=ROOT, env=env, capture_output=True)
    seconds = time.perf_counter() - t0
    done.set()
    verdict = "met" if proc.returncode == 0 and seconds <= budget else "MISSED"
    load_text = (f"load average (1 min) during the run: median {statistics.median(loads):.1f}, max {max(loads):.1f}"
                 if loads else "load average not sampled")
    report = (f"# Demo wall time: {args.pipeline}\n\nRun {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on "
              f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; {load_text}; fresh state "
              f"folder (no cache).\n\n| job | budget | wall time | result |\n|---|---|---|---|\n"
              f"| `{TARGETS[args.pipeline]}` (`scripts/demo.sh {args.pipeline}`: services + deployment run + summary) "
              f"| {budget} s | {seconds:.0f} s | {verdict} |\n")
    title = f"palier/{args.pipeline} — run"  # the summary table's title line
    summary = proc.stdout[proc.stdout.find(title):] if title in proc.stdout else ""
    if proc.returncode == 0 and summary:
        report += f"\n```\n{summary[-4000:]}\n```\n"
    if proc.returncode != 0:
        report += f"\nThe demo failed (exit {proc.returncode}):\n\n```\n{(proc.stdout + proc.stderr)[-3000:]}\n```\n"
    name = "demo_time.md" if args.pipeline == "demo-base" else f"demo_time_{args.pipeline}.md"
    out = ROOT / "bench" / "results" / name
    out.write_text(report)
    print(report)
    return 0 if verdict == "met" else 1


if __name__ == "__main__":
    sys.exit(main())
