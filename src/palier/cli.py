"""palier's command line (thin: every command calls a library function)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer
from rich.markup import escape

from core.terminal import console as make_console
from core.terminal import print_table

# rich_markup_mode=None: usage errors print as plain lines, not in panels wrapped to the terminal.
app = typer.Typer(help="Progressive fine-tuning pipelines, run by Prefect, tracked in MLflow.",
                  no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None)
data_app = typer.Typer(help="Check data before training.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(data_app, name="data")
console = make_console()
err = make_console(stderr=True)


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code)


def _use_running_services() -> None:
    """Point clients at the services `palier up` started, unless the user chose others."""
    from palier.services import client_env, read_state

    state = read_state()
    if state.get("mlflow") and state.get("prefect"):
        for key, value in client_env(state).items():
            os.environ.setdefault(key, value)


@app.callback()
def _main() -> None:
    """Every command talks to the services `palier up` started unless told otherwise."""
    _use_running_services()


def _load(path: Path):
    from core.config import ConfigError, load_pipeline

    try:
        return load_pipeline(path)
    except ConfigError as exc:
        _fail(str(exc))


# -- services ---------------------------------------------------------------------------
@app.command()
def up(pipelines: Path = typer.Option(Path("pipelines"), help="folder of pipeline files to serve")) -> None:
    """Start Prefect, MLflow and the exp-pipeline deployments on 127.0.0.1 (idempotent)."""
    from core.tracking.links import experiments_url
    from palier.services import state_env_file, up as start, urls

    with console.status("starting Prefect, MLflow and the deployments…"):
        try:
            state = start(pipelines)
        except RuntimeError as exc:
            _fail(str(exc), 1)
    u = urls(state)
    console.print(f"Prefect UI  {u['prefect_ui']}\nMLflow UI   {experiments_url(u['mlflow'])}", soft_wrap=True)
    console.print(f"Clients: [bold]source {state_env_file()}[/] then e.g. [bold]prefect deployment run exp-pipeline/demo[/]",
                  soft_wrap=True)


@app.command()
def down() -> None:
    """Stop the services started by `palier up`."""
    from palier.services import down as stop

    for name, what in stop().items():
        console.print(f"{name}: {what}")


@app.command()
def status(as_json: bool = typer.Option(False, "--json")) -> None:
    """Are the services up?"""
    from palier.services import status as current

    from palier.services import sweep_stale_runs

    info = current()
    swept = sweep_stale_runs(info)
    if as_json:
        console.print_json(json.dumps({**info, "stale_runs": swept}))
    else:
        for name, s in info.items():
            state = ("[green]up[/]" if s["up"] else "[red]down[/]") + (f": {s['problem']}" if s["problem"] else "")
            console.print(f"{name:12} {state}  {s.get('url', '')}  pid={s['pid']}", soft_wrap=True)
        for line in swept["lines"]:
            console.print(line, soft_wrap=True)
    if not all(s["up"] for s in info.values()):
        raise typer.Exit(1)


# -- pipelines --------------------------------------------------------------------------
@app.command()
def validate(pipelines: list[Path] = typer.Argument(..., help="pipeline YAML files")) -> None:
    """Check pipeline files (schema, inheritance, lineage)."""
    from core.config import ConfigError, load_pipeline

    bad = 0
    for path in pipelines:
        try:
            config = load_pipeline(path)
        except ConfigError as exc:
            bad += 1
            err.print(f"[red]✗[/] {escape(str(exc))}")
            continue
        console.print(f"[green]✓[/] {path}: {config.name} ({config.family}, {len(config.stages)} stage{'s' if len(config.stages) != 1 else ''}: "
                      f"{' → '.join(s.name for s in config.stages)})")
    if bad:
        raise typer.Exit(1)


def describe_source(src) -> str:
    kind = src.kind
    if kind == "hub":
        return f"hub {src.id} ({src.config or 'default'}, {src.split})" + (f", ≤{src.max_samples}" if src.max_samples else "")
    if kind == "generated":
        return f"generated {src.generator} " + ", ".join(f"{k}={v}" for k, v in src.params.items())
    if kind == "folder":
        return f"folder {src.path} ({src.part} part)"
    return f"{kind} {src.path}"


def print_plan(specs) -> None:
    from core.plan import upstream_of

    for spec in specs:
        s = spec.stage
        backend = s.backend.kind + (f" {s.backend.gpu}" if s.backend.gpu else "") + (
            f" ×{s.backend.gpus}" if s.backend.gpus > 1 else "")
        evals = ", ".join(e.name + (f" ({e.role}" + (f", may lose ≤ {e.max_regression}" if e.role == "guard" else "") + ")")
                          for e in s.evals)
        console.print(f"[bold]{spec.index + 1}. {spec.name}[/]  [dim]\\[{backend}] key {spec.key}[/]")
        upstream = upstream_of(spec.base_model)
        console.print(f"   starts from  {'output of ' + upstream if upstream else spec.base_model}")
        console.print(f"   trains on    {describe_source(s.train)}")
        console.print(f"   evaluates    {evals}")
        console.print(f"   registers    {s.output_name}  (gate: {s.gate.metric})")


@app.command()
def run(
    pipeline: Path = typer.Argument(..., help="pipeline YAML file"),
    plan_only: bool = typer.Option(False, "--plan", help="print the stages and their lineage; run nothing"),
    backend: str = typer.Option(None, help="override every stage's backend: local|modal|kaggle"),
    dry_run: bool = typer.Option(False, "--dry-run", help="with --backend: show what would be shipped"),
    only: list[str] = typer.Option(None, help="run only these stages (upstream outputs must exist)"),
) -> None:
    """Run a pipeline in-process (development), or show its plan / a backend dry run."""
    from core.versioning import code_version, data_digest
    from core.plan import plan

    config = _load(pipeline)
    if backend:
        from core.config.loading import override_backend

        config = override_backend(config, backend)
    specs = plan(config, code_version(), lambda src: data_digest(src, pipeline.resolve().parent),
                 pipeline_file=str(pipeline.resolve()))
    unknown = sorted(set(only or []) - {spec.name for spec in specs})
    if unknown:
        _fail(f"--only {', '.join(unknown)}: no such stage in {pipeline}; stages: {', '.join(s.name for s in specs)}")
    if plan_only or dry_run:
        print_plan([spec for spec in specs if not only or spec.name in only])
        if dry_run:
            from core.backends.dryrun import describe_pipeline, render

            descriptions = describe_pipeline(specs, list(only) if only else None)
            for description in descriptions:
                console.print(render(description), markup=False, highlight=False, soft_wrap=True)
            if any("error" in d for d in descriptions):
                raise typer.Exit(2)
        return
    _use_running_services()
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        _fail("no MLflow server: run `palier up` first (or set MLFLOW_TRACKING_URI)")
    from flows.exp_pipeline import exp_pipeline

    import signal

    from flows.stopping import raise_stop_requested, stop_signal

    # Prefect re-delivers SIGTERM to the handler it found once the flow has cleaned up: ours turns
    # it into an exception, so the command ends with a message instead of dying silently.
    signal.signal(signal.SIGTERM, raise_stop_requested)
    try:
        exp_pipeline(str(pipeline.resolve()), only=list(only) if only else None)
    except BaseException as exc:
        by = stop_signal(exc)
        if by is None and not isinstance(exc, Exception):
            raise
        if by is not None:
            err.print(f"stopped by {by}: the stage saved a checkpoint where it could and its runs are marked "
                      f"cancelled; run the same command again to resume", soft_wrap=True)
            raise typer.Exit(130 if by == "SIGINT" else 143)
        _fail(f"pipeline {config.name} failed: {exc}", 1)
    summary(config.name, as_json=False)


@app.command()
def summary(pipeline: str = typer.Argument(..., help="pipeline name or file"),
            as_json: bool = typer.Option(False, "--json")) -> None:
    """Per-stage baseline vs final of the pipeline's latest run (from MLflow)."""
    from palier.report import latest_pipeline_summary

    _use_running_services()
    name = _load(Path(pipeline)).experiment_name if pipeline.endswith((".yaml", ".yml")) else f"palier/{pipeline}"
    try:
        info = latest_pipeline_summary(name)
    except (LookupError, RuntimeError) as exc:
        _fail(str(exc), 1)
    except Exception as exc:
        from core.tracking.outage import unreachable

        if not unreachable(exc):
            raise
        _fail(f"MLflow at {os.environ.get('MLFLOW_TRACKING_URI')} does not answer: `palier status`, `palier up` "
              f"({str(exc).splitlines()[0][:200]})", 1)
    if as_json:
        console.print_json(json.dumps(info))
        return
    rows = []
    for st in info["stages"]:
        first = True
        for r in st["rows"]:
            delta = r["delta"]
            good = delta is not None and ((delta < 0) if r["metric"] in ("wer", "cer") else (delta > 0))
            rows.append([escape(st["stage"]) if first else "", escape(r["set"]), escape(r["metric"]), _fmt(r["baseline"]),
                         _fmt(r["final"]), f"[{'green' if good else 'red'}]{_fmt(delta, signed=True)}[/]",
                         (st["gate"] or "") if first else "", (st["model_version"] or "") if first else ""])
            first = False
    print_table(console, f"{info['experiment']} — run {info['parent_run_id']} ({info['status']})",
                ("stage", "eval set", "metric", "baseline", "final", "Δ", "gate", "model v"), rows)


def _fmt(v, signed: bool = False) -> str:
    if v is None:
        return "—"
    return f"{v:+.3f}" if signed else f"{v:.3f}"


@app.command("watch")
def watch_command(flow_run_id: str = typer.Argument(..., help="Prefect flow run id (printed by `prefect deployment run`)")) -> None:
    """Progress bars for a running flow (preprocessing, baseline, training, evaluation)."""
    from palier.watch import watch

    _use_running_services()
    state = watch(flow_run_id, console)
    if state != "COMPLETED":
        raise typer.Exit(1)


# -- data -------------------------------------------------------------------------------
@data_app.command("check")
def data_check(manifest: Path = typer.Argument(..., help="CSV with columns audio,sentence"),
               window: float = typer.Option(30.0, help="audio window in seconds (longer files get dropped)"),
               as_json: bool = typer.Option(False, "--json")) -> None:
    """Report for every file whether it loads (format, rate, channels, duration) and if not, why."""
    from palier.data_check import as_dicts, check_manifest

    try:
        reports = check_manifest(manifest, window)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    bad = [r for r in reports if not r.ok]
    if as_json:
        console.print_json(json.dumps({"manifest": str(manifest), "files": as_dicts(reports),
                                       "ok": len(reports) - len(bad), "problems": len(bad)}))
    else:
        rows = [[str(r.line), escape(r.audio), f"{r.format}/{r.subtype}" if r.format else "", str(r.sample_rate or ""),
                 str(r.channels or ""), f"{r.duration_s:.2f}" if r.format else "",
                 "[green]ok[/]" if r.ok else f"[red]{escape(r.problem)}[/]"] for r in reports]
        print_table(console, escape(str(manifest)), ("line", "audio", "format", "rate", "ch", "seconds", "status"), rows)
        console.print(f"{len(reports) - len(bad)} ok, {len(bad)} with problems")
    if bad:
        raise typer.Exit(1)


def _register_subsystems() -> None:
    from agent.cli import register as register_agent
    from core.evaluate_cli import register as register_evaluate
    from core.export_cli import register as register_export_ct2
    from core.import_cli import register as register_import_ct2
    from core.families_cli import register as register_families

    register_agent(app)
    register_families(app)
    register_export_ct2(app)
    register_import_ct2(app)
    register_evaluate(app)


_register_subsystems()


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
