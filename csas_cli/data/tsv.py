"""Training pairs from tab-separated values: a header row, then one pair per line.

The file is UTF-8 (a byte order mark is allowed), or UTF-16 with its byte order mark (what a spreadsheet's "Unicode
Text" export writes). Its first non-blank line names the columns, case-insensitive and stripped, in any order, in
one of two layouts:

- `source`, `target`, `source_lang` and optional `pub_number`: each row gives its own direction;
- a column for English and one for French, named by a code (`en`, `fr`, `en-CA`) or a language name (`English`,
  `Français`), as glossaries take them, and optional `pub_number`: each row is an English-to-French pair.

Other columns are ignored (a row may leave out the trailing ones). A field cannot hold a tab or a line break, and a quote is just a character (`"Yes," he
said.` is read as written); only a field that a spreadsheet quoted because it holds a quote (`"Le ""stock"" est"`:
wholly in quotes, with doubled quotes inside) is unquoted (`Le "stock" est`). Each later line gives as many fields
as the header names; blank lines are skipped. Values are validated as `pairs.read_jsonl` validates a row:
stripped, source_lang en or fr, a blank pub_number is None. Standard library only.
"""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..registry import LANGUAGES, header_language, other_language
from .rows import (
    BOM,
    REQUIRED_FIELDS,
    UTF16_WITHOUT_MARK,
    Example,
    error_at,
    looks_utf16,
    open_binary,
    parse_language,
    read_error,
)

COLUMNS = (*REQUIRED_FIELDS, "pub_number")
"""The columns csas reads; the last one is optional."""
_EXPECTED = "expected source, target, source_lang[, pub_number]"


_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_CSV_QUOTED = re.compile(r'^\s*"((?:[^"]|"")*""(?:[^"]|"")*)"\s*$')
"""A field in CSV quotes holding a doubled quote: what a spreadsheet writes for a field that holds a quote."""


def unquoted(field: str) -> str:
    """A field as the sheet held it: a spreadsheet's quoting undone (see the module docstring; `""` alone is an empty
    cell), else as written."""
    if field.strip() == '""':
        return ""
    found = _CSV_QUOTED.match(field)
    return found.group(1).replace('""', '"') if found else field



def _decode(path: Path, number: int, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error_at(path, f"invalid UTF-8 at byte {exc.start + 1} of the line (csas reads UTF-8, or UTF-16 with a "
                           "byte order mark)", number) from None  # fmt: skip


def text_lines(path: Path, handle: BinaryIO) -> Iterator[tuple[int, str]]:
    """(line number, text without its line end) of every line: UTF-16 when the file starts with its byte order mark,
    else UTF-8 (a UTF-8 byte order mark dropped)."""
    start = handle.peek(2)[:2] if hasattr(handle, "peek") else b""
    if start in _UTF16_BOMS:
        text = io.TextIOWrapper(handle, encoding="utf-16", newline="")
        number = 0
        try:
            for number, line in enumerate(text, start=1):
                yield number, line.removesuffix("\n").removesuffix("\r")
        except UnicodeDecodeError:
            raise error_at(path, "invalid UTF-16 text (the file starts with a UTF-16 byte order mark)",
                           number + 1) from None  # fmt: skip
        return
    for number, raw in enumerate(handle, start=1):
        if number == 1 and looks_utf16(raw[:200]):
            raise error_at(path, UTF16_WITHOUT_MARK, number)
        if number == 1 and raw.startswith(BOM):
            raw = raw[len(BOM):]
        # Only the line's own end goes: a field may end in other white space, which the value's strip drops.
        yield number, _decode(path, number, raw).removesuffix("\n").removesuffix("\r")


@dataclass(frozen=True)
class Header:
    """The columns a TSV file names: source/target/source_lang, or an English and a French column."""

    columns: dict[str, int]
    """source, target, source_lang (or en, fr), pub_number -> index."""
    width: int
    by_language: bool
    """English and French columns: every row an English-to-French pair."""


def _header(path: Path, number: int, text: str) -> Header:
    """The index of each column csas reads, and the header's field count."""
    cells = text.split("\t")
    names = [name.strip().lower() for name in cells]
    columns: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in COLUMNS:
            if name in columns:
                raise error_at(path, f"header names column {name!r} twice ({_EXPECTED})", number)
            columns[name] = index
    if all(name in columns for name in REQUIRED_FIELDS):
        return Header(columns, len(names), False)
    languages: dict[str, int] = {}
    for index, cell in enumerate(cells):
        lang = header_language(cell) if cell.strip() and names[index] not in COLUMNS else None
        if lang is not None:
            languages.setdefault(lang, index)
    if "source" not in columns and "target" not in columns and all(lang in languages for lang in LANGUAGES):
        return Header({**languages, **{k: v for k, v in columns.items() if k == "pub_number"}}, len(names), True)
    missing = next(name for name in REQUIRED_FIELDS if name not in columns)
    raise error_at(path, f"header lacks column {missing!r} ({_EXPECTED}; or an en and an fr column)", number)


def read_tsv(path: Path) -> Iterator[Example]:
    """Yield every data line of the tab-separated file `path`, validated, streaming line by line.

    A generator, like `pairs.read_jsonl`: file errors (missing, directory, unreadable) are raised on the first
    `next()`; an empty file, or a header without data lines, is reported after the last line.
    """
    path = Path(path)
    with open_binary(path, "a TSV file") as handle:
        header: Header | None = None
        rows = number = 0
        try:
            for number, text in text_lines(path, handle):
                if not text.strip():
                    continue
                if header is None:
                    header = _header(path, number, text)
                    continue
                fields = text.split("\t")
                needed = max(header.columns.values()) + 1
                if needed <= len(fields) < header.width:  # trailing columns csas does not read, left empty
                    fields += [""] * (header.width - len(fields))
                if len(fields) != header.width:
                    raise error_at(path, f"has {len(fields)} tab-separated fields, the header has {header.width} (a "
                                       "field cannot hold a tab or a line break: a spreadsheet cell with a line "
                                       "break splits its row)", number)  # fmt: skip
                columns = header.columns
                if header.by_language:
                    source, target, lang = unquoted(fields[columns["en"]]), unquoted(fields[columns["fr"]]), "en"
                else:
                    source, target = unquoted(fields[columns["source"]]), unquoted(fields[columns["target"]])
                    lang = parse_language(path, number, fields[columns["source_lang"]])
                pub = fields[columns["pub_number"]].strip() or None if "pub_number" in columns else None
                rows += 1
                yield Example(source.strip(), target.strip(), lang, other_language(lang), pub, number)
        except OSError as exc:
            raise read_error(path, exc, number + 1) from None
    if header is None:
        raise error_at(path, "is empty; expected a TSV header row naming source, target, source_lang[, pub_number] (or "
                           "en, fr), then one pair per line")
    if rows == 0:
        raise error_at(path, "has a header row but no data lines")


__all__ = ["COLUMNS", "read_tsv", "text_lines", "unquoted"]
