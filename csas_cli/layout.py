"""The names of a run directory's files, and what a reader can tell from them; training.rundir writes them.

Readers: inference (is this a finished run, where is its adapter), merge, sweep's results, finetune-all's skip test.

A run directory, <output_dir>/<which>/:
    run.json          the resolved plan, step counts, library versions, data fingerprint (written first); the peak
                      memory is added at the end
    metrics.jsonl     one object per logged training step and per evaluation
    train.log         a copy of the console log
    checkpoints/      step-000200/ ... (the newest few)
    best/             the adapter of the best evaluation so far, with best.json (step, metric, value)
    lora/             the final adapter (safetensors): the last step's, which need not be the best
    averaged/         with --average-last (or csas average): the mean of the last adapters, csas_average.json
    tokenizer files   so the run directory works as a model directory with its adapter
    finished.json     written last; its presence means the run completed
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .errors import DataError
from .files import read_json_record

FINISHED = "finished.json"
RUN_JSON = "run.json"
METRICS = "metrics.jsonl"
LOG = "train.log"
ADAPTER_DIR = "lora"
BEST_DIR = "best"
BEST_RECORD = "best.json"
"""In best/: the best evaluation's record ({"step", "metric", "value", "eval_loss", "eval_chrf"...})."""
CHECKPOINTS_DIR = "checkpoints"
CHECKPOINT_ADAPTER = "adapter"
"""The adapter inside a checkpoint folder (CHECKPOINTS_DIR/step-N/adapter)."""
AVERAGED_DIR = "averaged"
"""Where --average-last writes a run's averaged adapter (and `csas average` by default)."""
AVERAGE_RECORD = "csas_average.json"
"""Beside an averaged adapter: the run it comes from and the steps averaged (inference/source.py reads it)."""
STEP_DIR = re.compile(r"^step-(\d{6,})$")
"""A complete checkpoint's folder name (one being written is step-N.tmp)."""
# best.tmp and best.old: what an interrupted replacement of best/ can leave (see checkpoints.swap_in).
TENSORBOARD_DIR = "tensorboard"
WANDB_DIR = "wandb"
TRACKER_IDS = "trackers.json"
"""--report-to's files in a run directory: TensorBoard's event files, W&B's offline runs, the tracker run ids."""

RUN_ARTIFACTS = (FINISHED, RUN_JSON, METRICS, LOG, ADAPTER_DIR, BEST_DIR, f"{BEST_DIR}.tmp", f"{BEST_DIR}.old",
                 CHECKPOINTS_DIR, TENSORBOARD_DIR, WANDB_DIR, TRACKER_IDS)  # fmt: skip


MERGE_RECORD = "csas_merge.json"
"""Provenance written by `csas merge` into a merged directory; it names the registry key."""
EXPORT_RECORD = "csas_export.json"
"""Provenance written by `csas export` into an exported directory: the registry key, base, adapter, decoding."""
MODEL_CARD = "README.md"
"""The model card of a merged or exported directory (the Hugging Face convention), written by cards.py."""


LOCK_FILE = ".csas.lock"
"""Held (an OS file lock) by the one csas process that trains into the run directory; it names that process."""


def run_state(run_dir: Path) -> str:
    """'finished', 'unfinished' (a csas run that did not complete), 'empty' or 'absent'."""
    if not run_dir.exists():
        return "absent"
    if (run_dir / FINISHED).exists():
        return "finished"
    if (run_dir / RUN_JSON).exists() or (run_dir / CHECKPOINTS_DIR).exists():
        return "unfinished"
    return "empty"


def read_metrics(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@dataclass(frozen=True)
class Evaluation:
    """One evaluation of a run: after which step, its validation loss and (with --eval-chrf) chrF; for the best
    one also the metric the run chose it by."""

    step: int
    eval_loss: float | None
    eval_chrf: float | None = None
    metric: str | None = None
    """eval_loss or eval_chrf: what made it the best (None for an evaluation that is not the best)."""

    @classmethod
    def of(cls, record: dict[str, Any], metric: str | None = None) -> "Evaluation | None":
        """From a metrics.jsonl or best.json record; None when it holds no evaluation."""
        step = record.get("step")
        if not isinstance(step, int) or (record.get("eval_loss") is None and record.get("eval_chrf") is None):
            return None
        return cls(step, record.get("eval_loss"), record.get("eval_chrf"), metric)

    def score_list(self) -> list[str]:
        """`["eval_chrf 15.31", "eval_loss 4.1234"]`: the metric it was chosen by first, then the other."""
        shown = [("eval_loss", self.eval_loss, ".4f"), ("eval_chrf", self.eval_chrf, ".2f")]
        shown.sort(key=lambda item: item[0] != self.metric)
        return [f"{name} {value:{spec}}" for name, value, spec in shown if value is not None]

    def scores(self) -> str:
        """`eval_chrf 15.31, eval_loss 4.1234`."""
        return ", ".join(self.score_list()) or "no scores"

    def describe(self) -> str:
        """`eval_chrf 15.31 @ 10 (eval_loss 4.1234)`, for a table's cell."""
        parts = self.score_list()
        if not parts:
            return f"step {self.step}"
        rest = f" ({', '.join(parts[1:])})" if len(parts) > 1 else ""
        return f"{parts[0]} @ {self.step}{rest}"


@dataclass(frozen=True)
class RunRecord:
    """What a run directory says about its run, read in one place (the API's results, sweep_results.csv, a resume
    of a finished run, csas report): run.json, and finished.json's numbers once the run finished."""

    run_dir: Path
    run: dict[str, Any]
    """run.json ({} when absent or unreadable)."""
    finished: dict[str, Any]
    """finished.json ({} for a run not finished, or when unreadable)."""

    @classmethod
    def read(cls, run_dir: Path, *, finished: bool = True) -> "RunRecord":
        """The record of `run_dir`; `finished` False ignores a finished.json (an older run's, left by a failed
        --overwrite)."""
        done = read_json_record(run_dir / FINISHED) if finished else {}
        return cls(run_dir, read_json_record(run_dir / RUN_JSON), done)

    @property
    def plan(self) -> dict[str, Any]:
        """run.json's resolved plan."""
        return self.run.get("plan", {})

    @property
    def steps(self) -> int | None:
        return self.finished.get("steps")

    @property
    def train_loss(self) -> float | None:
        return self.finished.get("train_loss")

    @property
    def eval_loss(self) -> float | None:
        return self.finished.get("eval_loss")

    @property
    def seconds(self) -> float | None:
        """The last session's time (a resumed run's own part)."""
        return self.finished.get("seconds")

    @property
    def seconds_total(self) -> float | None:
        """The run's time over every session it took (a finished.json from before it was kept: the last one's)."""
        return self.finished.get("seconds_total", self.seconds)

    @property
    def stopped_early(self) -> bool:
        return bool(self.finished.get("stopped_early"))

    @property
    def adapter(self) -> Path:
        """The last step's adapter (RUN/lora)."""
        return self.run_dir / self.finished.get("adapter", ADAPTER_DIR)

    @property
    def best_adapter(self) -> Path | None:
        """The best evaluation's adapter (RUN/best); None without evaluations."""
        return self.run_dir / BEST_DIR if self.finished.get("best") else None

    @property
    def best(self) -> Evaluation | None:
        """The best evaluation, whose adapter best/ holds (best/best.json); None without one."""
        record = read_json_record(self.run_dir / BEST_DIR / BEST_RECORD)
        return Evaluation.of(record, record.get("metric") or self.finished.get("best_metric"))

    def evaluations(self) -> list[Evaluation]:
        """Every evaluation metrics.jsonl holds, in step order."""
        if not (self.run_dir / METRICS).is_file():
            return []
        found = (Evaluation.of(row) for row in read_metrics(self.run_dir / METRICS) if "eval_loss" in row)
        return [e for e in found if e is not None]

    def eval_chrf(self, *, logged: bool = False) -> float | None:
        """The final validation chrF; with `logged`, the last one metrics.jsonl holds when finished.json has none."""
        chrf = self.finished.get("eval_chrf")
        if chrf is None and logged and (self.run_dir / METRICS).is_file():
            scores = [m["eval_chrf"] for m in read_metrics(self.run_dir / METRICS) if m.get("eval_chrf") is not None]
            chrf = scores[-1] if scores else None
        return chrf


def find_runs(paths: Sequence[Path]) -> list[Path]:
    """The run directories PATHs name: each one itself, or the runs up to two levels under it, in path order."""
    found: list[Path] = []
    for path in paths:
        if not path.exists():
            raise DataError(f"{path}: no such file or directory")
        if (path / RUN_JSON).is_file():
            found.append(path)
            continue
        under = sorted({p.parent for pattern in ("*/" + RUN_JSON, "*/*/" + RUN_JSON) for p in path.glob(pattern)})
        if not under:
            raise DataError(f"{path}: no csas run here (no run.json in it or up to two levels under it)")
        found.extend(under)
    return list(dict.fromkeys(found))


def run_names(runs: Sequence[Path]) -> list[str]:
    """Each run's name: its path under the folder all of them share (the folder's own name for a single run)."""
    if len(runs) == 1:
        return [runs[0].name]
    parts = [p.resolve().parts for p in runs]
    common = 0
    while all(len(p) > common + 1 for p in parts) and len({p[common] for p in parts}) == 1:
        common += 1
    return ["/".join(p[common:]) for p in parts]
