"""What every palier command shares to talk to the user: the consoles, the exit codes, and the
one way to fail (a single ``error: ...`` line on stderr, secrets redacted, then the exit code).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from core.terminal import console as terminal_console


class ExitCode(IntEnum):
    """palier's exit statuses, the same for every command."""

    OK = 0
    FAILED = 1  # the command ran and the answer is no: a check found problems, a run or an export failed
    BAD_INPUT = 2  # the command could not start: a missing or invalid file, option or argument
    INTERRUPTED = 130  # stopped by SIGINT (Ctrl-C); a rerun resumes
    TERMINATED = 143  # stopped by SIGTERM; a rerun resumes


EXIT_CODES_HELP = ("Exit codes: 0 ok; 1 the command ran and found a problem (a check failed, a preflight blocked, "
                   "a run or export failed, a service is down); 2 bad input (a missing or invalid file, option or "
                   "argument); 130 / 143 stopped by Ctrl-C / SIGTERM (run it again to resume).")


def out() -> Console:
    """The console for results (stdout), laid out the same whatever the terminal width."""
    return terminal_console()


def err() -> Console:
    """The console for errors, warnings and notes (stderr)."""
    return terminal_console(stderr=True)


def fail(message: str, code: ExitCode = ExitCode.BAD_INPUT) -> NoReturn:
    """Print ``error: MESSAGE`` (secrets redacted, never wrapped) on stderr and end the command."""
    from agent.base.redact import redact

    err().print(f"[bold red]error:[/] {escape(redact(message))}")
    raise typer.Exit(code)


@contextmanager
def failing_on(*errors: type[BaseException], code: ExitCode = ExitCode.BAD_INPUT) -> Iterator[None]:
    """Turn the library's own exceptions (which name the file, field or sample) into ``fail``."""
    try:
        yield
    except errors as exc:
        fail(str(exc), code)
