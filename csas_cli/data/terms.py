"""Terminology: finding a glossary's terms in text, the term success rate, and inline term annotation.

Matching (what `csas evaluate --glossary` counts and `--term-annotation` annotates):

- Text and terms are compared as sequences of word tokens: case-folded (`str.casefold`), in Unicode NFC, with every
  typographic apostrophe read as `'` and every run of spaces (no-break spaces included) as one. A token is a run of
  letters and digits (`\\w+`); apostrophes, hyphens, slashes and spaces join tokens into a term, so `l'effort de
  pêche` holds `effort de pêche` and `stock-recruitment` is `stock recruitment`; a clause break between two tokens
  (`. , ; : ! ? ( ) [ ] { }`) ends a term, so `... the stock. Biomass ...` is not `stock biomass`.
- A term's listed variants count as the term, and so do simple plurals: any of its tokens of three or more letters
  may take English -s or -es (`reference points`, `biomasses`) or French -s or -x (`zones critiques`, `taux`), but
  never becomes a word of its own (French `frais` is not a plural of `frai`). `stock` matches `stocks`, never the
  inside of `restocking` or `stockholder`.
- Acronyms are case-sensitive: a term token written in capitals (`TAC`, `SSB`, the `MSY` of `MSY reference
  point`) matches only in capitals (and with a lower-case plural `s`: `TACs`), so `TAC` is not the French word
  `tac`; a term written wholly in capitals over several words (`SPAWNING STOCK BIOMASS`) is case-folded as usual.
- Longest match first, non-overlapping: in `spawning stock biomass` only the entry `spawning stock biomass` is found,
  not the entry `stock` inside it; each token belongs to at most one match. A term twice in a sentence is two
  occurrences. Text already annotated (`[[...]]`, below) is not searched.
- In a translation only the entries found in its source are looked for, so an entry the source does not hold
  (`indice de biomasse`) cannot take the tokens of one it does (`biomasse`).

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
from typing import Collection, Iterable, NamedTuple, Sequence

from .glossary import Entry, Glossary

APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u0060": "'", "\u00b4": "'"})
CLAUSE_BREAKS = frozenset(".,;:!?()[]{}")
WORD_OR_BREAK = re.compile(r"\w+|[.,;:!?()\[\]{}]")
PLURALS = {"en": ("s", "es"), "fr": ("s", "x")}
PLURAL_MIN_LETTERS = 3
NOT_PLURALS = {"en": frozenset[str](), "fr": frozenset({"frais"})}
"""Words that look like a simple plural of a shorter term token but are words of their own."""

TERM_OPEN, TERM_CLOSE = " [[", "]]"
"""The annotation markers (see the module docstring)."""
ANNOTATION = re.compile(re.escape(TERM_OPEN.strip()) + r".*?" + re.escape(TERM_CLOSE))


def normal_form(text: str) -> str:
    """Unicode NFC: what token offsets index (the same string for text that is already NFC, as nearly all is)."""
    return unicodedata.normalize("NFC", text)


class Word(NamedTuple):
    """One word token of a text or a term; offsets index normal_form(text)."""

    fold: str
    """Case-folded."""
    raw: str
    start: int
    end: int
    joined: bool
    """No clause break between this token and the one before."""


def words(text: str) -> list[Word]:
    """`text`'s word tokens (see the module docstring)."""
    normal = normal_form(text).translate(APOSTROPHES)  # one character for one: offsets stay
    found, broken = [], False
    for m in WORD_OR_BREAK.finditer(normal):
        token = m.group()
        if token in CLAUSE_BREAKS:
            broken = True
            continue
        found.append(Word(token.casefold(), token, m.start(), m.end(), not broken))
        broken = False
    return found


@dataclass(frozen=True)
class TermWord:
    fold: str
    exact: str | None
    """The token as written when it is an acronym (matched case-sensitively), else None."""
    joined: bool


def term_words(term: str) -> tuple[TermWord, ...]:
    found = words(term)
    all_caps = len(found) > 1 and all(w.raw.isupper() or not w.raw.isalpha() for w in found)
    return tuple(TermWord(w.fold, w.raw if w.raw.isupper() and not all_caps else None, w.joined) for w in found)


def token_matches(word: Word, term: TermWord, lang: str) -> bool:
    """A text token matches a term token: equal (in capitals for an acronym), or the term token with a simple plural
    ending of `lang`."""
    text, wanted = (word.fold, term.fold) if term.exact is None else (word.raw, term.exact)
    if text == wanted:
        return True
    if len(wanted) < PLURAL_MIN_LETTERS or not text.startswith(wanted) or word.fold in NOT_PLURALS[lang]:
        return False
    return text[len(wanted):] in PLURALS[lang]


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


Form = tuple[int, tuple[TermWord, ...]]
"""(entry index, the variant's tokens)."""


@dataclass(frozen=True)
class TermIndex:
    """A glossary's terms in one language, tokenised once, by first token for quick lookup."""

    lang: str
    forms: tuple[Form, ...]
    """Every variant, longest first."""
    by_first: dict[str, list[Form]] = field(default_factory=dict)

    @classmethod
    def build(cls, glossary: Glossary | Sequence[Entry], lang: str) -> "TermIndex":
        entries = glossary.entries if isinstance(glossary, Glossary) else glossary
        forms = [(i, term_words(form)) for i, entry in enumerate(entries) for form in entry.forms(lang)]
        forms = sorted({f for f in forms if f[1]}, key=lambda f: (-len(f[1]), f[0]))
        by_first: dict[str, list[Form]] = {}
        for form in forms:
            by_first.setdefault(form[1][0].fold, []).append(form)
        return cls(lang, tuple(forms), by_first)

    def candidates(self, word: str) -> list[Form]:
        """Forms whose first token `word` (case-folded) may be: itself, or a plural of it."""
        found = list(self.by_first.get(word, ()))
        for ending in PLURALS[self.lang]:
            if word.endswith(ending) and len(word) - len(ending) >= PLURAL_MIN_LETTERS:
                found += self.by_first.get(word[: -len(ending)], ())
        return found

    def find(self, text: str, entries: Collection[int] | None = None) -> list[Match]:
        """The non-overlapping matches in `text`, longest first, then leftmost (see the module docstring); only of
        `entries` when given."""
        annotated = [m.span() for m in ANNOTATION.finditer(normal_form(text))] if TERM_CLOSE in text else []
        found_words = words(text)
        if annotated:
            found_words = [w for w in found_words if not any(a <= w.start < b for a, b in annotated)]
        found: list[Match] = []
        for start, word in enumerate(found_words):
            for index, form in self.candidates(word.fold):
                n = len(form)
                if entries is not None and index not in entries or start + n > len(found_words):
                    continue
                span = found_words[start : start + n]
                if all(token_matches(w, t, self.lang) and (k == 0 or w.joined or not t.joined)
                       for k, (w, t) in enumerate(zip(span, form))):  # fmt: skip
                    found.append(Match(index, start, n, span[0].start, span[-1].end))
        found.sort(key=lambda m: (-m.length, m.start, m.entry))
        taken: set[int] = set()
        chosen = []
        for match in found:
            tokens_of = range(match.start, match.start + match.length)
            if taken.isdisjoint(tokens_of):
                taken.update(tokens_of)
                chosen.append(match)
        return sorted(chosen, key=lambda m: m.start)

    def counts(self, text: str, entries: Collection[int] | None = None) -> Counter[int]:
        return Counter(m.entry for m in self.find(text, entries))

    def words_of(self, entries: Collection[int]) -> frozenset[str]:
        """The case-folded words of `entries`' forms."""
        return frozenset(t.fold for index, form in self.forms if index in entries for t in form)


TRAILING_NON_WORD = re.compile(r"\W+$")
TRAILING_WORD = re.compile(r"\w+$")


@dataclass
class GrowingCounts:
    """TermIndex.counts(text, entries) for texts that grow a little at a time (the hypotheses of a beam search),
    each prefix matched once: a text whose last word cannot be a word of any of the entries' forms (nor its plural)
    has the matches of the text before that word, and trailing spaces and punctuation change nothing."""

    index: TermIndex
    entries: frozenset[int]
    cache: dict[str, Counter[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.words = self.index.words_of(self.entries)

    def may_match(self, fold: str) -> bool:
        if fold in self.words:
            return True
        return any(fold.endswith(e) and fold[: -len(e)] in self.words for e in PLURALS[self.index.lang])

    def counts(self, text: str) -> Counter[int]:
        if holds_markers(text):  # annotations: matched whole, as TermIndex does
            return self.index.counts(text, self.entries)
        longer: list[str] = []
        text = TRAILING_NON_WORD.sub("", normal_form(text).translate(APOSTROPHES))  # as words() reads it
        while text not in self.cache:
            last = TRAILING_WORD.search(text)
            if last is None or self.may_match(last.group().casefold()):
                self.cache[text] = self.index.counts(text, self.entries)
                break
            longer.append(text)
            text = TRAILING_NON_WORD.sub("", text[: last.start()])
        found = self.cache[text]
        for same in longer:  # each has the matches of the text without its last word
            self.cache[same] = found
        return found


@dataclass(frozen=True)
class TermScore:
    """Term success over a set of sentences."""

    hits: int
    occurrences: int
    missed: dict[int, int]
    """entry index -> occurrences the translations missed."""
    found: dict[int, int] = field(default_factory=dict)
    """entry index -> its occurrences in the sources."""

    @property
    def rate(self) -> float | None:
        return self.hits / self.occurrences if self.occurrences else None

    def used(self, entry: int) -> int:
        """The occurrences of `entry` the translations hit."""
        return self.found.get(entry, 0) - self.missed.get(entry, 0)


def term_success(
    glossary: Glossary, sources: Sequence[str], translations: Sequence[str], source_lang: str, target_lang: str
) -> TermScore:
    """The term success rate of `translations` of `sources` (see the module docstring)."""
    if len(sources) != len(translations):
        raise ValueError("term_success: as many translations as sources")
    source_index, target_index = TermIndex.build(glossary, source_lang), TermIndex.build(glossary, target_lang)
    hits = occurrences = 0
    missed: Counter[int] = Counter()
    found: Counter[int] = Counter()
    for source, translation in zip(sources, translations):
        wanted = source_index.counts(source)
        if not wanted:
            continue
        found.update(wanted)
        got = target_index.counts(translation, wanted.keys())
        for entry, count in wanted.items():
            hit = min(count, got.get(entry, 0))
            hits += hit
            occurrences += count
            if count > hit:
                missed[entry] += count - hit
    return TermScore(hits, occurrences, dict(missed), dict(found))


def most_missed(glossary: Glossary, score: TermScore, n: int = 10) -> list[tuple[str, int]]:
    """The `n` entries the translations missed most: (label, times missed)."""
    ranked = sorted(score.missed.items(), key=lambda item: (-item[1], item[0]))[:n]
    return [(glossary.entries[entry].label, count) for entry, count in ranked]


def annotate(text: str, matches: Iterable[Match], glossary: Glossary, target_lang: str) -> str:
    """`text` with each matched term followed by its entry's preferred target term between the markers."""
    text = normal_form(text)
    out, last = [], 0
    for match in sorted(matches, key=lambda m: m.char_start):
        if text.startswith(TERM_OPEN, match.char_end):  # annotated already
            continue
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
        in_source = self._source.find(source)  # type: ignore[attr-defined]
        in_target = self._target.counts(target, {m.entry for m in in_source})  # type: ignore[attr-defined]
        matches = [m for m in in_source if in_target.get(m.entry)]
        return annotate(source, matches, self.glossary, self.target_lang) if matches else None


def holds_markers(text: str) -> bool:
    """`text` already holds an annotation marker: a model trained with --term-annotation reads what follows one as
    a given term."""
    return TERM_OPEN.strip() in text or TERM_CLOSE in text


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
    "Annotator", "GrowingCounts", "Match", "holds_markers", "TERM_CLOSE", "TERM_OPEN", "TermIndex", "TermScore", "annotate", "annotate_share",
    "most_missed", "term_success", "words",
]  # fmt: skip
