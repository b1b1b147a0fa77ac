"""``palier generate-training | check-dataset | data check``: training data, before training."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape

from core.terminal import print_table
from palier.cli.app import command, data_app, sub_app
from palier.cli.output import ExitCode, fail, failing_on, out

SECTION = "Data"


@command(SECTION, "generate-training", "Generate chat training examples (messages JSONL) from a document.")
def generate_training(
    document: Path = typer.Argument(..., help="markdown (.md) or JSON Lines (.jsonl) document"),
    output: Path = typer.Option(..., "--output", "-o", help="messages JSONL to write"),
    method: str = typer.Option("rule-based", help="rule-based | augmented | llm-based"),
    count: int = typer.Option(0, min=0, help="examples to keep (0 = all the document yields)"),
    split: bool = typer.Option(False, "--split", help="write _train/_val/_test files (~80/10/10, seeded)"),
    seed: int = typer.Option(42),
    language: str = typer.Option("fr", help="question templates: fr | en"),
    system: str = typer.Option(None, help="system prompt of every example"),
    llm_base_url: str = typer.Option(None, help="OpenAI-compatible endpoint (llm-based; or OPENAI_BASE_URL)"),
    llm_model: str = typer.Option(None, help="model name at that endpoint (or PALIER_LLM_MODEL)"),
) -> None:
    """Generate chat training examples from a document: rule-based, augmented or by an LLM."""
    from core.formats.jsonl import DatasetError
    from core.llm import LlmError
    from core.training_data import generate_training_file

    try:
        with failing_on(DatasetError, ValueError):
            result = generate_training_file(document, output, method, count, split, seed, language, system,
                                            llm_base_url, llm_model)
    except LlmError as exc:
        fail(str(exc), ExitCode.BAD_INPUT if exc.misconfigured else ExitCode.FAILED)
    for warning in result["report"]["warnings"]:
        typer.echo(f"warning: {warning}", err=True)
    for part, (path, n) in result["files"].items():
        typer.echo(f"{part}: {n} examples -> {path}")


@command(SECTION, "check-dataset", "Check a JSON Lines training set (sft messages or token_cls), every bad line "
                                   "by number. Before training an sft or token_cls pipeline.")
def check_dataset(
    path: Path = typer.Argument(..., help="JSON Lines dataset"),
    fmt: str = typer.Option("auto", "--format", help="messages | token_cls | auto"),
) -> None:
    """Validate an SFT (messages) or token-classification dataset; bad lines are listed by number.
    Exit 1 when the file has a problem, 2 when there is no such file."""
    from core.formats.jsonl import DatasetError
    from core.training_data import check_dataset as check

    if not path.is_file():
        fail(f"{path}: dataset not found")
    with failing_on(DatasetError, ValueError, code=ExitCode.FAILED):
        result = check(path, fmt)
    typer.echo(f"{path}: OK, {result['examples']} examples ({result['format']})"
               + (f", entities {result['entities']}" if "entities" in result else ""))


sub_app(SECTION, "data", data_app, "`data check MANIFEST.csv`: does every audio file of a speech manifest load? "
                                   "Before training an asr pipeline.")


@data_app.command("check", short_help="Check a speech manifest (CSV audio,sentence): every audio file loads? "
                                      "format, rate, duration. Before training an asr pipeline.")
def data_check(manifest: Path = typer.Argument(..., help="CSV with columns audio,sentence"),
               window: float = typer.Option(30.0, help="audio window in seconds (longer files get dropped)"),
               as_json: bool = typer.Option(False, "--json")) -> None:
    """Report for every file whether it loads (format, rate, channels, duration) and if not, why.
    Exit 1 when any file has a problem."""
    from core.training_data import as_dicts, check_manifest

    with failing_on(FileNotFoundError, ValueError):
        reports = check_manifest(manifest, window)
    bad = [r for r in reports if not r.ok]
    console = out()
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
        raise typer.Exit(ExitCode.FAILED)
