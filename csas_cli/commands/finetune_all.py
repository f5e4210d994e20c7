"""`csas finetune-all`: every registry model with finetune_all.py's table, one after another (training/batch.py runs
them), then the closing table: each run's last evaluation and its best (the adapter in best/, what merge-all merges by
default), best chrF first when every run recorded one."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import batch_exit_code
from ..layout import Evaluation, RunRecord
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


@dataclass(frozen=True)
class SummaryRow:
    """One run's numbers in the closing table: this invocation's result, or a skipped run's record; its last and
    best evaluation from the run directory."""

    outcome: Outcome
    steps: int | None = None
    train_loss: float | None = None
    eval_loss: float | None = None
    """The last evaluation's."""
    eval_chrf: float | None = None
    """The last evaluation's (with --eval-chrf)."""
    best: Evaluation | None = None
    seconds: float | None = None

    @property
    def chrf(self) -> float | None:
        """The chrF of the adapter merge-all takes by default: the best evaluation's, else the last."""
        return self.best.eval_chrf if self.best is not None and self.best.eval_chrf is not None else self.eval_chrf


def summary_row(o: Outcome) -> SummaryRow:
    r = o.result
    run_dir = o.run_dir or (Path(r.run_dir) if r is not None else None)
    if o.status not in ("ok", "skipped") or run_dir is None:
        return SummaryRow(o)
    record = RunRecord.read(run_dir)
    if r is None:
        return SummaryRow(o, record.steps, record.train_loss, record.eval_loss, record.eval_chrf(logged=True),
                          record.best, record.seconds_total)  # fmt: skip
    return SummaryRow(o, r.steps, r.train_loss, r.eval_loss, record.eval_chrf(logged=True), record.best, r.seconds)


def ranked_rows(outcomes: Sequence[Outcome]) -> tuple[list[SummaryRow], bool]:
    """The table's rows: by chrF, best first, when every finished run has one (the best evaluation's, else the
    last), the others after them in their order; else in the runs' order. True when sorted."""
    rows = [summary_row(o) for o in outcomes]
    finished = [row for row in rows if row.outcome.status in ("ok", "skipped")]
    if len(finished) < 2 or any(row.chrf is None for row in finished):
        return rows, False
    ranked = sorted(finished, key=lambda row: -(row.chrf or 0.0))
    return ranked + [row for row in rows if row.outcome.status not in ("ok", "skipped")], True


def print_summary(outcomes: Sequence[Outcome], given: Mapping[str, Any] | None = None) -> None:
    """The runs' closing table: each run's last and best evaluation, by chrF when every run has one; `given`: the
    settings given for every model (the caption says them)."""
    from rich.table import Table

    rows, by_chrf = ranked_rows(outcomes)
    chrf = any(row.eval_chrf is not None or (row.best and row.best.eval_chrf is not None) for row in rows)
    title = "finetune-all: best chrF first" if by_chrf else "finetune-all"
    table = Table("model", "status", "steps", "train loss", "last eval loss", *(["last chrF"] if chrf else []),
                  "best evaluation", "time", "note", title=title,
                  caption=given_caption(given or {}, "model"))  # fmt: skip
    for row in rows:
        o = row.outcome
        table.add_row(
            o.key,
            status_cell(o.status),
            "-" if row.steps is None else str(row.steps),
            fmt_loss(row.train_loss),
            fmt_loss(row.eval_loss),
            *(["-" if row.eval_chrf is None else f"{row.eval_chrf:.2f}"] if chrf else []),
            "-" if row.best is None else row.best.describe(),
            "-" if row.seconds is None else f"{row.seconds:.0f} s",
            o.message,
        )
    table_console(sys.stderr).print(table)


__all__ = ["SummaryRow", "print_summary", "ranked_rows", "run"]
