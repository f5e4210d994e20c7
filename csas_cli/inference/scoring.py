"""Corpus scores: sacrebleu's BLEU and chrF with their default settings, for `csas evaluate` and evaluation during
training alike, so that a chrF logged while training and one `csas evaluate` prints mean the same thing."""

from __future__ import annotations

from typing import Sequence


def score(hypotheses: Sequence[str], references: Sequence[str]) -> tuple[float, float, str, str]:
    """sacrebleu's corpus BLEU and chrF with default settings, and their signatures."""
    from sacrebleu.metrics import BLEU, CHRF

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    bleu, chrf = BLEU(), CHRF()
    bleu_score = bleu.corpus_score(list(hypotheses), [list(references)]).score
    chrf_score = chrf.corpus_score(list(hypotheses), [list(references)]).score
    return bleu_score, chrf_score, str(bleu.get_signature()), str(chrf.get_signature())
