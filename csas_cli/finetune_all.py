"""`csas finetune-all`: every registry model with finetune_all.py's table, one after another.

A failing model does not stop the others; finished runs are skipped unless --overwrite is given, and a run left
unfinished by a failure starts over, so rerunning the same command after a failure trains only what is missing.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

from .errors import CsasError, SettingsError
from .outputs import run_state
from .registry import MODEL_KEYS
from .settings import FinetuneSettings, settings_from_table
from .train import RunResult, run_finetune


def select_keys(only: Sequence[str] = (), skip: Sequence[str] = ()) -> list[str]:
    """Registry keys to run, in the table's order; unknown keys are a flag error."""
    for option, keys in (("--only", only), ("--skip", skip)):
        unknown = [k for k in keys if k not in MODEL_KEYS]
        if unknown:
            raise SettingsError(f"{option}: unknown model {', '.join(unknown)}; choose from {', '.join(MODEL_KEYS)}")
    chosen = [k for k in MODEL_KEYS if (not only or k in only) and k not in skip]
    if not chosen:
        raise SettingsError("--only/--skip leave no model to train")
    return chosen


def model_id_under(model_root: Path | None, key: str) -> str | None:
    """`--model-root DIR`: DIR/<key> when it exists (a local snapshot), else the registry's hub id."""
    if model_root is None:
        return None
    candidate = model_root / key
    return str(candidate) if candidate.is_dir() else None


def all_settings(
    *,
    data: Path,
    output_dir: Path,
    only: Sequence[str] = (),
    skip: Sequence[str] = (),
    model_root: Path | None = None,
    overrides: Mapping[str, object] | None = None,
) -> list[FinetuneSettings]:
    if model_root is not None and not model_root.is_dir():
        raise SettingsError(f"--model-root: {model_root} is not a directory")
    return [
        settings_from_table(
            key,
            data=data,
            output_dir=output_dir,
            model_id=model_id_under(model_root, key),
            **dict(overrides or {}),
        )
        for key in select_keys(only, skip)
    ]


@dataclass(frozen=True)
class Outcome:
    key: str
    status: str
    """ok, skipped (a finished run was already there) or failed."""
    message: str = ""
    result: RunResult | None = None


def run_all(
    settings_list: Sequence[FinetuneSettings],
    *,
    run_one: Callable[[FinetuneSettings], RunResult] = run_finetune,
    say: Callable[[str], None] = print,
) -> list[Outcome]:
    outcomes = []
    for settings in settings_list:
        key = settings.which
        state = run_state(settings.run_dir)
        if not settings.overwrite and state == "finished":
            say(f"{key}: {settings.run_dir} holds a finished run, skipped (--overwrite retrains it)")
            outcomes.append(Outcome(key, "skipped", "already finished"))
            continue
        if state == "unfinished":
            say(f"{key}: {settings.run_dir} holds an unfinished run; starting it over")
            settings = replace(settings, overwrite=True)
        say(f"{key}: training into {settings.run_dir}")
        try:
            outcomes.append(Outcome(key, "ok", result=run_one(settings)))
        except CsasError as exc:
            say(f"{key}: failed: {exc}")
            outcomes.append(Outcome(key, "failed", str(exc)))
        except Exception as exc:  # noqa: BLE001 - one model's bug must not cost the others their run
            say(f"{key}: failed with an unexpected error:\n{traceback.format_exc()}")
            outcomes.append(Outcome(key, "failed", f"{type(exc).__name__}: {exc}"))
    return outcomes
