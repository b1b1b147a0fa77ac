"""An orchestrator process for the reattach tests: start (or reattach to) a stage's job on the
local backend with palier's own start_job, then watch it until killed."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from core.backends.local import LocalBackend
from core.backends.watch import WatchLimits, watch_job
from core.contracts import StageSpec
from core.tracking.mlflow_store import Tracker
from tasks.jobs import start_job


def main() -> int:
    uri, run_id, spec_file, out_dir = sys.argv[1:5]
    spec = StageSpec.read(Path(spec_file))
    backend = LocalBackend(runner_module="stub_stage", extra_env=json.loads(os.environ["STUB_CHILD_ENV"]))
    handle, offset = start_job(backend, spec, Path(out_dir), Tracker(uri), run_id, 1, logging.getLogger("orchestrator"))
    outcome = watch_job(backend, handle, WatchLimits(60, 60, 0.1, 0.2), lambda e: None, lambda p, s: None,
                        events_offset=offset)
    return 0 if outcome.state == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
