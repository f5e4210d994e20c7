"""How a command ends on the command line: a domain error as one line and its exit code, an exit code returned by a
command, and whether a progress bar is drawn. cli.py's commands use these; nothing else does."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator

import typer

from .errors import EXIT_CODES, CsasError


def fail(message: str, code: int = EXIT_CODES["usage"], label: str = "error") -> typer.Exit:
    sys.stderr.write(f"csas: {label}: {message}\n")
    return typer.Exit(code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Domain errors become one line on stderr and a non-zero exit; anything else is a bug and keeps its traceback."""
    try:
        yield
    except CsasError as exc:
        raise fail(" ".join(str(exc).split()), exc.exit_code, exc.label) from None
    except KeyboardInterrupt:
        raise fail("interrupted", EXIT_CODES["interrupted"]) from None


def exit_with(code: int | None) -> None:
    """End a command with the exit code its call returned (0 or None: success)."""
    if code:
        raise typer.Exit(code)


def bar() -> bool:
    """Whether a progress bar is drawn (stderr is a terminal)."""
    from .progress import use_progress_bar

    return use_progress_bar(False, sys.stderr)


__all__ = ["bar", "exit_with", "fail", "user_errors"]
