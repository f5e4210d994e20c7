"""Termbases in TBX (ISO 30042): the concept entries of a `.tbx` file as glossary records (data/glossary.py).

Every concept entry (`conceptEntry` in TBX 3, `termEntry` in TBX 2 / TBX-Basic / the `martif` files of TERMIUM, IATE
and Microsoft's terminology) is one record; its `langSec` (`langSet`) sections give the terms of their `xml:lang`
(or `lang`), each `<term>` a form: in document order, with whether a `termNote` of type `administrativeStatus` or
`normativeAuthorization` calls it preferred or retired (deprecated, superseded, obsolete, `deprecatedTerm-admn-sts`,
`supersededTerm`, ...). The entry's subject fields are its `<descrip type="subjectField">` values (any level). TBX
3's DCT style names those data categories as elements (`<basic:administrativeStatus>`, `<basic:subjectField>`), read
the same way. Terms of other languages are not read, so an empty one there is no error. Element names are compared
without a namespace prefix (`<tbx:term>` is `<term>`).

Read with the hardened parser of TMX (data/tmx.py): the DOCTYPE line is accepted, the DTD never read, entity
declarations refused; a byte order mark decides the encoding. Errors are one-line DataErrors naming the file and
line.
"""

from __future__ import annotations

import xml.sax
from pathlib import Path
from xml.sax.handler import ContentHandler
from xml.sax.xmlreader import AttributesImpl, Locator

from defusedxml.common import DefusedXmlException

from ..registry import LANGUAGES, primary_language
from .rows import error_at, open_binary
from .termbase import Form, Record, retired_status
from .tmx import hardened_parser, normalise_segment, parser_refusal, xml_chunks

ENTRY_ELEMENTS = ("conceptEntry", "termEntry")
LANGUAGE_ELEMENTS = ("langSec", "langSet")
TERM_GROUPS = ("termSec", "tig", "ntig")
"""The elements that hold one term with its notes (TBX 3, TBX 2 / TBX-Basic)."""
STATUS_NOTES = ("administrativeStatus", "normativeAuthorization")
SUBJECT = "subjectField"
PREFERRED = "preferred"


def local_name(name: str) -> str:
    """`tbx:term` -> `term`: the parser reads without namespaces, so a prefix stays in the name."""
    return name.rpartition(":")[2]


class TbxHandler(ContentHandler):
    """Collects each concept entry's English and French terms and its subject fields. (Method names are SAX's.)"""

    def __init__(self, path: Path, locator: Locator) -> None:
        super().__init__()
        self.path, self.locator = path, locator
        self.records: list[Record] = []
        self.root_seen = False
        self.entry_line: int | None = None
        self.forms: dict[str, list[Form]] = {}
        self.subjects: list[str] = []
        self.lang: str | None = None
        self.term: str | None = None
        """The term of the term group being read (termSec/tig/ntig), until the group ends."""
        self.status = ""
        self.text: list[str] | None = None
        """Characters of the <term>, status <termNote> or subject <descrip> being read."""
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
                raise error_at(self.path, f"the root element is <{qualified}>, expected <tbx> or <martif> (not a TBX "
                                   "file)", self.line())  # fmt: skip
        if name in ENTRY_ELEMENTS:
            self.entry_line, self.forms, self.subjects = self.line(), {}, []
        elif name in LANGUAGE_ELEMENTS:
            raw = attrs.get("xml:lang", attrs.get("lang"))
            if raw is None or not raw.strip():
                raise error_at(self.path, f"<{qualified}> has no xml:lang attribute", self.line())
            self.lang = primary_language(raw)
        elif name in TERM_GROUPS:
            self.term, self.status, self.in_group = None, "", True
        elif self.entry_line is None:
            return
        elif name == "descrip" and attrs.get("type") == SUBJECT or name == SUBJECT:  # DCA, or DCT <basic:...>
            self.text, self.reading = [], "subject"
        elif self.lang not in LANGUAGES and self.lang is not None:
            return
        elif name == "term":
            if self.lang is None:
                raise error_at(self.path, "<term> outside a langSec/langSet", self.line())
            self.text, self.reading, self.text_line = [], "term", self.line()
        elif name == "termNote" and attrs.get("type") in STATUS_NOTES or name in STATUS_NOTES:
            self.text, self.reading = [], "status"

    def characters(self, content: str) -> None:
        if self.text is not None:
            self.text.append(content)

    def endElement(self, qualified: str) -> None:
        name = local_name(qualified)
        if self.text is not None and name in ("term", "termNote", "descrip", SUBJECT, *STATUS_NOTES):
            text, self.text = "".join(self.text), None
            if self.reading == "status":
                self.status = text
            elif self.reading == "subject":
                if text.strip():
                    self.subjects.append(normalise_segment(text))
            else:
                self.term = normalise_segment(text)
                if not self.term:
                    raise error_at(self.path, "<term> is empty", self.text_line)
                if not self.in_group:  # a <term> straight in the section, with no group around it
                    self.keep_term()
        elif name in TERM_GROUPS:
            self.keep_term()
            self.in_group = False
        elif name in LANGUAGE_ELEMENTS:
            self.lang = None
        elif name in ENTRY_ELEMENTS and self.entry_line is not None:
            forms = {lang: tuple(sorted(self.forms.get(lang, ()), key=lambda f: not f.preferred)) for lang in LANGUAGES}
            self.records.append(Record(self.entry_line, forms["en"], forms["fr"], tuple(self.subjects)))
            self.entry_line = None

    def keep_term(self) -> None:
        if self.term is not None and self.lang in LANGUAGES:
            status = self.status.strip().lower()
            form = Form(self.term, retired=retired_status(status), preferred=status.startswith(PREFERRED))
            self.forms.setdefault(self.lang, []).append(form)
        self.term, self.status = None, ""

    def skippedEntity(self, name: str) -> None:
        raise error_at(self.path, f"undefined entity &{name}; (csas never reads the DTD)", self.line())


def read_tbx(path: Path) -> list[Record]:
    """Every concept entry of the TBX file `path` as a record, English and French forms only."""
    with open_binary(path, "a TBX file") as handle:
        parser = hardened_parser()
        handler = TbxHandler(path, parser)
        parser.setContentHandler(handler)
        try:
            for chunk in xml_chunks(path, handle, "TBX"):
                parser.feed(chunk)
                if not chunk:
                    parser.close()
        except (xml.sax.SAXParseException, DefusedXmlException) as exc:
            raise parser_refusal(path, exc, parser.getLineNumber(), "TBX") from None
    return handler.records


__all__ = ["read_tbx"]
