"""Serve one ``exp-pipeline`` deployment per pipeline file: ``exp-pipeline/<pipeline name>``.

    python -m flows.serve            (what `palier up` starts)
"""

from __future__ import annotations

import sys
from pathlib import Path

from core.config import ConfigError, load_pipeline


def deployments(pipelines_dir: Path):
    from flows.exp_pipeline import exp_pipeline

    out = []
    for path in sorted(pipelines_dir.glob("*.yaml")):
        try:
            config = load_pipeline(path)
        except ConfigError as exc:
            print(f"skipping {path}: {exc}", file=sys.stderr)
            continue
        out.append(exp_pipeline.to_deployment(
            name=config.name,
            parameters={"pipeline": str(path.resolve())},
            description=config.description.strip().splitlines()[0] if config.description.strip() else None,
            tags=["palier", config.family],
        ))
    return out


def main() -> None:
    from prefect import serve

    pipelines_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "pipelines")
    found = deployments(pipelines_dir)
    if not found:
        sys.exit(f"no valid pipeline under {pipelines_dir}/")
    serve(*found, print_starting_message=True)


if __name__ == "__main__":
    main()
