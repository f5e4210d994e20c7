"""`csas finetune-all`: every registry model with finetune_all.py's table, one after another (training/batch.py runs
them), then the closing table."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import batch_exit_code
from ..progress import fmt_loss, main_process, report_plans, say_main, status_cell, table_console
from ..registry import split_keys
from ..settings import given_caption
from ..training.batch import Outcome, all_settings, check_resume_no_op, dry_run_all, run_all


def run(values: Mapping[str, Any], *, only: Sequence[str] | None = None, skip: Sequence[str] | None = None,
        model_root: Path | None = None, dry_run: bool = False, resume: str | None = None) -> int:  # fmt: skip
    """Train (or with `dry_run` plan) every chosen model; `values`: the settings given for every model, over the
    table. The exit code: errors.batch_exit_code, or 2 for a failed plan."""
    check_resume_no_op(resume)
    values = dict(values)
    data, output_dir, config = values.pop("data"), values.pop("output_dir"), values.pop("config", None)
    if config is not None:
        from ..config import read_config

        config = read_config(config)
    settings_list = all_settings(data=data, output_dir=output_dir, only=split_keys(only), skip=split_keys(skip),
                                 model_root=model_root, overrides=values, config=config)  # fmt: skip
    if dry_run:
        return report_plans(*dry_run_all(settings_list), key="which")
    outcomes = run_all(settings_list, say=say_main, model_root=model_root)
    if main_process():
        print_summary(outcomes, values)
    return batch_exit_code([o.status for o in outcomes])


def print_summary(outcomes: Sequence[Outcome], given: Mapping[str, Any] | None = None) -> None:
    """The runs' closing table; `given`: the settings given for every model (the caption says them)."""
    from rich.table import Table


    table = Table("model", "status", "steps", "train loss", "eval loss", "time", "note", title="finetune-all",
                  caption=given_caption(given or {}, "model"))  # fmt: skip
    for o in outcomes:
        r = o.result
        table.add_row(
            o.key,
            status_cell(o.status),
            "-" if r is None else str(r.steps),
            fmt_loss(r.train_loss if r else None),
            fmt_loss(r.eval_loss if r else None),
            "-" if r is None else f"{r.seconds:.0f} s",
            o.message,
        )
    table_console(sys.stderr).print(table)


__all__ = ["print_summary", "run"]
