"""The table that closes a finetune-all run."""

from __future__ import annotations

import sys
from typing import Sequence

from .finetune_all import Outcome


def fmt_loss(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def print_summary(outcomes: Sequence[Outcome]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("model", "status", "steps", "train loss", "eval loss", "time", "note", title="finetune-all")
    styles = {"ok": "green", "skipped": "cyan", "failed": "red", "interrupted": "yellow"}
    for o in outcomes:
        r = o.result
        table.add_row(
            o.key,
            f"[{styles[o.status]}]{o.status}[/]",
            "-" if r is None else str(r.steps),
            fmt_loss(r.train_loss if r else None),
            fmt_loss(r.eval_loss if r else None),
            "-" if r is None else f"{r.seconds:.0f} s",
            o.message,
        )
    Console(file=sys.stderr).print(table)
