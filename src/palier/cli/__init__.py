"""palier's command line: ``app`` (the ``palier`` entry point) with its commands in groups.

Each group module parses arguments, calls the library and prints; ``output`` holds the consoles,
the exit codes and the one way to fail; ``app`` the Typer app and how a command is added.

    service_commands   up, down, status
    pipeline_commands  validate, run, summary, watch
    agent_commands     check, diagnose, playbook, ask, chat
    data_commands      generate-training, check-dataset, data check
    model_commands     query, export, import-ct2, evaluate
"""

from __future__ import annotations

# Imported in the order `palier --help` lists the groups: importing a group adds its commands.
from palier.cli import service_commands  # noqa: I001
from palier.cli import pipeline_commands
from palier.cli import agent_commands
from palier.cli import data_commands
from palier.cli import model_commands
from palier.cli.app import app
from palier.cli.output import ExitCode

__all__ = ["ExitCode", "app", "main"]
GROUPS = (service_commands, pipeline_commands, agent_commands, data_commands, model_commands)


def main() -> None:  # pragma: no cover
    app()
