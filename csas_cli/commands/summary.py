"""The tables that close a finetune-all run and a sweep."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Sequence

from .finetune_all import Outcome

if TYPE_CHECKING:
    from .sweep import TrialResult


STATUS_STYLES = {"ok": "green", "skipped": "cyan", "failed": "red", "interrupted": "yellow", "stopped": "yellow",
                 "not run": "dim"}  # fmt: skip
"""How a run's, trial's or merge's status is coloured in the closing tables."""


def status_cell(status: str) -> str:
    return f"[{STATUS_STYLES.get(status, 'white')}]{status}[/]"


def fmt_loss(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def print_summary(outcomes: Sequence[Outcome]) -> None:
    from rich.table import Table

    from ..progress import table_console

    table = Table("model", "status", "steps", "train loss", "eval loss", "time", "note", title="finetune-all")
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


def print_sweep_table(results: Sequence["TrialResult"], metric: str) -> None:
    """The trials, best `metric` first; the best one in bold."""
    from rich.table import Table

    from ..progress import table_console
    from .sweep import rank_results, short_number

    ranked = rank_results(results, metric)
    caption = None
    if metric == "chrf" and all(r.chrf is None for r in results):
        caption = "no trial recorded a chrF score (eval_chrf): rows are in trial order"
    table = Table(
        "trial", "lr", "r", "alpha", "dropout", "train loss", "eval loss", "chrF", "steps", "time", "status",
        title=f"sweep: best {metric} first", caption=caption,
    )  # fmt: skip
    for i, r in enumerate(ranked):
        table.add_row(
            r.trial, short_number(r.lr), str(r.r), str(r.alpha), f"{r.dropout:g}", fmt_loss(r.train_loss),
            fmt_loss(r.eval_loss), "-" if r.chrf is None else f"{r.chrf:.2f}", "-" if r.steps is None else str(r.steps),
            "-" if r.seconds is None else f"{r.seconds:.0f} s", status_cell(r.status),
            style="bold" if i == 0 and r.metric(metric) is not None else None,
        )  # fmt: skip
    table_console(sys.stderr).print(table)
