"""A run's groundwork, laid before the recipe is built and before any weights load: this process's device and
precision (checked first, so a wrong flag costs nothing), the micro-batch size and the step schedule (what the recipe
trains by and --dry-run shows), and the base's config and tokenizer (cheap, so a wrong checkpoint is refused early).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from ..data.batches import Batching, StepPlan, epoch_batch_counts, plan_steps
from ..modeling import Precision
from ..plan import Plan
from ..registry import REGISTRY
from ..settings import TrainingSettings


@dataclass(frozen=True)
class Hardware:
    """Where this process trains, and in which precision (checked before anything loads)."""

    device: Any
    precision: Precision


def check_hardware(plan: Plan) -> Hardware:
    """This process's device and the plan's precision on it; a precision or a --device-map GPU the hardware lacks is
    refused here, so a wrong flag costs nothing."""
    import torch

    from ..device_map import check_device_map
    from ..modeling import check_precision
    from .distributed import training_device

    check_device_map(plan.resolved.device_map_requested, torch.cuda.device_count())
    device = training_device(plan.resolved.local_rank)
    return Hardware(device, check_precision(plan.resolved.precision, device))


def micro_batch_size(batch_size: int, train_rows: int) -> int:
    """--batch-size, clamped to the training pairs: a micro-batch cannot hold more pairs than there are (prepare_run
    says so when it clamps)."""
    return max(1, min(batch_size, train_rows))


def schedule(
    training: TrainingSettings, batching: Batching, lengths: Sequence[int], world_size: int
) -> tuple[list[int], StepPlan, int]:
    """(micro-batches of each epoch the run reaches, the step plan, warm-up steps) of pairs of these lengths: what
    the recipe trains by and --dry-run shows (with fixed-size batches the lengths only count the pairs)."""
    epochs = max(1, math.ceil(training.epochs))
    batch_counts = epoch_batch_counts(lengths, batching, training.seed, epochs)
    steps = plan_steps(
        batch_counts, training.grad_accum, training.epochs, training.max_steps, world_size,
        fixed_size=batching.fixed_size,
    )  # fmt: skip
    return batch_counts, steps, math.ceil(training.warmup_ratio * steps.total_steps)


@dataclass(frozen=True)
class Base:
    """The base model's config and tokenizer: cheap to load, and loaded before any weights, so that a checkpoint of
    the wrong family or a length it cannot hold is refused first."""

    config: Any
    tokenizer: Any
    commit: str | None = None
    """The hub commit the base's revision resolved to (None for a local snapshot): what run.json records, so that a
    resumed run, and translate or merge of the run, use the same weights even after the repository moves on."""


def load_base(plan: Plan, *, standin_tokenizer: bool = False) -> Base:
    """`standin_tokenizer`: the base is a benchmark's random-weight checkpoint, whose tokenizer is a stand-in of
    another class (its pairs come tokenized)."""
    from ..modeling import check_lengths, load_config, load_tokenizer, quiet_libraries
    from ..snapshots import snapshot_commit

    quiet_libraries()  # before transformers is imported: some of the chatter comes at import time
    family = REGISTRY[plan.which].family
    revision = plan.model.revision
    config = load_config(plan.model_id, family, plan.which, revision)
    check_lengths(config, family, plan.corpus.max_source_len, plan.corpus.max_target_len)
    tokenizer = load_tokenizer(plan.model_id, None if standin_tokenizer else family, revision)
    return Base(config, tokenizer, snapshot_commit(plan.model_id, revision))
