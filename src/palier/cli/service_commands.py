"""``palier up | down | status``: the Prefect and MLflow servers and the deployments process."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from palier.cli.app import command
from palier.cli.output import ExitCode, err, fail, out

SECTION = "Services"


@command(SECTION, "up", "Start Prefect, MLflow and the exp-pipeline deployments on 127.0.0.1 (idempotent).")
def up(pipelines: Path = typer.Option(Path("pipelines"), help="folder of pipeline files to serve")) -> None:
    """Start Prefect, MLflow and the exp-pipeline deployments on 127.0.0.1 (idempotent)."""
    from core.tracking.links import experiments_url
    from palier.services import state_env_file, up as start, urls

    console = out()
    with console.status("starting Prefect, MLflow and the deployments…"):
        try:
            state = start(pipelines)
        except RuntimeError as exc:
            fail(str(exc), ExitCode.FAILED)
    u = urls(state)
    _print_scan(state["scan"])
    console.print(f"Prefect UI  {u['prefect_ui']}\nMLflow UI   {experiments_url(u['mlflow'])}", soft_wrap=True)
    console.print(f"Clients: [bold]source {state_env_file()}[/] then e.g. [bold]prefect deployment run exp-pipeline/demo[/]",
                  soft_wrap=True)


def _print_scan(scan: dict) -> None:
    """What is served now, and each pipeline file that is not, with its error (the others are served)."""
    served = ", ".join(f"exp-pipeline/{name}" for name in sorted(scan["served"])) or "nothing"
    out().print(f"Deployments {served}", soft_wrap=True, markup=False, highlight=False)
    for why in scan["invalid"].values():
        err().print(f"not served: {why}\n  (fix the file and run `palier up` again; the other files are served)",
                    soft_wrap=True, markup=False, highlight=False)


@command(SECTION, "down", "Stop the services started by `palier up`.")
def down() -> None:
    """Stop the services started by `palier up`."""
    from palier.services import down as stop

    console = out()
    for name, what in stop().items():
        console.print(f"{name}: {what}")


@command(SECTION, "status", "Are the services up? (exit 1 if one is down; closes runs left by dead processes)")
def status(as_json: bool = typer.Option(False, "--json")) -> None:
    """Are the services up? Also closes the runs whose owning process is dead. Exit 1 when a
    service is down."""
    from palier.services import status as current, sweep_stale_runs

    info = current()
    swept = sweep_stale_runs(info)
    console = out()
    if as_json:
        console.print_json(json.dumps({**info, "stale_runs": swept}))
    else:
        for name, s in info.items():
            state = ("[green]up[/]" if s["up"] else "[red]down[/]") + (f": {s['problem']}" if s["problem"] else "")
            console.print(f"{name:12} {state}  {s.get('url', '')}  pid={s['pid']}", soft_wrap=True)
        for line in swept["lines"]:
            console.print(line, soft_wrap=True)
    if not all(s["up"] for s in info.values()):
        raise typer.Exit(ExitCode.FAILED)
