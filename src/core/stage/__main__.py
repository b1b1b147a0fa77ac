"""``python -m core.stage --spec spec.json --out DIR``: run one stage end to end."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path


def _on_sigterm(signum, frame):  # noqa: ARG001
    # Backends cancel with SIGTERM. The first one asks for a graceful stop (training saves a
    # checkpoint at the next step end, loops stop at the next batch); a second one is final.
    from core.stage.cancel import CANCEL

    if CANCEL.is_set():
        raise KeyboardInterrupt("cancelled (second SIGTERM)")
    CANCEL.set()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.stage", description=__doc__)
    parser.add_argument("--spec", type=Path, required=True, help="StageSpec JSON")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--cache-dir", type=Path, default=None, help="preprocessed-data cache")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)

    from core.contracts import StageSpec
    from core.stage.runner import run_stage

    try:
        spec = StageSpec.read(args.spec)
    except Exception as exc:
        print(f"error: {args.spec}: not a valid stage spec: {exc}", file=sys.stderr)
        return 2
    try:
        run_stage(spec, args.out, args.cache_dir)
    except KeyboardInterrupt:
        print("stage cancelled", file=sys.stderr)
        return 130
    except Exception as exc:
        # The traceback stays in stage.log for diagnosis; this line is what a user reads first.
        import traceback

        from core.stage.runner import full_disk_message, is_disk_full

        traceback.print_exc()
        if is_disk_full(exc, args.out):
            print(f"error: {full_disk_message(spec, args.out)}", file=sys.stderr)
        print(f"error: stage {spec.name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
