"""The batch runner: several runs one after another (every registry model with finetune_all.py's table for
`csas finetune-all`, a sweep's trials, the Python API's runs).

A failing model does not stop the others; a stop signal (SIGTERM/SIGUSR1) does, since the job is ending: the model
in training writes a checkpoint and the command exits with 75. Finished runs are skipped unless --overwrite is given
(one trained with other settings fails, naming them), and a run left unfinished (a failure, a time limit,
preemption) resumes from its newest checkpoint, so rerunning the same command trains only what is missing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from ..errors import CsasError, Interrupted, Preempted, SettingsError, describe_failure
from ..layout import run_state
from ..progress import say as stderr_line
from ..registry import MODEL_KEYS, REGISTRY, check_model_root, model_id_under, select_keys
from ..settings import FinetuneSettings, settings_from_table, shared_values, table_values
from .distributed import ProcessGroup, distributed_env

if TYPE_CHECKING:
    from ..config import Config
    from .run import RunResult


def model_defaults() -> dict[str, Any]:
    """The settings every model gets unless a flag says otherwise (what `csas finetune-all --help` shows)."""
    return shared_values(settings_from_table)


def all_settings(
    *,
    data: Path,
    output_dir: Path,
    only: Sequence[str] = (),
    skip: Sequence[str] = (),
    model_root: Path | None = None,
    overrides: Mapping[str, object] | None = None,
    config: Config | None = None,
) -> list[FinetuneSettings]:
    """Each model's settings: the finetune-all table, then the settings file's values (`config`: its models, in its
    order, when it lists some), then `overrides` (the flags given); --model-root's snapshot wins over a file's
    model_id."""
    from ..config import layered

    check_model_root(model_root)
    keys = select_keys(only, skip, (config.model_keys if config is not None else ()) or MODEL_KEYS)
    chosen = []
    for key in keys:
        values = layered(table_values(key), config, key, {"data": data, "output_dir": output_dir, **(overrides or {})})
        local = model_id_under(model_root, key)
        if local is not None or "model_id" not in values:
            values["model_id"] = local
        chosen.append(FinetuneSettings.create(which=key, **values))
    return chosen


def check_resume_no_op(resume: str | None) -> None:
    """finetune-all and sweep resume every unfinished run by themselves; `--resume auto` is accepted as the no-op it
    is (scripts pass it), a checkpoint path is not (it names one run's checkpoint)."""
    if resume is not None and resume != "auto":
        raise SettingsError(f"--resume {resume}: this command resumes every unfinished run from its newest checkpoint "
                            "by itself; only --resume auto is accepted (resume one run with csas finetune)")  # fmt: skip


def dry_run_all(settings_list: Sequence[FinetuneSettings]) -> tuple[list[dict], list[dict]]:
    """Every model's plan, in order; a model whose plan cannot be made gets {"which", "error"} instead."""
    from .run import dry_run_record

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
    run_dir: Path | None = None
    """The run's directory, whose record the closing tables read (a skipped run's numbers, the best evaluation)."""


def run_all(
    settings_list: Sequence[FinetuneSettings],
    *,
    run_one: Callable[[FinetuneSettings], RunResult] | None = None,
    check_finished: Callable[[FinetuneSettings], None] | None = None,
    say: Callable[[str], None] = stderr_line,
    model_root: Path | None = None,
) -> list[Outcome]:
    """Train each run in turn with `run_one` (default: training.run.run_finetune; csas sweep runs its trials here
    too); see the module docstring. A finished run is skipped after `check_finished` (default with the default
    runner: training.run.check_finished_run) finds it trained with these settings; one with others fails."""
    if run_one is None:
        # Here, not at the top: the CLI imports this module to build --help.
        from .run import check_finished_run, run_finetune

        run_one, check_finished = run_finetune, check_finished_run
    # Under torchrun every process walks the list, and each must take the same road (skip, resume, train): rank 0
    # reads each run directory and hands its answer on, so a node that sees the shared folder late (or not at all)
    # cannot train one run while the others train the next.
    group = ProcessGroup.join(*distributed_env(os.environ))
    outcomes: list[Outcome] = []
    for settings in settings_list:
        key = settings.output.run_name or settings.which
        overwrite = settings.output.overwrite
        state = group.from_main(lambda: run_state(settings.run_dir))
        if not overwrite and state == "finished":
            try:
                if check_finished is not None:
                    group.from_main(lambda: check_finished(settings))
            except CsasError as exc:
                message = f"{exc} (here --overwrite retrains every finished run of the command)"
                say(f"{key}: failed: {message}")
                outcomes.append(Outcome(key, "failed", message, run_dir=settings.run_dir))
                continue
            say(f"{key}: {settings.run_dir} holds a finished run, skipped (--overwrite retrains it)")
            outcomes.append(Outcome(key, "skipped", "already finished", run_dir=settings.run_dir))
            continue
        if state == "unfinished" and not overwrite:
            say(f"{key}: {settings.run_dir} holds an unfinished run; resuming it from its newest checkpoint")
            settings = settings.updated(resume="auto")
        if settings.model.model_id is None and model_root is not None:
            say(f"{key}: no {model_root / settings.which}; using the hub id {REGISTRY[settings.which].hub_id}")
        say(f"{key}: training into {settings.run_dir}")
        try:
            outcomes.append(Outcome(key, "ok", result=run_one(settings), run_dir=settings.run_dir))
        except KeyboardInterrupt:
            outcomes.append(Outcome(key, "interrupted", "Ctrl-C", run_dir=settings.run_dir))
            break
        except Preempted as exc:  # the job's time is nearly up (or Ctrl-C): starting the next model would be wrong
            say(f"{key}: {exc.what}; rerun the same command: it resumes unfinished runs by itself")
            status, why = ("interrupted", "Ctrl-C") if isinstance(exc, Interrupted) else ("stopped", "signal")
            outcomes.append(Outcome(key, status, f"{why}: checkpoint written, rerun with the same command",
                                    run_dir=settings.run_dir))
            break
        except Exception as exc:  # noqa: BLE001 - one model's failure, even a bug, must not cost the others their run
            logged, summary = describe_failure(exc)
            say(f"{key}: {logged}")
            outcomes.append(Outcome(key, "failed", summary, run_dir=settings.run_dir))
    return outcomes
