"""Glossaries kept as tables: TSV, CSV and Excel workbooks, in the three layouts terminologists publish them in.

The table: `.tsv` and `.txt` are tab-separated, `.csv` comma-separated (or semicolon-separated, as a French Excel
saves CSV: the separator that splits the header row most wins), both quoted the CSV way; UTF-8 (a byte order mark
allowed), UTF-16 with its mark, or else Windows-1252 (Excel's plain "CSV"; the layout's name then says so). `.xlsx`
and `.xlsm` are Excel workbooks, read with openpyxl in read-only mode, as data only (a macro is never run, a formula
gives the value Excel last computed): the first sheet, or the one `--glossary-sheet` names; a cell's number reads as
written (`3`, not `3.0`), a date as its ISO date. Blank rows, and lines whose first cell starts with `#`, are
skipped.

The header is the first row that names the columns of a layout (a title row above it is passed over):

- **columns**: a column for English and one for French, named by a code (`en`, `fr`, `en-CA`, `FR_ca`) or a
  language name (`English`, `French`, `Anglais`, `Français`, `Terme anglais`, `English (US)`; any case); the first
  of each is read, other columns are ignored. A cell may list variants separated by `|` (`zone critique|zones
  critiques`), the preferred form first.
- **TERMIUM Plus**, the Government of Canada's open-data export (one CSV per subject area): `TERM_EN` and
  `TERME_FR` are the preferred forms; `SYNONYMS_EN`/`SYNONYMES_FR` and `ABBREVIATION_EN`/`ABBREVIATION_FR` are
  variants, `;`-separated, each with its parameters in step in the `..._PARAMETER(S)`/`..._PARAMETRE` column
  (`correct,see observation;avoid,anglicism`): a form whose parameters say `avoid`, `obsolete`, `deprecated` or
  `former designation` (termbase.RETIRED_WORDS) is retired. `SUBJECT_EN` and `DOMAINE_FR` are the subject fields.
  The Spanish and Portuguese columns are not read.
- **term pairs**, one row per pair, as TICO-19's terminologies are published: `sourceLang`, `targetLang`,
  `sourceString`, `targetString` (any case, `_` or not: `source_lang`, `Source String`); locales such as `en`,
  `en-US`, `fr-FR`, `fr-CA`, `fr_XX`. An English-French row gives an entry, a French-English row the same entry read
  the other way round, a row of another language pair is skipped (and counted). Where an unquoted comma split the
  last column (TICO-19's own files have such rows), the extra fields are joined back into it; a comma (like `|`)
  separates alternatives (`distanciation sociale, éloignement social`), the first preferred.

The columns and term-pairs layouts also read a subject column (`subject`, `subject field`, `domain`, `domaine`).
A header matching no layout is refused in one line that names the layouts. Errors are one-line DataErrors naming
the file and line (a workbook's row).
"""

from __future__ import annotations

import csv
import io
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from ..errors import SettingsError
from ..registry import LANGUAGES, header_language, primary_language
from .rows import error_at, open_binary, quoted, read_error
from .termbase import Form, Record, fold, retired_status
from .tmx import normalise_segment

WORKBOOK_SUFFIXES = (".xlsx", ".xlsm")
CSV_SUFFIXES = (".csv",)
VARIANT_SEPARATOR = "|"
"""Between the variants of a cell in the columns and term-pairs layouts."""
PAIR_ALTERNATIVES = ","
"""Term lists (the term-pairs layout) also give alternatives separated by commas (`distanciation sociale,
éloignement social`): a comma ends a term where csas matches terms, so a form holding one could never match."""
TERMIUM_SEPARATOR = ";"
"""Between TERMIUM Plus's synonyms (and between their parameter lists)."""
SUBJECT_COLUMNS = ("subject", "subjects", "subjectfield", "domain", "domaine", "sujet")
"""Header names (folded, without spaces, `_` and `-`) of a subject column."""
PAIR_COLUMNS = {
    "source_lang": ("sourcelang", "sourcelanguage", "srclang", "sourcelocale"),
    "target_lang": ("targetlang", "targetlanguage", "tgtlang", "trglang", "targetlocale"),
    "source": ("sourcestring", "sourceterm", "source", "sourcetext"),
    "target": ("targetstring", "targetterm", "target", "targettext"),
}
TERMIUM_COLUMNS = {
    "en": (("term_en", "term_en_parameter"), ("synonyms_en", "synonyms_en_parameters", "synonyms_en_parameter"),
           ("abbreviation_en", "abbreviation_en_parameter")),
    "fr": (("terme_fr", "terme_fr_parametre"), ("synonymes_fr", "synonymes_fr_parametre", "synonymes_fr_parametres"),
           ("abbreviation_fr", "abbreviation_fr_parametre")),
}  # fmt: skip
"""Per language, the (terms, parameters...) column pairs of a TERMIUM Plus export, the preferred term first."""
TERMIUM_SUBJECTS = ("subject_en", "domaine_fr")
HEADER_SEARCH_ROWS = 10
"""Non-blank rows searched for the header (title rows above it are passed over)."""
LAYOUT_HELP = (
    "csas reads columns named for English and French (en, fr, en-CA, English, French, Anglais, Français), a "
    "TERMIUM Plus export (TERM_EN, TERME_FR, ...) and term pairs (sourceLang, targetLang, sourceString, "
    "targetString), in .tsv, .csv or .xlsx, and TBX termbases (.tbx)"
)
_XLSX_MAGIC = b"PK\x03\x04"
_XLS_MAGIC = b"\xd0\xcf\x11\xe0"


@dataclass(frozen=True)
class Row:
    line: int
    cells: list[str]


def column_key(name: str) -> str:
    """A header cell as headers are compared: folded, white space (no-break spaces too) and `_`/`-` dropped."""
    return re.sub(r"[\s_\-\u00a0]+", "", fold(name))


def decode(path: Path, raw: bytes) -> tuple[str, str]:
    """A delimited glossary's text and its encoding: UTF-16 with its mark, UTF-8 (a byte order mark dropped), or
    else Windows-1252, what Excel saves as "CSV" on a French or English Windows (a UTF-8 file that is merely broken
    rarely decodes as Windows-1252 without also holding bytes it leaves undefined)."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16"), "UTF-16"
        except UnicodeDecodeError:
            raise error_at(path, "invalid UTF-16 text (the file starts with a UTF-16 byte order mark)") from None
    try:
        return raw.decode("utf-8-sig"), "UTF-8"
    except UnicodeDecodeError as exc:
        if raw[:200].count(b"\x00") * 4 >= min(len(raw), 200):
            raise error_at(path, "looks like UTF-16 without a byte order mark: save it as UTF-8 (or UTF-16 with its "
                               "mark)") from None  # fmt: skip
        try:
            return raw.decode("cp1252"), "Windows-1252"
        except UnicodeDecodeError:
            line = raw[: exc.start].count(b"\n") + 1
            raise error_at(path, "invalid UTF-8 (csas reads UTF-8, UTF-16 with a byte order mark, or Windows-1252)",
                           line) from None  # fmt: skip


def sniff_delimiter(text: str) -> str:
    """A `.csv` file's separator: of comma, semicolon and tab, the one that splits the first table line most."""
    first = next((line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")), "")
    counts = {d: first.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def delimited_rows(path: Path, text: str) -> Iterator[Row]:
    """The rows of a TSV or CSV glossary (see the module docstring)."""
    csv.field_size_limit(max(csv.field_size_limit(), len(text)))  # a termbase's notes may exceed csv's 128 KiB
    delimiter = sniff_delimiter(text) if path.suffix.lower() in CSV_SUFFIXES else "\t"
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=csv.QUOTE_MINIMAL, strict=True)
    try:
        for cells in reader:
            yield Row(reader.line_num, cells)
    except csv.Error as exc:
        kind = "TSV" if delimiter == "\t" else "CSV"
        raise error_at(path, f"not valid {kind} ({exc})", reader.line_num) from None


def cell_text(value: Any) -> str:
    """A workbook cell as text: empty for no value, a number as written (3, not 3.0), a date as its ISO date."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).upper()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat(sep=" ")
    if isinstance(value, (date, time)):
        return value.isoformat()
    return str(value)


def workbook_rows(path: Path, sheet: str | None, content: bytes | None = None) -> Iterator[Row]:
    """The rows of a workbook's first sheet (or `sheet`), as text; a row's line is its row number in the sheet.
    `content`: the file's bytes, for a workbook named otherwise (openpyxl judges a path by its extension)."""
    from zipfile import BadZipFile

    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no default style", "extension is not supported": nothing for the user
        try:
            book = openpyxl.load_workbook(path if content is None else io.BytesIO(content), read_only=True,
                                          data_only=True, keep_vba=False, keep_links=False)  # fmt: skip
        except (BadZipFile, InvalidFileException, KeyError, OSError) as exc:
            if isinstance(exc, FileNotFoundError):
                raise error_at(path, "file not found") from None
            why = " ".join(str(exc).split()) or type(exc).__name__
            raise error_at(path, f"cannot be read as an Excel workbook ({why})") from None
        try:
            names = book.sheetnames
            if sheet is not None and sheet not in names:
                raise SettingsError(f"--glossary-sheet {sheet}: {path} has no such sheet (its sheets: "
                                    f"{', '.join(names)})")  # fmt: skip
            worksheet = book[sheet] if sheet is not None else book.worksheets[0]
            worksheet.reset_dimensions()  # a producer's <dimension> may be wrong; read every row there is
            for number, values in enumerate(worksheet.iter_rows(values_only=True), start=1):
                yield Row(number, [cell_text(v) for v in values])
        finally:
            book.close()


def table_rows(path: Path, sheet: str | None) -> tuple[str | None, Iterator[Row]]:
    """The rows of the table at `path`, as its extension says (a workbook named otherwise is read as one), and the
    text's encoding (None for a workbook)."""
    if path.suffix.lower() in WORKBOOK_SUFFIXES and not path.is_dir():
        return None, workbook_rows(path, sheet)
    with open_binary(path, "a glossary file") as handle:
        try:
            raw = handle.read()
        except OSError as exc:
            raise read_error(path, exc) from None
    if raw.startswith(_XLSX_MAGIC):
        return None, workbook_rows(path, sheet, raw)
    if raw.startswith(_XLS_MAGIC):
        raise error_at(path, "is an Excel 97-2003 workbook (.xls): save it from Excel as .xlsx or as CSV UTF-8")
    if sheet is not None:
        raise SettingsError(f"--glossary-sheet {sheet}: {path} is not an Excel workbook (.xlsx, .xlsm)")
    text, encoding = decode(path, raw)
    return encoding, delimited_rows(path, text)


# -- layouts ------------------------------------------------------------------------------------------------------


def split_forms(cell: str, separator: str) -> list[str]:
    return [form for form in (normalise_segment(v) for v in cell.split(separator)) if form]


def get(cells: Sequence[str], index: int | None) -> str:
    return cells[index] if index is not None and index < len(cells) else ""


def first_column(keys: Sequence[str], names: Sequence[str]) -> int | None:
    return next((i for i, key in enumerate(keys) if key in names), None)


@dataclass(frozen=True)
class Layout:
    """A header recognised: its name for reports, and how one of its rows becomes a record."""

    name: str
    record: Callable[[Row], Record]
    has_subjects: bool


def columns_layout(header: Sequence[str]) -> Layout | None:
    found: dict[str, int] = {}
    for index, cell in enumerate(header):
        lang = header_language(cell) if cell.strip() else None
        if lang is not None and lang not in found:
            found[lang] = index
    if any(lang not in found for lang in LANGUAGES):
        return None
    subject = first_column([column_key(c) for c in header], SUBJECT_COLUMNS)

    def record(row: Row) -> Record:
        forms = {lang: tuple(Form(f) for f in split_forms(get(row.cells, found[lang]), VARIANT_SEPARATOR))
                 for lang in LANGUAGES}  # fmt: skip
        subjects = tuple(s for s in [normalise_segment(get(row.cells, subject))] if s)
        return Record(row.line, forms["en"], forms["fr"], subjects)

    named = ", ".join(f"{header[found[lang]].strip()!r}" for lang in LANGUAGES)
    return Layout(f"columns ({named})", record, subject is not None)


def termium_layout(header: Sequence[str]) -> Layout | None:
    keys = [fold(c).strip() for c in header]
    if "term_en" not in keys or "terme_fr" not in keys:
        return None
    groups = {lang: [(first_column(keys, (terms,)), first_column(keys, params)) for terms, *params in specs]
              for lang, specs in TERMIUM_COLUMNS.items()}  # fmt: skip
    subjects = [first_column(keys, (name,)) for name in TERMIUM_SUBJECTS]

    def record(row: Row) -> Record:
        forms: dict[str, list[Form]] = {}
        for lang, columns in groups.items():
            forms[lang] = []
            for terms, params in columns:
                texts = get(row.cells, terms).split(TERMIUM_SEPARATOR)
                notes = get(row.cells, params).split(TERMIUM_SEPARATOR)
                for k, text in enumerate(texts):
                    form = normalise_segment(text)
                    if form:
                        forms[lang].append(Form(form, retired=retired_status(notes[k] if k < len(notes) else "")))
        found = tuple(dict.fromkeys(s for s in (normalise_segment(get(row.cells, i)) for i in subjects) if s))
        return Record(row.line, tuple(forms["en"]), tuple(forms["fr"]), found)

    return Layout("TERMIUM Plus", record, True)


def pairs_layout(header: Sequence[str]) -> Layout | None:
    keys = [column_key(c) for c in header]
    columns = {name: first_column(keys, names) for name, names in PAIR_COLUMNS.items()}
    if any(index is None for index in columns.values()):
        return None
    subject = first_column(keys, SUBJECT_COLUMNS)
    last = len(header) - 1
    ragged = max(columns["source"], columns["target"]) == last  # type: ignore[type-var]

    def record(row: Row) -> Record:
        cells = row.cells
        if ragged and len(cells) > len(header):  # an unquoted comma split the last column
            cells = [*cells[:last], ",".join(cells[last:])]
        source_lang = primary_language(get(cells, columns["source_lang"]))
        target_lang = primary_language(get(cells, columns["target_lang"]))
        source, target = (tuple(Form(form) for variant in split_forms(get(cells, columns[side]), VARIANT_SEPARATOR)
                                for form in split_forms(variant, PAIR_ALTERNATIVES))
                          for side in ("source", "target"))  # fmt: skip
        subjects = tuple(s for s in [normalise_segment(get(cells, subject))] if s)
        if (source_lang, target_lang) == ("en", "fr"):
            return Record(row.line, source, target, subjects)
        if (source_lang, target_lang) == ("fr", "en"):
            return Record(row.line, target, source, subjects)
        skip = "empty" if not source and not target else "other_languages"
        return Record(row.line, (), (), subjects, skip=skip)

    named = ", ".join(header[columns[name]].strip() for name in PAIR_COLUMNS)  # type: ignore[index]
    return Layout(f"term pairs ({named})", record, subject is not None)


LAYOUTS = (termium_layout, pairs_layout, columns_layout)
"""Tried in this order on each candidate header row: the most specific first."""


def blank(row: Row) -> bool:
    return not any(cell.strip() for cell in row.cells) or row.cells[0].lstrip().startswith("#")


def read_table(path: Path, sheet: str | None = None) -> tuple[str, bool, list[Record]]:
    """The glossary table at `path`: (its layout's name, with the text's encoding where it is not Unicode; whether
    the layout has subjects; its rows as records)."""
    encoding, rows = table_rows(path, sheet)
    searched: list[Row] = []
    layout = None
    for row in rows:
        if blank(row):
            continue
        cells = [" ".join(c.split()) for c in row.cells]
        layout = next((found for found in (make(cells) for make in LAYOUTS) if found is not None), None)
        if layout is not None:
            break
        searched.append(row)
        if len(searched) >= HEADER_SEARCH_ROWS:
            break
    if layout is None:
        if not searched:
            raise error_at(path, f"empty: expected a header row naming the columns ({LAYOUT_HELP})")
        first = searched[0]
        where = f" (sheet {sheet})" if sheet else ""
        got = quoted(" | ".join(first.cells), 80)
        raise error_at(path, f"no header row matches a glossary layout{where}; got {got}; {LAYOUT_HELP}", first.line)
    records = [layout.record(row) for row in rows if not blank(row)]
    name = layout.name if encoding in (None, "UTF-8", "UTF-16") else f"{layout.name}, read as {encoding}"
    return name, layout.has_subjects, records


__all__ = ["LAYOUT_HELP", "WORKBOOK_SUFFIXES", "read_table"]
