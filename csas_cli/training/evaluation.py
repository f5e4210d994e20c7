"""Evaluation during training: the validation loss, chrF of a fixed sample's translations, the best evaluation so
far, and when `--patience` ends a run.

`Evaluator` computes the numbers (under torchrun each process takes its share and the results are combined);
`BestTracker` and the helpers decide from them and are plain data. The recipe logs and writes what they say.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..data.batches import Batching, target_tokens
from ..data.features import TokenizedPair, TokenizedSplit
from ..data.glossary import Glossary
from ..data.pairs import seeded_sample
from ..data.terms import term_success
from ..errors import TrainingError
from ..progress import counted, counting_bar
from ..inference.generation import GenerationSettings, LoadedModel, length_sorted_batches, translate_encoded
from ..inference.scoring import score
from ..languages import Direction
from ..layout import ADAPTER_DIR
from .distributed import ProcessGroup

SELECTION_METRICS: Mapping[str, bool] = {"eval_loss": False, "eval_chrf": True}
"""What the best evaluation is chosen by, and whether higher is better: the loss, or chrF with --eval-chrf."""


LENGTH_CAP = (1.5, 10)
"""chrF's translations stop at 1.5 x the longest source of their batch, in tokens, + 10 (and at --max-target-len),
unless --eval-max-len says otherwise: a translation is about as long as its source, and a model early in
training that repeats itself would otherwise write --max-target-len tokens for every row, which made the evaluation
the run's longest part."""


class EvaluationStopped(Exception):
    """A stop request (SIGTERM, SIGUSR1, Ctrl-C) came during an evaluation: it was abandoned between two batches, on
    every process alike. The step before it is complete; the recipe checkpoints it and a resume evaluates again."""


def capped(settings: GenerationSettings, source_tokens: int) -> GenerationSettings:
    """`settings` with max_new_tokens capped by the source's length (LENGTH_CAP)."""
    factor, extra = LENGTH_CAP
    return dataclasses.replace(settings, max_new_tokens=min(settings.max_new_tokens,
                                                            math.ceil(factor * source_tokens) + extra))


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

    def note(self, last_step: int, best_dir: Path) -> str:
        """The end of a run's final log line: where the best evaluation's adapter is, and which adapter to use."""
        if self.best_step is None:
            return ""
        if self.best_step == last_step:
            return f"; it is also the best evaluation ({self.describe()}), copied to {best_dir.name}/"
        return (
            f"; the best evaluation was {self.describe()}: use {best_dir} for it, {ADAPTER_DIR}/ holds the last step's"
        )

    def describe(self) -> str:
        """`eval_chrf 45.21 at step 400`, for log lines."""
        if self.best_step is None or self.best_value is None:
            return f"no {self.metric} yet"
        shown = f"{self.best_value:.2f}" if self.higher_is_better else f"{self.best_value:.4f}"
        return f"{self.metric} {shown} at step {self.best_step}"


def evaluations_in(total_steps: int, eval_steps: int) -> int:
    """How many evaluations a run of `total_steps` makes: every `eval_steps` and after the last step."""
    return total_steps // eval_steps + (1 if total_steps % eval_steps else 0)


class Evaluator:
    """The validation loss and chrF of one run's validation split, the same rows and batches at every evaluation."""

    def __init__(self, data: TokenizedSplit, batching: Batching, group: ProcessGroup, *, chrf_rows: Sequence[int],
                 generation: GenerationSettings, follow_source: bool = True,
                 stop_requested: Callable[[], bool] = lambda: False) -> None:  # fmt: skip
        self.pairs = data.eval
        self.examples = data.eval_examples
        self.group = group
        self.batches = batching.validation([p.length for p in self.pairs])
        self.chrf_rows = list(chrf_rows)
        """Indices into the validation split that chrF translates (`chrf_sample`)."""
        self.generation = generation
        """How chrF translates; its max_new_tokens is the most a translation may have."""
        self.follow_source = follow_source
        """Whether each batch's translations stop sooner, at LENGTH_CAP from its longest source (the default; False
        with --eval-max-len)."""
        self.stop_requested = stop_requested
        """Whether this process was asked to stop: checked between batches, so that an evaluation, which can last
        longer than a scheduler's grace period, never delays a stop by more than one batch."""
        self.hypotheses: dict[int, str] = {}
        """The last `chrf` translations, by index into the validation split."""

    def loss(self, loss_sum: Callable[[Sequence[TokenizedPair]], Any], device: Any) -> float:
        """Token-averaged validation loss: `loss_sum(pairs)` is the training objective's sum over their target
        tokens. Under torchrun each process evaluates every world_size-th batch and the sums are added up."""
        import torch

        group = self.group
        total = torch.zeros((), device=device, dtype=torch.float64)
        tokens = 0
        stopped = False
        with torch.no_grad():
            for batch in self.batches[group.rank :: group.world_size]:
                if stopped := self.stop_requested():
                    break
                pairs = [self.pairs[i] for i in batch]
                total += loss_sum(pairs).double()
                tokens += target_tokens(pairs)
        self.check_stop(stopped)
        total_sum, total_tokens = group.sum_(torch.stack([total, total.new_tensor(tokens)])).tolist()
        return total_sum / total_tokens

    def chrf(self, model: LoadedModel, autocast: Any, step: int, say: Callable[[str], None] | None = None) -> float:
        """chrF of the sample's translations, scored as `csas evaluate` scores (sacrebleu's defaults).

        One direction at a time (m2m100_418m's sample holds both), each forced to start with its target language's
        code; `autocast` is the precision the model trains in. Under torchrun each process translates its share of
        every direction; rank 0 scores the gathered translations and hands the value to every process. `say` hears
        the translation's progress as `translate` logs it: a line every 30 s and one at the end.
        """
        import torch

        group = self.group
        by_direction = self.chrf_directions()
        mine: dict[int, str] = {}
        shares = {}
        for direction in sorted(by_direction, key=lambda d: (d.source, d.target)):
            # Sorted by length, then dealt out: every process gets short and long rows alike.
            rows = sorted(by_direction[direction], key=lambda i: len(self.pairs[i].input_ids))
            shares[direction] = rows[group.rank :: group.world_size]
        total = sum(len(share) for share in shares.values())
        batches = [(direction, [share[j] for j in batch], max(len(self.pairs[share[j]].input_ids) for j in batch))
                   for direction, share in shares.items()
                   for batch in length_sorted_batches([len(self.pairs[i].input_ids) for i in share],
                                                      self.generation.batch_size)]  # fmt: skip
        stopped = False
        try:
            with autocast, counting_bar(total, False, f"step {step}: translating for chrF", say) as advance:
                for direction, rows, longest in batches:
                    if stopped := self.stop_requested():
                        break
                    settings = capped(self.generation, longest) if self.follow_source else self.generation
                    with model.direction(direction):
                        lines = translate_encoded(model, [self.pairs[i].input_ids for i in rows], settings, advance)
                    mine.update(zip(rows, lines))
                # Inside the bar: an abandoned evaluation does not log a last count as if it had ended.
                self.check_stop(stopped)
        except torch.OutOfMemoryError:
            raise TrainingError(
                f"step {step}: out of memory translating for chrF, {counted(self.generation.batch_size, 'sentence')} x "
                f"{counted(self.generation.num_beams, 'beam')} at a time; lower --eval-num-beams or --batch-size"
            ) from None
        self.hypotheses = {}
        for part in group.gather_objects(mine):
            self.hypotheses.update(part)
        references = [self.examples[i].target for i in self.chrf_rows]
        return group.from_main(lambda: score([self.hypotheses[i] for i in self.chrf_rows], references)[1])

    def check_stop(self, stopped: bool) -> None:
        """Raise EvaluationStopped on every process when any was asked to stop. Each process comes here once its
        own loop ended, early or not, so all of them meet in the same collective under torchrun (torchrun hands a
        signal to every process, so none goes on for long)."""
        if self.group.any(stopped):
            raise EvaluationStopped

    def chrf_directions(self) -> dict[Direction, list[int]]:
        """The chrF sample's rows (indices into the validation split) by direction (m2m100_418m's holds both)."""
        by_direction: dict[Direction, list[int]] = {}
        for i in self.chrf_rows:
            example = self.examples[i]
            by_direction.setdefault(Direction(example.source_lang, example.target_lang), []).append(i)
        return by_direction

    def term_success(self, glossary: Glossary) -> float | None:
        """eval_term_success: the term success rate (data/terms.py) of the last `chrf` translations, direction by
        direction; None when the sample's sources hold no glossary term."""
        hits = occurrences = 0
        for direction, rows in self.chrf_directions().items():
            found = term_success(glossary, [self.examples[i].source for i in rows],
                                 [self.hypotheses[i] for i in rows], direction.source, direction.target)  # fmt: skip
            hits, occurrences = hits + found.hits, occurrences + found.occurrences
        return hits / occurrences if occurrences else None


__all__ = ["BestTracker", "EvaluationStopped", "Evaluator", "SELECTION_METRICS", "chrf_sample", "evaluations_in"]
