"""Stage 2: validated examples -> tokenized pairs.

Each family's language handling comes from its `Family` record: M2M100 and mBART-50 tokenizers are given the row's
source and target language codes, so sources start with the source code and labels with the target code; Marian
checkpoints are one direction each and take no codes. Decoder inputs are not built here: they are the labels shifted
right from the model's decoder_start_token_id (see batches.py), which is what generation starts from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import groupby
from typing import Any, Sequence

from ..languages import set_languages
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


def encode_side(tokenizer: Any, texts: Sequence[str], max_len: int, *, target: bool,
                keep_ids: bool = True) -> tuple[list[list[int]], list[int]]:
    """Token ids of `texts` (labels when `target`), cut at `max_len` keeping the closing `</s>`, and the indices of
    the texts that were cut.

    Encoded once at `max_len + 1`: a text is longer than `max_len` exactly when it fills that. Only the texts that
    were cut are encoded again at `max_len`; with `keep_ids` False they are not (a report needs only the count).
    """
    key = "text_target" if target else "text"
    ids = tokenizer(**{key: list(texts)}, max_length=max_len + 1, truncation=True)["input_ids"]
    cut = [i for i, seq in enumerate(ids) if len(seq) > max_len]
    if cut and keep_ids:
        again = tokenizer(**{key: [texts[i] for i in cut]}, max_length=max_len, truncation=True)["input_ids"]
        for i, seq in zip(cut, again):
            ids[i] = seq
    return ids, cut


@dataclass(frozen=True)
class Cuts:
    """Which rows of a list of examples are longer than the max lengths, on each side (indices, ascending)."""

    sources: tuple[int, ...] = ()
    targets: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, int]:
        return {"sources": len(self.sources), "targets": len(self.targets)}


def by_direction(examples: Sequence[Example]) -> list[tuple[str, str, list[int]]]:
    """The examples' indices grouped by direction (source, target language), each group in input order."""
    order = sorted(range(len(examples)), key=lambda i: (examples[i].source_lang, examples[i].target_lang))
    return [
        (src, tgt, list(group))
        for (src, tgt), group in groupby(order, key=lambda i: (examples[i].source_lang, examples[i].target_lang))
    ]


def tokenize_counted(
    tokenizer: Any,
    family: Family,
    examples: Sequence[Example],
    *,
    max_source_len: int,
    max_target_len: int,
    keep_ids: bool = True,
) -> tuple[list[TokenizedPair], Cuts]:
    """Tokenize in batches, one direction at a time, keeping the examples' order; and which rows were cut.

    Truncation keeps the closing `</s>` (the tokenizers add special tokens after truncating the text). With
    `keep_ids` False only the cuts are computed (what `csas check-data` reports) and no pairs are returned.
    """
    out: list[TokenizedPair | None] = [None] * len(examples)
    source_cut: list[int] = []
    target_cut: list[int] = []
    for src, tgt, indices in by_direction(examples):
        set_languages(tokenizer, family, src, tgt)
        sources, cut = encode_side(tokenizer, [examples[i].source for i in indices], max_source_len, target=False,
                                   keep_ids=keep_ids)  # fmt: skip
        source_cut += (indices[j] for j in cut)
        targets, cut = encode_side(tokenizer, [examples[i].target for i in indices], max_target_len, target=True,
                                   keep_ids=keep_ids)  # fmt: skip
        target_cut += (indices[j] for j in cut)
        if keep_ids:
            for i, s, t in zip(indices, sources, targets):
                out[i] = TokenizedPair(tuple(s), tuple(t))
    cuts = Cuts(tuple(sorted(source_cut)), tuple(sorted(target_cut)))
    return [pair for pair in out if pair is not None], cuts


def tokenize_examples(
    tokenizer: Any,
    family: Family,
    examples: Sequence[Example],
    *,
    max_source_len: int,
    max_target_len: int,
) -> list[TokenizedPair]:
    """`tokenize_counted`'s pairs alone."""
    return tokenize_counted(
        tokenizer, family, examples, max_source_len=max_source_len, max_target_len=max_target_len
    )[0]


@dataclass(frozen=True)
class TokenizedSplit:
    """What a training run consumes: the tokenized training and validation pairs, and the validation rows
    themselves (chrF scores the translations of their sources against their targets)."""

    train: list[TokenizedPair]
    eval: list[TokenizedPair]
    eval_examples: list[Example]
    cuts: dict[str, Cuts] = field(default_factory=dict)
    """Rows cut at the max lengths, per side of the split ("train", "eval")."""

    def cut_counts(self) -> dict[str, int]:
        """Pairs cut on each side (sources, targets), train and eval together."""
        return {
            side: sum(len(getattr(c, side)) for c in self.cuts.values()) for side in ("sources", "targets")
        }


def tokenize_split(
    tokenizer: Any, family: Family, split: Split, *, max_source_len: int, max_target_len: int
) -> TokenizedSplit:
    """Both sides of a split, tokenized as `tokenize_counted` tokenizes."""
    lengths = {"max_source_len": max_source_len, "max_target_len": max_target_len}
    train, train_cuts = tokenize_counted(tokenizer, family, split.train, **lengths)
    evaluation, eval_cuts = tokenize_counted(tokenizer, family, split.eval, **lengths)
    return TokenizedSplit(train=train, eval=evaluation, eval_examples=list(split.eval),
                          cuts={"train": train_cuts, "eval": eval_cuts})  # fmt: skip
