"""Numbers, dates and times read out of English and French text, and the numbers check's comparison of a pair.

`numbers_in` reads the numbers of a text in its language's conventions (1,234.5 / 1 234,5); `values_in` reads its
times and dates first, each as one value (14:30, 2023-11-07); `number_mismatch` says why the numbers of a pair's
source and target differ. The `numbers` check of `csas check-data` (data/checks.py) and the lexical anchors of the
alignment check (data/alignment.py) use them.

Standard library only.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable

from .pairs import Example

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


__all__ = ["number_mismatch", "numbers_in", "values_in"]
