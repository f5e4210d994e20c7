"""The training objective: label-smoothed cross-entropy over target tokens, without a full-vocabulary logits tensor.

A seq2seq model's own forward returns logits for every position of every decoder row: batch x length x vocabulary,
250,054 classes for mBART-50. Upcasting them to fp32 for a stable log-softmax, and keeping the log-softmax for the
backward pass, costs several such tensors. Here the model's trunk (encoder and decoder) runs as usual, and the output
layer is applied only to the target positions, a slice of rows at a time, inside one autograd function that computes
each slice's loss and its gradient with respect to the decoder's hidden states at once (the output layer is frozen
under LoRA, so that gradient is all the backward pass needs). The logits of one slice exist at a time, in fp32. The
output layer's matmul runs in the precision the model's own forward would use (bf16 under bf16 autocast); the bias,
softmax and loss then run in fp32, where the model adds `final_logits_bias` in its weights' precision.

A model that --device-map spread over several GPUs keeps the model's own forward (accelerate's hooks move the
activations between devices), as does a trained output layer.

Imported by the training loop only (this module imports torch at load time).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

CHUNK_ELEMENTS = 1 << 25
"""fp32 logits held at once: 32M elements (128 MiB), 134 target positions of mBART-50's vocabulary."""


class _HeadCrossEntropy(torch.autograd.Function):
    """sum over rows of label-smoothed cross-entropy(hidden @ weight.T + bias, labels), by slices of rows.

    Forward computes the loss and, when asked, d loss / d hidden; backward only scales that saved gradient.
    The weight and bias receive no gradient (the caller checks that they need none).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        labels: torch.Tensor,
        smoothing: float,
        compute_dtype: torch.dtype,
        chunk_rows: int,
        with_grad: bool,
    ) -> torch.Tensor:
        vocab = weight.shape[0]
        total = torch.zeros((), device=hidden.device, dtype=torch.float32)
        grad_hidden = torch.empty_like(hidden) if with_grad else None
        with torch.autocast(hidden.device.type, enabled=False):  # the precision is chosen here, not by autocast
            w = weight.to(compute_dtype)
            for start in range(0, hidden.shape[0], chunk_rows):
                h = hidden[start : start + chunk_rows].to(compute_dtype)
                y = labels[start : start + chunk_rows]
                # The model's output layer in its precision (bf16 under autocast), then fp32 for the softmax.
                z = (h @ w.t()).float()
                if bias is not None:
                    z += bias.float()
                lse = torch.logsumexp(z, dim=-1)
                # (1 - s) * (-log p_y) + s * mean_k(-log p_k), as F.cross_entropy(label_smoothing=s) defines it.
                nll = lse - z.gather(1, y[:, None]).squeeze(1)
                uniform = lse - z.mean(dim=-1)
                total += ((1.0 - smoothing) * nll + smoothing * uniform).sum()
                if grad_hidden is not None:
                    # d loss / d z = softmax(z) - (1 - s) * onehot(y) - s / V, built in z's memory.
                    z.sub_(lse[:, None]).exp_().sub_(smoothing / vocab)
                    z[torch.arange(len(y), device=z.device), y] -= 1.0 - smoothing
                    grad_hidden[start : start + chunk_rows] = (z.to(compute_dtype) @ w).to(hidden.dtype)
                del z
        ctx.save_for_backward(grad_hidden if grad_hidden is not None else hidden.new_empty(0))
        return total

    @staticmethod
    def backward(ctx: Any, grad_total: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        (grad_hidden,) = ctx.saved_tensors
        return grad_hidden * grad_total.to(grad_hidden.dtype), None, None, None, None, None, None, None


def head_cross_entropy_sum(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    labels: torch.Tensor,
    smoothing: float,
    compute_dtype: torch.dtype | None = None,
    chunk_elements: int = CHUNK_ELEMENTS,
) -> torch.Tensor:
    """Label-smoothed cross-entropy summed over `labels`' rows of `hidden @ weight.T + bias`, in slices.

    hidden: (rows, d_model); weight: (vocabulary, d_model), frozen; labels: (rows,), no ignored entries.
    `compute_dtype`: the output layer's matmul precision (default: the weight's).
    """
    if weight.requires_grad or (bias is not None and bias.requires_grad):
        raise ValueError("head_cross_entropy_sum: the output layer must be frozen (it receives no gradient)")
    chunk_rows = max(1, chunk_elements // weight.shape[0])
    with_grad = torch.is_grad_enabled() and hidden.requires_grad
    return _HeadCrossEntropy.apply(
        hidden, weight, bias, labels, smoothing, compute_dtype or weight.dtype, chunk_rows, with_grad
    )


class TargetTokenLoss(torch.nn.Module):
    """The training forward of a (LoRA-wrapped) seq2seq model: batch in, summed target-token loss out.

    A module, so that DistributedDataParallel can wrap it as it would the model. The output layer (`lm_head`, plus
    `final_logits_bias` for Marian and mBART) goes through `head_cross_entropy_sum` when it is a plain frozen linear
    layer and the model sits on one device; otherwise (`fused` is False) the model's own logits are used.
    `autocast_dtype`: the precision the output layer's matmul runs in under autocast (None: the weight's own).
    `sliced=False` always takes the model's own logits (what the sliced output layer is measured against).
    """

    def __init__(
        self, model: Any, smoothing: float, autocast_dtype: torch.dtype | None = None, sliced: bool = True
    ) -> None:
        super().__init__()
        self.model = model
        self.smoothing = smoothing
        self.autocast_dtype = autocast_dtype
        head = self.seq2seq.get_output_embeddings()
        bias = getattr(self.seq2seq, "final_logits_bias", None)
        frozen = not head.weight.requires_grad and (bias is None or not bias.requires_grad)
        placement = getattr(self.seq2seq, "hf_device_map", None) or {}
        one_device = len(set(placement.values())) <= 1
        self.fused = sliced and type(head) is torch.nn.Linear and head.bias is None and frozen and one_device

    @property
    def seq2seq(self) -> Any:
        """The transformers model under the LoRA wrapper."""
        return self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        decoder_input_ids: torch.Tensor,
        labels: torch.Tensor,
        ignore_index: int = -100,
    ) -> torch.Tensor:
        target = labels != ignore_index
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "decoder_input_ids": decoder_input_ids}
        if not self.fused:
            logits = self.model(**inputs, use_cache=False).logits
            target_logits = logits[target].float()
            return F.cross_entropy(target_logits, labels[target], label_smoothing=self.smoothing, reduction="sum")
        seq2seq = self.seq2seq
        hidden = getattr(seq2seq, seq2seq.base_model_prefix)(**inputs, use_cache=False).last_hidden_state
        bias = getattr(seq2seq, "final_logits_bias", None)
        return head_cross_entropy_sum(
            hidden[target],
            seq2seq.get_output_embeddings().weight,
            None if bias is None else bias.reshape(-1),
            labels[target],
            self.smoothing,
            self.autocast_dtype,
        )
