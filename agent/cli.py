"""``palier check | diagnose | playbook | ask | chat`` — ``register(app)`` adds them to a Typer app.

Bad input (a missing or unreadable file, an invalid pipeline, a malformed playbook) prints
one clear message naming the file and exits 2; a blocked preflight exits 1.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

EXIT_BLOCKED = 1
EXIT_BAD_INPUT = 2


def _console(stderr: bool = False):  # noqa: ANN202 - rich is imported lazily
    from core.terminal import console

    return console(stderr=stderr)


def _fail(message: str) -> typer.Exit:
    from agent.redact import redact

    from rich.markup import escape

    _console(stderr=True).print(f"[bold red]error:[/bold red] {escape(redact(message))}", markup=True)
    return typer.Exit(EXIT_BAD_INPUT)


def _playbooks():  # noqa: ANN202
    from agent.playbooks import PlaybookError, load_playbooks

    try:
        return load_playbooks()
    except PlaybookError as exc:
        raise _fail(f"malformed playbook: {exc}") from None


def _read_text(path: Path, what: str) -> str:
    if not path.exists():
        raise _fail(f"{path}: {what} not found")
    if path.is_dir():
        raise _fail(f"{path}: {what} is a folder, expected a file")
    try:
        # Bytes, not read_text: universal newlines would turn tqdm's \r redraws into lines.
        return path.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        raise _fail(f"{path}: cannot read {what} ({exc.strerror or exc})") from None


def check(
    pipeline: Annotated[Path, typer.Argument(help="pipeline YAML file")],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable report")] = False,
    no_autofix: Annotated[bool, typer.Option("--no-autofix", help="report only, change nothing")] = False,
) -> None:
    """Preflight: every playbook rule on every stage, before a GPU is paid for."""
    from core.config import ConfigError, load_pipeline

    from agent.context import is_hub_id
    from agent.facts import collect_env_facts
    from agent.preflight import preflight

    try:
        config = load_pipeline(pipeline)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:
        raise _fail(f"{pipeline}: cannot read pipeline file ({exc.strerror or exc})") from None
    book = _playbooks()
    needs_hub = is_hub_id(config.base_model, {}) or any(
        getattr(s.train, "kind", None) == "hub" for s in config.stages)
    facts = collect_env_facts(config, base_dir=pipeline.parent, check_network=needs_hub)
    report = preflight(config, facts, playbooks=book, apply_autofix=not no_autofix)
    if as_json:
        payload = json.loads(report.to_json())
        payload["pipeline_file"] = str(pipeline)
        typer.echo(json.dumps(payload, indent=2, ensure_ascii=False))
    else:
        _print_report(report, str(pipeline))
    raise typer.Exit(0 if report.ok else EXIT_BLOCKED)


def _print_report(report, source: str) -> None:  # noqa: ANN001
    from rich.markup import escape

    from core.terminal import print_table

    console = _console()
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
    from agent.diagnose import diagnose as run_diagnose
    from agent.heartbeat import heartbeat_from_events, log_text_from_events, read_events

    text = _read_text(logfile, "log file")
    heartbeat = None
    if logfile.suffix == ".jsonl":
        records = read_events(logfile)
        if records:
            text = log_text_from_events(records)
            heartbeat = heartbeat_from_events(records)
    if events is not None:
        _read_text(events, "events file")
        records = read_events(events)
        if not records:
            raise _fail(f"{events}: no JSON event lines (expected core.events format)")
        heartbeat = heartbeat_from_events(records)
        extra = log_text_from_events(records)
        text = f"{text}\n{extra}" if extra and extra not in text else text
    age = None
    if heartbeat is None and not no_log_age:
        age = log_age if log_age is not None else max(0.0, time.time() - logfile.stat().st_mtime)
    book = _playbooks()
    result = run_diagnose(text, heartbeat, playbooks=book, use_llm=False if no_llm else None, log_age_s=age)
    if as_json:
        typer.echo(result.to_json())
        return
    console = _console()
    color = "green" if result.kind == "none" else "yellow" if result.kind == "unknown" else "red"
    label = f" ({result.failure_id})" if result.failure_id else ""
    console.print(f"[bold {color}]{result.kind}[/bold {color}]{label}  confidence {result.confidence:.2f}"
                  + ("  [magenta]source: llm[/magenta]" if result.source == "llm" else ""))
    from rich.text import Text

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


def playbook(
    topic: Annotated[Optional[str], typer.Argument(help="a rule/failure id or words to search")] = None,  # noqa: UP007
) -> None:
    """List the playbooks, or show the sections about TOPIC."""
    from rich.markdown import Markdown

    from agent.retrieval import search_sections

    book = _playbooks()
    console = _console()
    if not topic:
        for p in book.playbooks:
            console.print(f"[bold]{p.title}[/bold]  [dim]{p.file}[/dim]  "
                          f"{len(p.rules)} rules, {len(p.failures)} known failures, {len(p.next_steps)} next steps")
            for s in p.sections:
                if s.level == 2:
                    console.print(f"  - {s.heading}  [dim]#{s.anchor}[/dim]")
        return
    item = book.rule(topic) or book.failure(topic) or next((n for n in book.next_steps if n.id == topic), None)
    if item is not None and item.source is not None:
        section = next(s for s in book.sections if s.cite == item.source.cite)
        console.print(f"[dim]{section.cite}[/dim]")
        console.print(Markdown(f"## {section.heading}\n\n{section.text}"))
        return
    hits = search_sections(book.sections, topic, k=3)
    if not hits:
        raise _fail(f"nothing in the playbooks about {topic!r}")
    for section, _ in hits:
        console.print(f"[dim]{section.cite}[/dim]")
        console.print(Markdown(f"## {section.heading}\n\n{section.text}"))


def _print_answer(answer) -> None:  # noqa: ANN001
    console = _console()
    console.print(answer.text, markup=False)
    if answer.sources:
        refs = ", ".join(f"{s.kind}:{s.ref}" for s in answer.sources)
        console.print(f"[dim]sources ({answer.source}): {refs}[/dim]", markup=True, soft_wrap=True)


def ask(
    question: Annotated[str, typer.Argument(help="a question, in French or English")],
    as_json: Annotated[bool, typer.Option("--json", help="print the Answer JSON")] = False,
    no_llm: Annotated[bool, typer.Option("--no-llm", help="offline answer even if an LLM is configured")] = False,
) -> None:
    """Ask about pipelines (MLflow, Prefect) and the playbooks."""
    from agent.chat import ask as run_ask

    if not question.strip():
        raise _fail("empty question")
    answer = run_ask(question, playbooks=_playbooks(), use_llm=False if no_llm else None)
    if as_json:
        typer.echo(answer.to_json())
    else:
        _print_answer(answer)


def chat(
    no_llm: Annotated[bool, typer.Option("--no-llm", help="offline answers even if an LLM is configured")] = False,
) -> None:
    """Interactive questions; 'exit' or Ctrl-D to leave."""
    from agent.chat import ask as run_ask
    from agent.state import LiveState

    book = _playbooks()
    state = LiveState.from_env()
    console = _console()
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
        _print_answer(run_ask(question, state=state, playbooks=book, use_llm=False if no_llm else None))


def register(app: typer.Typer) -> None:
    app.command("check")(check)
    app.command("diagnose")(diagnose)
    app.command("playbook")(playbook)
    app.command("ask")(ask)
    app.command("chat")(chat)
