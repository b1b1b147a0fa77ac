"""``palier validate | run | summary | watch``: pipeline files, their runs and their results."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from rich.markup import escape

from core.terminal import print_table
from palier.cli.app import command, use_running_services
from palier.cli.output import ExitCode, err, fail, failing_on, out

SECTION = "Pipelines"


def load(path: Path):  # noqa: ANN201 - the config classes are imported lazily
    from core.config import ConfigError, load_pipeline

    with failing_on(ConfigError):
        return load_pipeline(path)


@command(SECTION, "validate", "Check pipeline files: YAML, schema, inheritance, lineage. Reads no data; use "
                              "while editing a pipeline.")
def validate(pipelines: list[Path] = typer.Argument(..., help="pipeline YAML files")) -> None:
    """Check pipeline files (schema, inheritance, lineage): nothing else is read or probed, so it
    runs anywhere. `palier check` goes further: the playbook rules against this machine."""
    from core.config import ConfigError, load_pipeline

    bad = 0
    for path in pipelines:
        try:
            config = load_pipeline(path)
        except ConfigError as exc:
            bad += 1
            err().print(f"[red]✗[/] {escape(str(exc))}")
            continue
        stages = len(config.stages)
        out().print(f"[green]✓[/] {path}: {config.name} ({config.family}, {stages} stage{'s' if stages != 1 else ''}: "
                    f"{' → '.join(s.name for s in config.stages)})")
    if bad:
        raise typer.Exit(ExitCode.FAILED)


def describe_source(src) -> str:  # noqa: ANN001
    kind = src.kind
    if kind == "hub":
        return f"hub {src.id} ({src.config or 'default'}, {src.split})" + (f", ≤{src.max_samples}" if src.max_samples else "")
    if kind == "generated":
        return f"generated {src.generator} " + ", ".join(f"{k}={v}" for k, v in src.params.items())
    if kind == "folder":
        return f"folder {src.path} ({src.part} part)"
    return f"{kind} {src.path}"


def print_plan(specs) -> None:  # noqa: ANN001
    from core.plan import upstream_of

    console = out()
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
        if s.search is not None:
            space = "; ".join(f"{path} in {_space(p)}" for path, p in s.search.parameters.items())
            console.print(f"   searches     {s.search.trials} trials ({s.search.sampler}, {s.search.parallel} at a time): "
                          f"{escape(space)}", soft_wrap=True)


def _space(p) -> str:  # noqa: ANN001
    if p.choices is not None:
        return "{" + ", ".join(str(c) for c in p.choices) + "}"
    return f"[{p.low:g}, {p.high:g}]" + (" log" if p.log else "") + (f" step {p.step:g}" if p.step else "")


def _plan(pipeline: Path, config, only: list[str]):  # noqa: ANN001, ANN202
    from core.plan import plan
    from core.versioning import code_version, data_digest

    specs = plan(config, code_version(), lambda src: data_digest(src, pipeline.resolve().parent),
                 pipeline_file=str(pipeline.resolve()))
    unknown = sorted(set(only) - {spec.name for spec in specs})
    if unknown:
        fail(f"--only {', '.join(unknown)}: no such stage in {pipeline}; stages: {', '.join(s.name for s in specs)}")
    return specs


def print_cost(config, specs) -> list:  # noqa: ANN001
    """The plan's GPU hours and cost, stage by stage; returns why it does not fit the budget ([] if it does)."""
    from core.cost import cost_lines, over_budget
    from tasks.budget import plan_estimates

    estimates = plan_estimates(config, specs)
    console = out()
    console.print("[bold]cost estimate[/]")
    for line in cost_lines(estimates):
        console.print(f"   {escape(line)}", soft_wrap=True)
    problems = over_budget(estimates, config.budget)
    for problem in problems:
        err().print(f"[red]over budget:[/] {escape(problem)}", soft_wrap=True)
    return problems


def _show_plan(config, specs, only: list[str], dry_run: bool) -> None:  # noqa: ANN001
    print_plan([spec for spec in specs if not only or spec.name in only])
    print_cost(config, [spec for spec in specs if not only or spec.name in only])
    if not dry_run:
        return
    from core.backends.dryrun import describe_pipeline, render

    descriptions = describe_pipeline(specs, only or None)
    for description in descriptions:
        out().print(render(description), markup=False, highlight=False, soft_wrap=True)
    if any("error" in d for d in descriptions):
        raise typer.Exit(ExitCode.BAD_INPUT)


def _run_flow(pipeline: Path, name: str, only: list[str]) -> None:
    """The exp-pipeline flow in this process; a stop signal ends it with a message, not silently."""
    import signal

    from flows.exp_pipeline import exp_pipeline
    from flows.stopping import raise_stop_requested, stop_signal
    from tasks.preflight import PreflightBlocked

    # Prefect re-delivers SIGTERM to the handler it found once the flow has cleaned up: ours turns
    # it into an exception, so the command ends with a message instead of dying silently.
    signal.signal(signal.SIGTERM, raise_stop_requested)
    try:
        exp_pipeline(str(pipeline.resolve()), only=only or None)
    except PreflightBlocked as blocked:  # a finding, reported as such: the findings, their fixes, exit 1
        fail(f"pipeline {name} not started: {blocked}", ExitCode.FAILED)
    except BaseException as exc:
        by = stop_signal(exc)
        if by is None and not isinstance(exc, Exception):
            raise
        if by is not None:
            err().print(f"stopped by {by}: the stage saved a checkpoint where it could and its runs are marked "
                        f"cancelled; run the same command again to resume", soft_wrap=True)
            raise typer.Exit(ExitCode.INTERRUPTED if by == "SIGINT" else ExitCode.TERMINATED) from None
        fail(f"pipeline {name} failed: {exc}", ExitCode.FAILED)


@command(SECTION, "run", "Run a pipeline in-process (development), or show its plan / a backend dry run.")
def run(
    pipeline: Path = typer.Argument(..., help="pipeline YAML file"),
    plan_only: bool = typer.Option(False, "--plan", help="print the stages and their lineage; run nothing"),
    backend: str = typer.Option(None, help="override every stage's backend: local|modal|kaggle"),
    dry_run: bool = typer.Option(False, "--dry-run", help="with --backend: show what would be shipped"),
    only: list[str] = typer.Option(None, help="run only these stages (upstream outputs must exist)"),
) -> None:
    """Run a pipeline in-process (development), or show its plan / a backend dry run."""
    config = load(pipeline)
    if backend:
        from core.config.loading import override_backend

        config = override_backend(config, backend)
    only = list(only or [])
    specs = _plan(pipeline, config, only)
    if plan_only or dry_run:
        _show_plan(config, specs, only, dry_run)
        return
    from tasks.budget import BudgetExceeded, check_budget

    with failing_on(BudgetExceeded):
        check_budget(config, [spec for spec in specs if not only or spec.name in only])
    use_running_services()
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        fail("no MLflow server: run `palier up` first (or set MLFLOW_TRACKING_URI)")
    _run_flow(pipeline, config.name, only)
    summary(config.name, as_json=False)


def _fmt(v, signed: bool = False) -> str:  # noqa: ANN001
    if v is None:
        return "—"
    return f"{v:+.3f}" if signed else f"{v:.3f}"


def _latest_summary(experiment: str) -> dict:
    from core.tracking.outage import unreachable
    from core.tracking.summary import latest_pipeline_summary

    try:
        return latest_pipeline_summary(experiment)
    except (LookupError, RuntimeError) as exc:
        fail(str(exc), ExitCode.FAILED)
    except Exception as exc:
        if not unreachable(exc):
            raise
        fail(f"MLflow at {os.environ.get('MLFLOW_TRACKING_URI')} does not answer: `palier status`, `palier up` "
             f"({str(exc).splitlines()[0][:200]})", ExitCode.FAILED)


def _summary_rows(info: dict) -> list[list[str]]:
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
    return rows


@command(SECTION, "summary", "Per-stage baseline vs final of the pipeline's latest run (from MLflow).")
def summary(pipeline: str = typer.Argument(..., help="pipeline name or file"),
            as_json: bool = typer.Option(False, "--json")) -> None:
    """Per-stage baseline vs final of the pipeline's latest run (from MLflow)."""
    use_running_services()
    name = load(Path(pipeline)).experiment_name if pipeline.endswith((".yaml", ".yml")) else f"palier/{pipeline}"
    info = _latest_summary(name)
    console = out()
    if as_json:
        console.print_json(json.dumps(info))
        return
    print_table(console, f"{info['experiment']} — run {info['parent_run_id']} ({info['status']})",
                ("stage", "eval set", "metric", "baseline", "final", "Δ", "gate", "model v"), _summary_rows(info))


@command(SECTION, "watch", "Progress bars for a running flow (preprocessing, baseline, training, evaluation).")
def watch(flow_run_id: str = typer.Argument(..., help="Prefect flow run id (printed by `prefect deployment run`)")) -> None:
    """Progress bars for a running flow (preprocessing, baseline, training, evaluation)."""
    from palier.progress import watch as follow

    use_running_services()
    if follow(flow_run_id, out()) != "COMPLETED":
        raise typer.Exit(ExitCode.FAILED)
