"""Run a pipeline's stages one after the other through the stage runner only (no Prefect, no
MLflow): what the flow does, minus tracking. Useful to time a demo or debug a recipe.

    python scripts/run_stages.py pipelines/pii-demo.yaml --out .state/stages/pii-demo
    python scripts/run_stages.py pipelines/sft-demo.yaml --out .state/stages/sft-demo --only facts

Each stage runs as ``python -m core.stage --spec <out>/<stage>/spec.json --out <out>/<stage>``;
stage N starts from ``<out>/<stage N-1>/model``. Prints baseline -> final per eval set and the
wall time of each stage.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from core.config import load_pipeline
from core.ct2.packaged import is_packaged_ref, resolve_base_model
from core.paths import cache_dir
from core.plan import plan, upstream_of


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pipeline", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--only", nargs="*", help="stage names to run (upstream outputs must exist)")
    parser.add_argument("--metrics", nargs="*", default=None, help="metrics to print (default: the gate's)")
    args = parser.parse_args(argv)

    config = load_pipeline(args.pipeline)
    specs = plan(config, code_version="dev", pipeline_file=str(args.pipeline.resolve()))
    total0 = time.perf_counter()
    for spec in specs:
        if args.only and spec.name not in args.only:
            continue
        out = args.out / spec.name
        out.mkdir(parents=True, exist_ok=True)
        upstream = upstream_of(spec.base_model)
        if upstream:
            spec = spec.with_base_model(str((args.out / upstream / "model").resolve()))
        elif is_packaged_ref(spec.base_model):  # as the flow does: the imported folder in the cache
            spec = spec.with_base_model(resolve_base_model(spec.base_model, cache_dir(), print))
        spec.write(out / "spec.json")
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, "-m", "core.stage", "--spec", str(out / "spec.json"), "--out", str(out)])
        wall = time.perf_counter() - t0
        if rc != 0:
            print(f"stage {spec.name} failed (exit {rc}); see {out}/events.jsonl", file=sys.stderr)
            return rc
        result = json.loads((out / "metrics.json").read_text())
        names = args.metrics or [spec.stage.gate.metric]
        print(f"\n== {spec.name}: {wall:.0f} s wall ({', '.join(f'{k} {v:.0f}s' for k, v in result['timings_s'].items())})")
        for ev in result["evals"]:
            shown = "  ".join(f"{m} {ev['baseline'].get(m, float('nan')):.3f} -> {ev['final'].get(m, float('nan')):.3f}"
                              for m in names)
            print(f"   {ev['name']:<12} ({ev['role']:<7}) {shown}")
    print(f"\ntotal {time.perf_counter() - total0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
