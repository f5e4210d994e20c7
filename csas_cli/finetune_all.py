"""`csas finetune-all`: every registry model with finetune_all.py's table, one after another.

A failing model does not stop the others; a stop signal (SIGTERM/SIGUSR1) does, since the job is ending: the model
in training writes a checkpoint and the command exits with 75. Finished runs are skipped unless --overwrite is given,
and a run left unfinished (a failure, a time limit, preemption) resumes from its newest checkpoint, so rerunning the
same command trains only what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

from .errors import CsasError, SettingsError, describe_failure
from .outputs import run_state
from .preemption import Preempted
from .registry import MODEL_KEYS, REGISTRY
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


def check_model_root(model_root: Path | None) -> None:
    if model_root is not None and not model_root.is_dir():
        raise SettingsError(f"--model-root: {model_root} is not a directory")


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
    check_model_root(model_root)
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


def dry_run_all(settings_list: Sequence[FinetuneSettings]) -> tuple[list[dict], list[dict]]:
    """Every model's plan, in order; a model whose plan cannot be made gets {"which", "error"} instead."""
    from .train import dry_run_record

    records: list[dict] = []
    for settings in settings_list:
        try:
            records.append(dry_run_record(settings))
        except CsasError as exc:
            records.append({"which": settings.which, "error": str(exc), "exception": exc})
    failed = [r for r in records if "error" in r]
    if failed and len(failed) == len(records) and len({r["error"] for r in failed}) == 1:
        raise failed[0]["exception"]  # one problem for every model (a missing data file): say it once
    for r in failed:
        del r["exception"]
    return records, failed


@dataclass(frozen=True)
class Outcome:
    key: str
    """The run's name: its registry key, or its trial name in a sweep."""
    status: str
    """ok, skipped (a finished run was already there), failed, interrupted (Ctrl-C; the rest did not run) or stopped
    (SIGTERM/SIGUSR1: a checkpoint was written and the rest did not run, so the requeued job resumes right there)."""
    message: str = ""
    result: RunResult | None = None


def run_all(
    settings_list: Sequence[FinetuneSettings],
    *,
    run_one: Callable[[FinetuneSettings], RunResult] = run_finetune,
    say: Callable[[str], None] = print,
    model_root: Path | None = None,
) -> list[Outcome]:
    """Train each run in turn (csas sweep runs its trials here too); see the module docstring."""
    outcomes = []
    for settings in settings_list:
        key = settings.run_name or settings.which
        state = run_state(settings.run_dir)
        if not settings.overwrite and state == "finished":
            say(f"{key}: {settings.run_dir} holds a finished run, skipped (--overwrite retrains it)")
            outcomes.append(Outcome(key, "skipped", "already finished"))
            continue
        if state == "unfinished" and not settings.overwrite:
            say(f"{key}: {settings.run_dir} holds an unfinished run; resuming it from its newest checkpoint")
            settings = replace(settings, resume="auto")
        if settings.model_id is None and model_root is not None:
            say(f"{key}: no {model_root / settings.which}; using the hub id {REGISTRY[settings.which].hub_id}")
        say(f"{key}: training into {settings.run_dir}")
        try:
            outcomes.append(Outcome(key, "ok", result=run_one(settings)))
        except KeyboardInterrupt:
            outcomes.append(Outcome(key, "interrupted", "Ctrl-C"))
            break
        except Preempted as exc:  # the job's time is nearly up: starting the next model would only waste it
            say(f"{key}: {exc}")
            outcomes.append(Outcome(key, "stopped", "signal: checkpoint written, rerun with the same command"))
            break
        except Exception as exc:  # noqa: BLE001 - one model's failure, even a bug, must not cost the others their run
            logged, summary = describe_failure(exc)
            say(f"{key}: {logged}")
            outcomes.append(Outcome(key, "failed", summary))
    return outcomes
