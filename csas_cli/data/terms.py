"""Terminology: finding a glossary's terms in text, the term success rate, and inline term annotation.

Matching (what `csas evaluate --glossary` counts and `--term-annotation` annotates):

- Text and terms are compared as sequences of word tokens: case-folded (`str.casefold`), in Unicode NFC, with every
  typographic apostrophe read as `'` and every run of spaces (no-break spaces included) as one. A token is a run of
  letters and digits (`\\w+`); apostrophes, hyphens and other punctuation separate tokens, so `l'effort de pêche`
  holds `effort de pêche`, `stock-recruitment` is `stock recruitment`, and `stock` never matches inside `stocks`
  or `restocking`.
- A term's listed variants count as the term, and so do simple plurals: any of its tokens of three or more letters
  may take English -s or -es (`reference points`, `biomasses`) or French -s or -x (`zones critiques`, `taux`).
- Longest match first, non-overlapping: in `spawning stock biomass` only the entry `spawning stock biomass` is found,
  not the entry `stock` inside it; each token belongs to at most one match. A term twice in a sentence is two
  occurrences.

Term success rate (the WMT terminology tasks' measure): for each glossary entry found in a source sentence, its
occurrences there; a hit for each of them that the translation matches with the entry's target term (an entry
found twice in the source and once in the translation is one hit of two); hits over occurrences.

Annotation (Dinu et al. 2019, "Training Neural Machine Translation to Apply Terminology Constraints", the "append"
variant): each matched source term is followed by its target term between two marker strings, `... spawning stock
biomass [[biomasse du stock reproducteur]] ...`; a model trained on a share of such pairs learns to use the given
term. The markers are plain text that every family's own tokenizer encodes without new vocabulary
(scripts/measure_term_markers.py measured the candidates).
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from .glossary import Entry, Glossary

APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u0060": "'", "\u00b4": "'"})
TOKEN = re.compile(r"\w+")
PLURALS = {"en": ("s", "es"), "fr": ("s", "x")}
PLURAL_MIN_LETTERS = 3

TERM_OPEN, TERM_CLOSE = " [[", "]]"
"""The annotation markers (see the module docstring)."""


def normal_form(text: str) -> str:
    """Unicode NFC: what token offsets index (the same string for text that is already NFC, as nearly all is)."""
    return unicodedata.normalize("NFC", text)


def tokens(text: str) -> list[tuple[str, int, int]]:
    """(token, start, end) of `text`'s word tokens, case-folded; offsets index normal_form(text)."""
    normal = normal_form(text).translate(APOSTROPHES)  # one character for one: offsets stay
    return [(m.group().casefold(), m.start(), m.end()) for m in TOKEN.finditer(normal)]


def term_tokens(term: str) -> tuple[str, ...]:
    return tuple(t for t, _, _ in tokens(term))


def token_matches(word: str, term_word: str, lang: str) -> bool:
    """A text token matches a term token: equal, or the term token with a simple plural ending of `lang`."""
    if word == term_word:
        return True
    if len(term_word) < PLURAL_MIN_LETTERS or not word.startswith(term_word):
        return False
    return word[len(term_word):] in PLURALS[lang]


@dataclass(frozen=True)
class Match:
    entry: int
    """The entry's index in the glossary."""
    start: int
    """First token index."""
    length: int
    """Tokens matched."""
    char_start: int
    char_end: int


@dataclass(frozen=True)
class TermIndex:
    """A glossary's terms in one language, tokenised once, by first token for quick lookup."""

    lang: str
    forms: tuple[tuple[int, tuple[str, ...]], ...]
    """(entry index, tokens) of every variant, longest first."""
    by_first: dict[str, list[tuple[int, tuple[str, ...]]]] = field(default_factory=dict)

    @classmethod
    def build(cls, glossary: Glossary | Sequence[Entry], lang: str) -> "TermIndex":
        entries = glossary.entries if isinstance(glossary, Glossary) else glossary
        forms = [(i, term_tokens(form)) for i, entry in enumerate(entries) for form in entry.forms(lang)]
        forms = sorted({f for f in forms if f[1]}, key=lambda f: (-len(f[1]), f[0]))
        by_first: dict[str, list[tuple[int, tuple[str, ...]]]] = {}
        for index, words in forms:
            by_first.setdefault(words[0], []).append((index, words))
        return cls(lang, tuple(forms), by_first)

    def candidates(self, word: str) -> list[tuple[int, tuple[str, ...]]]:
        """Forms whose first token `word` may be (itself, or a plural of it)."""
        found = list(self.by_first.get(word, ()))
        for ending in PLURALS[self.lang]:
            if word.endswith(ending) and len(word) - len(ending) >= PLURAL_MIN_LETTERS:
                found += self.by_first.get(word[: -len(ending)], ())
        return found

    def find(self, text: str) -> list[Match]:
        """The non-overlapping matches in `text`, longest first, then leftmost (see the module docstring)."""
        words = tokens(text)
        found: list[Match] = []
        for start, (word, _, _) in enumerate(words):
            for index, form in self.candidates(word):
                n = len(form)
                if start + n <= len(words) and all(
                    token_matches(words[start + k][0], form[k], self.lang) for k in range(n)
                ):
                    found.append(Match(index, start, n, words[start][1], words[start + n - 1][2]))
        found.sort(key=lambda m: (-m.length, m.start, m.entry))
        taken: set[int] = set()
        chosen = []
        for match in found:
            span = range(match.start, match.start + match.length)
            if taken.isdisjoint(span):
                taken.update(span)
                chosen.append(match)
        return sorted(chosen, key=lambda m: m.start)

    def counts(self, text: str) -> Counter[int]:
        return Counter(m.entry for m in self.find(text))


@dataclass(frozen=True)
class TermScore:
    """Term success over a set of sentences."""

    hits: int
    occurrences: int
    missed: dict[int, int]
    """entry index -> occurrences the translations missed."""

    @property
    def rate(self) -> float | None:
        return self.hits / self.occurrences if self.occurrences else None


def term_success(
    glossary: Glossary, sources: Sequence[str], translations: Sequence[str], source_lang: str, target_lang: str
) -> TermScore:
    """The term success rate of `translations` of `sources` (see the module docstring)."""
    if len(sources) != len(translations):
        raise ValueError("term_success: as many translations as sources")
    source_index, target_index = TermIndex.build(glossary, source_lang), TermIndex.build(glossary, target_lang)
    hits = occurrences = 0
    missed: Counter[int] = Counter()
    for source, translation in zip(sources, translations):
        wanted = source_index.counts(source)
        if not wanted:
            continue
        got = target_index.counts(translation)
        for entry, count in wanted.items():
            hit = min(count, got.get(entry, 0))
            hits += hit
            occurrences += count
            if count > hit:
                missed[entry] += count - hit
    return TermScore(hits, occurrences, dict(missed))


def most_missed(glossary: Glossary, score: TermScore, n: int = 10) -> list[tuple[str, int]]:
    """The `n` entries the translations missed most: (label, times missed)."""
    ranked = sorted(score.missed.items(), key=lambda item: (-item[1], item[0]))[:n]
    return [(glossary.entries[entry].label, count) for entry, count in ranked]


def annotate(text: str, matches: Iterable[Match], glossary: Glossary, target_lang: str) -> str:
    """`text` with each matched term followed by its entry's preferred target term between the markers."""
    text = normal_form(text)
    out, last = [], 0
    for match in sorted(matches, key=lambda m: m.char_start):
        out.append(text[last : match.char_end])
        out.append(f"{TERM_OPEN}{glossary.entries[match.entry].forms(target_lang)[0]}{TERM_CLOSE}")
        last = match.char_end
    out.append(text[last:])
    return "".join(out)


@dataclass(frozen=True)
class Annotator:
    """Inline annotation of sources with a glossary's target terms, for one direction."""

    glossary: Glossary
    source_lang: str
    target_lang: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "_source", TermIndex.build(self.glossary, self.source_lang))
        object.__setattr__(self, "_target", TermIndex.build(self.glossary, self.target_lang))

    def source(self, text: str) -> str:
        """A source to translate, every matched term annotated (translate/evaluate --glossary)."""
        return annotate(text, self._source.find(text), self.glossary, self.target_lang)  # type: ignore[attr-defined]

    def training_pair(self, source: str, target: str) -> str | None:
        """The source annotated with the terms whose target term the reference uses, or None when it has none (a
        pair whose reference translates a term otherwise teaches nothing about the glossary)."""
        in_target = self._target.counts(target)  # type: ignore[attr-defined]
        matches = [m for m in self._source.find(source) if in_target.get(m.entry)]  # type: ignore[attr-defined]
        return annotate(source, matches, self.glossary, self.target_lang) if matches else None


def annotate_share(
    annotator: Annotator, pairs: Sequence[tuple[str, str]], ratio: float, seed: int
) -> tuple[list[str], int, int]:
    """(sources, annotated, eligible): `ratio` of the eligible pairs (those with a term the reference uses), chosen
    with `seed`, get their sources annotated; the others are kept as they are."""
    annotated = [annotator.training_pair(source, target) for source, target in pairs]
    eligible = [i for i, a in enumerate(annotated) if a is not None]
    chosen = set(random.Random(f"terms:{seed}").sample(eligible, round(ratio * len(eligible)))) if eligible else set()
    sources = [annotated[i] if i in chosen else source for i, (source, _) in enumerate(pairs)]  # type: ignore[misc]
    return sources, len(chosen), len(eligible)


__all__ = [
    "Annotator", "Match", "TERM_CLOSE", "TERM_OPEN", "TermIndex", "TermScore", "annotate", "annotate_share",
    "most_missed", "term_success", "tokens",
]  # fmt: skip
