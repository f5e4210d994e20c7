"""One exception family for every failure a user can fix.

The CLI turns a CsasError into a one-line message and a non-zero exit code; anything else is a bug and keeps its
traceback.
"""


def describe_failure(exc: Exception) -> tuple[str, str]:
    """How a failed run of a batch (finetune-all, sweep, merge-all) is reported: (what to log, its one-line summary).

    A CsasError is its message; anything else is a bug, logged with its traceback (call this inside `except`).
    """
    if isinstance(exc, CsasError):
        return f"failed: {exc}", str(exc)
    import traceback

    return f"failed with an unexpected error:\n{traceback.format_exc()}", f"{type(exc).__name__}: {exc}"


class CsasError(Exception):
    """A failure caused by input, settings or environment, reported to the user in one line."""

    exit_code = 2
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

    exit_code = 3
