"""What every reader of pairs shares: the row (`Example`), how a file is read beyond its format (`ReadOptions`),
what a reader skipped or chose (`ReadCounts`), and the located one-line errors about a file.

Every problem a user can fix is a `DataError` whose message is one line, `"<path>:<line>: <what is wrong>"` or
`"<path>: <what is wrong>"` (`error_at`); a user's value is quoted in it with `quoted`. The readers (pairs.py
for JSON Lines, tmx.py, tsv.py, aligned.py) and the glossary readers (tbx.py, termtables.py) build on this module
and on nothing of each other's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Mapping

from ..errors import DataError
from ..progress import counted
from ..registry import LANGUAGES, check_publication_from, parse_locales, primary_language

REQUIRED_FIELDS = ("source", "target", "source_lang")
"""The fields every row has (a JSON Lines object, a TSV header)."""
BOM = b"\xef\xbb\xbf"
# json.dumps escapes control characters but not these, which str.splitlines() also treats as line breaks.
_LINE_BREAK_ESCAPES = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}

@dataclass(frozen=True)
class Example:
    """One validated row of the data file."""

    source: str
    """Stripped source sentence (may be empty; `load_examples` drops such rows)."""
    target: str
    """Stripped target sentence (may be empty; `load_examples` drops such rows)."""
    source_lang: str
    """"en" or "fr", normalised (stripped, lower-cased)."""
    target_lang: str
    """The other language."""
    pub_number: str | None
    """Stripped publication id; None when absent, null or blank."""
    line: int
    """1-based line number in the file (for TMX, the line of the `<tu>`; both rows of a `srclang="*all*"` unit
    share it)."""


@dataclass(frozen=True)
class ReadOptions:
    """How a pairs file is read, beyond what its format says: the options every command that reads pairs takes."""

    locales: tuple[str, ...] = ()
    """--locales: the variants preferred where a TMX unit holds several of one language (data/tmx.py)."""
    publication_from: str | None = None
    """--publication-from: where a TMX unit's publication comes from, `tuid-prefix` or `prop:NAME` (data/tmx.py);
    None: its pub_number prop."""

    @classmethod
    def of(cls, corpus: Any) -> "ReadOptions":
        """A run's reading options, from its corpus settings (settings.CorpusSettings), or from a command's options
        of the same names (a mapping, the values as the command line gives them: `--locales fr-CA,en-CA`), checked."""
        get = corpus.get if isinstance(corpus, Mapping) else lambda name: getattr(corpus, name, None)
        locales = get("locales")
        return cls(() if locales is None else parse_locales(locales), check_publication_from(get("publication_from")))


@dataclass
class ReadCounts:
    """What reading a file left out or chose, counted as it is read (by the TMX and line-aligned readers)."""

    units_skipped: int = 0
    """Translation units without both an English and a French segment: skipped (a multilingual memory's units in
    other languages)."""
    units_with_variants: int = 0
    """Units holding several segments of one language (fr-FR and fr-CA): one was chosen, by --locales or first."""
    lines_one_sided: int = 0
    """Lines of line-aligned files with text on one side only: skipped."""
    units_without_publication: int = 0
    """With --publication-from: usable units it found no publication for (no such prop, a tuid without `:`)."""
    prop_types: list[str] = field(default_factory=list)
    """The first `<prop>` types seen on units, to name when --publication-from finds none."""

    COUNTS = ("units_skipped", "units_with_variants", "lines_one_sided", "units_without_publication")

    def to_dict(self) -> dict[str, Any]:
        return {**{name: getattr(self, name) for name in self.COUNTS}, "prop_types": list(self.prop_types)}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> "ReadCounts":
        counts = {name: record.get(name) or 0 for name in cls.COUNTS}
        return cls(**counts, prop_types=list(record.get("prop_types") or ()))

    def describe(self, options: "ReadOptions" = ReadOptions()) -> str:
        """The counts in words for a log line, "" when all are 0."""
        locales = options.locales
        parts = []
        if self.units_skipped:
            parts.append(f"{counted(self.units_skipped, 'TMX unit')} without both an English and a French segment "
                         "skipped")  # fmt: skip
        if self.units_with_variants:
            how = (f"by --locales {','.join(locales)}, else the first" if locales
                   else "the first of each (--locales chooses)")  # fmt: skip
            parts.append(f"{counted(self.units_with_variants, 'unit')} with several variants of one language, {how}")
        if self.lines_one_sided:
            parts.append(f"{counted(self.lines_one_sided, 'line')} with text on one side only skipped")
        if self.units_without_publication:
            source = options.publication_from or ""
            found = ("no tuid with a ':'" if source == "tuid-prefix" else
                     f"no such prop (the units' props: {', '.join(self.prop_types) or 'none'})")  # fmt: skip
            parts.append(f"warning: --publication-from {source}: {counted(self.units_without_publication, 'unit')} "
                         f"without a publication, {found}")  # fmt: skip
        return "; ".join(parts)


def one_line(text: str) -> str:
    """`text` itself, or its repr when it holds a line break, so that a message stays on one line."""
    return repr(text) if any(c in text for c in "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029") else text


def error_at(path: Path, what: str, line: int | None = None) -> DataError:
    """The one-line error about `path` (at `line`): `"<path>:<line>: <what>"`."""
    where = one_line(str(path)) if line is None else f"{one_line(str(path))}:{line}"
    return DataError(f"{where}: {what}")


def quoted(value: str, limit: int = 40) -> str:
    """A user's value quoted for a message: escaped, so it cannot break the line, and cut short."""
    shown = value if len(value) <= limit else value[:limit] + "..."
    return json.dumps(shown, ensure_ascii=False).translate(_LINE_BREAK_ESCAPES)


def open_binary(path: Path, expected: str) -> BinaryIO:
    """`path` opened for reading bytes; a missing, unreadable or directory path is a one-line `DataError`.

    `expected` names the format in the directory message, e.g. "a JSON Lines file".
    """
    if path.is_dir():
        raise error_at(path, f"is a directory, expected {expected}")
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise error_at(path, "file not found") from None
    except IsADirectoryError:
        raise error_at(path, f"is a directory, expected {expected}") from None
    except PermissionError:
        raise error_at(path, "cannot be read (permission denied)") from None
    except OSError as exc:
        raise error_at(path, f"cannot be read ({exc.strerror or exc})") from None


UTF16_WITHOUT_MARK = "looks like UTF-16 without a byte order mark: save it as UTF-8 (or UTF-16 with its mark)"


def looks_utf16(raw: bytes) -> bool:
    """A line of UTF-16 text read as bytes: every other byte of its characters is zero."""
    return raw.count(b"\x00") * 3 >= max(1, len(raw.rstrip(b"\r\n")))


def read_error(path: Path, exc: OSError, line: int | None = None) -> DataError:
    """A read failing half-way (a network share going away, an I/O error) is still about this file."""
    return error_at(path, f"cannot be read ({exc.strerror or exc})", line)


def parse_language(path: Path, number: int, raw_lang: str) -> str:
    """A row's source_lang by its primary subtag; anything but English or French is refused."""
    lang = primary_language(raw_lang)
    if lang not in LANGUAGES:
        allowed = " or ".join(repr(code) for code in LANGUAGES)
        raise error_at(path, f"source_lang {quoted(raw_lang)} is not allowed; expected {allowed} (or a regional code "
                           "such as en-CA, fr-CA)", number)  # fmt: skip
    return lang
