"""One exception family for every failure a user can fix, and the exit codes csas ends with.

The CLI turns a CsasError into a one-line message and its exit code; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

EXIT_CODES: Mapping[str, int] = MappingProxyType(
    {
        "ok": 0,
        "failed": 1,
        "usage": 2,
        "training": 3,
        "stopped": 75,
        "interrupted": 130,
    }
)
"""Every exit code, by what it means (the README's table):

- ok: done.
- failed: finetune-all, sweep or merge-all had a model, trial or run fail (the others ran).
- usage: a bad flag, data file, model or output directory.
- training: training cannot go on (a non-finite loss, out of memory).
- stopped: SIGTERM/SIGUSR1 stopped training after a checkpoint; EX_TEMPFAIL, so a requeue script can tell it from a
  crash and run the same command with --resume auto.
- interrupted: Ctrl-C (128 + SIGINT, as shells report it); during training after a checkpoint, like stopped.
"""

BATCH_EXIT_ORDER = ("stopped", "interrupted", "failed")
"""How a command of several runs exits: the first of these statuses that any run has, else 0."""


def batch_exit_code(statuses: list[str]) -> int:
    """The exit code of finetune-all, sweep or merge-all from its runs' statuses (see BATCH_EXIT_ORDER)."""
    for status in BATCH_EXIT_ORDER:
        if status in statuses:
            return EXIT_CODES[status]
    return EXIT_CODES["ok"]


def describe_failure(exc: Exception) -> tuple[str, str]:
    """How a failed run of a batch (finetune-all, sweep, merge-all) is reported: (what to log, its one-line summary).

    A CsasError is its message; anything else is a bug, logged with its traceback (call this inside `except`).
    """
    if isinstance(exc, CsasError):
        return f"failed: {exc}", str(exc)
    import traceback

    return f"failed with an unexpected error:\n{traceback.format_exc()}", f"{type(exc).__name__}: {exc}"


def one_line(exc: BaseException) -> str:
    """An exception's message on one line, cut at 300 characters: what a one-line error quotes of it."""
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


class CsasError(Exception):
    """A failure caused by input, settings or environment, reported to the user in one line."""

    exit_code = EXIT_CODES["usage"]
    label = "error"
    """How the one-line message is introduced: `csas: <label>: <message>`."""


class DataError(CsasError):
    """The training data file cannot be used; the message names the file and line."""


class SettingsError(CsasError):
    """A flag or a combination of flags is invalid; the message names the flag."""


class OutputError(CsasError):
    """The output directory cannot be written as asked (for example it holds a finished run)."""


class ModelError(CsasError):
    """The base model or tokenizer cannot be loaded or does not fit the chosen registry key."""


class HardwareError(CsasError):
    """The requested precision or device is not available on this machine."""


class TrainingError(CsasError):
    """Training cannot go on (a non-finite loss, out of memory); the message names the step."""

    exit_code = EXIT_CODES["training"]


class Preempted(CsasError):
    """Training stopped on a signal after writing a checkpoint (or before its first step, with nothing to save).

    `what` says what happened; the message adds `hint`, the command that continues (finetune-all and sweep give
    their own: they resume by themselves)."""

    exit_code = EXIT_CODES["stopped"]
    label = "stopped"
    RESUME_HINT = "run the same command with --resume auto"

    def __init__(self, what: str, hint: str | None = RESUME_HINT) -> None:
        super().__init__(what if hint is None else f"{what}; {hint}")
        self.what = what


class Interrupted(Preempted):
    """Training stopped on Ctrl-C after writing a checkpoint, as after SIGTERM, with the exit code of an interrupt."""

    exit_code = EXIT_CODES["interrupted"]
    label = "interrupted"
