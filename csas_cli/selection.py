"""Evaluation during training, the pure parts: which validation rows chrF translates, the best evaluation so far,
and when `--patience` ends a run.

The recipe (train.py) generates, scores and writes; what is decided here is plain data, tested on its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from .data import seeded_sample

SELECTION_METRICS: Mapping[str, bool] = {"eval_loss": False, "eval_chrf": True}
"""What the best evaluation is chosen by, and whether higher is better: the loss, or chrF with --eval-chrf."""


def chrf_sample(n_rows: int, size: int, seed: int) -> list[int]:
    """Indices of the validation rows chrF translates: the first `size` of a shuffle seeded by `seed`, in row order.

    Chosen once per run, so every evaluation scores the same rows and its values compare across steps; as with
    --max-eval-samples, a smaller sample is a subset of a larger one.
    """
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    # A seed of its own: the same --seed also shuffles the split, and this sample need not follow that order.
    return seeded_sample(n_rows, size, f"{seed}:eval-chrf")


@dataclass
class BestTracker:
    """The best evaluation so far, and how many evaluations since have not beaten it (what --patience counts).

    Only a strictly better, finite value is an improvement: a tie or a nan keeps the earlier best.
    """

    metric: str
    """eval_loss (lower is better) or eval_chrf (higher is better)."""
    patience: int | None = None
    """Evaluations in a row without improvement that end the run; None: never."""
    best_step: int | None = None
    best_value: float | None = None
    bad_evaluations: int = 0
    """Evaluations since the best that did not improve on it."""

    def __post_init__(self) -> None:
        if self.metric not in SELECTION_METRICS:
            raise ValueError(f"unknown metric {self.metric!r}; expected one of {', '.join(SELECTION_METRICS)}")

    @property
    def higher_is_better(self) -> bool:
        return SELECTION_METRICS[self.metric]

    def improves(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.best_value is None:
            return True
        return value > self.best_value if self.higher_is_better else value < self.best_value

    def update(self, step: int, value: float) -> bool:
        """Record the evaluation after `step`; True when it is the new best."""
        if self.improves(value):
            self.best_step, self.best_value, self.bad_evaluations = step, value, 0
            return True
        self.bad_evaluations += 1
        return False

    @property
    def exhausted(self) -> bool:
        """True once --patience evaluations in a row have not improved on the best: the run should stop."""
        return self.patience is not None and self.bad_evaluations >= self.patience

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps, so that a resumed run goes on comparing against the same best."""
        return {"metric": self.metric, "step": self.best_step, "value": self.best_value,
                "bad_evaluations": self.bad_evaluations}  # fmt: skip

    def restore(self, state: Mapping[str, Any] | None) -> None:
        """Continue from a checkpoint's state; a state for another metric (or none: an older checkpoint) is a fresh
        start."""
        if not state or state.get("metric") != self.metric:
            return
        self.best_step = state.get("step")
        self.best_value = state.get("value")
        self.bad_evaluations = int(state.get("bad_evaluations", 0))

    def describe(self) -> str:
        """`eval_chrf 45.21 at step 400`, for log lines."""
        if self.best_step is None or self.best_value is None:
            return f"no {self.metric} yet"
        shown = f"{self.best_value:.2f}" if self.higher_is_better else f"{self.best_value:.4f}"
        return f"{self.metric} {shown} at step {self.best_step}"


def evaluations_in(total_steps: int, eval_steps: int) -> int:
    """How many evaluations a run of `total_steps` makes: every `eval_steps` and after the last step."""
    return total_steps // eval_steps + (1 if total_steps % eval_steps else 0)


__all__ = ["BestTracker", "SELECTION_METRICS", "chrf_sample", "evaluations_in"]
