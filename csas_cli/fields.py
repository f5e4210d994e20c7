"""What a settings field is: its default and the facts every consumer reads about it, declared with `setting`.

A field's metadata says its `--help` text, its flag name, its bounds, whether run.json records it, whether a resumed
run must keep it, whether the settings file may hold it and which commands take it; the CLI's options (options.py),
the API's keyword arguments (api.py), the settings file (config.py) and the resume check (training/resume.py) are
derived from it, so a new setting is one field in settings.py and nothing else.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import field, fields
from typing import Any, Mapping

from .errors import SettingsError

REQUIRED = dataclasses.MISSING


FINETUNE, FINETUNE_ALL, SWEEP, BENCH = "finetune", "finetune-all", "sweep", "bench"
TRAINING = frozenset({FINETUNE, FINETUNE_ALL, SWEEP})
"""The commands that train: a run's setting is an option of each, unless its field says otherwise."""
MEASURED = TRAINING | {BENCH}
"""The training commands and bench: what shapes a training step is an option of each."""
ONE_MODEL = frozenset({FINETUNE, SWEEP, BENCH})
"""The commands of one model: its key, base and revision (finetune-all chooses with --only and --model-root)."""
UNSWEPT = frozenset({FINETUNE, FINETUNE_ALL})
"""The training commands but sweep, whose grid sets the value (--lrs, --ranks, --dropouts)."""
MATCH, WITH_CHRF, WITH_GLOSSARY = "match", "with_chrf", "with_glossary"
"""When a resumed run must have the value the run on disk recorded (training/resume.py): always, when either run
scores chrF, when the glossary counts (--term-annotation or --eval-chrf)."""


def setting(
    default: Any = REQUIRED,
    help: str = "",
    *,
    flag: str | None = None,
    short: str | None = None,
    inverted: bool = False,
    at_least: int | None = None,
    fraction: bool = False,
    positive: bool = False,
    record: bool = True,
    resume: str | None = None,
    in_file: bool = True,
    per_model: bool = False,
    commands: frozenset[str] = TRAINING,
) -> Any:
    """A settings field: its default and every fact the CLI, the API, the settings file, the checks, run.json and
    the resume check read about it, so that a new setting is its field and nothing else.

    help: the `csas finetune --help` text. flag: the CLI name when it is not the field's (underscores; both spellings
    are accepted). short: a one-letter spelling too (`-m`).
    inverted: the CLI flag sets the field to False (`--no-qlora`). at_least / fraction ([0, 1)) /
    positive (finite, > 0): the bounds `check_bounds` enforces, None always allowed. record: written into the plan
    record (run.json, --dry-run); False for what only concerns one invocation. resume: MATCH, WITH_CHRF or
    WITH_GLOSSARY when a resumed run must keep the recorded value (a run.json from before the setting existed ran
    with its default); None when it may change. in_file: the settings file may hold it (False: each invocation says
    it for itself). per_model: the file holds it in [models.KEY] only. commands: the commands that take it as an
    option.
    """
    metadata = {"help": help, "flag": flag, "short": short, "inverted": inverted, "at_least": at_least,
                "fraction": fraction,
                "positive": positive, "record": record, "resume": resume, "in_file": in_file,
                "per_model": per_model, "commands": frozenset(commands)}  # fmt: skip
    if isinstance(default, (list, dict, set)):
        raise TypeError("settings defaults must be immutable")
    return field(default=default, metadata=metadata)


def flag_name(f: dataclasses.Field) -> str:
    """The CLI flag of a field, underscore spelling: `learning_rate` -> `lr`."""
    return f.metadata.get("flag") or f.name


def dashed(f: dataclasses.Field) -> str:
    """The dashed CLI flag of a field: `learning_rate` -> `--lr`."""
    return "--" + flag_name(f).replace("_", "-")


def describe_default(value: Any) -> str:
    """A value as --help and the summaries show it inside a sentence: on/off, 2e-4, q_proj,k_proj,v_proj."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def switch_spelling(f: dataclasses.Field, value: bool) -> str:
    """How the command line says a switch's value: `--bf16` / `--no-bf16`; an inverted field's flag (`--no-qlora`)
    says False, so True is `--qlora`."""
    spelled = dashed(f)
    if f.metadata["inverted"]:
        return spelled if not value else "--" + spelled.removeprefix("--no-")
    return spelled if value else "--no-" + spelled.removeprefix("--")


def spelled(f: dataclasses.Field, value: Any) -> str:
    """A setting's value as the command line gives it: `--lr 0.001`, `--no-qlora`."""
    return switch_spelling(f, value) if isinstance(value, bool) else f"{dashed(f)} {describe_default(value)}"


def out_of_bounds(m: Mapping[str, Any], value: Any) -> str | None:
    """What is wrong with `value` by a field's declared bounds (its metadata `m`): "must be at least 1", or None."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if m.get("at_least") is not None and value < m["at_least"]:
        return f"must be at least {m['at_least']}"
    if m.get("fraction") and not 0.0 <= value < 1.0:
        return "must be in [0, 1)"
    if m.get("positive") and not (math.isfinite(value) and value > 0):
        return "must be a positive number"
    return None


def check_bounds(group: Any) -> None:
    """Enforce the bounds declared in each field's metadata; the message names the flag."""
    for f in fields(group):
        value = getattr(group, f.name)
        wrong = out_of_bounds(f.metadata, value)
        if wrong is not None:
            raise SettingsError(f"{dashed(f)} {wrong}, got {value}")
