"""``palier check | diagnose | playbook | ask | chat``: the agent, before and after a run.

Bad input (a missing or unreadable file, an invalid pipeline, a malformed playbook) fails with
one message naming the file (exit 2); a blocked preflight exits 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from palier.cli.app import command
from palier.cli.output import ExitCode, err, fail, failing_on, out

SECTION = "Agent"


def _playbooks():  # noqa: ANN202
    from agent.playbooks.parse import PlaybookError
    from agent.rules import load_checked_playbooks

    try:
        return load_checked_playbooks()
    except PlaybookError as exc:
        fail(f"malformed playbook: {exc}")


@command(SECTION, "check", "Preflight a pipeline against this machine: playbook rules (credentials, data "
                           "paths, GPU). Before `palier run` or a deployment run.")
def check(
    pipeline: Annotated[Path, typer.Argument(help="pipeline YAML file")],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable report")] = False,
    no_autofix: Annotated[bool, typer.Option("--no-autofix", help="report only, change nothing")] = False,
) -> None:
    """Preflight: every playbook rule on every stage, before a GPU is paid for (credentials,
    hub access, data paths, GPU and memory rules). Exit 1 when a rule blocks the launch."""
    from agent.diagnosis.file_inputs import InputFileError, check_pipeline_file

    book = _playbooks()
    with failing_on(InputFileError):
        report = check_pipeline_file(pipeline, book, apply_autofix=not no_autofix)
    if as_json:
        payload = json.loads(report.to_json())
        payload["pipeline_file"] = str(pipeline)
        payload["cost"] = over = _cost(pipeline)
        typer.echo(json.dumps(payload, indent=2, ensure_ascii=False))
    else:
        _print_report(report, str(pipeline))
        over = _cost(pipeline, show=True)
    raise typer.Exit(ExitCode.OK if report.ok and not over["over_budget"] else ExitCode.FAILED)


def _cost(pipeline: Path, show: bool = False) -> dict:
    """The plan's estimated GPU hours and cost (printed with ``show``) and why it is over budget."""
    from core.cost import over_budget
    from palier.cli.pipeline_commands import _plan, load, print_cost
    from tasks.budget import plan_estimates

    config = load(pipeline)
    specs = _plan(pipeline, config, [])
    if show:
        return {"over_budget": print_cost(config, specs)}
    estimates = plan_estimates(config, specs)
    return {"stages": [{"stage": e.stage, "backend": e.backend, "trials": e.trials, "steps": e.steps,
                        "gpu_hours": e.gpu_hours, "usd": e.usd, "missing": e.missing()} for e in estimates],
            "over_budget": over_budget(estimates, config.budget)}


def _print_report(report, source: str) -> None:  # noqa: ANN001
    from core.terminal import print_table

    console = out()
    if not report.findings:
        console.print(f"[green]✓[/green] {escape(source)}: no rule fired.")
        return
    rows = []
    for f in report.findings:
        mark = ("[yellow]fixed[/yellow]" if f.autofixed else
                "[red]BLOCK[/red]" if f.severity == "block" else "[yellow]warn[/yellow]")
        text = f"{escape(f.message)}\n[dim]→ {escape(f.fix)}[/dim]" + (
            f"\n[red]{escape(f.autofix_error)}[/red]" if f.autofix_error else "")
        rows.append([mark, escape(f.rule_id), escape(f.stage), text, escape(f.playbook or "")])
    print_table(console, f"palier check {escape(source)}", ("", "rule", "stage", "message / fix", "playbook"), rows,
                show_lines=True)
    for change in report.changes:
        console.print(f"[cyan]autofix[/cyan] {change.line()}")
    console.print("[green]OK to launch[/green]" if report.ok else
                  f"[red]blocked by {len(report.blocking)} rule(s)[/red]")


@command(SECTION, "diagnose", "Classify a failed or stalled run from its log (and heartbeat events).")
def diagnose(
    logfile: Annotated[Path, typer.Argument(help="stage log (stage.log) or an events.jsonl")],
    events: Annotated[Optional[Path], typer.Option("--events", help="events.jsonl for heartbeat facts")] = None,  # noqa: UP007
    as_json: Annotated[bool, typer.Option("--json", help="print the Diagnosis JSON")] = False,
    no_llm: Annotated[bool, typer.Option("--no-llm", help="rules only, even if an LLM is configured")] = False,
    log_age: Annotated[Optional[float], typer.Option(  # noqa: UP007
        "--log-age", help="seconds since the log was last written (default: from the file's modification time)")] = None,
    no_log_age: Annotated[bool, typer.Option(
        "--no-log-age", help="ignore the file's modification time (a copied or downloaded log)")] = False,
) -> None:
    """Classify a failed or stalled run from its log (and heartbeat events). Without events, the
    log file's age tells a stalled run (no write for 10 min or more) from one still writing."""
    from agent.diagnosis.diagnose import diagnose as classify
    from agent.diagnosis.file_inputs import InputFileError, read_run_log

    with failing_on(InputFileError):
        run_log = read_run_log(logfile, events, log_age_s=log_age, use_file_age=not no_log_age)
    result = classify(run_log.text, run_log.heartbeat, playbooks=_playbooks(), use_llm=False if no_llm else None,
                      log_age_s=run_log.age_s)
    if as_json:
        typer.echo(result.to_json())
        return
    _print_diagnosis(result)


def _print_diagnosis(result) -> None:  # noqa: ANN001
    from rich.text import Text

    console = out()
    color = "green" if result.kind == "none" else "yellow" if result.kind == "unknown" else "red"
    label = f" ({result.failure_id})" if result.failure_id else ""
    console.print(f"[bold {color}]{result.kind}[/bold {color}]{label}  confidence {result.confidence:.2f}"
                  + ("  [magenta]source: llm[/magenta]" if result.source == "llm" else ""))
    for line in result.evidence:
        console.print(Text("  │ ", style="dim") + Text(line))
    if result.fix:
        console.print(f"[bold]fix:[/bold] {result.fix}")
    if result.to_confirm:
        console.print(f"[bold yellow]to confirm:[/bold yellow] {result.to_confirm}")
    if result.remedy:
        console.print(f"[bold]safe remedy:[/bold] {result.remedy['action']} {result.remedy.get('params') or ''}")
    if result.section:
        console.print(f"[dim]playbook: {result.section}[/dim]")


def _print_section(section) -> None:  # noqa: ANN001
    from rich.markdown import Markdown

    console = out()
    console.print(f"[dim]{section.cite}[/dim]")
    console.print(Markdown(f"## {section.heading}\n\n{section.text}"))


@command(SECTION, "playbook", "List the playbooks, or show the sections about TOPIC.")
def playbook(
    topic: Annotated[Optional[str], typer.Argument(help="a rule/failure id or words to search")] = None,  # noqa: UP007
) -> None:
    """List the playbooks, or show the sections about TOPIC (a rule or failure id, or words)."""
    from agent.playbooks.retrieval import search_sections

    book = _playbooks()
    if not topic:
        console = out()
        for p in book.playbooks:
            console.print(f"[bold]{p.title}[/bold]  [dim]{p.file}[/dim]  "
                          f"{len(p.rules)} rules, {len(p.failures)} known failures, {len(p.next_steps)} next steps")
            for s in p.sections:
                if s.level == 2:
                    console.print(f"  - {s.heading}  [dim]#{s.anchor}[/dim]")
        return
    item = book.rule(topic) or book.failure(topic) or next((n for n in book.next_steps if n.id == topic), None)
    if item is not None and item.source is not None:
        _print_section(next(s for s in book.sections if s.cite == item.source.cite))
        return
    hits = search_sections(book.sections, topic, k=3)
    if not hits:
        fail(f"nothing in the playbooks about {topic!r}")
    for section, _ in hits:
        _print_section(section)


def _print_answer(answer) -> None:  # noqa: ANN001
    console = out()
    console.print(answer.text, markup=False)
    if answer.sources:
        refs = ", ".join(f"{s.kind}:{s.ref}" for s in answer.sources)
        console.print(f"[dim]sources ({answer.source}): {refs}[/dim]", markup=True, soft_wrap=True)


@command(SECTION, "ask", "Ask about pipelines (MLflow, Prefect) and the playbooks, in French or English.")
def ask(
    question: Annotated[str, typer.Argument(help="a question, in French or English")],
    as_json: Annotated[bool, typer.Option("--json", help="print the Answer JSON")] = False,
    no_llm: Annotated[bool, typer.Option("--no-llm", help="offline answer even if an LLM is configured")] = False,
) -> None:
    """Ask about pipelines (MLflow, Prefect) and the playbooks; the answer cites its sources."""
    from agent.chat.respond import ask as answer

    if not question.strip():
        fail("empty question")
    reply = answer(question, playbooks=_playbooks(), use_llm=False if no_llm else None)
    if as_json:
        typer.echo(reply.to_json())
    else:
        _print_answer(reply)
    if str(reply.data.get("error") or "").startswith("MLflow unreachable"):
        raise typer.Exit(1)  # an answer is exit 0, whatever it says; a tracking server down is not one


@command(SECTION, "chat", "Interactive questions (as `palier ask`); 'exit' or Ctrl-D to leave.")
def chat(
    no_llm: Annotated[bool, typer.Option("--no-llm", help="offline answers even if an LLM is configured")] = False,
) -> None:
    """Interactive questions; 'exit' or Ctrl-D to leave."""
    from agent.chat.session import ChatSession

    session = ChatSession(playbooks=_playbooks(), use_llm=False if no_llm else None)
    console = out()
    console.print("[dim]palier chat — questions in French or English; 'exit' to leave.[/dim]")
    while True:
        try:
            question = console.input("[bold cyan]palier>[/bold cyan] ")
        except (EOFError, KeyboardInterrupt):
            console.print()
            return
        if question.strip().lower() in ("exit", "quit", "q", ":q"):
            return
        if not question.strip():
            continue
        _print_answer(session.ask(question))



@command(SECTION, "mcp", "Serve palier's agent tools to any assistant over MCP: stdio, or --http PORT on 127.0.0.1.")
def mcp(
    http: Annotated[Optional[int], typer.Option(  # noqa: UP007
        "--http", min=1, max=65535, help="serve streamable HTTP on 127.0.0.1:PORT (path /mcp) instead of stdio")] = None,
) -> None:
    """Serve the Model Context Protocol: pipelines, stage comparisons, worst predictions, champions,
    diagnoses, preflight, playbooks; running a pipeline (preflight enforced) and moving an alias
    (confirmation required). Every answer is redacted. Setup for Claude Code, Cursor and the
    MLflow Assistant: docs/mcp.md."""
    from palier.mcp_server import build_server

    server = build_server(_playbooks())
    if http is None:
        server.run("stdio")
        return
    from palier.services import HOST, port_free

    if not port_free(http):
        fail(f"--http {http}: port {http} on {HOST} is already in use; pick another port")
    err().print(f"palier MCP server on http://{HOST}:{http}/mcp (Ctrl-C to stop)", soft_wrap=True)
    server.run("streamable-http", host=HOST, port=http)
