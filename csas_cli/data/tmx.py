"""Training pairs from a TMX translation memory (1.1 to 1.4b), read as a stream by a hardened XML parser, as CAT
tools and memory publishers write them.

Each `<tu>` in `<body>` that holds an English and a French `<tuv>` is one pair; `<tuv>`s in other languages are
ignored, so a multilingual memory is fine. A unit without both (a unit of a 24-language memory that lacks French, a
unit with one side only) is skipped and counted (`ReadCounts.units_skipped`), not an error; a file without any
usable unit is refused. A unit may hold several `<tuv>`s of one language (`fr-FR` and `fr-CA`, `en-US` and
`en-GB`, or one code twice): one is taken, the first whose locale is in the `locales` preference (`--locales
fr-CA,en-CA`: compared case-insensitively, `_` as `-`, a listed `fr-CA` also taking `fr-CA-x-...`), else the first
in the unit; such units are counted (`units_with_variants`).

A tuv's language is its `xml:lang` (TMX 1.4) or `lang` (TMX 1.1, and Trados' TMX 1.4 exports) attribute, read
case-insensitively by its primary subtag: `en`, `en-CA`, `EN-US`, `En-uS`, `fr_FR`, `FR-ca` all count, and so do
Euramis codes such as `FR-01`. The source language is the unit's `srclang`, else the `<header>`'s; `*all*` means the
pair serves both directions, so the unit gives two rows, English source first, both with the unit's line; so does a
srclang in a third language (the English and the French are both translations of it). A `<prop type="pub_number">`
directly on the `<tu>` gives the publication (the first such prop; stripped, blank is None; the type read as
producers decorate it: `x-pub_number`, `x-pub_number:SingleString`, `Txt::pub_number`); with `--publication-from
tuid-prefix` the unit's `tuid` up to its first `:` gives it (TICO-19's `CMU_1:1`), with `--publication-from
prop:NAME` the `<prop>` of that type (DGT-TM's `prop:Txt::Doc. No.`). `<note>`, `<prop>`, `<ude>` and `<map>` are
read past wherever they stand, the order of the tuvs does not matter (a unit may give its target first), and
comments may stand before and after the root.

A segment's text is what a translator sees in a CAT tool:

- `<bpt>`, `<ept>`, `<ph>`, `<it>` and `<ut>` hold the native formatting codes of the original (`&lt;b&gt;`,
  `{\\b`): they give no text (`Click<ph x="1"/>here` reads `Clickhere`, as the codes sat between the words), and
  where the code stood between two spaces one space remains (`the <ph/> Open` reads `the Open`; a no-break space on
  either side is the one kept). A `<sub>` is a sub-flow of text *inside* such a code (a link's title, an index
  entry); it is dropped with the code that holds it, since it is not part of the sentence around it.
- Translator's Workbench exports of TagEditor files write a file's own tags as escaped text between two `<ut>`
  codes in a tag style (`<ut>{\\cs6\\f1\\cf6\\lang1024 </ut>&lt;cf bold="on"&gt;<ut>}</ut>`): that text is a
  tag's and is dropped with the codes around it (`TW4WIN_TAG`).
- `<hi>` only highlights its text, which is kept.
- Entities (`&amp;`, `&lt;`) and character references (`&#233;`, `&#xE9;`) are decoded by the parser, once: a
  doubly escaped `&amp;lt;` is the text `&lt;`, as the producer wrote it.
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
read; only the current unit is kept, never a tree, so a memory of any size reads in constant space. Encodings: a
byte order mark decides (UTF-8, or UTF-16 as Trados and the Euramis memories write it, whatever the XML declaration
says or leaves out); a UTF-16 file without a mark is recognised by its first characters; otherwise the bytes go to
the parser as they are, so it honours the declaration's encoding (UTF-8, ISO-8859-1, ...).

Errors are one-line `DataError`s naming the file and line: XML that is not well-formed (expat's reason), a root that
is not `<tmx>`, a `<tu>` outside `<body>`, a `<tuv>` outside a `<tu>` or without exactly one `<seg>`, a `<tuv>`
without a language, a unit without srclang where the header gives none, a file without any `<tu>`, and one without
any unit holding both languages. Standard library and defusedxml only.
"""

from __future__ import annotations

import codecs
import re
import xml.sax
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO
from xml.parsers import expat
from xml.sax.handler import ContentHandler
from xml.sax.xmlreader import AttributesImpl, Locator

from defusedxml.common import DefusedXmlException, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.expatreader import DefusedExpatParser

from ..errors import DataError
from ..registry import LANGUAGES, check_publication_from, locale_key, other_language, primary_language
from .rows import Example, ReadCounts, ReadOptions, error_at, open_binary, quoted, read_error

CHUNK_BYTES = 1 << 20
"""How much of the file the parser is fed at a time."""
TUID_PREFIX = "tuid-prefix"
PROP_TYPES_KEPT = 10
"""The `<prop>` types of units a reading keeps, to name when --publication-from finds none."""
PUB_NUMBER = "pub_number"
"""The `<prop type=...>` that gives a unit's pub_number, once a producer's decorations are taken off (`prop_name`)."""
_PROP_PREFIX = re.compile(r"^(?:x-(?:als:|alm:)?|txt::|att::)", re.IGNORECASE)
_PROP_TYPE = re.compile(r":[A-Za-z]+$")
_CODES = frozenset({"bpt", "ept", "ph", "it", "ut"})
"""Inline elements holding native codes: no text of theirs (nor of a `<sub>` inside them) reaches the segment."""
_LANGUAGE_NAMES = {"en": "English", "fr": "French"}
# XML white space, the C0 separators, NEL, and Unicode's space and line separators, but not the no-break spaces
# U+00A0, U+2007 and U+202F.
_SPACES = "\t\n\r \x0b\x0c\x1c-\x1f\x85\u1680\u2000-\u2006\u2008-\u200a\u2028\u2029\u205f\u3000"
_NO_BREAK = "\u00a0\u2007\u202f"
_WHITESPACE = re.compile(f"[{_SPACES}]+")
_CODE = "\x00"
"""Where a dropped inline code stood, while a segment is read (a character no XML text can hold)."""
_AROUND_CODE = re.compile(f"[{_SPACES}{_NO_BREAK}]*{_CODE}[{_SPACES}{_NO_BREAK}{_CODE}]*")
_NO_BREAK_CHAR = re.compile(f"[{_NO_BREAK}]")
BREAK_CODE = re.compile(r"<br\b|</?p[\s>/]|</?li\b|</?t[dhr]\b|<hr\b|<lb\b"
                        r"|\\(?:line|par|tab|cell|row|page|sect)(?![a-z])|^[\n\t\r]+$", re.IGNORECASE)
"""Native codes that are a break in the text (an HTML line, paragraph or cell; RTF's `\\line`, `\\par`, `\\tab`,
`\\cell`; a line feed or tab alone): such a code reads as a space, whatever stands around it."""
OMEGAT_TAGS = re.compile(r"</?[A-Za-z]{1,3}\d+/?>")
"""OmegaT's own tags (`<f0>`, `</g1>`, `<x2/>`), which its project memories keep as text in the segments."""
TW4WIN_TAG = re.compile(r"\s*\{\\cs\d+[^{}]*\\lang1024(?![0-9])[^{}]*$")
"""A `<ut>` opening one of Translator's Workbench's tag styles (tw4winInternal `{\\cs6\\f1\\cf6\\lang1024 `,
tw4winExternal, tw4winMark: their text is in no language): up to the `<ut>}</ut>` that closes it, the segment's
characters are a tag's (`<cf bold="on">`, escaped), which TagEditor files put there, not the sentence's."""
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_UTF16_STARTS = {b"<\x00?\x00": "utf-16-le", b"\x00<\x00?": "utf-16-be", b"<\x00t\x00": "utf-16-le",
                 b"\x00<\x00t": "utf-16-be"}  # fmt: skip
"""The first bytes of a UTF-16 XML document without a byte order mark (`<?` or `<t`)."""


def normalise_segment(text: str) -> str:
    """`text` with each run of white space other than a no-break space made one space, then stripped."""
    return _WHITESPACE.sub(" ", text).strip()


def prop_name(kind: str) -> str:
    """A `<prop type>` without the decorations producers add to a field's name: `x-` (TMX's own), Trados'
    `Txt::`/`Att::` and Studio's `:SingleString` type, Olifant's `x-als:`: `x-pub_number:SingleString`,
    `Txt::pub_number` and `pub_number` are all `pub_number`."""
    return _PROP_TYPE.sub("", _PROP_PREFIX.sub("", kind.strip())).lower()


def _close_code_gap(match: re.Match[str]) -> str:
    """The white space around dropped codes: one space, a no-break one when the run holds one; none where there
    was none (`Click<ph/>here`), unless the code sits between the end of a sentence or clause and a word (`Table
    3.<ph/>Landings`, a cell or paragraph break that left no space)."""
    gap = match.group().replace(_CODE, "")
    if gap:
        found = _NO_BREAK_CHAR.search(gap)
        return found.group() if found else " "
    text, start, end = match.string, match.start(), match.end()
    between = 0 < start and end < len(text) and text[start - 1] in ".!?;:" and text[end].isalpha()
    return " " if between else ""


def segment_text(parts: Sequence[str], tags: re.Pattern[str] | None = None) -> str:
    """A segment's text from its character data, with `_CODE` where inline codes were dropped and `tags` (a
    producer's tags written as text, such as OmegaT's `<f0>`) dropped too (module docstring)."""
    text = "".join(parts)
    if tags is not None:
        text = tags.sub(_CODE, text)
    if _CODE in text:
        text = _AROUND_CODE.sub(_close_code_gap, text)
    return normalise_segment(text)


def matches_locale(code: str, locale: str) -> bool:
    """`code` (a tuv's language) is the `locale` of a preference, or a tag under it (`fr-CA-x-qc` under `fr-CA`)."""
    code, locale = locale_key(code), locale_key(locale)
    return code == locale or code.startswith(locale + "-")


def choose_variant(found: Sequence[tuple[str, str]], locales: Sequence[str]) -> str:
    """The text of the (code, text) variant the `locales` preference names first, else of the first variant; an
    empty variant only when all are empty."""
    found = [(code, text) for code, text in found if text] or found
    for locale in locales:
        for code, text in found:
            if matches_locale(code, locale):
                return text
    return found[0][1]


class _Parser(DefusedExpatParser):
    """defusedxml's SAX expat parser that never reads a DTD: with parameter entity parsing off, expat does not ask
    for the external subset (defusedxml's forbid_external would otherwise refuse every DOCTYPE with a SYSTEM id)."""

    def reset(self) -> None:
        super().reset()
        self._parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)


def hardened_parser() -> _Parser:
    """The parser every XML input is read with (TMX, TBX): DOCTYPE accepted, DTD never read, entities refused."""
    return _Parser(forbid_dtd=False, forbid_entities=True, forbid_external=True)


def text_encoding(start: bytes) -> str | None:
    """The codec a file must be decoded with before parsing, from its first bytes: a byte order mark's (which wins
    over an XML declaration that names another encoding, as some exports write), or UTF-16 recognised without one;
    None to give the parser the bytes (it honours the declaration)."""
    for bom, codec in _BOMS:
        if start.startswith(bom):
            return codec
    return _UTF16_STARTS.get(start[:4])


def xml_chunks(path: Path, handle: BinaryIO, kind: str) -> Iterator[Any]:
    """The file's content in chunks of about CHUNK_BYTES to feed an expat parser: bytes as they are, or text
    decoded by `text_encoding` (pyexpat reads text as UTF-8, whatever the declaration says)."""
    first = True
    decoder = None
    while True:
        try:
            chunk = handle.read(CHUNK_BYTES)
        except OSError as exc:
            raise read_error(path, exc) from None
        if first:
            first = False
            codec = text_encoding(chunk[:4])
            decoder = None if codec is None else codecs.getincrementaldecoder(codec)()
        if decoder is None:
            yield chunk
        else:
            try:
                yield decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError:
                raise error_at(path, f"not well-formed {kind} (invalid {decoder_name(decoder)} text)") from None
        if not chunk:
            return


def decoder_name(decoder: Any) -> str:
    name = type(decoder).__module__.rsplit(".", 1)[-1]
    return {"utf_8_sig": "UTF-8", "utf_16": "UTF-16", "utf_16_le": "UTF-16", "utf_16_be": "UTF-16"}.get(name, name)


class _Handler(ContentHandler):
    """The state of the unit being read; each closed unit's rows go to `ready`. (Method names are SAX's.)"""

    def __init__(self, path: Path, locator: Locator, options: ReadOptions, counts: ReadCounts) -> None:
        super().__init__()
        self.path = path
        self.locator = locator
        self.locales = options.locales
        self.publication_from = check_publication_from(options.publication_from)
        source = self.publication_from
        self.pub_prop = PUB_NUMBER if source is None else prop_name(source[5:]) if source.startswith("prop:") else None
        """The prop whose text is a unit's publication (None: the tuid gives it)."""
        self.counts = counts
        self.ready: list[Example] = []
        self.units = 0
        """Units read, usable or not."""
        self.usable = 0
        self.languages_seen: dict[str, None] = {}
        self.stack: list[str] = []
        self.header_srclang: str | None = None
        self.tags: re.Pattern[str] | None = None
        """A producer's tags written as text (OmegaT's), dropped like inline codes."""
        self._start_unit(0, None)

    def _start_unit(self, line: int, srclang: str | None, tuid: str | None = None) -> None:
        self.tu_line = line
        self.tu_srclang = srclang
        self.pub_number: str | None = None
        self.pub_seen = False
        if self.publication_from == TUID_PREFIX and tuid is not None and ":" in tuid:
            self.pub_number, self.pub_seen = tuid.split(":", 1)[0].strip() or None, True
        self.tuvs: list[tuple[str, str, str]] = []
        """(primary language, code as written, text) of each tuv read."""
        self.prop_parts: list[str] | None = None
        self.tuv_lang = ""
        self.tuv_code = ""
        self.tuv_line = 0
        self.tuv_text: str | None = None
        self.seg_parts: list[str] | None = None
        self.skip = 0
        self.code_parts: list[str] | None = None
        """The native code of the inline code being read (a break, a TW4Win tag style)."""
        self.code_at = 0
        """Where the code's mark stands in seg_parts."""
        self.tag_text = False
        """Inside a TW4Win tag style: the characters are a tag's, shown as text, not the segment's."""

    def fail(self, what: str, line: int | None = None) -> DataError:
        return error_at(self.path, what, self.locator.getLineNumber() if line is None else line)

    def startElement(self, name: str, attrs: AttributesImpl) -> None:
        parent = self.stack[-1] if self.stack else None
        self.stack.append(name)
        if self.seg_parts is not None:
            if self.skip or name in _CODES:
                if not self.skip:
                    self.seg_parts.append(_CODE)
                    self.code_parts, self.code_at = [], len(self.seg_parts) - 1
                self.skip += 1
            return
        if parent is None and name != "tmx":
            raise self.fail(f"the root element is <{name}>, expected <tmx> (not a TMX file)")
        if name == "header" and parent == "tmx":
            self.header_srclang = attrs.get("srclang")
            self.tags = OMEGAT_TAGS if attrs.get("creationtool", "").strip().lower() == "omegat" else None
        elif name == "tu":
            if parent != "body":
                raise self.fail(f"<tu> inside <{parent}>; translation units belong in <body>")
            self._start_unit(self.locator.getLineNumber(), attrs.get("srclang"), attrs.get("tuid"))
        elif name == "tuv":
            if parent != "tu":
                raise self.fail(f"<tuv> inside <{parent}>; it belongs in a <tu>")
            code = attrs.get("xml:lang", attrs.get("lang"))
            if code is None or not code.strip():
                raise self.fail("<tuv> has no xml:lang attribute")
            self.tuv_code, self.tuv_lang = code.strip(), primary_language(code)
            self.tuv_line, self.tuv_text = self.locator.getLineNumber(), None
        elif name == "seg":
            if parent != "tuv":
                raise self.fail(f"<seg> inside <{parent}>; it belongs in a <tuv>")
            if self.tuv_text is not None:
                raise self.fail("<tuv> has a second <seg>; expected one")
            self.seg_parts, self.tag_text = [], False
        elif name == "prop" and parent == "tu":
            kind = attrs.get("type", "")
            if len(self.counts.prop_types) < PROP_TYPES_KEPT and kind not in self.counts.prop_types:
                self.counts.prop_types.append(kind)
            if not self.pub_seen and prop_name(kind) == self.pub_prop:
                self.prop_parts = []

    def characters(self, content: str) -> None:
        if self.seg_parts is not None:
            if not self.skip and not self.tag_text:
                self.seg_parts.append(content)
            elif self.skip == 1 and self.code_parts is not None:
                self.code_parts.append(content)
        elif self.prop_parts is not None:
            self.prop_parts.append(content)

    def endElement(self, name: str) -> None:
        self.stack.pop()
        if self.skip:
            self.skip -= 1
            if not self.skip and self.code_parts is not None and self.seg_parts is not None:
                code, self.code_parts = "".join(self.code_parts), None
                if BREAK_CODE.search(code):
                    self.seg_parts[self.code_at] = " "
                if name == "ut":
                    self.tag_text = bool(TW4WIN_TAG.match(code)) if not self.tag_text else code.strip() != "}"
        elif name == "seg" and self.seg_parts is not None:
            self.tuv_text = segment_text(self.seg_parts, self.tags)
            self.seg_parts = None
        elif name == "tuv":
            if self.tuv_text is None:
                raise self.fail("<tuv> has no <seg>", self.tuv_line)
            self.tuvs.append((self.tuv_lang, self.tuv_code, self.tuv_text))
        elif name == "prop" and self.prop_parts is not None:
            self.pub_number = "".join(self.prop_parts).strip() or None
            self.pub_seen, self.prop_parts = True, None
        elif name == "tu":
            self._close_unit()

    def skippedEntity(self, name: str) -> None:
        raise self.fail(f"undefined entity &{name}; (csas never reads the DTD; write the character itself or a "
                        f"character reference such as &#160;)")  # fmt: skip

    def _close_unit(self) -> None:
        self.units += 1
        texts: dict[str, str] = {}
        several = False
        for lang, code, _ in self.tuvs:
            self.languages_seen.setdefault(code.lower() if lang not in LANGUAGES else lang, None)
        for lang in LANGUAGES:
            found = [(code, text) for tuv_lang, code, text in self.tuvs if tuv_lang == lang]
            if not found:
                self.counts.units_skipped += 1
                return
            several |= len(found) > 1
            texts[lang] = choose_variant(found, self.locales)
        raw = self.tu_srclang if self.tu_srclang is not None else self.header_srclang
        if raw is None or not raw.strip():
            raise self.fail("<tu> has no srclang and the <header> gives none", self.tu_line)
        source = primary_language(raw)
        # *all*, or a third language of which the English and the French are both translations: both directions.
        sources = (source,) if source in LANGUAGES else LANGUAGES
        self.usable += 1
        self.counts.units_with_variants += several
        self.counts.units_without_publication += self.publication_from is not None and self.pub_number is None
        for lang in sources:
            target = other_language(lang)
            self.ready.append(Example(texts[lang], texts[target], lang, target, self.pub_number, self.tu_line))


def parser_refusal(path: Path, exc: Exception, line: int, kind: str = "TMX") -> DataError:
    """The one-line message for what the parser refused (in a TMX file, or a TBX one)."""
    if isinstance(exc, xml.sax.SAXParseException):
        return error_at(path, f"not well-formed {kind} ({exc.getMessage()})", exc.getLineNumber())
    if isinstance(exc, EntitiesForbidden):
        what = "an external entity" if exc.sysid or exc.pubid else "an entity"
        return error_at(path, f"declares {what} ({quoted(exc.name)}); csas refuses entity declarations in {kind} "
                            f"and expands none", line)  # fmt: skip
    if isinstance(exc, ExternalReferenceForbidden):
        return error_at(path, f"refers to an external resource ({quoted(exc.sysid or exc.pubid or '?')}); csas reads "
                            f"nothing outside the {kind} file", line)  # fmt: skip
    return error_at(path, f"refused by the XML parser ({type(exc).__name__})", line)


def read_tmx(path: Path, options: ReadOptions = ReadOptions(), counts: ReadCounts | None = None) -> Iterator[Example]:
    """Yield the English-French pairs of the TMX file `path`, validated, streaming (see the module docstring);
    `options` give the preference among a unit's variants of one language and where its publication comes from,
    and `counts` (when given) receives the skipped units and those with variants as they are read.

    A generator, like `pairs.read_jsonl`: file errors (missing, directory, unreadable) are raised on the first
    `next()`; rows read before an error are yielded before it is raised; a file without any `<tu>`, or without any
    unit holding both languages, is reported at its end.
    """
    path = Path(path)
    counts = ReadCounts() if counts is None else counts
    with open_binary(path, "a TMX file") as handle:
        parser = hardened_parser()
        handler = _Handler(path, parser, options, counts)
        parser.setContentHandler(handler)
        for chunk in xml_chunks(path, handle, "TMX"):
            failure: DataError | None = None
            try:
                parser.feed(chunk)  # the first feed starts the parser (text: read as UTF-8, whatever is declared)
                if not chunk:
                    parser.close()
            except (xml.sax.SAXParseException, DefusedXmlException) as exc:
                failure = parser_refusal(path, exc, parser.getLineNumber())
            except DataError as exc:
                failure = exc
            yield from handler.ready
            handler.ready.clear()
            if failure is not None:
                raise failure from None
    if handler.units == 0:
        raise error_at(path, "no <tu> translation units")
    if handler.usable == 0:
        seen = ", ".join(handler.languages_seen) or "none"
        raise error_at(path, f"none of its {handler.units} <tu> units holds both an English and a French <tuv> "
                           f"(languages: {seen})")  # fmt: skip


__all__ = [
    "CHUNK_BYTES", "PUB_NUMBER", "choose_variant", "hardened_parser", "normalise_segment", "read_tmx",
    "segment_text", "xml_chunks",
]  # fmt: skip
