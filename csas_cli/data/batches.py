"""Stage 3: tokenized pairs -> micro-batches -> optimizer steps, and a micro-batch's tensors.

Batch order is a pure function of (seed, epoch), so any position in training can be recomputed from the step count
alone; that is what makes a resumed run see the same batches as an uninterrupted one.
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Iterator, Sequence, TypeVar

from .features import TokenizedPair

IGNORE_INDEX = -100
T = TypeVar("T")
POOL_BATCHES = 50
"""Length grouping sorts within pools of this many batches: enough to cut padding, small enough to stay random."""


def shift_right(labels: Sequence[int], decoder_start_token_id: int) -> list[int]:
    """Decoder inputs for teacher forcing: [start] + labels[:-1], as generation sees them."""
    return [decoder_start_token_id, *labels[:-1]]


def length_grouped_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Indices grouped into batches of similar length: shuffle, sort within pools, shuffle the batches.

    Every index appears exactly once; the last batch of a pool may be short.
    """
    rng = random.Random(f"{seed}:{epoch}")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    pool = batch_size * POOL_BATCHES
    batches: list[list[int]] = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: lengths[i], reverse=True)
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def token_budget_batches(lengths: Sequence[int], max_tokens: int, seed: int, epoch: int) -> list[list[int]]:
    """Like `length_grouped_batches`, but each batch holds as many pairs as fit in `max_tokens`.

    A batch's size is its pair count x its longest pair's length (the longer side, as fairseq's --max-tokens counts
    it), which is what padding makes it cost. Pools hold about POOL_BATCHES batches of the mean length; a pair
    longer than `max_tokens` gets a batch of its own (settings refuse budgets below the length limits).
    """
    if max_tokens < 1:
        raise ValueError(f"token_budget_batches: max_tokens must be at least 1, got {max_tokens}")
    rng = random.Random(f"{seed}:{epoch}:tokens")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    mean = sum(lengths) / len(lengths) if lengths else 1.0
    pool = POOL_BATCHES * max(1, int(max_tokens // max(mean, 1.0)))
    batches: list[list[int]] = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: lengths[i], reverse=True)
        batches.extend(fill_token_budget(chunk, lengths, max_tokens))
    rng.shuffle(batches)
    return batches


def fill_token_budget(order: Sequence[int], lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Cut `order` into consecutive batches of at most `max_tokens` (pairs x longest length), greedily."""
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        grown = max(longest, lengths[i])
        if current and (len(current) + 1) * grown > max_tokens:
            batches.append(current)
            current, grown = [], lengths[i]
        current.append(i)
        longest = grown
    if current:
        batches.append(current)
    return batches


class Batching(ABC):
    """How a run cuts its pairs into micro-batches: `LengthGrouped` pairs each, or a `TokenBudget`.

    A strategy is handed to the training recipe (csas bench and scripts/bench_vs_hf.py hand it others); `epoch` must
    be a pure function of (lengths, seed, epoch), which is what makes resuming exact.
    """

    fixed_size: bool = False
    """Every epoch has the same number of micro-batches (what `plan_steps` counts steps by)."""

    @abstractmethod
    def epoch(self, lengths: Sequence[int], seed: int, epoch: int) -> list[list[int]]:
        """One epoch's micro-batches (indices into `lengths`), every index once."""

    def count(self, lengths: Sequence[int], seed: int, epoch: int) -> int:
        """How many micro-batches `epoch` has."""
        return len(self.epoch(lengths, seed, epoch))

    @abstractmethod
    def validation(self, lengths: Sequence[int]) -> list[list[int]]:
        """The validation loss's batches: sorted by length, cut as training cuts them, the same at every evaluation."""

    @abstractmethod
    def describe(self) -> str:
        """What a micro-batch holds, for log lines: `16 pairs`, `up to 4096 tokens`."""


@dataclass(frozen=True)
class LengthGrouped(Batching):
    """`batch_size` pairs per micro-batch, grouped by length (see length_grouped_batches)."""

    batch_size: int
    fixed_size = True

    def epoch(self, lengths: Sequence[int], seed: int, epoch: int) -> list[list[int]]:
        return length_grouped_batches(lengths, self.batch_size, seed, epoch)

    def count(self, lengths: Sequence[int], seed: int, epoch: int) -> int:
        # Every pool but the last holds a whole number of batches, so the count is the plain one.
        return math.ceil(len(lengths) / self.batch_size)

    def validation(self, lengths: Sequence[int]) -> list[list[int]]:
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]

    def describe(self) -> str:
        return f"{self.batch_size} pairs"


@dataclass(frozen=True)
class TokenBudget(Batching):
    """As many pairs per micro-batch as fit in `max_tokens` (see token_budget_batches)."""

    max_tokens: int

    def epoch(self, lengths: Sequence[int], seed: int, epoch: int) -> list[list[int]]:
        return token_budget_batches(lengths, self.max_tokens, seed, epoch)

    def validation(self, lengths: Sequence[int]) -> list[list[int]]:
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        return fill_token_budget(order, lengths, self.max_tokens)

    def describe(self) -> str:
        return f"up to {self.max_tokens} tokens"


def batching_for(batch_size: int, max_tokens: int | None) -> Batching:
    """The strategy the settings ask for: a token budget when --max-tokens is given, else --batch-size pairs."""
    return LengthGrouped(batch_size) if max_tokens is None else TokenBudget(max_tokens)


@dataclass(frozen=True)
class StepPlan:
    """How micro-batches make optimizer steps."""

    batches_per_epoch: int
    grad_accum: int
    total_steps: int
    world_size: int = 1

    @property
    def micro_batches_per_step(self) -> int:
        """Micro-batches in one optimizer step, over every process."""
        return self.grad_accum * self.world_size

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.batches_per_epoch / self.micro_batches_per_step)


def plan_steps(
    batch_counts: Sequence[int],
    grad_accum: int,
    epochs: float,
    max_steps: int | None,
    world_size: int = 1,
    fixed_size: bool = True,
) -> StepPlan:
    """Total optimizer steps: max_steps when given, else the steps of `epochs` epochs (fractions allowed).

    `batch_counts`: the micro-batches of each of the first ceil(epochs) epochs (`epoch_batch_counts`). With
    `fixed_size` batches every epoch has the same steps S and the total is ceil(epochs x S), exactly as the HF
    Trainer counts (float rounding included: 1.1 x 10 steps is 12); otherwise each epoch's own steps are added up
    (`steps_for_epochs`). Under data parallelism a step takes grad_accum micro-batches on each of world_size
    processes, so an epoch has world_size times fewer steps.
    """
    per_step = grad_accum * world_size
    step_counts = [math.ceil(b / per_step) for b in batch_counts]
    if max_steps is not None:
        total = max_steps
    elif fixed_size:
        total = max(1, math.ceil(epochs * step_counts[0]))
    else:
        total = steps_for_epochs(step_counts, epochs)
    return StepPlan(batch_counts[0], grad_accum, total, world_size)


def epoch_batch_counts(lengths: Sequence[int], batching: Batching, seed: int, epochs: int) -> list[int]:
    """Micro-batches in each of the first `epochs` epochs: ceil(pairs / batch_size) each with fixed batches; under a
    token budget each epoch's shuffle decides, and the counts differ by a few."""
    return [batching.count(lengths, seed, epoch) for epoch in range(epochs)]


def steps_for_epochs(step_counts: Sequence[int], epochs: float) -> int:
    """Optimizer steps in `epochs` epochs (fractions allowed) whose step counts are `step_counts`, at least one.

    With equal counts this is ceil(epochs x steps per epoch), as the HF Trainer counts.
    """
    whole = int(epochs)
    total = sum(step_counts[:whole])
    if epochs > whole:
        total += math.ceil((epochs - whole) * step_counts[whole])
    return max(1, total)


def epoch_fraction(step: int, epoch: int, batch_counts: Sequence[int], micro_batches_per_step: int) -> float:
    """How far into `epoch` optimizer step `step` is, in (0, 1]; `batch_counts` covers epochs 0..epoch."""
    counts = [math.ceil(b / micro_batches_per_step) for b in batch_counts[: epoch + 1]]
    return (step - sum(counts[:epoch])) / counts[epoch]


def optimizer_steps(
    lengths: Sequence[int],
    batching: Batching,
    grad_accum: int,
    seed: int,
    total_steps: int,
    start_step: int = 0,
    world_size: int = 1,
) -> Iterator[tuple[int, int, list[list[int]]]]:
    """Yield (step, epoch, micro-batches) for steps start_step+1 .. total_steps.

    A step holds grad_accum x world_size micro-batches of one batch sequence, so N processes with grad_accum A see
    exactly the steps of one process with grad_accum N x A; each process takes its `rank_share`.
    Steps never span two epochs (the last step of an epoch may hold fewer micro-batches), as in the HF Trainer.
    """
    if not lengths:
        raise ValueError("optimizer_steps: no training examples")
    per_step = grad_accum * world_size
    step = 0
    epoch = 0
    while True:
        batches = batching.epoch(lengths, seed, epoch)
        for i in range(0, len(batches), per_step):
            step += 1
            if step > total_steps:
                return
            if step > start_step:
                yield step, epoch, batches[i : i + per_step]
        epoch += 1


def target_tokens(pairs: Sequence[TokenizedPair]) -> int:
    """The target tokens of `pairs`: what the loss averages over."""
    return sum(len(p.labels) for p in pairs)


def rank_share(micro_batches: Sequence[T], world_size: int, rank: int) -> list[T]:
    """Process `rank`'s micro-batches of one step: every world_size-th, so a short last step stays balanced.

    Empty only when the step has fewer micro-batches than processes (the end of a small epoch).
    """
    return list(micro_batches[rank::world_size])


def collate(
    pairs: Sequence[TokenizedPair], pad_token_id: int, decoder_start_token_id: int, pad_to_multiple_of: int = 1
) -> dict[str, "object"]:
    """Pad a micro-batch into tensors: input_ids, attention_mask, decoder_input_ids, labels (-100 on padding)."""
    import torch

    def padded_len(n: int) -> int:
        return -(-n // pad_to_multiple_of) * pad_to_multiple_of

    src_len = padded_len(max(len(p.input_ids) for p in pairs))
    tgt_len = padded_len(max(len(p.labels) for p in pairs))
    n = len(pairs)
    input_ids = torch.full((n, src_len), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((n, src_len), dtype=torch.long)
    decoder_input_ids = torch.full((n, tgt_len), pad_token_id, dtype=torch.long)
    labels = torch.full((n, tgt_len), IGNORE_INDEX, dtype=torch.long)
    for row, pair in enumerate(pairs):
        s, t = len(pair.input_ids), len(pair.labels)
        input_ids[row, :s] = torch.tensor(pair.input_ids)
        attention_mask[row, :s] = 1
        decoder_input_ids[row, :t] = torch.tensor(shift_right(pair.labels, decoder_start_token_id))
        labels[row, :t] = torch.tensor(pair.labels)
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "decoder_input_ids": decoder_input_ids,
        "labels": labels,
    }
