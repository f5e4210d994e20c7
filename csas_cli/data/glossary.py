"""Glossaries: the domain's fixed English-French terminology, from a TSV/CSV file or a TBX termbase.

TSV (`.tsv`, `.txt`: tab-separated) or CSV (`.csv`: comma-separated), both quoted the CSV way, as spreadsheets save
them (a cell in double quotes may hold the separator; `""` is a quote inside it): a header row
naming an `en` and an `fr` column (case-insensitive; regional codes such as `en-CA` and `fr_CA` count; other
columns are ignored), then one entry per line. A cell may list variants separated by `|`
(`zone critique|zones critiques`); the first is the preferred form, the one glossary-aware translation inserts.
Blank lines and lines starting with `#` are skipped. UTF-8 (a byte order mark allowed) or UTF-16 with its mark.

TBX (`.tbx`, `.xml`: ISO 30042, what TERMIUM and other termbases export): every concept entry (`conceptEntry` in
TBX 3, `termEntry` in TBX 2 / TBX-Basic) is one entry; its `langSec` (`langSet`) sections with an English or French
`xml:lang` give the terms, each `<term>` of the section a variant: the preferred term first, then the others in
document order. A term whose `termNote` of type `administrativeStatus` or `normativeAuthorization` calls it
deprecated, superseded or obsolete (`deprecatedTerm-admn-sts`, `supersededTerm`, ...) is not a variant: a
translation that uses it misses the term. Entries without both languages are skipped (termbases hold other
languages and one-sided records); terms of other languages are not read, so an empty one there is no error.
Element names are compared without a namespace prefix (`<tbx:term>` is `<term>`). Read with the same hardened parser as
TMX (data/tmx.py): the DOCTYPE line is accepted, the DTD never read, entity declarations refused.

Errors are one-line DataErrors naming the file and line.
"""

from __future__ import annotations

import csv
import io
import xml.sax
from dataclasses import dataclass
from pathlib import Path
from xml.sax.handler import ContentHandler
from xml.sax.xmlreader import AttributesImpl, Locator

from defusedxml.common import DefusedXmlException

from ..registry import LANGUAGES
from .pairs import _error, _open_binary, _read_error, _show, primary_language
from .tmx import _Parser, _refusal, normalise_segment

VARIANT_SEPARATOR = "|"
TBX_SUFFIXES = (".tbx", ".xml")
CSV_SUFFIXES = (".csv",)
ENTRY_ELEMENTS = ("conceptEntry", "termEntry")
LANGUAGE_ELEMENTS = ("langSec", "langSet")
TERM_GROUPS = ("termSec", "tig", "ntig")
"""The elements that hold one term with its notes (TBX 3, TBX 2 / TBX-Basic)."""
STATUS_NOTES = ("administrativeStatus", "normativeAuthorization")
RETIRED = ("deprecated", "superseded", "obsolete")
"""Status values (their leading word: `deprecatedTerm-admn-sts`) that take a term out of the glossary."""
PREFERRED = "preferred"


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
class Glossary:
    path: Path
    entries: tuple[Entry, ...]

    def __len__(self) -> int:
        return len(self.entries)


def read_glossary(path: Path) -> Glossary:
    """The glossary at `path`, by its extension (see the module docstring)."""
    path = Path(path)
    suffix = path.suffix.lower()
    entries = read_tbx(path) if suffix in TBX_SUFFIXES else read_delimited(path, "," if suffix in CSV_SUFFIXES else "\t")
    if not entries:
        raise _error(path, "no glossary entries with both an English and a French term")
    return Glossary(path, tuple(entries))


def variants(path: Path, cell: str, line: int, column: str) -> tuple[str, ...]:
    forms = tuple(dict.fromkeys(normalise_segment(v) for v in cell.split(VARIANT_SEPARATOR) if v.strip()))
    if not forms:
        raise _error(path, f"the {column} term is empty", line)
    return forms


def decode(path: Path, raw: bytes) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError:
            raise _error(path, "invalid UTF-16 text (the file starts with a UTF-16 byte order mark)") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if raw[:200].count(b"\x00") * 4 >= min(len(raw), 200):
            raise _error(path, "looks like UTF-16 without a byte order mark: save it as UTF-8 (or UTF-16 with its "
                               "mark)") from None  # fmt: skip
        line = raw[: exc.start].count(b"\n") + 1
        raise _error(path, "invalid UTF-8 (csas reads UTF-8, or UTF-16 with a byte order mark)", line) from None


def read_delimited(path: Path, delimiter: str) -> list[Entry]:
    """A TSV or CSV glossary: a header with en and fr columns, then one entry per line."""
    with _open_binary(path, "a glossary file") as handle:
        try:
            raw = handle.read()
        except OSError as exc:
            raise _read_error(path, exc) from None
    text = decode(path, raw)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=csv.QUOTE_MINIMAL, strict=True)
    columns: dict[str, int] | None = None
    entries: list[Entry] = []
    try:
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row) or row[0].lstrip().startswith("#"):
                continue
            if columns is None:
                columns = header_columns(path, row, line, delimiter)
                continue
            needed = max(columns.values()) + 1
            if len(row) < needed:
                raise _error(path, f"{len(row)} fields, expected at least {needed} (the header's en and fr columns)",
                             line)  # fmt: skip
            entries.append(Entry(variants(path, row[columns["en"]], line, "English"),
                                 variants(path, row[columns["fr"]], line, "French"), line))  # fmt: skip
    except csv.Error as exc:
        raise _error(path, f"not valid {'CSV' if delimiter == ',' else 'TSV'} ({exc})", reader.line_num) from None
    if columns is None:
        raise _error(path, "empty: expected a header row naming an en and an fr column")
    return entries


def header_columns(path: Path, row: list[str], line: int, delimiter: str) -> dict[str, int]:
    columns: dict[str, int] = {}
    for index, cell in enumerate(row):
        lang = primary_language(cell) if cell.strip() else ""
        if lang in LANGUAGES and lang not in columns:
            columns[lang] = index
    missing = [lang for lang in LANGUAGES if lang not in columns]
    if missing:
        kind = "tab" if delimiter == "\t" else "comma"
        raise _error(path, f"the header row names no {' and no '.join(missing)} column (expected {kind}-separated "
                           f"columns such as en, fr; got {_show(delimiter.join(row))})", line)  # fmt: skip
    return columns


def local_name(name: str) -> str:
    """`tbx:term` -> `term`: the parser reads without namespaces, so a prefix stays in the name."""
    return name.rpartition(":")[2]


def retired(status: str) -> bool:
    return status.strip().lower().startswith(RETIRED)


class TbxHandler(ContentHandler):
    """Collects each concept entry's English and French terms. (Method names are SAX's.)"""

    def __init__(self, path: Path, locator: Locator) -> None:
        super().__init__()
        self.path, self.locator = path, locator
        self.entries: list[Entry] = []
        self.root_seen = False
        self.entry_line: int | None = None
        self.terms: dict[str, list[tuple[bool, str]]] = {}
        """lang -> (preferred, term) of the entry so far, in document order."""
        self.lang: str | None = None
        self.term: str | None = None
        """The term of the term group being read (termSec/tig/ntig), until the group ends."""
        self.status = ""
        self.text: list[str] | None = None
        """Characters of the <term> or status <termNote> being read."""
        self.reading = ""
        self.text_line = 0
        self.in_group = False

    def line(self) -> int:
        return self.locator.getLineNumber()

    def startElement(self, qualified: str, attrs: AttributesImpl) -> None:
        name = local_name(qualified)
        if not self.root_seen:
            self.root_seen = True
            if name not in ("tbx", "martif"):
                raise _error(self.path, f"the root element is <{qualified}>, expected <tbx> or <martif> (not a TBX "
                                        "file)", self.line())  # fmt: skip
        if name in ENTRY_ELEMENTS:
            self.entry_line, self.terms = self.line(), {}
        elif name in LANGUAGE_ELEMENTS:
            raw = attrs.get("xml:lang", attrs.get("lang"))
            if raw is None or not raw.strip():
                raise _error(self.path, f"<{qualified}> has no xml:lang attribute", self.line())
            self.lang = primary_language(raw)
        elif name in TERM_GROUPS:
            self.term, self.status, self.in_group = None, "", True
        elif self.entry_line is None or self.lang not in LANGUAGES and self.lang is not None:
            return
        elif name == "term":
            if self.lang is None:
                raise _error(self.path, "<term> outside a langSec/langSet", self.line())
            self.text, self.reading, self.text_line = [], "term", self.line()
        elif name == "termNote" and attrs.get("type") in STATUS_NOTES:
            self.text, self.reading = [], "status"

    def characters(self, content: str) -> None:
        if self.text is not None:
            self.text.append(content)

    def endElement(self, qualified: str) -> None:
        name = local_name(qualified)
        if self.text is not None and name in ("term", "termNote"):
            text, self.text = "".join(self.text), None
            if self.reading == "status":
                self.status = text
            else:
                self.term = normalise_segment(text)
                if not self.term:
                    raise _error(self.path, "<term> is empty", self.text_line)
                if not self.in_group:  # a <term> straight in the section, with no group around it
                    self.keep_term()
        elif name in TERM_GROUPS:
            self.keep_term()
            self.in_group = False
        elif name in LANGUAGE_ELEMENTS:
            self.lang = None
        elif name in ENTRY_ELEMENTS and self.entry_line is not None:
            if all(self.terms.get(lang) for lang in LANGUAGES):
                forms = {lang: tuple(dict.fromkeys(t for _, t in sorted(self.terms[lang], key=lambda p: not p[0])))
                         for lang in LANGUAGES}  # fmt: skip
                self.entries.append(Entry(forms["en"], forms["fr"], self.entry_line))
            self.entry_line = None

    def keep_term(self) -> None:
        if self.term is not None and self.lang in LANGUAGES and not retired(self.status):
            self.terms.setdefault(self.lang, []).append((self.status.strip().lower().startswith(PREFERRED), self.term))
        self.term, self.status = None, ""

    def skippedEntity(self, name: str) -> None:
        raise _error(self.path, f"undefined entity &{name}; (csas never reads the DTD)", self.line())


def read_tbx(path: Path) -> list[Entry]:
    with _open_binary(path, "a TBX file") as handle:
        try:
            raw = handle.read()
        except OSError as exc:
            raise _read_error(path, exc) from None
    parser = _Parser(forbid_dtd=False, forbid_entities=True, forbid_external=True)
    handler = TbxHandler(path, parser)
    parser.setContentHandler(handler)
    try:
        parser.feed(raw)
        parser.close()
    except (xml.sax.SAXParseException, DefusedXmlException) as exc:
        raise _refusal(path, exc, parser.getLineNumber(), "TBX") from None
    return handler.entries


__all__ = ["Entry", "Glossary", "read_glossary"]
