"""The terminal: rich consoles for results and errors, and the one way a command reports a user
error (a message as written, no traceback, an exit status). Shared by the CLI and the commands
families add to it (``justask ask <family>``)."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)

# Exit status for a failure that a rerun repeats (bad params, a failed data check, damaged input):
# the Prefect flow does not retry it. Any other non-zero status (a crash, a killed worker, an
# OSError) may be transient and is retried.
DETERMINISTIC_EXIT = 2


def fail(title: str, error: Exception | str, code: int = DETERMINISTIC_EXIT) -> NoReturn:
    """Print ``title`` and the error's message as written (no markup, no added line breaks); exit ``code``."""
    err_console.print(f"[red]{title}[/]")
    err_console.print(str(error), markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code) from None


def load_params_or_fail(path: Path):
    """``justask.config.load_params(path)``, or a message and exit status 2."""
    from justask.config import load_params
    from justask.errors import ParamsError

    try:
        return load_params(path)
    except ParamsError as e:
        fail("invalid parameters", e)
