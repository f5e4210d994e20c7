"""Misaligned pairs and documents: is each target a translation of its source, and which publications are broken?

A memory can hold a document whose French is shuffled against its English (TICO-19's does); each of its pairs is
a fluent sentence in each language, so the other checks flag it only here and there. Noise of this kind costs NMT
far more than its share (Khayrallah and Koehn 2018). Three tools:

- **The lexical check** (`lexical_anchors`, `misaligned_lexical`), which needs no model: a translation shares
  anchors with its source, a misaligned pair does not. The anchors of a side are its numbers (read in its
  language: numbers.numbers_in), its names and acronyms (capitalised words past the first), and its words of five
  letters or more (cognates: `population`/`population`, `abundant`/`abondant`); an anchor is matched when the
  other side holds the same number, or a word with the same first five letters or the same first four consonants,
  accents aside. A number counts twice. A pair is judged when its two sides hold at least MIN_ANCHORS anchors, and
  flagged when matching so few is very unlikely for a pair of this file: under the binomial law of the file's own
  match rate, the chance of matching as few is below LEXICAL_ALPHA.
- **The model's score** (inference/pair_scores.py, `check-data --score-with`): the cross-entropy of the target
  given the source under a translation model, dual where both directions' models are given; a pair is flagged
  when its score is more than MODEL_Z robust standard deviations (1.4826 x the median absolute deviation) above the
  file's median (`misaligned_by_score`), unless the lexical check vouches for it (its chance at least
  CORROBORATION: the pair shares about as many anchors as the file's pairs do). Measured, this keeps the model's
  recall and removes most of its false alarms (README).
- **Publications** (`publication_summary`): a publication whose share of flagged rows (by the alignment checks and
  the checks of numbers, length ratio and language) is far above the file's, so unlikely under the file's rate
  that chance cannot explain it (binomial, below PUBLICATION_ALPHA over the number of publications), is listed,
  highest share first: a broken document stands out where its rows' flags would be scattered in a long report.

Measured on the shipped sample with planted misalignments: scripts/measure_alignment.py, and the README.
"""

from __future__ import annotations

import functools
import math
import re
import statistics
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .numbers import numbers_in
from .pairs import Example

MISALIGNED = "misaligned"
"""The check's name (`--drop misaligned`)."""
PUBLICATION_CHECKS = ("misaligned", "numbers", "length_ratio", "language")
"""The checks whose flags a publication's share counts: those a misaligned document sets off."""
MIN_ANCHORS = 4
"""Anchors (both sides together) a pair needs to be judged by the lexical check."""
LEXICAL_ALPHA = 0.001
"""A pair is flagged when a pair of this file would match as few of its anchors with a smaller chance."""
MODEL_Z = 3.5
"""A pair is flagged when its model score is this many robust standard deviations above the file's median."""
CORROBORATION = 0.05
"""A model's flag stands where the lexical chance of the pair is under this, or the pair has too few anchors to
judge: a pair that shares its anchors as a translation does is not called misaligned on the model's word alone."""
PUBLICATION_ALPHA = 0.01
"""The chance, over all publications (Bonferroni), that the file's flag rate alone puts as many flags in one."""
MIN_PUBLICATION_ROWS = 5
"""Publications with fewer rows are not judged."""
PREFIX = 5
SKELETON = 4
_WORD = re.compile(r"[^\W\d_]+")
_VOWELS = re.compile(r"[aeiouy]")


@functools.lru_cache(maxsize=1 << 16)
def fold(word: str) -> str:
    """Case-folded, accents removed: `Écosystème` -> `ecosysteme` (cached: a corpus repeats its words)."""
    return "".join(c for c in unicodedata.normalize("NFD", word) if unicodedata.category(c) != "Mn").casefold()


@functools.lru_cache(maxsize=1 << 16)
def word_keys(folded: str) -> frozenset[str]:
    """What a word is matched by: its first five letters, and its first four consonants (`abundant` and
    `abondante` share `bndn`)."""
    skeleton = _VOWELS.sub("", folded)
    return frozenset((folded[:PREFIX], "#" + skeleton[:SKELETON]) if len(skeleton) >= 3 else (folded[:PREFIX],))


@dataclass(frozen=True)
class Side:
    numbers: frozenset[str]
    anchors: tuple[frozenset[str], ...]
    """Each anchor word's keys (a name's whole folded form among them)."""
    keys: frozenset[str]
    """Every key of the side's words, and the words themselves."""


def lexical_side(text: str, lang: str) -> Side:
    words = _WORD.findall(text)
    anchors: dict[frozenset[str], None] = {}
    keys: set[str] = set()
    for i, word in enumerate(words):
        folded = fold(word)
        own = word_keys(folded) if len(folded) >= 4 else frozenset()
        keys |= own | {folded}
        name = len(word) >= 2 and (word.isupper() or (i > 0 and word[0].isupper()))
        if name:
            anchors[frozenset(own | {folded})] = None
        elif len(folded) >= PREFIX:
            anchors[frozenset(own)] = None
    return Side(frozenset(numbers_in(text, lang)), tuple(anchors), frozenset(keys))


def lexical_anchors(example: Example) -> tuple[int, int]:
    """(anchors matched, anchors) of a pair, both sides together (see the module docstring)."""
    a, b = lexical_side(example.source, example.source_lang), lexical_side(example.target, example.target_lang)
    total = 2 * len(a.numbers | b.numbers) + len(a.anchors) + len(b.anchors)
    matched = 2 * len(a.numbers & b.numbers) + sum(1 for x in a.anchors if x & b.keys)
    matched += sum(1 for x in b.anchors if x & a.keys)
    return matched, total


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p)."""
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 1.0 if k >= n else 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    return min(1.0, sum(math.exp(math.lgamma(n + 1) - math.lgamma(x + 1) - math.lgamma(n - x + 1) + x * log_p
                                 + (n - x) * log_q) for x in range(k + 1)))  # fmt: skip


def binomial_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    return 1.0 if k <= 0 else 1.0 - binomial_cdf(k - 1, n, p)


@dataclass(frozen=True)
class LexicalFlags:
    details: dict[int, str]
    """Row index -> why it is flagged."""
    rate: float
    """The file's match rate: anchors matched over anchors, over the judged pairs."""
    chances: dict[int, float]
    """Row index -> the binomial chance of matching as few anchors, for the judged pairs."""

    @property
    def judged(self) -> int:
        return len(self.chances)


def misaligned_lexical(examples: Sequence[Example], rows: Sequence[int]) -> LexicalFlags:
    """The lexical check over `rows` (indices of `examples` with both sides non-empty)."""
    counts = {i: lexical_anchors(examples[i]) for i in rows}
    judged = {i: c for i, c in counts.items() if c[1] >= MIN_ANCHORS}
    rate = sum(m for m, _ in judged.values()) / max(1, sum(n for _, n in judged.values()))
    details, chances = {}, {}
    for i, (matched, total) in judged.items():
        chances[i] = binomial_cdf(matched, total, rate)
        if chances[i] < LEXICAL_ALPHA:
            details[i] = f"{matched} of {total} anchors shared (numbers, names, cognates; the file shares {rate:.0%})"
    return LexicalFlags(details, rate, chances)


def robust_threshold(values: Sequence[float], z: float = MODEL_Z) -> tuple[float, float, float]:
    """(threshold, median, robust standard deviation) of `values`: median + z x 1.4826 x MAD."""
    median = statistics.median(values)
    spread = 1.4826 * statistics.median(abs(v - median) for v in values)
    return median + z * spread, median, spread


def misaligned_by_score(scores: dict[int, float]) -> tuple[dict[int, str], float | None, float | None]:
    """Rows whose model score is far above the file's (see MODEL_Z): (details, threshold, median)."""
    if len(scores) < 10:
        return {}, None, None
    threshold, median, spread = robust_threshold(list(scores.values()))
    if spread <= 0:
        return {}, threshold, median
    details = {i: f"model score {s:.2f} (the file's median {median:.2f}, threshold {threshold:.2f})"
               for i, s in scores.items() if s > threshold}  # fmt: skip
    return details, threshold, median


@dataclass(frozen=True)
class Misalignment:
    """The misaligned check's result: why each flagged row is flagged, and the file's figures it was judged by."""

    details: dict[int, str]
    lexical: LexicalFlags
    threshold: float | None = None
    """The model score above which a pair is flagged (with scores)."""
    median: float | None = None
    scored: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"lexical_rate": self.lexical.rate, "lexical_judged": self.lexical.judged,
                "lexical_alpha": LEXICAL_ALPHA, "model_threshold": self.threshold, "model_median": self.median,
                "model_scored": self.scored, "model_z": MODEL_Z}  # fmt: skip


def misaligned(
    examples: Sequence[Example], rows: Sequence[int], scores: dict[int, float] | None = None
) -> Misalignment:
    """The misaligned check over `rows`: the lexical flags, and where `scores` (row -> model score) are given the
    model's flags the lexical check does not contradict (see the module docstring)."""
    lexical = misaligned_lexical(examples, rows)
    details = dict(lexical.details)
    if scores is None:
        return Misalignment(details, lexical)
    by_model, threshold, median = misaligned_by_score(scores)
    for i, why in by_model.items():
        if lexical.chances.get(i, 0.0) < CORROBORATION:
            details[i] = f"{details[i]}; {why}" if i in details else why
    return Misalignment(details, lexical, threshold, median, len(scores))


@dataclass(frozen=True)
class PublicationFlags:
    publication: str
    rows: int
    flagged: int
    chance: float
    """The chance of as many flags in a publication this size at the file's rate."""

    @property
    def share(self) -> float:
        return self.flagged / self.rows

    def to_dict(self) -> dict[str, Any]:
        return {"publication": self.publication, "rows": self.rows, "flagged": self.flagged, "share": self.share}


def publication_summary(examples: Sequence[Example], flagged: set[int]) -> tuple[list[PublicationFlags], float]:
    """The publications whose share of `flagged` rows is far above the file's (module docstring), highest share
    first; and the file's share."""
    sizes: Counter[str] = Counter()
    hits: Counter[str] = Counter()
    for i, ex in enumerate(examples):
        if ex.pub_number is not None:
            sizes[ex.pub_number] += 1
            hits[ex.pub_number] += i in flagged
    total = sum(sizes.values())
    rate = sum(hits.values()) / total if total else 0.0
    judged = [p for p, n in sizes.items() if n >= MIN_PUBLICATION_ROWS]
    alpha = PUBLICATION_ALPHA / max(1, len(judged))
    found = []
    for pub in judged:
        chance = binomial_sf(hits[pub], sizes[pub], rate)
        if hits[pub] and chance < alpha:
            found.append(PublicationFlags(pub, sizes[pub], hits[pub], chance))
    found.sort(key=lambda f: (-f.share, f.chance, f.publication))
    return found, rate


__all__ = [
    "CORROBORATION", "LEXICAL_ALPHA", "MIN_ANCHORS", "MISALIGNED", "MODEL_Z", "PUBLICATION_CHECKS",
    "PUBLICATION_ALPHA", "LexicalFlags", "Misalignment", "PublicationFlags", "misaligned",
    "binomial_cdf", "binomial_sf", "lexical_anchors", "misaligned_by_score", "misaligned_lexical",
    "publication_summary", "robust_threshold",
]  # fmt: skip
