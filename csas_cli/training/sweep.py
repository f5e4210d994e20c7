"""`csas sweep`: learning rates x LoRA ranks x dropouts for one model, each trial a normal csas run.

A trial is the model's finetune-all row and constants, capped in steps and samples (SWEEP_CONSTANTS), with one
point of the grid; its LoRA alpha is 2 x r unless --lora-alpha fixes it. Trials run through finetune-all's runner,
so a sweep behaves like finetune-all: a failing trial does not stop the others, finished trials are skipped unless
--overwrite is given, and unfinished ones resume from their newest checkpoint. The results of every trial, trained
now or by an earlier invocation, are read back from the trial folders:

    <output_dir>/<which>/
        trial-00-lr7e-5-r8-a16-d0.05/   a complete csas run (run.json, metrics.jsonl, lora/, finished.json)
        trial-01-lr7e-5-r16-a32-d0.05/
        ...
        sweep_results.csv               one row per trial, in trial order
"""

from __future__ import annotations

import csv
import io
import itertools
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence, TypeVar

from ..errors import SettingsError
from ..files import write_text_atomic
from ..layout import RunRecord
from ..progress import say as stderr_line
from ..registry import SWEEP_CONSTANTS, SWEEP_TABLE, check_which
from ..settings import FinetuneSettings, settings_from_table, shared_values
from .batch import Outcome, dry_run_all, run_all

if TYPE_CHECKING:
    from .run import RunResult

RESULTS_CSV = "sweep_results.csv"
SWEEP_ROOT = Path("sweeps")
"""Where `csas sweep` puts its trials unless --output-dir says otherwise."""

RANKING_METRICS: Mapping[str, bool] = {"eval_loss": False, "train_loss": False, "chrf": True}
"""What `--metric` may rank trials by, and whether higher is better."""

T = TypeVar("T", int, float)


# --- the grid --------------------------------------------------------------------------------------------------


def parse_values(option: str, text: str, kind: Callable[[str], T], example: str) -> tuple[T, ...]:
    """A comma-separated list of numbers (`kind` int or float); repeats are dropped, the order is kept."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    try:
        values = tuple(dict.fromkeys(kind(part) for part in parts))
    except ValueError:
        values = ()
    if not values:
        what = "whole numbers" if kind is int else "numbers"
        raise SettingsError(f"{option}: expected comma-separated {what} like {example}, got {text!r}")
    return values


def parse_lrs(text: str) -> tuple[float, ...]:
    values = parse_values("--lrs", text, float, "1e-4,2e-4")
    bad = [v for v in values if not (math.isfinite(v) and v > 0)]
    if bad:
        raise SettingsError(f"--lrs: every learning rate must be a positive number, got {bad[0]}")
    return values


def parse_ranks(text: str) -> tuple[int, ...]:
    values = parse_values("--ranks", text, int, "8,16")
    bad = [v for v in values if v < 1]
    if bad:
        raise SettingsError(f"--ranks: every rank must be at least 1, got {bad[0]}")
    return values


def parse_dropouts(text: str) -> tuple[float, ...]:
    values = parse_values("--dropouts", text, float, "0.05,0.1")
    bad = [v for v in values if not 0.0 <= v < 1.0]
    if bad:
        raise SettingsError(f"--dropouts: every dropout must be in [0, 1), got {bad[0]}")
    return values


def check_metric(metric: str, eval_chrf: bool = True) -> str:
    """The ranking metric, refused before any trial runs when the trials would not record it."""
    if metric not in RANKING_METRICS:
        raise SettingsError(f"--metric: expected one of {', '.join(RANKING_METRICS)}, got {metric!r}")
    if metric == "chrf" and not eval_chrf:
        raise SettingsError("--metric chrf ranks by the validation chrF, which trials score only with --eval-chrf; "
                            "add --eval-chrf, or rank by eval_loss")  # fmt: skip
    return metric


def short_number(value: float) -> str:
    """A learning rate as it is usually written: 2e-4, 1.5e-4, 7e-5."""
    mantissa, exponent = f"{value:.6e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def trial_name(index: int, count: int, lr: float, r: int, alpha: int, dropout: float) -> str:
    """`trial-03-lr1e-4-r16-a32-d0.05`: the zero-padded index sorts folders in grid order, the rest says what
    the trial trains, in characters that are safe on every file system."""
    width = max(2, len(str(count - 1)))
    return f"trial-{index:0{width}d}-lr{short_number(lr)}-r{r}-a{alpha}-d{dropout:g}"


def sweep_settings(
    which: str,
    *,
    data: Path,
    output_dir: Path,
    lrs: Sequence[float] | None = None,
    ranks: Sequence[int] | None = None,
    dropouts: Sequence[float] | None = None,
    lora_alpha: int | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> list[FinetuneSettings]:
    """One settings object per trial, in grid order (learning rate, then rank, then dropout); pure.

    Grid values left out come from the model's SWEEP_TABLE entry; `overrides` (FinetuneSettings fields) replace
    the finetune-all row, its constants and SWEEP_CONSTANTS, but not the grid's own values.
    """
    check_which(which)
    grid = SWEEP_TABLE[which]
    points = list(itertools.product(lrs or grid.lrs, ranks or grid.ranks, dropouts or grid.dropouts))
    base = trial_base(which, data=data, output_dir=output_dir / which, **dict(overrides or {}))
    trials = []
    for index, (lr, r, dropout) in enumerate(points):
        alpha = 2 * r if lora_alpha is None else lora_alpha
        name = trial_name(index, len(points), lr, r, alpha, dropout)
        trials.append(
            base.updated(learning_rate=lr, lora_r=r, lora_alpha=alpha, lora_dropout=dropout, run_name=name)
        )
    return trials


def trial_base(which: str, **overrides: Any) -> FinetuneSettings:
    """What every trial of `which` shares: its finetune-all row and constants, SWEEP_CONSTANTS, then `overrides`."""
    return settings_from_table(which, **{**SWEEP_CONSTANTS, **overrides})


def trial_defaults() -> dict[str, Any]:
    """The settings every trial of every model gets unless a flag says otherwise (what `csas sweep --help` shows)."""
    return shared_values(trial_base)


def sweep_root(trials: Sequence[FinetuneSettings]) -> Path:
    """The folder holding the trials and sweep_results.csv: <output_dir>/<which>."""
    return trials[0].output.output_dir


def dry_run_trials(trials: Sequence[FinetuneSettings]) -> tuple[list[dict], list[dict]]:
    """Every trial's plan with its name first, as finetune-all's dry run makes them (no weights are loaded); the
    second list holds the trials whose plan could not be made ({"trial", "which", "error"})."""
    records = [{"trial": t.output.run_name, **record} for t, record in zip(trials, dry_run_all(trials)[0])]
    return records, [r for r in records if "error" in r]


# --- results ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialResult:
    """One row of sweep_results.csv."""

    trial: str
    lr: float
    r: int
    alpha: int
    dropout: float
    train_samples: int | None = None
    """Training rows after the cap (the plan's train_rows), from the trial's run.json."""
    eval_samples: int | None = None
    train_loss: float | None = None
    """The last logged training loss of a finished trial."""
    eval_loss: float | None = None
    """The final validation loss of a finished trial."""
    chrf: float | None = None
    """The final validation chrF (`eval_chrf`) when training computed one."""
    steps: int | None = None
    seconds: float | None = None
    """Training time of the invocation that finished the trial (a resumed trial counts its last part only)."""
    status: str = "not run"
    """ok (trained now), skipped (finished earlier), failed, interrupted, stopped (signal), or not run (after those)."""
    note: str = ""
    """Why a trial failed."""
    best_step: int | None = None
    """The best evaluation's step (the adapter in the trial's best/); the columns from here on came later, so they
    are the CSV's last."""
    best_eval_loss: float | None = None
    best_chrf: float | None = None

    def metric(self, name: str) -> float | None:
        """The trial's `name` (eval_loss, chrf: its best evaluation's, the final one where it has none; train_loss:
        the last)."""
        best = {"eval_loss": self.best_eval_loss, "chrf": self.best_chrf}.get(name)
        return best if best is not None and self.best_step is not None else getattr(self, name)


RESULT_COLUMNS = tuple(f.name for f in fields(TrialResult))


def recorded_numbers(run_dir: Path, finished: bool) -> dict[str, Any]:
    """What a trial's folder says: sample counts from run.json and, for a finished trial, its final numbers (a
    failed --overwrite can leave an older run's finished.json behind: not this trial's)."""
    record = RunRecord.read(run_dir, finished=finished)
    numbers: dict[str, Any] = {"train_samples": record.plan.get("train_rows"),
                               "eval_samples": record.plan.get("eval_rows")}  # fmt: skip
    if finished:
        best = record.best
        numbers.update(train_loss=record.train_loss, eval_loss=record.eval_loss, steps=record.steps,
                       seconds=record.seconds_total, chrf=record.eval_chrf(logged=True),
                       best_step=None if best is None else best.step,
                       best_eval_loss=None if best is None else best.eval_loss,
                       best_chrf=None if best is None else best.eval_chrf)  # fmt: skip
    return numbers


def trial_results(trials: Sequence[FinetuneSettings], outcomes: Sequence[Outcome]) -> list[TrialResult]:
    """One row per trial, in trial order, from the runner's outcomes and what the trial folders hold."""
    by_name = {o.key: o for o in outcomes}
    rows = []
    for t in trials:
        name = str(t.output.run_name)
        outcome = by_name.get(name)
        status = outcome.status if outcome else "not run"
        numbers = recorded_numbers(t.run_dir, finished=status in ("ok", "skipped"))
        lora = t.lora
        rows.append(
            TrialResult(
                trial=name, lr=t.training.learning_rate, r=lora.lora_r, alpha=lora.lora_alpha,
                dropout=lora.lora_dropout, status=status,
                note=outcome.message if outcome and status != "skipped" else "", **numbers,
            )  # fmt: skip
        )
    return rows


def default_metric(results: Sequence[TrialResult]) -> str:
    """What the table ranks by when --metric is not given: chrf when every finished trial has a chrF, else
    eval_loss."""
    finished = [r for r in results if r.status in ("ok", "skipped")]
    return "chrf" if finished and all(r.metric("chrf") is not None for r in finished) else "eval_loss"


def rank_results(results: Sequence[TrialResult], metric: str) -> list[TrialResult]:
    """Best first by `metric` (TrialResult.metric: the best evaluation's); trials without it (failed, not run, no
    chrF) last, in trial order."""
    higher_is_better = RANKING_METRICS[check_metric(metric)]

    def key(row: TrialResult) -> tuple[bool, float]:
        value = row.metric(metric)
        if value is None:
            return (True, 0.0)
        return (False, -value if higher_is_better else value)

    return sorted(results, key=key)


def csv_value(value: Any) -> str:
    return "" if value is None else str(value)


def write_results_csv(path: Path, results: Sequence[TrialResult]) -> None:
    """sweep_results.csv, written whole and then renamed, so a reader never sees half a table."""
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(RESULT_COLUMNS)
    for row in results:
        writer.writerow([csv_value(v) for v in asdict(row).values()])
    write_text_atomic(path, table.getvalue())


def run_sweep(
    trials: Sequence[FinetuneSettings],
    *,
    run_one: Callable[[FinetuneSettings], RunResult] | None = None,
    say: Callable[[str], None] = stderr_line,
    write_results: bool = True,
) -> tuple[list[TrialResult], Path]:
    """Train the trials (skipping finished ones), then write sweep_results.csv (unless `write_results` is False: the
    other ranks of a torchrun launch); returns its rows and path."""
    outcomes = run_all(trials, run_one=run_one, say=say)
    results = trial_results(trials, outcomes)
    path = sweep_root(trials) / RESULTS_CSV
    if write_results:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_results_csv(path, results)
    return results, path
