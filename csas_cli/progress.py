"""Progress reporting: a rich bar for people at a terminal, plain log lines for batch jobs; both feed train.log."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, TextIO


def use_progress_bar(disable_tqdm: bool, stream: Any = None) -> bool:
    stream = stream if stream is not None else sys.stdout
    return not disable_tqdm and hasattr(stream, "isatty") and stream.isatty()


def format_step(step: int, total: int, record: dict[str, Any]) -> str:
    parts = [f"step {step}/{total}"]
    if "loss" in record:
        parts.append(f"loss {record['loss']:.4f}")
    if "eval_loss" in record:
        parts.append(f"eval_loss {record['eval_loss']:.4f}")
    if "eval_chrf" in record:
        parts.append(f"eval_chrf {record['eval_chrf']:.2f}")
    if "learning_rate" in record:
        parts.append(f"lr {record['learning_rate']:.3g}")
    if "samples_per_second" in record:
        parts.append(f"{record['samples_per_second']:.1f} samples/s")
    return "  ".join(parts)


class Reporter:
    """Writes log lines to the console (stderr, so stdout stays for machine-readable output) and to train.log.

    `quiet`: say nothing at all (the processes other than rank 0 under torchrun, so the console reads as one run).
    """

    def __init__(
        self, log_path: Path | None, bar: bool, console_stream: TextIO | None = None, quiet: bool = False
    ) -> None:
        from rich.console import Console

        self.quiet = quiet
        self.console = Console(file=console_stream or sys.stderr, highlight=False, soft_wrap=True)
        self._log: TextIO | None = open(log_path, "a", encoding="utf-8") if log_path else None
        self._bar_wanted = bar and not quiet
        self._progress: Any = None
        self._task: Any = None
        self._total = 0

    def line(self, message: str) -> None:
        if self.quiet:
            return
        stamped = f"{time.strftime('%H:%M:%S')} {message}"
        if self._progress is not None:
            self._progress.console.print(stamped, markup=False)
        else:
            self.console.print(stamped, markup=False)
        if self._log is not None:
            self._log.write(stamped + "\n")
            self._log.flush()

    def start(self, total_steps: int) -> None:
        self._total = total_steps
        if not self._bar_wanted:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("[bold]training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeRemainingColumn(),
            console=self.console,
        )
        self._task = self._progress.add_task("train", total=total_steps, stats="")
        self._progress.start()

    def step(self, step: int, stats: dict[str, Any]) -> None:
        """Called every optimizer step; only the bar moves (log lines come through `metrics`)."""
        if self._progress is not None:
            text = f"loss {stats['loss']:.4f}  lr {stats['learning_rate']:.2e}  {stats['samples_per_second']:.1f} samples/s"
            self._progress.update(self._task, completed=step, stats=text)

    def metrics(self, step: int, record: dict[str, Any]) -> None:
        self.line(format_step(step, self._total, record))

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        if self._log is not None:
            self._log.close()
            self._log = None
