"""Helpers for the end-to-end tests (real servers): deployment runs and the tiny pipelines they serve."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def deployment_run(env: dict, name: str, timeout_s: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "prefect"), "deployment", "run", f"exp-pipeline/{name}", "--watch",
                           "--watch-interval", "2", "--watch-timeout", str(timeout_s)],
                          capture_output=True, text=True, env=env, timeout=timeout_s + 100)


def flow_run_id(prefect_output: str) -> str:
    """The flow run id that `prefect deployment run` prints (its UI URL ends with it)."""
    found = re.search(r"flow-run/([0-9a-f-]{36})", prefect_output)
    assert found, prefect_output[-2000:]
    return found.group(1)
