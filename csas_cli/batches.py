"""Stage 3: tokenized pairs -> micro-batches -> optimizer steps.

Batch order is a pure function of (seed, epoch), so any position in training can be recomputed from the step count
alone; that is what makes a resumed run see the same batches as an uninterrupted one.
"""

from __future__ import annotations

import math
import random
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
    num_examples: int, batch_size: int, grad_accum: int, epochs: float, max_steps: int | None, world_size: int = 1
) -> StepPlan:
    """Total optimizer steps: max_steps when given, else ceil(epochs x steps per epoch), as the HF Trainer counts.

    Under data parallelism a step takes grad_accum micro-batches on each of world_size processes, so an epoch has
    world_size times fewer steps.
    """
    batches = math.ceil(num_examples / batch_size)
    steps_per_epoch = math.ceil(batches / (grad_accum * world_size))
    total = max_steps if max_steps is not None else max(1, math.ceil(epochs * steps_per_epoch))
    return StepPlan(batches, grad_accum, total, world_size)


def optimizer_steps(
    lengths: Sequence[int],
    batch_size: int,
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
        batches = length_grouped_batches(lengths, batch_size, seed, epoch)
        for i in range(0, len(batches), per_step):
            step += 1
            if step > total_steps:
                return
            if step > start_step:
                yield step, epoch, batches[i : i + per_step]
        epoch += 1


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
