"""What csas tells the user while it works, on stderr (stdout is kept for machine-readable output).

`say` is the one channel of library messages (a skipped model, a damaged checkpoint, a cut input line); `Reporter`
is a training run's: stamped log lines, also copied into train.log, and at a terminal a progress bar.

Called from Python (csas_cli.api), both go to the `csas` logger instead (`to_logging`): a library leaves it to its
caller what is shown, and draws no progress bar.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping, TextIO

LOGGER = logging.getLogger("csas")
"""Where messages go while the Python API runs; silent until the caller configures logging (a library's way)."""
LOGGER.addHandler(logging.NullHandler())

_logging = False


@contextmanager
def to_logging() -> Iterator[None]:
    """While inside: messages and log lines go to LOGGER (warnings at WARNING, the rest at INFO), nothing to the
    console, and no progress bar is drawn."""
    global _logging
    before, _logging = _logging, True
    try:
        yield
    finally:
        _logging = before


def logging_mode() -> bool:
    return _logging


def counted(n: int, one: str, many: str | None = None) -> str:
    """`1 entry`, `2 entries`: a count with its noun (`many` defaults to `one` + s)."""
    return f"{n} {one if n == 1 else many or one + 's'}"


def say(message: str) -> None:
    """A library message: one line on stderr (the CLI passes its own, silent on torchrun's ranks other than 0), or a
    record of the `csas` logger under `to_logging`."""
    if _logging:
        LOGGER.log(logging.WARNING if message.startswith("warning:") else logging.INFO, message)
        return
    sys.stderr.write(message + "\n")


LOG_WIDTH = 1000
"""The width tables are laid out in when the output is not a terminal (a SLURM log, a pipe): rich would otherwise
take 80 columns and cut model ids and figures short. Tables are as wide as their content needs, so this is a bound
that no csas table reaches, not a width they are stretched to."""


def print_json(obj: object) -> None:
    """A command's result on standard output as indented JSON (what `--json` and `--dry-run` print)."""
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def main_process(environ: Mapping[str, str] = os.environ) -> bool:
    """False on torchrun's ranks other than 0: they train but leave messages and results to rank 0."""
    return environ.get("RANK", "").strip() in ("", "0")


def say_main(message: str) -> None:
    """`say` on rank 0 only: under torchrun the console reads as one run."""
    if main_process():
        say(message)


def report_plans(records: list[dict], failed: list[dict], key: str) -> int:
    """A dry run of several runs: the plans as a JSON array on stdout, then one error line per failed plan (named by
    `key`) on stderr; the exit code, a usage error's if any failed."""
    from .errors import EXIT_CODES

    print_json(records)
    for record in failed:
        sys.stderr.write(f"csas: error: {record[key]}: {record['error']}\n")
    return EXIT_CODES["usage"] if failed else EXIT_CODES["ok"]


def table_console(stream: Any = None) -> Any:
    """A rich Console for tables on `stream` (stdout by default): the terminal's width at a terminal; in a log or a
    pipe, as wide as the content, so that every key, model id and number stays whole."""
    from rich.console import Console

    stream = stream if stream is not None else sys.stdout
    at_terminal = hasattr(stream, "isatty") and stream.isatty()
    return Console(file=stream, highlight=False, soft_wrap=True, width=None if at_terminal else LOG_WIDTH)


STATUS_STYLES = {"ok": "green", "skipped": "cyan", "failed": "red", "interrupted": "yellow", "stopped": "yellow",
                 "not run": "dim"}  # fmt: skip
"""How a run's, trial's or merge's status is coloured in the closing tables."""


def status_cell(status: str) -> str:
    return f"[{STATUS_STYLES.get(status, 'white')}]{status}[/]"


def fmt_loss(value: float | None) -> str:
    """A loss in a closing table: four decimals, `-` when there is none."""
    return "-" if value is None else f"{value:.4f}"


def use_progress_bar(disable_tqdm: bool, stream: Any = None) -> bool:
    stream = stream if stream is not None else sys.stdout
    return not disable_tqdm and not _logging and hasattr(stream, "isatty") and stream.isatty()


PROGRESS_EVERY_S = 30.0
"""How often a long count (translate, evaluate) writes a plain progress line where there is no terminal to draw a
bar on (a SLURM log, a pipe)."""


@contextmanager
def counting_bar(
    total: int, enabled: bool, label: str, say: Callable[[str], None] | None = None,
    every_s: float = PROGRESS_EVERY_S, unit: str = "sentences",
) -> Iterator[Callable[[int], None]]:
    """Counts to `total`, yielding `advance(n)`: at a terminal (`enabled`) a rich progress bar on stderr; elsewhere,
    given `say`, a plain line every `every_s` seconds and one at the end
    (`translating: 96/189 sentences (51%), 4.3/s, about 22 s left`), so that a batch job's log shows it is alive."""
    if total == 0 or (not enabled and say is None):
        yield lambda n: None
        return
    if not enabled:
        assert say is not None
        counter = LineCounter(total, label, say, every_s, unit)
        yield counter.advance
        counter.finish()
        return
    from rich.console import Console

    bar = progress_bar(label, Console(file=sys.stderr), transient=True)
    task = bar.add_task(label, total=total)
    with bar:
        yield lambda n: bar.advance(task, n)


class LineCounter:
    """counting_bar's plain lines: a count, a rate and the time left, at most every `every_s` seconds."""

    def __init__(self, total: int, label: str, say: Callable[[str], None], every_s: float, unit: str) -> None:
        self.total, self.label, self.say, self.every_s, self.unit = total, label, say, every_s, unit
        self.done = 0
        self.start = self.last = time.monotonic()

    def advance(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.every_s and self.done < self.total:
            self.last = now
            self.say(self.line(now))

    def finish(self) -> None:
        if self.done:
            self.say(self.line(time.monotonic()))

    def line(self, now: float) -> str:
        elapsed = max(now - self.start, 1e-9)
        rate = self.done / elapsed
        unit = self.unit.removesuffix("s") if self.total == 1 else self.unit
        text = f"{self.label}: {self.done}/{self.total} {unit} ({100 * self.done / self.total:.0f}%), {rate:.1f}/s"
        if self.done < self.total and rate > 0:
            return f"{text}, about {(self.total - self.done) / rate:.0f} s left"
        return f"{text}, {elapsed:.0f} s in all"


def progress_bar(label: str, console: Any, stats: bool = False, transient: bool = False) -> Any:
    """A rich Progress: the label, the bar, done/total, (a `stats` field), the time left."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = [TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn()]
    if stats:
        columns.append(TextColumn("{task.fields[stats]}"))
    return Progress(*columns, TimeRemainingColumn(), console=console, transient=transient)


def format_step(step: int, total: int, record: dict[str, Any]) -> str:
    parts = [f"step {step}/{total}"]
    if "loss" in record:
        parts.append(f"loss {record['loss']:.4f}")
    if "eval_loss" in record:
        parts.append(f"eval_loss {record['eval_loss']:.4f}")
    if "eval_chrf" in record:
        parts.append(f"eval_chrf {record['eval_chrf']:.2f}")
    if record.get("eval_term_success") is not None:
        parts.append(f"eval_term_success {record['eval_term_success']:.3f}")
    if "learning_rate" in record:
        parts.append(f"lr {record['learning_rate']:.3g}")
    if "samples_per_second" in record:
        parts.append(f"{record['samples_per_second']:.1f} samples/s")
    return "  ".join(parts)


class Reporter:
    """Writes log lines to the console (stderr) and to `log` (the run directory's train.log).

    `quiet`: say nothing at all (the processes other than rank 0 under torchrun, so the console reads as one run).
    """

    def __init__(
        self,
        log: Callable[[str], None] | None,
        bar: bool,
        console_stream: TextIO | None = None,
        quiet: bool = False,
    ) -> None:
        from rich.console import Console

        self.quiet = quiet
        self.console = Console(file=console_stream or sys.stderr, highlight=False, soft_wrap=True)
        self._log = log
        self._bar_wanted = bar and not quiet
        self._progress: Any = None
        self._task: Any = None
        self._total = 0

    def line(self, message: str) -> None:
        if self.quiet:
            return
        stamped = f"{time.strftime('%H:%M:%S')} {message}"
        if _logging:
            say(message)
        elif self._progress is not None:
            self._progress.console.print(stamped, markup=False)
        else:
            self.console.print(stamped, markup=False)
        if self._log is not None:
            self._log(stamped)

    def start(self, total_steps: int) -> None:
        self._total = total_steps
        if not self._bar_wanted:
            return
        self._progress = progress_bar("training", self.console, stats=True)
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
