"""Where things are in the repository, for tests in any folder (no `parents[N]` counting)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
SRC = ROOT / "src"
# Modules that supervised child processes import by name (stand-in stage runners, a probe).
CHILD_PROCESSES = TESTS / "support" / "child_processes"
# Real failure logs of the stage runner, shared by the agent and the flow's failure path.
STAGE_LOGS = TESTS / "agent" / "logs"
# The pipeline files the repository ships, by name: a user's own files in pipelines/ change nothing.
SHIPPED_PIPELINES = [ROOT / "pipelines" / name
                     for name in ("demo.yaml", "fr.yaml", "medical-base.yaml", "pii-demo.yaml", "sft-demo.yaml")]
