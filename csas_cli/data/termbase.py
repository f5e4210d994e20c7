"""What every glossary reader gives (TBX, TERMIUM Plus, spreadsheets and term lists): records of forms.

A `Record` is one row or concept entry as its file gave it: its English and French forms, each with whether the file
calls it preferred or retired, and its subject fields. data/glossary.py turns records into a glossary's entries
(keeping the usable forms, filtering by subject, merging duplicates); the readers only read.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

RETIRED_WORDS = (
    "deprecated", "superseded", "obsolete", "notrecommended", "not recommended", "avoid", "former designation",
    "incorrect", "rejected", "à éviter", "a eviter", "désuet", "desuet", "obsolète", "ancienne désignation",
    "ancienne designation", "déconseillé", "deconseille", "erroné", "errone", "rejeté",
)  # fmt: skip
"""Words of a status or usage note that take a term out of the glossary: TBX's `deprecatedTerm-admn-sts`,
`supersededTerm`, `obsolete`, `notRecommended`, and the usage parameters of TERMIUM Plus in English and French
(`avoid`, `obsolete`, `former designation`, `à éviter`, `désuet`, `ancienne désignation`, ...)."""
_RETIRED = re.compile("|".join(re.escape(w) for w in RETIRED_WORDS))


def fold(text: str) -> str:
    """Case-folded NFC text: how statuses, subjects and header names are compared."""
    return unicodedata.normalize("NFC", text).casefold()


def retired_status(note: str) -> bool:
    """Whether a term's status or usage note retires it (see RETIRED_WORDS)."""
    return bool(_RETIRED.search(fold(note)))


@dataclass(frozen=True)
class Form:
    """One written form of a term, as its file gave it."""

    text: str
    retired: bool = False
    """The file calls it deprecated, obsolete, to avoid, ...: a translation using it misses the term."""
    preferred: bool = False
    """The file calls it preferred: it goes first."""


@dataclass(frozen=True)
class Record:
    """One row or concept entry of a glossary file, before it becomes an entry."""

    line: int
    """Where it starts in its file (the row of a spreadsheet)."""
    en: tuple[Form, ...]
    fr: tuple[Form, ...]
    subjects: tuple[str, ...] = ()
    """Its subject fields (TERMIUM's SUBJECT_EN and DOMAINE_FR, TBX's subjectField, a subject column)."""
    skip: str | None = None
    """Why the reader already knows it cannot be an entry (`other_languages`: a term pair of another language pair),
    else None."""


__all__ = ["RETIRED_WORDS", "Form", "Record", "fold", "retired_status"]
