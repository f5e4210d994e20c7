"""One optimizer step, and what makes it: AdamW on the LoRA weights, the linear warm-up/decay schedule, the fp16 loss
scaler. These are the numerics the tests hold against a plain PyTorch loop; the recipe calls them once per step.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from ..data.features import TokenizedPair
from ..modeling import Precision
from ..settings import MAX_GRAD_NORM, WEIGHT_DECAY
from .distributed import ProcessGroup


def build_optimizer(
    model: Any, learning_rate: float, warmup_steps: int, total_steps: int, precision: Precision
) -> tuple[Any, Any, Any]:
    """(AdamW on the trainable weights, the linear warm-up/decay schedule, a loss scaler for fp16 or None)."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        trainable, lr=learning_rate, weight_decay=WEIGHT_DECAY, fused=all(p.device.type == "cuda" for p in trainable)
    )
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup_steps, total_steps)
    scaler = torch.amp.GradScaler("cuda") if precision.needs_loss_scaler else None
    return optimizer, scheduler, scaler


def optimizer_step(
    groups: Sequence[Sequence[TokenizedPair]],
    step_tokens: int,
    *,
    loss_sum: Callable[[Sequence[TokenizedPair]], Any],
    wrapped: Any,
    model: Any,
    optimizer: Any,
    scheduler: Any,
    scaler: Any,
    group: ProcessGroup,
    device: Any,
    idle: bool = False,
) -> tuple[float, float, float]:
    """Forward/backward this process's micro-batches `groups`, clip, step; returns (token-averaged loss, grad norm, lr).

    `loss_sum(pairs)` is a micro-batch's summed target-token loss through `wrapped` (the objective, or DDP around
    it). `step_tokens` counts the target tokens of the whole step, over every process, and the returned loss
    averages over them too. `idle`: this process has no micro-batch in this step (a short last step of an epoch); it
    runs `groups` with zero weight, because DDP's gradient all-reduce needs every process.
    """
    import torch

    # Dividing every micro-batch by the whole step's target tokens averages the loss over tokens, not over
    # micro-batches of unequal length. DDP averages gradients over processes; multiplying by their number turns
    # that average back into the sum, so N processes compute the gradient one process would with N x grad_accum.
    weight = 0 if idle else group.world_size
    step_loss = torch.zeros((), device=device)
    last = len(groups) - 1
    for i, pairs in enumerate(groups):
        with group.accumulating(wrapped, sync=i == last):
            micro_loss = loss_sum(pairs)
            loss = micro_loss * weight / step_tokens
            (scaler.scale(loss) if scaler else loss).backward()
        if not idle:
            step_loss += micro_loss.detach()
    if scaler:
        scaler.unscale_(optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], MAX_GRAD_NORM)
    lr = scheduler.get_last_lr()[0]
    if scaler:
        scale = scaler.get_scale()
        scaler.step(optimizer)
        scaler.update()
        stepped = scaler.get_scale() >= scale  # the scaler skips steps with inf/nan gradients
    else:
        optimizer.step()
        stepped = True
    if stepped:  # as in the HF Trainer, a skipped step does not advance the schedule
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    group.sum_(step_loss)  # every process logs, and checks, the loss of the whole step
    total, norm = torch.stack([step_loss.float(), grad_norm.float().to(step_loss.device)]).tolist()
    return total / step_tokens, norm, lr  # one host sync per optimizer step
