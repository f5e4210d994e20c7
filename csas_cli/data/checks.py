"""Data checks behind `csas check-data`: pure functions over the rows of a data file, run before any GPU hour is spent.

`run_checks` returns one `CheckResult` per check (see `CHECK_NAMES`): what it counts, with its threshold stated in
its title, how many rows it flags, which ones (indices, for `--write-clean`) and a `Finding` (line, texts, why) for
every one of them, the first three of which a report shows as examples.
`kept_rows` keeps the rows that none of the dropped checks flags; `overview` summarises the file.

Every check but `empty` looks only at rows whose source and target are both non-empty (`empty` counts the others).
The thresholds follow the usual parallel-corpus cleaners where they have one: OPUS-MT-train's
tools/clean-parallel.py, OpusFilter's filters and bicleaner-hardrules' rules; each constant says which.

What the checks build on lives in modules of their own: reading numbers, dates and times (data/numbers.py, the
`numbers` check), language identification with py3langid (data/langid.py, the `language` check, with its LANGID_*
thresholds) and the loose comparison of texts (data/normalisation.py).

Standard library, plus py3langid and numpy for the language check (imported on its first use, by data/langid.py).
"""

from __future__ import annotations

import difflib
import math
import re
import statistics
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .langid import (
    LANGID_CANDIDATES,
    LANGID_MAX_CHARACTERS,
    LANGID_MAX_PROBABILITY,
    LANGID_MIN_LETTERS,
    judge_probabilities,
    language_probabilities,
)
from .normalisation import normalise
from .numbers import number_mismatch
from .pairs import Example

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


_WORD = re.compile(r"[^\W\d_]+")
"""A run of letters."""


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
                judgement = judge_probabilities(found, lang)
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
    "CHECK_NAMES", "COPY_SIMILARITY", "EXAMPLES_SHOWN", "LENGTH_RATIO", "LENGTH_RATIO_MIN_CHARACTERS", "SHARED_CHECKS",
    "TOO_LONG", "CheckResult", "Finding", "copy_bounds_pass", "copy_similarity", "kept_rows", "overview", "run_checks",
]  # fmt: skip
