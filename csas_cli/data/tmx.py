"""Training pairs from a TMX 1.4 translation memory, read as a stream by a hardened XML parser.

Each `<tu>` in `<body>` that holds one English and one French `<tuv>` is one pair; `<tuv>`s in other languages are
ignored, so a multilingual memory is fine. A tuv's language is its `xml:lang` (TMX 1.4) or `lang` (TMX 1.1)
attribute, read case-insensitively by its primary subtag: `en`, `en-CA`, `EN-US`, `fr_FR` and `FR-ca` all count. A
unit without an English or without a French tuv, or with two of either, is refused. The source language is the
unit's `srclang`, else the `<header>`'s; `*all*` means the pair serves both directions, so the unit gives two rows,
English source first, both with the unit's line. A `<prop type="pub_number">` (or `x-pub_number`) directly on the
`<tu>` gives the publication (the first such prop; stripped, blank is None).

A segment's text is what a translator sees in a CAT tool:

- `<bpt>`, `<ept>`, `<ph>`, `<it>` and `<ut>` hold the native formatting codes of the original (`&lt;b&gt;`,
  `{\\b`): they give no text, not even a space (`Click<ph x="1"/>here` reads `Clickhere`, as the codes sat between
  the words). A `<sub>` is a sub-flow of text *inside* such a code (a link's title, an index entry); it is dropped
  with the code that holds it, since it is not part of the sentence around it.
- `<hi>` only highlights its text, which is kept.
- Entities (`&amp;`, `&lt;`) and character references (`&#233;`, `&#xE9;`) are decoded by the parser.
- White space is normalised: each run of XML white space (space, tab, line feed, carriage return) or of another
  Unicode space or line separator becomes one space, and the text is stripped (as `read_jsonl` strips). No-break
  spaces (U+00A0, U+2007, U+202F) inside the text are kept as they are: French typography puts them in numbers
  and before `:;!?`.

Hardening, with defusedxml's expat parser (entities and external references forbidden): the `<!DOCTYPE tmx SYSTEM
"tmx14.dtd">` line that CAT tools write is accepted, and the DTD is never fetched nor opened (parameter entities and
the external subset are not parsed at all); any entity declaration, internal or external (billion laughs, `SYSTEM
"file:///etc/passwd"`), is refused at its line before anything is expanded, and so is a reference to an entity the
document does not define (`&nbsp;`, which only an unread DTD could define).

Streaming: the file is fed to the parser in 1 MiB chunks and the rows of each chunk are yielded before the next is
read; only the current unit is kept, never a tree, so a memory of any size reads in constant space. The bytes go to
the parser as they are, so it honours a byte order mark and the XML declaration's encoding (UTF-8 with or without a
BOM, UTF-16 as Trados exports it).

Errors are one-line `DataError`s naming the file and line: XML that is not well-formed (expat's reason), a root that
is not `<tmx>`, a `<tu>` outside `<body>`, a `<tuv>` outside a `<tu>` or without exactly one `<seg>`, a missing or
unknown srclang, and a file without any `<tu>`. Standard library and defusedxml only.
"""

from __future__ import annotations

import re
import xml.sax
from collections.abc import Iterator
from pathlib import Path
from xml.parsers import expat
from xml.sax.handler import ContentHandler
from xml.sax.xmlreader import AttributesImpl, Locator

from defusedxml.common import DefusedXmlException, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.expatreader import DefusedExpatParser

from ..errors import DataError
from ..registry import LANGUAGES, other_language
from .pairs import Example, _error, _open_binary, _read_error, _show

CHUNK_BYTES = 1 << 20
"""How much of the file the parser is fed at a time."""
PUB_NUMBER_PROPS = ("pub_number", "x-pub_number")
"""The `<prop type=...>` names that give a unit's pub_number."""
_CODES = frozenset({"bpt", "ept", "ph", "it", "ut"})
"""Inline elements holding native codes: no text of theirs (nor of a `<sub>` inside them) reaches the segment."""
_LANGUAGE_NAMES = {"en": "English", "fr": "French"}
# XML white space, the C0 separators, NEL, and Unicode's space and line separators, but not the no-break spaces
# U+00A0, U+2007 and U+202F.
_WHITESPACE = re.compile("[\t\n\r \x0b\x0c\x1c-\x1f\x85\u1680\u2000-\u2006\u2008-\u200a\u2028\u2029\u205f\u3000]+")
_SUBTAG = re.compile("[-_]")


def normalise_segment(text: str) -> str:
    """`text` with each run of white space other than a no-break space made one space, then stripped."""
    return _WHITESPACE.sub(" ", text).strip()


def _primary(lang: str) -> str:
    """The primary subtag, lower-cased: "EN-us" -> "en", "fr_FR" -> "fr"."""
    return _SUBTAG.split(lang.strip(), maxsplit=1)[0].lower()


class _Parser(DefusedExpatParser):
    """defusedxml's SAX expat parser that never reads a DTD: with parameter entity parsing off, expat does not ask
    for the external subset (defusedxml's forbid_external would otherwise refuse every DOCTYPE with a SYSTEM id)."""

    def reset(self) -> None:
        super().reset()
        self._parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)


class _Handler(ContentHandler):
    """The state of the unit being read; each closed unit's rows go to `ready`. (Method names are SAX's.)"""

    def __init__(self, path: Path, locator: Locator) -> None:
        super().__init__()
        self.path = path
        self.locator = locator
        self.ready: list[Example] = []
        self.units = 0
        self.stack: list[str] = []
        self.header_srclang: str | None = None
        self._start_unit(0, None)

    def _start_unit(self, line: int, srclang: str | None) -> None:
        self.tu_line = line
        self.tu_srclang = srclang
        self.pub_number: str | None = None
        self.pub_seen = False
        self.tuvs: list[tuple[str, str]] = []
        self.prop_parts: list[str] | None = None
        self.tuv_lang = ""
        self.tuv_line = 0
        self.tuv_text: str | None = None
        self.seg_parts: list[str] | None = None
        self.skip = 0

    def fail(self, what: str, line: int | None = None) -> DataError:
        return _error(self.path, what, self.locator.getLineNumber() if line is None else line)

    def startElement(self, name: str, attrs: AttributesImpl) -> None:
        parent = self.stack[-1] if self.stack else None
        self.stack.append(name)
        if self.seg_parts is not None:
            if self.skip or name in _CODES:
                self.skip += 1
            return
        if parent is None and name != "tmx":
            raise self.fail(f"the root element is <{name}>, expected <tmx> (not a TMX file)")
        if name == "header" and parent == "tmx":
            self.header_srclang = attrs.get("srclang")
        elif name == "tu":
            if parent != "body":
                raise self.fail(f"<tu> inside <{parent}>; translation units belong in <body>")
            self._start_unit(self.locator.getLineNumber(), attrs.get("srclang"))
        elif name == "tuv":
            if parent != "tu":
                raise self.fail(f"<tuv> inside <{parent}>; it belongs in a <tu>")
            lang = attrs.get("xml:lang", attrs.get("lang"))
            if lang is None or not lang.strip():
                raise self.fail("<tuv> has no xml:lang attribute")
            self.tuv_lang, self.tuv_line, self.tuv_text = _primary(lang), self.locator.getLineNumber(), None
        elif name == "seg":
            if parent != "tuv":
                raise self.fail(f"<seg> inside <{parent}>; it belongs in a <tuv>")
            if self.tuv_text is not None:
                raise self.fail("<tuv> has a second <seg>; expected one")
            self.seg_parts = []
        elif (name == "prop" and parent == "tu" and not self.pub_seen
              and attrs.get("type", "").strip().lower() in PUB_NUMBER_PROPS):
            self.prop_parts = []

    def characters(self, content: str) -> None:
        if self.seg_parts is not None:
            if not self.skip:
                self.seg_parts.append(content)
        elif self.prop_parts is not None:
            self.prop_parts.append(content)

    def endElement(self, name: str) -> None:
        self.stack.pop()
        if self.skip:
            self.skip -= 1
        elif name == "seg" and self.seg_parts is not None:
            self.tuv_text = normalise_segment("".join(self.seg_parts))
            self.seg_parts = None
        elif name == "tuv":
            if self.tuv_text is None:
                raise self.fail("<tuv> has no <seg>", self.tuv_line)
            self.tuvs.append((self.tuv_lang, self.tuv_text))
        elif name == "prop" and self.prop_parts is not None:
            self.pub_number = "".join(self.prop_parts).strip() or None
            self.pub_seen, self.prop_parts = True, None
        elif name == "tu":
            self._close_unit()

    def skippedEntity(self, name: str) -> None:
        raise self.fail(f"undefined entity &{name}; (csas never reads the DTD; write the character itself or a "
                        f"character reference such as &#160;)")  # fmt: skip

    def _close_unit(self) -> None:
        texts: dict[str, str] = {}
        for lang in LANGUAGES:
            found = [text for tuv_lang, text in self.tuvs if tuv_lang == lang]
            if len(found) != 1:
                seen = ", ".join(dict.fromkeys(tuv_lang for tuv_lang, _ in self.tuvs)) or "none"
                how = "no" if not found else f"{len(found)}"
                raise self.fail(f"<tu> has {how} {_LANGUAGE_NAMES[lang]} <tuv>{'s' if found else ''}; expected one "
                                f"English and one French (languages: {seen})", self.tu_line)  # fmt: skip
            texts[lang] = found[0]
        raw, where = self.tu_srclang, ""
        if raw is None:
            raw, where = self.header_srclang, " (from the <header>)"
        if raw is None:
            raise self.fail("<tu> has no srclang and the <header> gives none", self.tu_line)
        if raw.strip().lower() == "*all*":
            sources = LANGUAGES
        elif _primary(raw) in LANGUAGES:
            sources = (_primary(raw),)
        else:
            raise self.fail(f"srclang {_show(raw)}{where} is not allowed; expected en, fr or *all*", self.tu_line)
        self.units += 1
        for lang in sources:
            target = other_language(lang)
            self.ready.append(Example(texts[lang], texts[target], lang, target, self.pub_number, self.tu_line))


def _refusal(path: Path, exc: Exception, line: int, kind: str = "TMX") -> DataError:
    """The one-line message for what the parser refused (in a TMX file, or a TBX one)."""
    if isinstance(exc, xml.sax.SAXParseException):
        return _error(path, f"not well-formed {kind} ({exc.getMessage()})", exc.getLineNumber())
    if isinstance(exc, EntitiesForbidden):
        what = "an external entity" if exc.sysid or exc.pubid else "an entity"
        return _error(path, f"declares {what} ({_show(exc.name)}); csas refuses entity declarations in {kind} "
                            f"and expands none", line)  # fmt: skip
    if isinstance(exc, ExternalReferenceForbidden):
        return _error(path, f"refers to an external resource ({_show(exc.sysid or exc.pubid or '?')}); csas reads "
                            f"nothing outside the {kind} file", line)  # fmt: skip
    return _error(path, f"refused by the XML parser ({type(exc).__name__})", line)


def read_tmx(path: Path) -> Iterator[Example]:
    """Yield the English-French pairs of the TMX file `path`, validated, streaming (see the module docstring).

    A generator, like `pairs.read_jsonl`: file errors (missing, directory, unreadable) are raised on the first
    `next()`; rows read before an error are yielded before it is raised; a file without any `<tu>` is reported at
    its end.
    """
    path = Path(path)
    with _open_binary(path, "a TMX file") as handle:
        parser = _Parser(forbid_dtd=False, forbid_entities=True, forbid_external=True)
        handler = _Handler(path, parser)
        parser.setContentHandler(handler)
        parser.feed(b"")  # starts the parser, so that close() judges an empty file too
        done = False
        while not done:
            try:
                chunk = handle.read(CHUNK_BYTES)
            except OSError as exc:
                raise _read_error(path, exc) from None
            failure: DataError | None = None
            try:
                if chunk:
                    parser.feed(chunk)
                else:
                    done = True
                    parser.close()
            except (xml.sax.SAXParseException, DefusedXmlException) as exc:
                failure = _refusal(path, exc, parser.getLineNumber())
            except DataError as exc:
                failure = exc
            yield from handler.ready
            handler.ready.clear()
            if failure is not None:
                raise failure from None
    if handler.units == 0:
        raise _error(path, "no <tu> translation units")


__all__ = ["CHUNK_BYTES", "PUB_NUMBER_PROPS", "normalise_segment", "read_tmx"]
