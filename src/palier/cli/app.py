"""The ``palier`` Typer app, its ``data`` sub-app, and ``command``: how every command is added.

``palier --help`` lists the commands flat (the names users type), under one heading per group.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import click
import typer
from typer.core import TyperGroup

from palier.cli.output import EXIT_CODES_HELP

HELP_WIDTH = 100  # help is laid out for this width whatever the terminal's
SECTIONS: dict[str, list[str]] = {}  # group heading -> command names, in the order they were added


class SectionedGroup(TyperGroup):
    """Click group whose help lists the commands under their group's heading."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        listed = set()
        for heading, names in SECTIONS.items():
            rows = [(name, self.commands[name].get_short_help_str(HELP_WIDTH)) for name in names
                    if name in self.commands and not self.commands[name].hidden]
            listed.update(name for name, _ in rows)
            if rows:
                with formatter.section(heading):
                    formatter.write_dl(rows)
        rest = [(name, cmd.get_short_help_str(HELP_WIDTH)) for name, cmd in self.commands.items()
                if name not in listed and not cmd.hidden]
        if rest:
            with formatter.section("Commands"):
                formatter.write_dl(rest)


# rich_markup_mode=None: usage errors print as plain lines, not in panels wrapped to the terminal.
app = typer.Typer(help="Progressive fine-tuning pipelines, run by Prefect, tracked in MLflow.",
                  epilog=EXIT_CODES_HELP, cls=SectionedGroup, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  context_settings={"terminal_width": HELP_WIDTH, "max_content_width": HELP_WIDTH})
data_app = typer.Typer(help="Check data before training.", no_args_is_help=True, rich_markup_mode=None)


def command(section: str, name: str, short_help: str) -> Callable[[Callable], Callable]:
    """Add a top-level command under the help heading ``section``; ``short_help`` is its line in
    ``palier --help`` (what it does, and for checks what it checks and when to use it)."""
    SECTIONS.setdefault(section, []).append(name)
    return app.command(name, short_help=short_help)


def use_running_services() -> None:
    """Point clients at the services `palier up` started, unless the user chose others."""
    from palier.services import client_env, read_state

    state = read_state()
    if state.get("mlflow") and state.get("prefect"):
        for key, value in client_env(state).items():
            os.environ.setdefault(key, value)


@app.callback()
def _main() -> None:
    """Every command talks to the services `palier up` started unless told otherwise."""
    use_running_services()


def sub_app(section: str, name: str, group: typer.Typer, short_help: str) -> None:
    """Add a group of subcommands (``palier NAME ...``) under the help heading ``section``."""
    SECTIONS.setdefault(section, []).append(name)
    app.add_typer(group, name=name, short_help=short_help)
