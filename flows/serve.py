"""Serve one ``exp-pipeline`` deployment per pipeline file: ``exp-pipeline/<pipeline name>``.

    python -m flows.serve [PIPELINES_DIR]      (what `palier up` starts)

The folder is scanned again every ``PALIER_RESCAN_S`` seconds (default 10) and at once on SIGHUP,
which `palier up` sends: a new file becomes a deployment, a changed one is applied again, a
deleted one's deployment is removed. It all happens inside this one process, so the flow runs it
started go on. An invalid file is skipped and named, with its error, in the scan report
(``$PALIER_HOME/serving.json``) that `palier up` prints; the other files are served.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.config import ConfigError, load_pipeline
from core.paths import home

FLOW_NAME = "exp-pipeline"
DEFAULT_RESCAN_S = 10.0


def report_file() -> Path:
    return home() / "serving.json"


@dataclass
class Scan:
    """A pipelines folder as read now: the deployments it asks for and the files it cannot serve."""

    files: dict[str, Path] = field(default_factory=dict)  # deployment name -> file
    configs: dict[str, object] = field(default_factory=dict)  # deployment name -> PipelineConfig
    fingerprints: dict[str, str] = field(default_factory=dict)  # deployment name -> content digest
    invalid: dict[str, str] = field(default_factory=dict)  # file -> why it is not served


def scan(pipelines_dir: Path) -> Scan:
    found = Scan()
    for path in sorted(pipelines_dir.glob("*.yaml")):
        try:
            config = load_pipeline(path)
        except ConfigError as exc:
            found.invalid[str(path)] = str(exc)
            continue
        if config.name in found.files:
            found.invalid[str(path)] = (f"{path}: pipeline name {config.name!r} is already served from "
                                        f"{found.files[config.name]}; give this file another `name:`")
            continue
        found.files[config.name] = path
        found.configs[config.name] = config
        found.fingerprints[config.name] = hashlib.sha256(str(path.resolve()).encode() + path.read_bytes()).hexdigest()
    return found


def changes(served: dict[str, str], wanted: dict[str, str]) -> tuple[list[str], list[str]]:
    """``served`` and ``wanted`` map deployment names to fingerprints: the names to apply (new or
    changed) and the names to remove (their file is gone or no longer valid)."""
    apply = sorted(name for name, digest in wanted.items() if served.get(name) != digest)
    return apply, sorted(set(served) - set(wanted))


def _description(config) -> str | None:  # noqa: ANN001
    text = config.description.strip()
    return text.splitlines()[0] if text else None


class Server:
    """The Prefect runner and what it serves; ``sync`` makes it match the folder."""

    def __init__(self, pipelines_dir: Path) -> None:
        from prefect.runner import Runner

        self.pipelines_dir = pipelines_dir
        self.runner = Runner(pause_on_shutdown=False)
        self.served: dict[str, str] = {}  # deployment name -> fingerprint ("" when left by an earlier process)
        self.invalid: dict[str, str] = {}  # as last reported in the log

    async def adopt_existing(self) -> None:
        """Deployments an earlier serving process left: removed at the first sync unless a file still asks for them."""
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowFilter, FlowFilterName

        async with get_client() as client:
            found = await client.read_deployments(flow_filter=FlowFilter(name=FlowFilterName(any_=[FLOW_NAME])))
        self.served = {d.name: "" for d in found}

    async def sync(self) -> Scan:
        from flows.exp_pipeline import exp_pipeline

        found = scan(self.pipelines_dir)
        apply, remove = changes(self.served, found.fingerprints)
        for name in apply:
            config, path = found.configs[name], found.files[name]
            deployment = await exp_pipeline.ato_deployment(
                name=name, parameters={"pipeline": str(path.resolve())}, description=_description(config),
                tags=["palier", config.family])
            await self.runner.aadd_deployment(deployment)
            self.served[name] = found.fingerprints[name]
            print(f"serving {FLOW_NAME}/{name} from {path}", flush=True)
        for name in remove:
            await _delete_deployment(name)
            self.served.pop(name)
            print(f"removed {FLOW_NAME}/{name}: its file is gone or invalid", flush=True)
        for path, why in found.invalid.items():
            if self.invalid.get(path) != why:
                print(f"not served: {why}", file=sys.stderr, flush=True)
        self.invalid = found.invalid
        _write_report(found)
        return found


async def _delete_deployment(name: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    async with get_client() as client:
        try:
            deployment = await client.read_deployment_by_name(f"{FLOW_NAME}/{name}")
        except ObjectNotFound:
            return
        # Its runs in progress belong to this process's runner and go on.
        await client.delete_deployment(deployment.id)


def _write_report(found: Scan) -> None:
    report = {"pid": os.getpid(), "scanned_at": time.time(),
              "served": {name: str(path) for name, path in found.files.items()}, "invalid": found.invalid}
    tmp = report_file().with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=2), encoding="utf-8")
    tmp.replace(report_file())


async def _rescan_forever(server: Server, wake: asyncio.Event, every_s: float) -> None:
    while True:
        try:
            await asyncio.wait_for(wake.wait(), timeout=every_s)
        except asyncio.TimeoutError:
            pass
        wake.clear()
        try:
            await server.sync()
        except Exception as exc:  # Prefect briefly away, a file half-written: the next scan tries again
            print(f"rescan of {server.pipelines_dir} failed ({type(exc).__name__}: {exc}); retrying",
                  file=sys.stderr, flush=True)


async def serve_folder(pipelines_dir: Path, rescan_s: float) -> None:
    # Listening before the first report is written: `palier up` signals only a process that wrote one.
    wake = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, wake.set)
    server = Server(pipelines_dir)
    await server.adopt_existing()
    found = await server.sync()
    if not found.files:
        sys.exit(f"no valid pipeline under {pipelines_dir}/")
    rescans = asyncio.create_task(_rescan_forever(server, wake, rescan_s))
    try:
        await server.runner.start()
    finally:
        rescans.cancel()


def main() -> None:
    pipelines_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "pipelines")
    rescan_s = float(os.environ.get("PALIER_RESCAN_S", DEFAULT_RESCAN_S))
    try:
        asyncio.run(serve_folder(pipelines_dir, rescan_s))
    except KeyboardInterrupt:
        print("serving stopped", flush=True)


if __name__ == "__main__":
    main()
