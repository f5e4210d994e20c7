"""How well a translation model explains each pair: the alignment score of `csas check-data --score-with`.

For a pair (source, target) and a model of its direction, the score is the cross-entropy of the target given the
source, per target token (teacher forcing, the model's own tokenization: the mean negative log-likelihood of the
target's pieces, `</s>` and the language code included). Where a model of the other direction is given too, the
pair is also scored the other way round, and the two make the dual conditional cross-entropy of Junczys-Dowmunt
(2018, "Dual conditional cross-entropy filtering of noisy parallel corpora"): |H(t|s) - H(s|t)| + (H(t|s) +
H(s|t)) / 2, high when either model finds the pair unlikely or the two disagree. A misaligned pair (a sentence
against another sentence's translation) scores far higher than the file's translations (data/alignment.py flags
it).

Batched by length, on the GPU where there is one (inference/generation.py's device choice), in eval mode without
gradients; sources and targets are cut at MAX_TOKENS pieces.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..data.features import tokenize_examples
from ..data.pairs import Example, reversed_example
from ..languages import Direction
from .generation import LoadedModel, length_sorted_batches

MAX_TOKENS = 256
"""Pieces kept per side: enough for a sentence, a bound on memory for a stray paragraph."""
BATCH_SIZE = 32


def cross_entropies(
    loaded: LoadedModel, examples: Sequence[Example], batch_size: int = BATCH_SIZE,
    advance: Callable[[int], None] | None = None,
) -> list[float]:
    """Per example (all of one direction, the model's), the mean negative log-likelihood per target piece."""
    import torch

    if not examples:
        return []
    model = loaded.model
    config = loaded.transformers_model.config
    pad, start = config.pad_token_id, config.decoder_start_token_id
    pairs = tokenize_examples(loaded.tokenizer, loaded.family, examples, max_source_len=MAX_TOKENS,
                              max_target_len=MAX_TOKENS)  # fmt: skip
    scores = [math.nan] * len(pairs)
    from ..data.batches import collate

    with torch.inference_mode():
        for batch in length_sorted_batches([p.length for p in pairs], batch_size):
            tensors = {k: v.to(loaded.device) for k, v in collate([pairs[i] for i in batch], pad, start).items()}
            labels = tensors.pop("labels")
            logits = model(**tensors).logits.float()
            picked = torch.log_softmax(logits, dim=-1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
            mask = labels >= 0
            values = -(picked * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
            for i, value in zip(batch, values.tolist()):
                scores[i] = value
            if advance is not None:
                advance(len(batch))
    return scores


@dataclass(frozen=True)
class PairScorer:
    """The models that score pairs: per direction ("en->fr"), the model that translates it."""

    models: dict[str, LoadedModel]

    def directions(self) -> list[str]:
        return sorted(self.models)

    def score(self, examples: Sequence[Example], advance: Callable[[int], None] | None = None) -> list[float | None]:
        """Per example, its alignment score (see the module docstring): None where no model translates its
        direction or the other way."""
        out: list[float | None] = [None] * len(examples)
        for source in ("en", "fr"):
            forward = str(Direction(source, "fr" if source == "en" else "en"))
            backward = str(Direction(forward[-2:], source))
            rows = [i for i, ex in enumerate(examples) if ex.source_lang == source]
            if not rows or (forward not in self.models and backward not in self.models):
                continue
            rows_ex = [examples[i] for i in rows]
            there = cross_entropies(self.models[forward], rows_ex, advance=advance) if forward in self.models else None
            back = (cross_entropies(self.models[backward], [reversed_example(e) for e in rows_ex], advance=advance)
                    if backward in self.models else None)  # fmt: skip
            for k, i in enumerate(rows):
                if there is not None and back is not None:
                    out[i] = abs(there[k] - back[k]) + (there[k] + back[k]) / 2
                else:
                    out[i] = (there or back)[k]  # type: ignore[index]
        return out

    def work(self, examples: Sequence[Example]) -> int:
        """The number of model passes score() makes (for a progress count)."""
        total = 0
        for source, target in (("en", "fr"), ("fr", "en")):
            n = sum(ex.source_lang == source for ex in examples)
            total += n * ((f"{source}->{target}" in self.models) + (f"{target}->{source}" in self.models))
        return total


__all__ = ["MAX_TOKENS", "PairScorer", "cross_entropies"]
