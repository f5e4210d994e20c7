"""`csas sweep`: a grid of learning rates x LoRA ranks x dropouts for one model (training/sweep.py makes and runs
the trials), then the ranked table (each trial's last and best evaluation; by chrF when every trial has one, unless
--metric says otherwise) and sweep_results.csv."""

from __future__ import annotations

import sys
from typing import Any, Mapping, Sequence

from ..errors import batch_exit_code
from ..layout import Evaluation
from ..progress import fmt_loss, main_process, report_plans, say_main, status_cell, table_console
from ..settings import given_caption
from ..training.batch import check_resume_no_op
from ..training.sweep import (
    TrialResult,
    check_metric,
    default_metric,
    dry_run_trials,
    parse_dropouts,
    parse_lrs,
    parse_ranks,
    rank_results,
    run_sweep,
    short_number,
    sweep_settings,
)


def run(values: Mapping[str, Any], *, lrs: str | None = None, ranks: str | None = None, dropouts: str | None = None,
        metric: str | None = None, dry_run: bool = False, resume: str | None = None) -> int:  # fmt: skip
    """Train (or with `dry_run` plan) the grid's trials; `values`: the settings given for every trial, over the
    table; `metric`: what the table ranks by (None: chrf where every trial has one, else eval_loss). The exit code:
    errors.batch_exit_code, or 2 for a failed plan."""
    check_resume_no_op(resume)
    if metric is not None:
        check_metric(metric, eval_chrf=bool(values.get("eval_chrf")))
    values = dict(values)
    which, data, output_dir = values.pop("which"), values.pop("data"), values.pop("output_dir")
    trials = sweep_settings(
        which, data=data, output_dir=output_dir,
        lrs=None if lrs is None else parse_lrs(lrs),
        ranks=None if ranks is None else parse_ranks(ranks),
        dropouts=None if dropouts is None else parse_dropouts(dropouts),
        lora_alpha=values.pop("lora_alpha", None),
        overrides=values,
    )  # fmt: skip
    if dry_run:
        return report_plans(*dry_run_trials(trials), key="trial")
    results, path = run_sweep(trials, say=say_main, write_results=main_process())
    if main_process():
        print_sweep_table(results, metric or default_metric(results), values)
        sys.stdout.write(f"results: {path}\n")
    return batch_exit_code([r.status for r in results])


def print_sweep_table(results: Sequence[TrialResult], metric: str, given: Mapping[str, Any] | None = None) -> None:
    """The trials, best `metric` first (their best evaluations'), each with its last and its best evaluation; the
    best one in bold; `given`: the settings given for every trial."""
    from rich.table import Table


    ranked = rank_results(results, metric)
    captions = [given_caption(given or {}, "trial")]
    if metric == "chrf" and all(r.chrf is None for r in results):
        captions.append("no trial recorded a chrF score (eval_chrf): rows are in trial order")
    caption = "; ".join(c for c in captions if c) or None
    table = Table(
        "trial", "lr", "r", "alpha", "dropout", "train loss", "last eval loss", "last chrF", "best evaluation",
        "steps", "time", "status", title=f"sweep: best {metric} first", caption=caption,
    )  # fmt: skip
    for i, r in enumerate(ranked):
        best = None if r.best_step is None else Evaluation(r.best_step, r.best_eval_loss, r.best_chrf,
                                                            "eval_chrf" if metric == "chrf" else "eval_loss")
        table.add_row(
            r.trial, short_number(r.lr), str(r.r), str(r.alpha), f"{r.dropout:g}", fmt_loss(r.train_loss),
            fmt_loss(r.eval_loss), "-" if r.chrf is None else f"{r.chrf:.2f}", "-" if best is None else best.describe(),
            "-" if r.steps is None else str(r.steps), "-" if r.seconds is None else f"{r.seconds:.0f} s",
            status_cell(r.status),
            style="bold" if i == 0 and r.metric(metric) is not None else None,
        )  # fmt: skip
    table_console(sys.stderr).print(table)


__all__ = ["print_sweep_table", "run"]
