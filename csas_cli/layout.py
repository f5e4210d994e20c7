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
    tokenizer files   so the run directory works as a model directory with its adapter
    finished.json     written last; its presence means the run completed
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .files import read_json_record

FINISHED = "finished.json"
RUN_JSON = "run.json"
METRICS = "metrics.jsonl"
LOG = "train.log"
ADAPTER_DIR = "lora"
BEST_DIR = "best"
CHECKPOINTS_DIR = "checkpoints"
CHECKPOINT_ADAPTER = "adapter"
"""The adapter inside a checkpoint folder (CHECKPOINTS_DIR/step-N/adapter)."""
STEP_DIR = re.compile(r"^step-(\d{6,})$")
"""A complete checkpoint's folder name (one being written is step-N.tmp)."""
# best.tmp and best.old: what an interrupted replacement of best/ can leave (see checkpoints.swap_in).
TENSORBOARD_DIR = "tensorboard"
WANDB_DIR = "wandb"
TRACKER_IDS = "trackers.json"
"""--report-to's files in a run directory: TensorBoard's event files, W&B's offline runs, the tracker run ids."""

RUN_ARTIFACTS = (FINISHED, RUN_JSON, METRICS, LOG, ADAPTER_DIR, BEST_DIR, f"{BEST_DIR}.tmp", f"{BEST_DIR}.old",
                 CHECKPOINTS_DIR, TENSORBOARD_DIR, WANDB_DIR, TRACKER_IDS)  # fmt: skip


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

    def eval_chrf(self, *, logged: bool = False) -> float | None:
        """The final validation chrF; with `logged`, the last one metrics.jsonl holds when finished.json has none."""
        chrf = self.finished.get("eval_chrf")
        if chrf is None and logged and (self.run_dir / METRICS).is_file():
            scores = [m["eval_chrf"] for m in read_metrics(self.run_dir / METRICS) if m.get("eval_chrf") is not None]
            chrf = scores[-1] if scores else None
        return chrf
