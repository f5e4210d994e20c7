"""Data checks behind `csas check-data`: pure functions over the rows of a data file, run before any GPU hour is spent.

`run_checks` returns one `CheckResult` per check (see `CHECK_NAMES`): what it counts, with its threshold stated in
its title, how many rows it flags, which ones (indices, for `--write-clean`) and a `Finding` (line, texts, why) for
every one of them, the first three of which a report shows as examples.
`kept_rows` keeps the rows that none of the dropped checks flags; `overview` summarises the file.

Every check but `empty` looks only at rows whose source and target are both non-empty (`empty` counts the others).
The thresholds follow the usual parallel-corpus cleaners where they have one: OPUS-MT-train's
tools/clean-parallel.py, OpusFilter's filters and bicleaner-hardrules' rules; each constant says which.

Standard library, plus py3langid and numpy for the language check (imported on its first use).
"""

from __future__ import annotations

import difflib
import math
import re
import statistics
import unicodedata
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .pairs import Example

if TYPE_CHECKING:  # pragma: no cover
    from py3langid.langid import LanguageIdentifier

CHECK_NAMES: tuple[str, ...] = (
    "empty", "duplicates", "near_duplicates", "conflicts", "copies", "length_ratio", "numbers", "language",
    "shared_sentences", "shared_publications",
)  # fmt: skip
"""Every check, in report order: the names `--drop` accepts and the JSON uses."""
TOO_LONG = "too_long"
"""The name of `csas check-data`'s tokenizer-length check (one per model, run with the model's tokenizer, so not
here): what --drop calls it."""
SHARED_CHECKS: tuple[str, ...] = ("shared_sentences", "shared_publications")
"""The checks that compare with a test file; `run_checks` runs them only when given `against`."""

EXAMPLES_SHOWN = 3
"""Findings shown per check by default (`CheckResult.examples`, `CheckResult.to_dict`): the first ones in file
order. Every finding is kept (`CheckResult.findings`)."""

COPY_SIMILARITY = 0.9
"""A target this similar to its source (difflib's SequenceMatcher ratio over the normalised texts, 2 * matched
characters / total characters) is an untranslated copy: OpusFilter's SimilarityFilter and LongestCommonSubstringFilter
both default to 0.9. Bicleaner's `no_identical` and OPUS-MT-train's IDENTICAL catch only the exact case. Rows that
are mostly names or codes, which are the same in both languages (a list of Latin species names after "Species:" /
"Espèces :", a line of ISSN and catalogue numbers), are reported too, with their similarity in the detail: the
check cannot tell an untranslatable row from an untranslated one, and such rows teach a model little."""
LENGTH_RATIO = 3.0
"""Longer / shorter side, in characters: bicleaner-hardrules' `length_ratio: 3.0` (characters) and OpusFilter's
LengthRatioFilter default threshold 3 (OPUS-MT-train's clean-parallel.py uses 2, in words). French runs about 15-20 %
longer than English, so 3 leaves real translations alone."""
LENGTH_RATIO_MIN_CHARACTERS = 20
"""Pairs whose longer side is shorter than this are not judged by `length_ratio`: "CPUE" against "Captures par unité
d'effort" is a ratio of 7 and a fine pair."""
LANGID_CANDIDATES: tuple[str, ...] = ("en", "fr", "de", "es", "it", "pt", "nl")
"""The languages py3langid chooses among. English and French, and the other large Latin-script languages that can
turn up in a Canadian science file: measured on the shipped files (scripts/measure_langid.py), adding them catches
German, Spanish, Italian, Portuguese and Dutch text at no false alarm, whereas py3langid's full list of 140 languages
takes short English for Nigerian Pidgin or Italian."""
LANGID_MAX_PROBABILITY = 0.1
"""A text is in the wrong language when py3langid gives its stated language a probability under this (among
LANGID_CANDIDATES; py3langid 0.4 normalises its scores with a temperature of sqrt(bytes), so short texts get soft
probabilities). The lowest probability a shipped text that is judged gets for its own language is 0.34."""
LANGID_MIN_LETTERS = 20
"""Texts with fewer letters in words are too short to tell ("In April 2019" gets 0.16 for English) and are not
judged. Only the letters of words count (`word_letters`): those of whitespace-separated tokens without a digit,
words of 2 or more capitals (acronyms) left out unless the whole text is in capitals (py3langid reads it
lower-cased). So a line of codes, "ISSN 1919-5044 ISBN 978-0-660-12345-6 No de cat. Fs70-6/2023-045F-PDF" (21
letters, 7 in words; "Portuguese" at 0.35), is too short to tell. Measured (scripts/measure_langid.py), the shipped
files keep no false alarm, and pretrain_pairs.jsonl's recall falls by 0.15 points (every text judged against the
other language, 0.9751 to 0.9736 of all texts) and 0.25 points (substituted targets, 0.9800 to 0.9775): short
headings such as "Snow crab in NAFO Division 4T" are no longer judged."""
LANGID_MAX_CHARACTERS = 300
"""A longer text is judged on its first 300 characters (cut at a space): as sure, and the time per text stays
bounded (py3langid's model walks every byte)."""
NON_LATIN_SHARE = 0.5
"""A text whose letters are more than this share outside the Latin script (Inuktitut syllabics, Cyrillic, ...) is
in the wrong language whatever py3langid says (as OpusFilter's CharacterScoreFilter)."""


# --------------------------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One flagged row shown to the user."""

    line: int
    """1-based line of the row in its file."""
    source: str
    target: str
    detail: str = ""
    """Why it is flagged, e.g. "target lacks 27; source lacks 72", "same as line 12"."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: line, source, target, detail."""
        return {"line": self.line, "source": self.source, "target": self.target, "detail": self.detail}


@dataclass(frozen=True)
class CheckResult:
    """What one check found."""

    name: str
    """Stable id, one of CHECK_NAMES (used by --drop and the JSON output)."""
    title: str
    """One line saying what is counted, with its thresholds."""
    count: int
    """Rows flagged."""
    total: int
    """Rows checked: every row given to run_checks."""
    flagged: tuple[int, ...]
    """Indices of the flagged rows in the examples given to run_checks, ascending."""
    findings: tuple[Finding, ...]
    """One finding per flagged row, in the order of `flagged` (so findings[k] is about row flagged[k])."""

    def __post_init__(self) -> None:
        if len(self.findings) != len(self.flagged):
            raise ValueError(
                f"check {self.name}: {len(self.findings)} findings for {len(self.flagged)} flagged rows; "
                f"CheckResult needs one finding per flagged row"
            )

    @property
    def examples(self) -> tuple[Finding, ...]:
        """The first EXAMPLES_SHOWN findings: what a report shows."""
        return self.findings[:EXAMPLES_SHOWN]

    @property
    def lines(self) -> tuple[int, ...]:
        """The file line of every flagged row, in the order of `flagged`."""
        return tuple(finding.line for finding in self.findings)

    @property
    def share(self) -> float:
        """count / total (0.0 when total is 0)."""
        return self.count / self.total if self.total else 0.0

    def to_dict(self, shown: int = EXAMPLES_SHOWN) -> dict[str, Any]:
        """JSON-ready: name, title, count, total, share, lines (the line of every flagged row, in order) and
        examples (the first `shown` findings; 0 or less: all of them). The flagged indices are left out."""
        findings = self.findings if shown <= 0 else self.findings[:shown]
        return {
            "name": self.name,
            "title": self.title,
            "count": self.count,
            "total": self.total,
            "share": self.share,
            "lines": list(self.lines),
            "examples": [finding.to_dict() for finding in findings],
        }


def _result(name: str, title: str, rows: Sequence[Example], details: dict[int, str]) -> CheckResult:
    flagged = tuple(sorted(details))
    findings = tuple(Finding(rows[i].line, rows[i].source, rows[i].target, details[i]) for i in flagged)
    return CheckResult(name=name, title=title, count=len(flagged), total=len(rows), flagged=flagged,
                       findings=findings)  # fmt: skip


# --------------------------------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------------------------------


class _Folding(dict):
    """str.translate table filled on demand: punctuation (P*), separators (Z*) and controls (Cc) become a space,
    format characters (Cf: soft hyphen, zero-width space, BOM) disappear, everything else stays."""

    def __missing__(self, code: int) -> str | None:
        category = unicodedata.category(chr(code))
        value: str | None = chr(code)
        if category[0] in "PZ" or category == "Cc":
            value = " "
        elif category == "Cf":
            value = None
        self[code] = value
        return value


_FOLDING = _Folding()


def normalise(text: str) -> str:
    """`text` compared loosely: NFKC, case-folded, every punctuation mark (Unicode category P*: apostrophes ’ ',
    quotes « » ", dashes, ...) and whitespace run made a single space, stripped."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().translate(_FOLDING).split())


class _Normaliser:
    """normalise() with a cache: files repeat many sentences."""

    def __init__(self) -> None:
        self.cache: dict[str, str] = {}

    def __call__(self, text: str) -> str:
        value = self.cache.get(text)
        if value is None:
            value = self.cache[text] = normalise(text)
        return value


# --------------------------------------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------------------------------------

_SPACE_GROUPS = "\u00a0\u202f\u2009"
"""NO-BREAK SPACE, NARROW NO-BREAK SPACE and THIN SPACE: a thousands separator in any language."""
_SIGNS = "-\u2212\u2013"
"""HYPHEN-MINUS, MINUS SIGN and EN DASH, when they stand before a number (not between two: 2010-2012 is a range)."""
_NUMBER_WORDS = {
    "en": ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"),
    # "un"/"une" are also articles: a "1" is not matched by them.
    "fr": ("zéro", "", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf", "dix", "onze", "douze"),
}
_DIGIT = re.compile(r"[0-9]")
_NOT_DIGITS = re.compile(r"[^0-9]+")
_WORD = re.compile(r"[^\W\d_]+")


def _number_pattern(lang: str, space_groups: bool) -> re.Pattern[str]:
    """A number in `lang`'s conventions. English groups thousands with commas, French with spaces; both also with
    the no-break spaces; `space_groups` adds (English) or removes (French) the plain space as a group separator."""
    separators = "," if lang == "en" else ""
    separators += _SPACE_GROUPS + (" " if space_groups else "")
    decimal = r"\." if lang == "en" else r"[,.]"
    # A group is exactly three digits, and the number's first group does not start with 0 ("0,250" is not 250).
    grouped = rf"[1-9][0-9]{{0,2}}(?P<sep>[{separators}])[0-9]{{3}}(?:(?P=sep)[0-9]{{3}})*(?![0-9])"
    integer = rf"(?<![0-9])(?P<int>{grouped}|[0-9]+)(?:{decimal}(?P<frac>[0-9]+))?"
    # ".05" (p < .05) in English; the decimal comma needs its digit before it.
    bare_fraction = r"|(?<![\w.,])\.(?P<bare>[0-9]+)" if lang == "en" else ""
    return re.compile(rf"(?P<sign>(?<![\w.,])[{_SIGNS}])?(?:{integer}{bare_fraction})")


_PATTERNS = {(lang, groups): _number_pattern(lang, groups) for lang in ("en", "fr") for groups in (False, True)}
_SPACE_GROUPED = {"en": False, "fr": True}
"""Whether a language's own reading takes a plain space for a thousands separator."""


def _canonical(sign: bool, integer: str, fraction: str) -> str:
    integer = integer.lstrip("0") or "0"
    fraction = fraction.rstrip("0")
    value = integer + ("." + fraction if fraction else "")
    return "-" + value if sign and value != "0" else value


def numbers_in(text: str, lang: str, *, space_groups: bool | None = None) -> Counter[str]:
    """The numbers of `text` read with `lang`'s conventions, as a multiset of canonical values ("1234.5", "-0.25",
    "27"; leading and trailing zeros dropped, so 2010/012 gives 2010 and 12).

    English: 1,234.5, 10,000, 0.25, .05; French: 1 234,5, 10 000, 0,25 (0.25 too). Either groups thousands with a
    no-break space (U+00A0, U+202F) or a thin space. A group is exactly three digits not followed by a fourth, so
    "2009 123" is two numbers; a comma followed by a space is punctuation ("1, 2 et 3" is 1, 2 and 3). A leading
    -, − or – is a minus sign unless a letter, digit or point comes before it (2010-2012 is 2010 and 2012). Percent
    signs and units are not part of the value; digits inside codes (3Ps, 2J3KL) count as numbers.

    `space_groups` overrides whether a plain space separates thousands (default: in French only).
    """
    if lang not in ("en", "fr"):
        raise ValueError(f"lang must be 'en' or 'fr', got {lang!r}")
    if not _DIGIT.search(text):
        return Counter()
    groups = _SPACE_GROUPED[lang] if space_groups is None else space_groups
    found: Counter[str] = Counter()
    for match in _PATTERNS[lang, groups].finditer(text):
        sign = match.group("sign") is not None
        if match.group("int") is not None:
            digits = _NOT_DIGITS.sub("", match.group("int"))
            found[_canonical(sign, digits, match.group("frac") or "")] += 1
        else:
            found[_canonical(sign, "", match.group("bare"))] += 1
    return found


def _spelled(text: str, lang: str) -> set[str]:
    """The values 0-12 written out as words in `text` ("three", "trois")."""
    words = set(_WORD.findall(text.casefold()))
    return {str(value) for value, word in enumerate(_NUMBER_WORDS[lang]) if word and word in words}


# Times and dates ----------------------------------------------------------------------------------------------------

_MONTHS = {
    "en": {
        "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4, "apr": 4, "may": 5,
        "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8, "september": 9, "sept": 9, "sep": 9,
        "october": 10, "oct": 10, "november": 11, "nov": 11, "december": 12, "dec": 12,
    },
    "fr": {
        "janvier": 1, "janv": 1, "février": 2, "fevrier": 2, "févr": 2, "fevr": 2, "fév": 2, "fev": 2, "mars": 3,
        "avril": 4, "avr": 4, "mai": 5, "juin": 6, "juillet": 7, "juill": 7, "juil": 7, "août": 8, "aout": 8,
        "septembre": 9, "sept": 9, "octobre": 10, "oct": 10, "novembre": 11, "nov": 11, "décembre": 12,
        "decembre": 12, "déc": 12, "dec": 12,
    },
}  # fmt: skip
"""Month names and their usual abbreviations (with or without their point), case-folded."""
_BEFORE = r"(?<![\w.,:/\-\u2212\u2013])"
"""Nothing that would make a number part of a longer one (a digit, a letter, a decimal point, a slash, ...)."""
_AFTER = r"(?![0-9]|[.,:][0-9])"
_YEAR = r"(?P<year>[12][0-9]{3})(?![0-9]|[.,][0-9])"


def _month_pattern(lang: str) -> str:
    names = "|".join(re.escape(name) for name in sorted(_MONTHS[lang], key=len, reverse=True))
    return rf"(?P<month>{names})(?:\.|(?![^\W\d_]))"


def _days_pattern(suffixes: str, joiners: str) -> str:
    """One day of the month (1-31, with its ordinal suffix) or a list or range of them ("7 and 8", "du 7 au 9")."""
    day = rf"(?:[12][0-9]|3[01]|0?[1-9]){_AFTER}(?:{suffixes})?"
    return rf"(?P<days>{day}(?:(?:\s*[,&\-\u2013\u2014]\s*|\s+(?:{joiners})\s+){day})*)"


_DAYS = {
    "en": _days_pattern("st|nd|rd|th", "to|and|or|through"),
    "fr": _days_pattern("er", "au|à|et|ou"),
}
_YEAR_AFTER = rf"(?:(?:\s*,\s*|\s+){_YEAR})?"
_ISO_DATE = re.compile(rf"{_BEFORE}(?P<year>[12][0-9]{{3}})-(?P<month>0[1-9]|1[0-2])-(?P<days>0[1-9]|[12][0-9]|3[01])"
                       rf"(?![\w/]|[.,\-][0-9])")  # fmt: skip
_WRITTEN_DATES = {
    "en": (
        re.compile(rf"{_BEFORE}{_DAYS['en']}\s+(?:of\s+)?{_month_pattern('en')}{_YEAR_AFTER}", re.IGNORECASE),
        re.compile(rf"(?<![^\W\d_]){_month_pattern('en')}\s*{_DAYS['en']}{_YEAR_AFTER}", re.IGNORECASE),
    ),
    "fr": (re.compile(rf"{_BEFORE}{_DAYS['fr']}\s+{_month_pattern('fr')}{_YEAR_AFTER}", re.IGNORECASE),),
}
"""Dates with a month name: English "November 7, 2023", "Nov. 7", "7 November 2023", "the 7th of November",
"November 7-9, 2023"; French "7 novembre 2023", "le 1er nov.", "du 7 au 9 novembre 2023", "les 7 et 8 mai"."""
_AM_PM = r"(?:\s*(?P<ampm>[ap])\.?\s?m(?:\.|(?![^\W\d_])))"
_CLOCK = re.compile(rf"{_BEFORE}(?P<hour>[01]?[0-9]|2[0-3]):(?P<minute>[0-5][0-9])(?::(?P<second>[0-5][0-9]))?"
                    rf"(?![0-9:]|[.,][0-9]){_AM_PM}?", re.IGNORECASE)  # fmt: skip
"""14:30, 08:00, 9:15 a.m., 2:30 PM, 14:30:15."""
_HOUR_AM_PM = re.compile(rf"{_BEFORE}(?P<hour>1[0-2]|0?[1-9]){_AM_PM}", re.IGNORECASE)
"""2 p.m., 11 am."""
_HOUR_H = re.compile(rf"{_BEFORE}(?P<hour>[01]?[0-9]|2[0-3])\s?h(?:eures?)?(?![^\W\d_])"
                     rf"(?:\s?(?P<minute>[0-5][0-9])(?![0-9]|[.,][0-9]))?", re.IGNORECASE)  # fmt: skip
"""The French way: 14 h 30, 14h30, 8 h, 8 heures (the space may be a no-break one)."""
_PLACEHOLDER = "\ufffc"
"""What stands in for a time or date once read (OBJECT REPLACEMENT CHARACTER: neither a letter, a digit nor a
space), so that its digits are not read again as numbers."""
_NO_BARE: Counter[str] = Counter()


def _times_and_dates(text: str, lang: str, space_groups: bool | None) -> tuple[Counter[str], Counter[str]]:
    """values_in(text, lang), and the times among them read from a bare hour ("8 h", which may be a duration)."""
    if lang not in ("en", "fr"):
        raise ValueError(f"lang must be 'en' or 'fr', got {lang!r}")
    values: Counter[str] = Counter()
    bare: Counter[str] = Counter()
    if not _DIGIT.search(text):
        return values, bare
    text = unicodedata.normalize("NFC", text)

    def date(match: re.Match[str]) -> str:
        month = match.group("month")
        month_number = int(month) if month.isdigit() else _MONTHS[lang][month.casefold()]
        year = match.group("year")
        for day in _NOT_DIGITS.split(match.group("days")):
            if day:
                values[f"{year or '-'}-{month_number:02d}-{int(day):02d}"] += 1
        return _PLACEHOLDER

    def clock(match: re.Match[str]) -> str:
        hour, minute = int(match.group("hour")), int(match.groupdict().get("minute") or 0)
        ampm = match.groupdict().get("ampm")
        if ampm:
            if not 1 <= hour <= 12:
                return match.group(0)
            hour = hour % 12 + (12 if ampm in "pP" else 0)
        value = f"{hour:02d}:{minute:02d}"
        if match.groupdict().get("second"):
            value += f":{match.group('second')}"
        values[value] += 1
        if match.re is _HOUR_H and match.group("minute") is None:
            bare[value] += 1
        return _PLACEHOLDER

    text = _ISO_DATE.sub(date, text)
    for pattern in _WRITTEN_DATES[lang]:
        text = pattern.sub(date, text)
    for pattern in (_CLOCK, _HOUR_AM_PM, _HOUR_H):
        text = pattern.sub(clock, text)
    values.update(numbers_in(text, lang, space_groups=space_groups))
    return values, bare


def values_in(text: str, lang: str, *, space_groups: bool | None = None) -> Counter[str]:
    """numbers_in(text, lang), except that each time and each date is one value, read first.

    Times, in either language, become 24-hour "HH:MM" ("HH:MM:SS"): 14:30, 08:00, 2:30 p.m., 9:15 a.m., 2 p.m.,
    14 h 30, 14h30, 8 h, 8 heures. Dates become "YYYY-MM-DD", or "--MM-DD" without a year (ISO 8601's form): the ISO
    2023-11-07, and the dates with a month name in `lang` (English "November 7, 2023", "Nov. 7", "7 November 2023",
    "the 7th of November"; French "7 novembre 2023", "1er nov."), each day of a list or range ("November 7-9, 2023",
    "du 7 au 9 novembre 2023") a date of its own. A month without a day ("November 2023") is not a date: its year is
    a number. Noon and midnight written out are not read.
    """
    return _times_and_dates(text, lang, space_groups)[0]


# Comparing the two sides ---------------------------------------------------------------------------------------------

_Reading = tuple[Counter[str], Counter[str]]
"""A side's values and, among them, the times read from a bare hour."""
_Reader = Callable[[str, str, bool | None], _Reading]
"""_plain or _times_and_dates: (text, lang, space_groups) to a reading."""


def _plain(text: str, lang: str, space_groups: bool | None) -> _Reading:
    return numbers_in(text, lang, space_groups=space_groups), _NO_BARE


def _unmatched(src: Counter[str], tgt: Counter[str], example: Example) -> tuple[Counter[str], Counter[str]]:
    """Values only in the source, only in the target; a small integer written out on the other side is matched."""
    src_only, tgt_only = src - tgt, tgt - src
    if src_only:
        spelled = _spelled(example.target, example.target_lang)
        src_only = Counter({value: n for value, n in src_only.items() if value not in spelled})
    if tgt_only:
        spelled = _spelled(example.source, example.source_lang)
        tgt_only = Counter({value: n for value, n in tgt_only.items() if value not in spelled})
    return src_only, tgt_only


def _bare_hours_as_numbers(only: Counter[str], bare: Counter[str], other_only: Counter[str]) -> None:
    """A bare hour ("3 h") left unmatched on one side is a duration when its number is left on the other side
    ("3 hours"): both are matched (in place)."""
    for value, n in list((only & bare).items()):
        number = str(int(value[:2]))
        k = min(n, other_only[number])
        if k:
            only[value] -= k
            other_only[number] -= k
    only += Counter()  # drop the zero counts
    other_only += Counter()


def _differences(src: _Reading, tgt: _Reading, example: Example) -> tuple[Counter[str], Counter[str]]:
    src_only, tgt_only = _unmatched(src[0], tgt[0], example)
    if src[1] or tgt[1]:
        _bare_hours_as_numbers(src_only, src[1], tgt_only)
        _bare_hours_as_numbers(tgt_only, tgt[1], src_only)
    return src_only, tgt_only


def _other_reading(read: _Reader, text: str, lang: str, own: _Reading) -> list[_Reading]:
    """`text` read by `read` with the plain space read the other way (thousands separator or not), when that
    differs from its `own` reading."""
    if " " not in text:
        return []
    other = read(text, lang, not _SPACE_GROUPED[lang])
    return [] if other == own else [other]


def number_mismatch(example: Example) -> str | None:
    """Why the numbers of `example`'s source and target differ ("target lacks 27; source lacks 72"), or None when
    they agree.

    Each side is read in its own language's conventions, twice: as plain numbers (numbers_in) and with its times and
    dates as single values (values_in), so that "08:00" and "8 h", "2:30 p.m." and "14 h 30", "2023-11-07" and
    "7 novembre 2023" agree while "2023-11-07" and "8 novembre 2023" do not. The row is flagged only when no reading
    makes the sides agree: besides the two readings, the other reading of a plain space (thousands separator or not,
    on either side) is tried, so neither an English "10 000 t" (SI style) nor a French "tableau 2 150 navires" (2 and
    150) is a false alarm; and a bare hour ("3 h") may match the plain number on the other side ("3 hours"). The
    detail gives the differences of the own-convention reading: with times and dates as values when either side has
    one ("target lacks 2023-11-07; source lacks 2023-11-08"), else of the plain numbers.
    """
    if not (_DIGIT.search(example.source) or _DIGIT.search(example.target)):
        return None
    shown: tuple[Counter[str], Counter[str]] = (Counter(), Counter())
    plain: tuple[Counter[str], ...] = ()
    readers: tuple[_Reader, ...] = (_plain, _times_and_dates)
    for read in readers:
        src_own = read(example.source, example.source_lang, None)
        tgt_own = read(example.target, example.target_lang, None)
        own = _differences(src_own, tgt_own, example)
        if not any(own):
            return None
        src_readings = [src_own, *_other_reading(read, example.source, example.source_lang, src_own)]
        tgt_readings = [tgt_own, *_other_reading(read, example.target, example.target_lang, tgt_own)]
        for src_reading in src_readings:
            for tgt_reading in tgt_readings:
                if (src_reading is not src_readings[0] or tgt_reading is not tgt_readings[0]) and not any(
                    _differences(src_reading, tgt_reading, example)
                ):
                    return None
        if read is _plain:
            plain = (src_readings[0][0], tgt_readings[0][0])
            shown = own
        elif (src_readings[0][0], tgt_readings[0][0]) != plain:  # times or dates were read: say it in their terms
            shown = own
    src_only, tgt_only = shown
    parts = []
    if src_only:
        parts.append("target lacks " + ", ".join(src_only.elements()))
    if tgt_only:
        parts.append("source lacks " + ", ".join(tgt_only.elements()))
    return "; ".join(parts)


# --------------------------------------------------------------------------------------------------------------------
# Language
# --------------------------------------------------------------------------------------------------------------------

_NOT_LETTERS = re.compile(r"[\W\d_]+")
_LATIN_LETTERS = re.compile(
    r"[a-zA-Z\u00aa\u00b5\u00ba\u00c0-\u024f\u0250-\u02af\u1e00-\u1eff\u2c60-\u2c7f"
    r"\ua720-\ua7ff\ufb00-\ufb06]+"
)
_NON_LATIN = "non-Latin script"
_BATCH = 2048
_IDENTIFIER: LanguageIdentifier | None = None
_BATCHED: _BatchedIdentifier | None = None


def _identifier() -> LanguageIdentifier:
    """py3langid's shipped model restricted to LANGID_CANDIDATES, loaded once (about 0.5 s)."""
    global _IDENTIFIER, _BATCHED
    if _IDENTIFIER is None:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        identifier.set_languages(list(LANGID_CANDIDATES))
        _IDENTIFIER, _BATCHED = identifier, None
    return _IDENTIFIER


class _BatchedIdentifier:
    """py3langid's model run on many texts at once: LanguageIdentifier.rank's computation (its byte-level DFA walk,
    naive Bayes scores and probabilities with a temperature of sqrt(bytes)), with one numpy step per byte position
    for a whole batch of texts instead of one Python step per byte per text. About 3 times faster; the tests check
    that it gives py3langid's own probabilities."""

    def __init__(self, identifier: LanguageIdentifier) -> None:
        import numpy as np

        self.np = np
        self.classes = list(identifier.nb_classes)
        self.nextmove = np.frombuffer(identifier.tk_nextmove, dtype=np.dtype(identifier.tk_nextmove.typecode))
        self.rowbase = np.frombuffer(identifier.tk_row, dtype=np.dtype(identifier.tk_row.typecode)).astype(np.int64)
        self.rowbase <<= 8
        self.output = np.asarray(identifier.tk_output, dtype=np.int64)
        self.ptc = np.asarray(identifier.nb_ptc, dtype=np.float32)
        self.pc = np.asarray(identifier.nb_pc, dtype=np.float32)

    @staticmethod
    def encode(text: str) -> bytes:
        """As py3langid: an all-capitals text lower-cased, NFC, UTF-8."""
        if text.isupper():
            text = text.lower()
        return unicodedata.normalize("NFC", text).encode("utf-8", errors="surrogatepass")

    def probabilities(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """The probability of each class for each text."""
        encoded = [self.encode(text) for text in texts]
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
        found: list[dict[str, float]] = [{}] * len(encoded)
        for start in range(0, len(order), _BATCH):
            batch = order[start : start + _BATCH]
            for i, row in zip(batch, self._batch([encoded[i] for i in batch]).tolist(), strict=True):
                found[i] = dict(zip(self.classes, row, strict=True))
        return found

    def _batch(self, batch: list[bytes]) -> Any:
        """Probabilities, one row per text; `batch` sorted by length, longest first."""
        np = self.np
        lengths = np.array([len(data) for data in batch], dtype=np.int64)
        width = int(lengths[0])
        grid = np.frombuffer(b"".join(data.ljust(width, b"\0") for data in batch), dtype=np.uint8)
        grid = grid.reshape(len(batch), width).astype(np.int64)
        state = np.zeros(len(batch), dtype=np.int64)
        # texts still walking at each position (lengths are descending)
        active = np.searchsorted(-lengths, -np.arange(width), side="left")
        rows, features = [], []
        for position in range(width):
            live = int(active[position])
            moved = self.nextmove[self.rowbase[state[:live]] + grid[:live, position]].astype(np.int64)
            state[:live] = moved
            feature = self.output[moved]
            hit = np.flatnonzero(feature >= 0)
            rows.append(hit)
            features.append(feature[hit])
        scores = np.zeros((len(batch), len(self.classes)), dtype=np.float32)
        row = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        if len(row):
            keys, counts = np.unique(row * len(self.ptc) + np.concatenate(features), return_counts=True)
            text, feature = np.divmod(keys, len(self.ptc))
            weighted = np.log1p(counts.astype(np.float32))[:, None] * self.ptc[feature]
            starts = np.flatnonzero(np.r_[True, text[1:] != text[:-1]])
            scored = text[starts]
            scores[scored] = np.add.reduceat(weighted, starts, axis=0) + self.pc
            # a text without any feature keeps scores of 0: uniform, as py3langid
            scores[scored] /= np.sqrt(lengths[scored]).astype(np.float32)[:, None]
        scores = np.exp(scores - scores.max(axis=1, keepdims=True))
        return scores / scores.sum(axis=1, keepdims=True)


def _batched() -> _BatchedIdentifier:
    global _BATCHED
    identifier = _identifier()
    if _BATCHED is None:
        _BATCHED = _BatchedIdentifier(identifier)
    return _BATCHED


@dataclass(frozen=True)
class LanguageJudgement:
    """What the language check makes of one text."""

    expected: str
    """The stated language."""
    detected: str
    """The most likely of LANGID_CANDIDATES, or "non-Latin script"."""
    probability: float
    """py3langid's probability of `detected` (for a non-Latin text, the share of non-Latin letters)."""
    expected_probability: float
    """py3langid's probability of `expected` (0.0 for a non-Latin text)."""

    @property
    def wrong(self) -> bool:
        """The text is not in its stated language: expected_probability under LANGID_MAX_PROBABILITY."""
        return self.expected_probability < LANGID_MAX_PROBABILITY

    def describe(self) -> str:
        """E.g. "detected fr (0.99), expected en"."""
        return f"detected {self.detected} ({self.probability:.2f}), expected {self.expected}"


_ANY_DIGIT = re.compile(r"\d")
_CODE_TOKEN = re.compile(r"(?<!\S)[^\s\d]*\d\S*")
"""A whitespace-separated token with a digit in it (tried at token starts only, so linear)."""
_CAPITALS_WORD = re.compile(r"(?<![^\W\d_])[^\W\d_]{2,}(?![^\W\d_])")
"""A word, to be tested with str.isupper (re has no class of capitals); found only in texts with two capitals in a
row."""
_TWO_CAPITALS = re.compile(r"[A-Z\u00c0-\u00d6\u00d8-\u00de\u0100-\u024f\u0391-\u03a9\u0400-\u042f]{2}")
"""Two capitals in a row (Latin, Greek and Cyrillic ones; a capital outside these only in a word of them)."""


def word_letters(text: str, letters: int | None = None) -> int:
    """The letters of `text` that count toward LANGID_MIN_LETTERS: those of the words (runs of letters) of its
    whitespace-separated tokens without a digit ("Fs70-6/2023-045E-PDF", "2J3KL" and "(2019)." have none), words of
    2 or more capitals ("ISSN", "NAFO") left out unless the whole text is in capitals. One-letter words count ("à",
    the "L" of "L'espèce"). `letters`: the number of letters of `text`, when known."""
    capitals = _TWO_CAPITALS.search(text) is not None and not text.isupper()
    if _ANY_DIGIT.search(text):
        if capitals:
            text = _CODE_TOKEN.sub(" ", text)
            letters = None
        elif letters is not None:
            return letters - len(_NOT_LETTERS.sub("", "".join(_CODE_TOKEN.findall(text))))
        else:
            text = _CODE_TOKEN.sub(" ", text)
    if letters is None:
        letters = len(_NOT_LETTERS.sub("", text))
    if not capitals:
        return letters
    return letters - sum(len(word) for word in _CAPITALS_WORD.findall(text) if word.isupper())


def _judged_part(text: str) -> tuple[str | None, float]:
    """The part of `text` that is judged (None: too short to tell) and the share of its letters that are not Latin."""
    if len(text) > LANGID_MAX_CHARACTERS:
        cut = text.rfind(" ", 0, LANGID_MAX_CHARACTERS + 1)
        text = text[: cut if cut > LANGID_MAX_CHARACTERS // 2 else LANGID_MAX_CHARACTERS]
    letters = _NOT_LETTERS.sub("", text)
    if len(letters) < LANGID_MIN_LETTERS or word_letters(text, len(letters)) < LANGID_MIN_LETTERS:
        return None, 0.0
    if max(letters) <= "\u024f":  # Basic Latin to Latin Extended-B: nothing to count
        return text, 0.0
    return text, len(_LATIN_LETTERS.sub("", letters)) / len(letters)


def language_probabilities(texts: Sequence[str]) -> list[dict[str, float] | None]:
    """py3langid's probabilities of LANGID_CANDIDATES for each text, computed in batches.

    None for a text with under LANGID_MIN_LETTERS letters in words (too short to tell, see word_letters);
    `{"non-Latin script": share}` for one whose letters are mostly outside the Latin script. A text is judged on its
    first LANGID_MAX_CHARACTERS characters.
    """
    found: list[dict[str, float] | None] = [None] * len(texts)
    pending: dict[str, list[int]] = {}
    for i, text in enumerate(texts):
        part, non_latin = _judged_part(text)
        if part is None:
            continue
        if non_latin > NON_LATIN_SHARE:
            found[i] = {_NON_LATIN: non_latin}
        else:
            pending.setdefault(part, []).append(i)
    if pending:
        for part, probabilities in zip(pending, _batched().probabilities(list(pending)), strict=True):
            for i in pending[part]:
                found[i] = probabilities
    return found


def _judgement(probabilities: dict[str, float], lang: str) -> LanguageJudgement:
    detected, probability = max(probabilities.items(), key=lambda item: item[1])
    return LanguageJudgement(lang, detected, probability, probabilities.get(lang, 0.0))


def judge_language(text: str, lang: str) -> LanguageJudgement | None:
    """Whether `text` is in `lang`, or None when it is too short to tell (under LANGID_MIN_LETTERS letters in
    words, see word_letters).

    One text at a time, with py3langid's own `rank`; `run_checks` judges a whole file in batches (same results)."""
    part, non_latin = _judged_part(text)
    if part is None:
        return None
    if non_latin > NON_LATIN_SHARE:
        return _judgement({_NON_LATIN: non_latin}, lang)
    return _judgement(dict(_identifier().rank(part)), lang)


# --------------------------------------------------------------------------------------------------------------------
# The checks
# --------------------------------------------------------------------------------------------------------------------


def _has_empty_side(ex: Example) -> bool:
    return not ex.source.strip() or not ex.target.strip()


def _both_sides(rows: Sequence[Example]) -> Iterable[tuple[int, Example]]:
    return ((i, ex) for i, ex in enumerate(rows) if not _has_empty_side(ex))


def _check_empty(rows: Sequence[Example]) -> CheckResult:
    details = {}
    for i, ex in enumerate(rows):
        if _has_empty_side(ex):
            sides = [side for side, text in (("source", ex.source), ("target", ex.target)) if not text.strip()]
            details[i] = "empty " + " and ".join(sides)
    return _result("empty", "source or target empty", rows, details)


def _check_duplicates(rows: Sequence[Example], norm: _Normaliser) -> tuple[CheckResult, CheckResult]:
    exact: dict[tuple[str, str, str], int] = {}
    loose: dict[tuple[str, str, str], int] = {}
    duplicates: dict[int, str] = {}
    near: dict[int, str] = {}
    for i, ex in _both_sides(rows):
        key = (ex.source_lang, ex.source, ex.target)
        loose_key = (ex.source_lang, norm(ex.source), norm(ex.target))
        if key in exact:
            duplicates[i] = f"same as line {rows[exact[key]].line}"
        elif loose_key in loose:
            near[i] = f"same as line {rows[loose[loose_key]].line} once normalised"
        exact.setdefault(key, i)
        loose.setdefault(loose_key, i)
    return (
        _result("duplicates", "exact duplicates of an earlier row (same direction, source and target; the first "
                              "occurrence is not counted)", rows, duplicates),
        _result("near_duplicates", "duplicates of an earlier row once case, whitespace and punctuation are "
                                   "normalised (exact duplicates not included)", rows, near),
    )  # fmt: skip


def _check_conflicts(rows: Sequence[Example], norm: _Normaliser, copies: CheckResult) -> CheckResult:
    groups: dict[tuple[str, str], list[int]] = {}
    targets: dict[tuple[str, str], set[str]] = {}
    copied = set(copies.flagged)  # an untranslated copy is counted by `copies`, not as another translation
    for i, ex in _both_sides(rows):
        if i in copied:
            continue
        key = (ex.source_lang, norm(ex.source))
        groups.setdefault(key, []).append(i)
        targets.setdefault(key, set()).add(norm(ex.target))
    details = {}
    for key, members in groups.items():
        if len(targets[key]) > 1:
            lines = ", ".join(str(rows[i].line) for i in members[:5]) + (", ..." if len(members) > 5 else "")
            detail = f"{len(targets[key])} different targets for this source ({len(members)} rows: lines {lines})"
            details.update(dict.fromkeys(members, detail))
    title = ("rows whose source (normalised) has 2 or more different targets (normalised) in the same direction; "
             "every row of such a group, copies left out")  # fmt: skip
    return _result("conflicts", title, rows, details)


def copy_bounds_pass(source: str, target: str) -> bool:
    """Whether two normalised texts pass both cheap upper bounds of their difflib ratio (the length bound, difflib's
    real_quick_ratio, and the shared multiset of characters, its quick_ratio) at COPY_SIMILARITY, so that the exact
    ratio has to be computed. English and French share many letters, yet 0.14 % of the shipped pairs pass."""
    total = len(source) + len(target)
    if not total or 2 * min(len(source), len(target)) < COPY_SIMILARITY * total:
        return False
    return 2 * sum((Counter(source) & Counter(target)).values()) >= COPY_SIMILARITY * total


def copy_similarity(source: str, target: str) -> float | None:
    """difflib's SequenceMatcher ratio of two normalised texts (2 * matched characters / all characters, no junk
    heuristic) when it is at least COPY_SIMILARITY, else None; computed only when `copy_bounds_pass`."""
    if not copy_bounds_pass(source, target):
        return None
    ratio = difflib.SequenceMatcher(None, source, target, autojunk=False).ratio()
    return ratio if ratio >= COPY_SIMILARITY else None


def _has_letter(text: str) -> bool:
    return _WORD.search(text) is not None


def _check_copies(rows: Sequence[Example], norm: _Normaliser) -> CheckResult:
    details = {}
    for i, ex in _both_sides(rows):
        source, target = norm(ex.source), norm(ex.target)
        if not _has_letter(source):
            continue
        if source == target:
            details[i] = "target = source once normalised"
        else:
            ratio = copy_similarity(source, target)
            if ratio is not None:
                details[i] = f"similarity {math.floor(ratio * 100) / 100:.2f}"
    return _result("copies", f"untranslated copies: target equals source once normalised, or similarity >= "
                             f"{COPY_SIMILARITY} (difflib ratio over characters); sources without letters not judged",
                   rows, details)  # fmt: skip


def _check_length_ratio(rows: Sequence[Example]) -> CheckResult:
    details = {}
    for i, ex in _both_sides(rows):
        shorter, longer = sorted((len(ex.source), len(ex.target)))
        if longer >= LENGTH_RATIO_MIN_CHARACTERS and longer > LENGTH_RATIO * shorter:
            details[i] = f"ratio {longer / shorter:.1f} ({len(ex.source)} vs {len(ex.target)} characters)"
    return _result("length_ratio", f"length ratio over {LENGTH_RATIO} (characters, longer / shorter; pairs whose "
                                   f"longer side is under {LENGTH_RATIO_MIN_CHARACTERS} characters not judged)",
                   rows, details)  # fmt: skip


def _check_numbers(rows: Sequence[Example]) -> CheckResult:
    details = {}
    for i, ex in _both_sides(rows):
        mismatch = number_mismatch(ex)
        if mismatch is not None:
            details[i] = mismatch
    return _result("numbers", "numbers in the source missing from the target or the other way round (each side "
                              "read in its language's format: 1,234.5 / 1 234,5; 0-12 may be written out)",
                   rows, details)  # fmt: skip


def _check_language(rows: Sequence[Example]) -> CheckResult:
    judged = list(_both_sides(rows))
    texts = list(dict.fromkeys(text for _, ex in judged for text in (ex.source, ex.target)))
    probabilities = dict(zip(texts, language_probabilities(texts), strict=True))
    details = {}
    for i, ex in judged:
        parts = []
        for side, text, lang in (("source", ex.source, ex.source_lang), ("target", ex.target, ex.target_lang)):
            found = probabilities[text]
            if found is not None:
                judgement = _judgement(found, lang)
                if judgement.wrong:
                    parts.append(f"{side} {judgement.describe()}")
        if parts:
            details[i] = "; ".join(parts)
    candidates = ", ".join(LANGID_CANDIDATES)
    title = (
        f"source or target not in its stated language: probability under {LANGID_MAX_PROBABILITY} among "
        f"{candidates} (py3langid), or mostly non-Latin letters; texts under {LANGID_MIN_LETTERS} letters in words "
        f"not judged, longer ones on their first {LANGID_MAX_CHARACTERS} characters"
    )
    return _result("language", title, rows, details)


def _check_shared(rows: Sequence[Example], against: Sequence[Example], norm: _Normaliser) -> list[CheckResult]:
    sentences: dict[str, int] = {}
    publications = set()
    for ex in against:
        for text in (ex.source, ex.target):
            key = norm(text)
            if key:
                sentences.setdefault(key, ex.line)
        if ex.pub_number is not None:
            publications.add(ex.pub_number)
    shared_sentences = {}
    shared_publications = {}
    for i, ex in _both_sides(rows):
        parts = []
        for side, text in (("source", ex.source), ("target", ex.target)):
            line = sentences.get(norm(text))
            if line is not None:
                parts.append(f"{side} is in the test file (line {line})")
        if parts:
            shared_sentences[i] = "; ".join(parts)
        if ex.pub_number is not None and ex.pub_number in publications:
            shared_publications[i] = f"publication {ex.pub_number} is in the test file"
    return [
        _result("shared_sentences", "rows whose source or target (normalised) is also a sentence of the test file, "
                                    "on either side", rows, shared_sentences),
        _result("shared_publications", "rows whose pub_number is also a publication of the test file",
                rows, shared_publications),
    ]  # fmt: skip


def run_checks(examples: Sequence[Example], *, against: Sequence[Example] | None = None) -> list[CheckResult]:
    """Run every check on `examples`, in CHECK_NAMES order; the shared_* checks (leakage into an evaluation) only
    when `against`, the rows of a test file, is given. Deterministic; 100,000 rows take 5-10 s on one core."""
    rows = list(examples)
    norm = _Normaliser()
    copies = _check_copies(rows, norm)
    results = [
        _check_empty(rows),
        *_check_duplicates(rows, norm),
        _check_conflicts(rows, norm, copies),
        copies,
        _check_length_ratio(rows),
        _check_numbers(rows),
        _check_language(rows),
    ]
    if against is not None:
        results += _check_shared(rows, list(against), norm)
    return results


def kept_rows(examples: Sequence[Example], results: Sequence[CheckResult], drop: Collection[str]) -> list[Example]:
    """The rows of `examples` (in order) that no result named in `drop` flags.

    `results` are run_checks(examples), and may hold other checks over the same rows (a tokenizer-length check,
    one result per model under one name: all results of a dropped name count). Raises ValueError for a name that no
    result has (a check not run, such as shared_* without a test file, or an unknown one) or for a result computed
    over a different number of rows.
    """
    names = [drop] if isinstance(drop, str) else list(dict.fromkeys(drop))
    dropped: set[int] = set()
    for name in names:
        matching = [result for result in results if result.name == name]
        if not matching:
            known = list(dict.fromkeys([*CHECK_NAMES, *(result.name for result in results)]))
            what = "was not run" if name in known else f"is unknown; expected some of {', '.join(known)}"
            raise ValueError(f"check {name} {what}")
        for result in matching:
            if result.total != len(examples):
                raise ValueError(f"check {name} ran over {result.total} rows, not these {len(examples)}")
            dropped.update(result.flagged)
    return [ex for i, ex in enumerate(examples) if i not in dropped]


def overview(examples: Sequence[Example]) -> dict[str, Any]:
    """The file at a glance, as plain data: rows, rows per direction ("en->fr", "fr->en"), distinct publications,
    rows without a pub_number, and rows per publication (min, median, max; None when no row has a pub_number)."""
    directions = {"en->fr": 0, "fr->en": 0}
    per_publication: Counter[str] = Counter()
    without = 0
    rows = 0
    for ex in examples:
        rows += 1
        key = f"{ex.source_lang}->{ex.target_lang}"
        directions[key] = directions.get(key, 0) + 1
        if ex.pub_number is None:
            without += 1
        else:
            per_publication[ex.pub_number] += 1
    spread = None
    if per_publication:
        counts = sorted(per_publication.values())
        median = statistics.median(counts)
        spread = {"min": counts[0], "median": int(median) if median == int(median) else median, "max": counts[-1]}
    return {
        "rows": rows,
        "directions": directions,
        "publications": len(per_publication),
        "rows_without_pub_number": without,
        "rows_per_publication": spread,
    }


__all__ = [
    "CHECK_NAMES", "COPY_SIMILARITY", "EXAMPLES_SHOWN", "LANGID_CANDIDATES", "LANGID_MAX_CHARACTERS",
    "LANGID_MAX_PROBABILITY", "LANGID_MIN_LETTERS", "LENGTH_RATIO", "LENGTH_RATIO_MIN_CHARACTERS", "NON_LATIN_SHARE",
    "SHARED_CHECKS", "CheckResult", "Finding", "LanguageJudgement", "copy_bounds_pass", "copy_similarity",
    "judge_language", "kept_rows", "language_probabilities", "normalise", "number_mismatch", "numbers_in", "overview",
    "run_checks", "values_in", "word_letters",
]  # fmt: skip
