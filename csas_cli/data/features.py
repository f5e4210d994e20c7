"""Stage 2: validated examples -> tokenized pairs.

Each family's language handling comes from its `Family` record: M2M100 and mBART-50 tokenizers are given the row's
source and target language codes, so sources start with the source code and labels with the target code; Marian
checkpoints are one direction each and take no codes. Decoder inputs are not built here: they are the labels shifted
right from the model's decoder_start_token_id (see batches.py), which is what generation starts from.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby
from typing import Any, Sequence

from ..registry import Family
from .pairs import Example, Split


@dataclass(frozen=True)
class TokenizedPair:
    """One training pair as token ids, ready to batch."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]

    @property
    def length(self) -> int:
        """Sort key for length grouping: the longer side dominates padding."""
        return max(len(self.input_ids), len(self.labels))


def set_languages(tokenizer: Any, family: Family, source_lang: str, target_lang: str) -> None:
    """Point the tokenizer at one direction (a no-op for families without language codes)."""
    if family.language_codes is None:
        return
    tokenizer.src_lang = family.code(source_lang)
    tokenizer.tgt_lang = family.code(target_lang)


def tokenize_examples(
    tokenizer: Any,
    family: Family,
    examples: Sequence[Example],
    *,
    max_source_len: int,
    max_target_len: int,
) -> list[TokenizedPair]:
    """Tokenize in batches, one direction at a time, keeping the examples' order.

    Truncation keeps the closing `</s>` (the tokenizers add special tokens after truncating the text).
    """
    out: list[TokenizedPair | None] = [None] * len(examples)
    order = sorted(range(len(examples)), key=lambda i: (examples[i].source_lang, examples[i].target_lang))
    for (src, tgt), group in groupby(order, key=lambda i: (examples[i].source_lang, examples[i].target_lang)):
        indices = list(group)
        set_languages(tokenizer, family, src, tgt)
        sources = tokenizer(
            [examples[i].source for i in indices], max_length=max_source_len, truncation=True
        )["input_ids"]
        targets = tokenizer(
            text_target=[examples[i].target for i in indices], max_length=max_target_len, truncation=True
        )["input_ids"]
        for i, s, t in zip(indices, sources, targets):
            out[i] = TokenizedPair(tuple(s), tuple(t))
    return [pair for pair in out if pair is not None]


@dataclass(frozen=True)
class TokenizedSplit:
    """What a training run consumes: the tokenized training and validation pairs, and the validation rows
    themselves (chrF scores the translations of their sources against their targets)."""

    train: list[TokenizedPair]
    eval: list[TokenizedPair]
    eval_examples: list[Example]


def tokenize_split(
    tokenizer: Any, family: Family, split: Split, *, max_source_len: int, max_target_len: int
) -> TokenizedSplit:
    """Both sides of a split, tokenized as `tokenize_examples` tokenizes."""
    lengths = {"max_source_len": max_source_len, "max_target_len": max_target_len}
    return TokenizedSplit(
        train=tokenize_examples(tokenizer, family, split.train, **lengths),
        eval=tokenize_examples(tokenizer, family, split.eval, **lengths),
        eval_examples=list(split.eval),
    )
