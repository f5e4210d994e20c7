"""Glossaries: the domain's fixed English-French terminology, read from the files termbases and terminologists
publish, with a report of what was kept and why the rest was not.

The readers: TBX termbases (`.tbx`, `.xml`: data/tbx.py), and tables (`.tsv`, `.txt`, `.csv`, `.xlsx`, `.xlsm`:
data/termtables.py) in three layouts: columns named for English and French, a TERMIUM Plus export, and term pairs
(one row per pair, with its languages). Each gives records (data/termbase.py); this module makes them entries:

- A form the file calls retired (a TBX status deprecated, superseded or obsolete; TERMIUM's `avoid`, `obsolete`,
  `former designation`) is not a variant: a translation that uses it misses the term. A form called preferred goes
  first; otherwise the file's order holds, and the first form is the one glossary-aware translation inserts.
- `--glossary-subject TEXT` keeps the records one of whose subject fields holds TEXT (case-insensitive): TERMIUM's
  SUBJECT_EN and DOMAINE_FR, a TBX subjectField, a subject column. A file without subject fields is refused with it.
- Skipped, and counted by reason (`GlossaryReport.skipped`): `empty` (no English or no French term: one-sided rows
  and records), `retired` (every form of one language retired), `other_languages` (a term pair of another language
  pair), `other_subject` (left out by --glossary-subject), `duplicates` (the same preferred English and French terms
  as an earlier entry; its other variants are added to that entry).
- One source term with several targets (TERMIUM's `plant` in two records, `usine` and `plante`) is reported
  (`GlossaryReport.conflicts`); the first entry in the file is the one matched (data/terms.py matches the earlier
  entry where two share a term), and the other stays in the glossary for the other direction.

Errors are one-line DataErrors naming the file and line: a file that cannot be read, a layout csas does not know
(the message names those it reads), a file without any entry.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SettingsError
from ..progress import counted
from ..registry import LANGUAGES, other_language
from .rows import error_at
from .termbase import Record, fold

TBX_SUFFIXES = (".tbx", ".xml")
SKIP_REASONS = ("empty", "retired", "other_languages", "other_subject", "duplicates")
"""Why a record is not an entry of its own, in the order reports give them."""
EXAMPLES = 5
"""Entries and conflicts a report shows."""


@dataclass(frozen=True)
class Entry:
    """One concept: its English and French forms (the preferred one first), and where it was read."""

    en: tuple[str, ...]
    fr: tuple[str, ...]
    line: int

    def forms(self, lang: str) -> tuple[str, ...]:
        return self.en if lang == "en" else self.fr

    @property
    def label(self) -> str:
        """How reports name the entry: `spawning stock biomass / biomasse du stock reproducteur`."""
        return f"{self.en[0]} / {self.fr[0]}"


@dataclass(frozen=True)
class Conflict:
    """A term shared by two entries with different targets: in `lang` -> other, `used` is matched, `unused` not."""

    lang: str
    term: str
    used: int
    """The earlier entry's index: the one the matcher finds."""
    unused: int

    def describe(self, entries: tuple[Entry, ...]) -> str:
        target = other_language(self.lang)
        used, unused = entries[self.used], entries[self.unused]
        return (f"{self.term!r} ({self.lang}->{target}): {used.forms(target)[0]!r} (line {used.line}) is used, not "
                f"{unused.forms(target)[0]!r} (line {unused.line})")  # fmt: skip

    def to_dict(self, entries: tuple[Entry, ...]) -> dict[str, Any]:
        target = other_language(self.lang)
        used, unused = entries[self.used], entries[self.unused]
        return {"direction": f"{self.lang}->{target}", "term": self.term,
                "used": {"target": used.forms(target)[0], "line": used.line},
                "unused": {"target": unused.forms(target)[0], "line": unused.line}}  # fmt: skip


@dataclass(frozen=True)
class GlossaryReport:
    """What reading a glossary file kept, left out and found."""

    layout: str
    """The layout recognised: `TBX`, `TERMIUM Plus`, `columns ('en', 'fr')`, `term pairs (...)`."""
    records: int = 0
    """Rows or concept entries read."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Reason (SKIP_REASONS) -> records not made entries of their own."""
    retired_forms: int = 0
    """Forms left out because the file retires them (their entries may stand on other forms)."""
    conflicts: tuple[Conflict, ...] = ()
    subject: str | None = None
    sheet: str | None = None


@dataclass(frozen=True)
class Glossary:
    path: Path
    entries: tuple[Entry, ...]
    report: GlossaryReport = field(default_factory=lambda: GlossaryReport("columns"))

    def __len__(self) -> int:
        return len(self.entries)

    def describe(self) -> str:
        """One line for a log: what was read, and the conflicts when there are any."""
        r = self.report
        subject = f", subject {r.subject!r}" if r.subject else ""
        parts = [f"{counted(len(self), 'entry', 'entries')} ({r.layout}{subject})"]
        skipped = ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in r.skipped.items() if n)
        if skipped:
            parts.append(f"skipped: {skipped}")
        if r.conflicts:
            parts.append(f"{counted(len(r.conflicts), 'term')} with several targets, the first entry used (csas "
                         "check-glossary lists them)")  # fmt: skip
        return f"glossary {self.path}: " + "; ".join(parts)


def read_glossary(path: Path, subject: str | None = None, sheet: str | None = None) -> Glossary:
    """The glossary at `path`, by its extension (see the module docstring); `subject` keeps the entries of subject
    fields holding it; `sheet` names a workbook's sheet (default: the first)."""
    path = Path(path)
    if subject is not None and not subject.strip():
        raise SettingsError("--glossary-subject must not be empty (a subject field such as Fisheries)")
    if path.suffix.lower() in TBX_SUFFIXES:
        if sheet is not None:
            raise SettingsError(f"--glossary-sheet {sheet}: {path} is a TBX file, not an Excel workbook")
        from .tbx import read_tbx

        layout, has_subjects, records = "TBX", None, read_tbx(path)
    else:
        from .termtables import read_table

        layout, has_subjects, records = read_table(path, sheet)
    if subject is not None and not any(r.subjects for r in records) and not has_subjects:
        raise SettingsError(f"--glossary-subject {subject}: {path} ({layout}) gives no subject fields (TERMIUM's "
                            "SUBJECT_EN/DOMAINE_FR, a TBX subjectField or a subject column)")  # fmt: skip
    return assemble(path, layout, records, subject, sheet)


def term_key(term: str) -> str:
    """Two forms that match the same text share this key: case-folded words (`Stock-Recruitment` is
    `stock recruitment`)."""
    return " ".join(re.findall(r"\w+", fold(term).replace("\u2019", "'")))


def assemble(path: Path, layout: str, records: list[Record], subject: str | None = None,
             sheet: str | None = None) -> Glossary:  # fmt: skip
    """Records into entries (see the module docstring), with the report."""
    skipped: Counter[str] = Counter()
    retired_forms = 0
    entries: list[Entry] = []
    by_pair: dict[tuple[str, str], int] = {}
    wanted = None if subject is None else fold(subject.strip())
    for record in records:
        if record.skip is not None:
            skipped[record.skip] += 1
            continue
        if wanted is not None and not any(wanted in fold(s) for s in record.subjects):
            skipped["other_subject"] += 1
            continue
        sides = {"en": record.en, "fr": record.fr}
        forms: dict[str, tuple[str, ...]] = {}
        for lang, found in sides.items():
            usable = [f for f in found if not f.retired]
            retired_forms += len(found) - len(usable)
            ordered = sorted(usable, key=lambda f: not f.preferred)
            forms[lang] = tuple(dict.fromkeys(f.text for f in ordered))
        if not record.en or not record.fr:
            skipped["empty"] += 1
            continue
        if not forms["en"] or not forms["fr"]:
            skipped["retired"] += 1
            continue
        key = (term_key(forms["en"][0]), term_key(forms["fr"][0]))
        if key in by_pair:  # the same concept again: its new variants join the first entry
            skipped["duplicates"] += 1
            first = entries[by_pair[key]]
            entries[by_pair[key]] = Entry(tuple(dict.fromkeys(first.en + forms["en"])),
                                          tuple(dict.fromkeys(first.fr + forms["fr"])), first.line)  # fmt: skip
            continue
        by_pair[key] = len(entries)
        entries.append(Entry(forms["en"], forms["fr"], record.line))
    if not entries:
        left = ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in skipped.items())
        raise error_at(path, "no glossary entries with both an English and a French term"
                       + (f" ({left})" if left else ""))  # fmt: skip
    found = tuple(entries)
    report = GlossaryReport(layout, len(records), {r: skipped[r] for r in SKIP_REASONS if skipped[r]}, retired_forms,
                            conflicts_of(found), subject, sheet)  # fmt: skip
    return Glossary(path, found, report)


def conflicts_of(entries: tuple[Entry, ...]) -> tuple[Conflict, ...]:
    """Terms of one language that two entries share while their targets differ (none in common)."""
    found: list[Conflict] = []
    for lang in LANGUAGES:
        target = other_language(lang)
        first: dict[str, int] = {}
        for index, entry in enumerate(entries):
            for form in entry.forms(lang):
                key = term_key(form)
                earlier = first.setdefault(key, index)
                if earlier == index:
                    continue
                targets = {term_key(t) for t in entries[earlier].forms(target)}
                if targets.isdisjoint(term_key(t) for t in entry.forms(target)):
                    found.append(Conflict(lang, form, earlier, index))
                    break
    return tuple(found)


__all__ = ["Conflict", "Entry", "Glossary", "GlossaryReport", "SKIP_REASONS", "read_glossary"]
