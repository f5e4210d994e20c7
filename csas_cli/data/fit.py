"""Does a glossary fit a text? Each entry's use in real translations, and the entries term constraints may force.

A general-purpose termbase holds entries that are wrong for a given text: TERMIUM's sports export maps "make",
"out", "down" and "plant" to their senses in sport, and forcing `mettre un pied à terre` wherever "plant" occurs
damages a translation that a score computed with the same glossary then calls perfect. Three defences:

- **Evidence** (`Fit`): pairs whose translations a person wrote (the references of `csas evaluate`, or the
  training data, `--confirm-with DATA`, `csas check-glossary --against DATA`) show, per entry, how often the target
  term is used where the source term occurs (terms.py's matching: variants, plurals). An entry is *confirmed* when
  its target is used for at least CONFIRMED_SHARE of its occurrences, *contradicted* when it occurs and is not.
- **Common words**: an entry whose source term is one common word (csas_cli/assets/common_words.*.txt: Zipf
  frequency >= 4.5, about 3,000 words per language, scripts/build_common_words.py) has many senses; without evidence
  it is not forced.
- **The references' own rate** (term success of the references, the ceiling of the measure): under
  FIT_WARNING_RATE, `csas evaluate` warns that the glossary does not fit the text and names the entries the
  references contradict most.

`--term-constraints` forces (`forced_entries`): with `--constrain-all` every entry; with evidence, the confirmed
entries; without, every entry but the single common words.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..fields import setting
from ..progress import counted
from ..shipped import ASSETS
from .glossary import Glossary
from .terms import TermScore, term_success, words

CONFIRMED_SHARE = 0.5
"""An entry is confirmed when the translations use its target term for at least this share of its occurrences."""
FIT_WARNING_RATE = 0.5
"""Below this term success of the references, `csas evaluate` warns that the glossary does not fit the text."""
COMMON_WORDS_DIR = ASSETS
SHOWN = 5
"""Entries a warning or a report names."""


@functools.cache
def common_words(lang: str) -> frozenset[str]:
    """The shipped list of `lang`'s common words, case-folded."""
    path = COMMON_WORDS_DIR / f"common_words.{lang}.txt"
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().casefold() for line in lines if line.strip() and not line.startswith("#"))


def single_common_word(term: str, lang: str) -> bool:
    """`term` is one word, not an acronym, and a common word of `lang`."""
    found = words(term)
    return len(found) == 1 and not (found[0].raw.isupper() and len(found[0].raw) > 1) and \
        found[0].fold in common_words(lang)  # fmt: skip


def common_entries(glossary: Glossary, lang: str) -> frozenset[int]:
    """The entries whose preferred term in `lang` is a single common word."""
    return frozenset(i for i, e in enumerate(glossary.entries) if single_common_word(e.forms(lang)[0], lang))


@dataclass(frozen=True)
class EntryUse:
    entry: int
    occurrences: int
    """Times the source term occurs in the evidence's sources."""
    used: int
    """Of those, times the translation uses the target term."""

    @property
    def share(self) -> float:
        return self.used / self.occurrences if self.occurrences else 0.0

    @property
    def confirmed(self) -> bool:
        return self.occurrences > 0 and self.share >= CONFIRMED_SHARE


@dataclass(frozen=True)
class Fit:
    """Per entry, its use in one direction's pairs (references or training data)."""

    uses: dict[int, EntryUse]
    """Every entry that occurs in the sources."""
    rate: float | None
    """The translations' term success over all occurrences (the references' rate: the ceiling)."""
    evidence: str
    """What the pairs are, for messages: `the references`, `--confirm-with train.tmx`."""

    @classmethod
    def of(cls, glossary: Glossary, sources: Sequence[str], translations: Sequence[str], source_lang: str,
           target_lang: str, evidence: str) -> "Fit":  # fmt: skip
        score = term_success(glossary, sources, translations, source_lang, target_lang)
        return cls.from_score(score, evidence)

    @classmethod
    def from_score(cls, score: TermScore, evidence: str) -> "Fit":
        uses = {i: EntryUse(i, n, score.used(i)) for i, n in score.found.items()}
        return cls(uses, score.rate, evidence)

    def confirmed(self) -> frozenset[int]:
        return frozenset(i for i, use in self.uses.items() if use.confirmed)

    def contradicted(self, n: int = SHOWN) -> list[EntryUse]:
        """The `n` entries whose target the translations most often leave out where the source term occurs."""
        ranked = sorted((u for u in self.uses.values() if not u.confirmed),
                        key=lambda u: (u.used - u.occurrences, u.entry))  # fmt: skip
        return ranked[:n]

    def fits(self) -> bool:
        return self.rate is None or self.rate >= FIT_WARNING_RATE


def describe_uses(glossary: Glossary, uses: Sequence[EntryUse]) -> str:
    """`make / faire (0 of 40), out / dehors (2 of 31)`."""
    return ", ".join(f"{glossary.entries[u.entry].label} ({u.used} of {u.occurrences})" for u in uses)


def fit_warning(glossary: Glossary, fit: Fit) -> str | None:
    """The warning `csas evaluate` gives when the references' rate is low, else None."""
    if fit.fits():
        return None
    occurrences = sum(u.occurrences for u in fit.uses.values())
    used = sum(u.used for u in fit.uses.values())
    return (f"the glossary does not fit this text: {fit.evidence} use its target terms for {used} of the {occurrences} "
            f"source terms found ({fit.rate:.3f}); the entries they contradict most: "
            f"{describe_uses(glossary, fit.contradicted())} (csas check-glossary --against DATA reports every "
            "entry)")  # fmt: skip


@dataclass(frozen=True)
class Forced:
    """The entries `--term-constraints` forces in one direction, and why."""

    entries: frozenset[int]
    reason: str
    """`all` (--constrain-all), `confirmed` (by evidence) or `not common words`."""
    left_out: int
    """Entries of the glossary not forced."""
    evidence: str | None = None
    """What confirmed them (with reason `confirmed`)."""

    def to_dict(self) -> dict[str, Any]:
        return {"forced": len(self.entries), "left_out": self.left_out, "chosen_by": self.reason,
                "evidence": self.evidence}  # fmt: skip

    def describe(self) -> str:
        evidence = self.evidence
        if self.reason == "all":
            return f"all {counted(len(self.entries), 'glossary entry', 'glossary entries')} forced (--constrain-all)"
        if self.reason == "confirmed":
            return (f"{counted(len(self.entries), 'glossary entry', 'glossary entries')} forced, those {evidence} "
                    f"confirm; {self.left_out} left "
                    "out (--constrain-all forces them too)")  # fmt: skip
        return (f"{counted(len(self.entries), 'glossary entry', 'glossary entries')} forced; "
                f"{counted(self.left_out, 'single common word')} left out "
                "(--confirm-with DATA forces those the data confirm, --constrain-all forces all)")  # fmt: skip


@dataclass(frozen=True)
class GlossaryOptions:
    """The glossary options of `csas translate` and `csas evaluate`: which glossary, read how, forced how. Each
    field is its option (fields.setting; a command may word its help its own way)."""

    glossary: Path | None = setting(
        None, "Glossary (.tsv/.csv/.xlsx/.tbx): annotate the sources with its terms, and with --term-constraints "
        "decode with them."
    )
    """--glossary."""
    glossary_subject: str | None = setting(
        None, "Keep the glossary entries whose subject field holds TEXT (TERMIUM, TBX)."
    )
    """--glossary-subject: keep the entries of matching subject fields."""
    glossary_sheet: str | None = setting(None, "The workbook sheet of the glossary (default: the first).")
    """--glossary-sheet: a workbook's sheet."""
    apply_glossary: bool | None = setting(
        None, "With --glossary: annotate the sources with its terms (default: when the model was trained with "
        "--term-annotation)."
    )
    """--apply-glossary / --no-apply-glossary; None: when the model was trained with --term-annotation."""
    term_constraints: bool = setting(
        False, "Decode with the glossary's target terms as constraints (any model); single common words are not "
        "forced."
    )
    """--term-constraints: decode with the glossary's target terms as constraints."""
    constrain_all: bool = setting(
        False, "With --term-constraints: force every entry, unconfirmed ones and common words too."
    )
    """--constrain-all: force every entry, confirmed or not, common word or not."""
    confirm_with: Path | None = setting(
        None, "With --term-constraints: force the entries these pairs (the training data) confirm."
    )
    """--confirm-with DATA: force the entries these pairs confirm."""

    def __post_init__(self) -> None:
        from ..errors import SettingsError

        needs = {"--glossary-subject": self.glossary_subject is not None,
                 "--glossary-sheet": self.glossary_sheet is not None, "--term-constraints": self.term_constraints}
        for flag, given in needs.items():
            if given and self.glossary is None:
                raise SettingsError(f"{flag} needs --glossary FILE")
        for flag, given in (("--constrain-all", self.constrain_all), ("--confirm-with", self.confirm_with is not None)):
            if given and not self.term_constraints:
                raise SettingsError(f"{flag} chooses the entries --term-constraints forces: add --term-constraints")
        if self.constrain_all and self.confirm_with is not None:
            raise SettingsError("--constrain-all forces every entry; --confirm-with chooses some: pass one of them")

    def annotates(self, trained_with: float | None, say: Any, explain_off: bool = True) -> bool:
        """Whether the sources are annotated with the glossary's terms: as --apply-glossary/--no-apply-glossary
        asks (`apply_glossary`), else (None) when the model was trained to read annotations (`trained_with`: its
        --term-annotation, None where it does not record one); `say` tells which, and (`explain_off`: translate,
        where the glossary would otherwise do nothing) what to do when nothing applies it."""
        requested = self.apply_glossary
        if self.glossary is None:
            return False
        if requested is not None:
            if requested:
                say("the sources are annotated with the glossary's terms (--apply-glossary)")
            return requested
        if trained_with:
            say(f"the sources are annotated with the glossary's terms: the model was trained to read them "
                f"(--term-annotation {trained_with:g}; --no-apply-glossary translates them plain)")  # fmt: skip
            return True
        if explain_off and not self.term_constraints:
            why = ("does not record --term-annotation" if trained_with is None
                   else "was trained without --term-annotation")  # fmt: skip
            say(f"note: the model {why}, so the sources are not annotated with the glossary's terms; "
                "--term-constraints puts them in the translations (--apply-glossary annotates anyway)")  # fmt: skip
        return False

    def read(self) -> Glossary | None:
        from .glossary import read_glossary

        if self.glossary is None:
            return None
        return read_glossary(self.glossary, self.glossary_subject, self.glossary_sheet)

    def forced(self, glossary: Glossary, source_lang: str, target_lang: str, references: Fit | None = None,
               reading: Any = None) -> Forced:  # fmt: skip
        """The entries to force in this direction: by --constrain-all, by --confirm-with's pairs, else by
        `references` when there are some (evaluate), else all but the single common words. `reading`: the
        pairs.ReadOptions --confirm-with's file is read with."""
        fit = references
        if self.confirm_with is not None:
            from .pairs import ReadOptions, load_examples

            examples = load_examples(self.confirm_with, [source_lang], reading or ReadOptions()).examples
            fit = Fit.of(glossary, [e.source for e in examples], [e.target for e in examples], source_lang,
                         target_lang, f"--confirm-with {self.confirm_with}")  # fmt: skip
        return forced_entries(glossary, source_lang, fit, self.constrain_all)


def forced_entries(glossary: Glossary, source_lang: str, fit: Fit | None, constrain_all: bool = False) -> Forced:
    """What `--term-constraints` forces (see the module docstring)."""
    every = frozenset(range(len(glossary)))
    if constrain_all:
        return Forced(every, "all", 0)
    if fit is not None:
        chosen = fit.confirmed()
        return Forced(chosen, "confirmed", len(every) - len(chosen), fit.evidence)
    chosen = every - common_entries(glossary, source_lang)
    return Forced(chosen, "not common words", len(every) - len(chosen))


__all__ = [
    "CONFIRMED_SHARE", "FIT_WARNING_RATE", "EntryUse", "Fit", "Forced", "GlossaryOptions", "common_entries",
    "describe_uses", "fit_warning", "forced_entries", "single_common_word",
]  # fmt: skip
