"""A stand-in for ``python -m core.stage`` with the same arguments and outputs, in well under a
second: the backends' ship/run/relay/fetch paths are tested with it; the real runner is tested
in test_real_runner.py.

STUB_MODE (environment): "ok" (default), "fail" (exit 1), "slow" (runs until SIGTERM, then
exits 130 as the real runner does after checkpointing). STUB_STEP_S: seconds between steps.
STUB_START_DELAY_S: seconds before the first event (a slow start: image build, installs).
STUB_STEPS: training steps (default 3).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import struct
import sys
import time
from pathlib import Path


def write_safetensors(path: Path) -> None:
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + struct.pack("<2f", 1.0, 2.0))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cache-dir", type=Path)
    args = parser.parse_args()
    from core.contracts import StageSpec
    from core.events import EventLog

    spec = StageSpec.read(args.spec)
    mode = os.environ.get("STUB_MODE", "ok")
    time.sleep(float(os.environ.get("STUB_START_DELAY_S", "0")))
    events = EventLog(args.out / "events.jsonl")
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    checkpoints = args.out / "checkpoints"
    resumed = (checkpoints / "checkpoint-1").is_dir()
    events.log(f"stub stage {spec.name} resumed={resumed} train={spec.stage.train.model_dump(mode='json')}")
    print(f"stub runner: stage {spec.name} base={spec.base_model}", flush=True)
    events.set_phase("train")
    for step in range(1, int(os.environ.get("STUB_STEPS", "3")) + 1):
        events.metric(step, {"loss": 1.0 / step})
        time.sleep(float(os.environ.get("STUB_STEP_S", "0")))
    (checkpoints / "checkpoint-1").mkdir(parents=True, exist_ok=True)
    if mode == "slow":
        deadline = time.time() + 120
        while not stopping and time.time() < deadline:
            events.emit("heartbeat", phase="train", step=None, total=None)
            time.sleep(0.2)
        events.emit("error", error="cancelled", traceback="")
        events.close()
        return 130
    if mode == "fail":
        events.emit("error", error="RuntimeError: stub failure", traceback="")
        events.close()
        print("error: stage failed: RuntimeError: stub failure", file=sys.stderr, flush=True)
        return 1
    model = args.out / "model"
    model.mkdir(parents=True, exist_ok=True)
    (model / "config.json").write_text(json.dumps({"model_type": "whisper"}))
    write_safetensors(model / "model.safetensors")
    (args.out / "metrics.json").write_text(json.dumps({"stage": spec.name, "key": spec.key, "resumed": resumed}))
    (args.out / "meta.json").write_text(json.dumps({"status": "succeeded", "spec": json.loads(spec.model_dump_json())}))
    events.emit("done", status="succeeded")
    events.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
