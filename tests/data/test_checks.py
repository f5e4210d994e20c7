"""Tests for csas_cli.data.checks: the data checks behind `csas check-data` (pure functions over the rows)."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from csas_cli.data import checks, langid, numbers
from csas_cli.data.checks import (
    CHECK_NAMES,
    SHARED_CHECKS,
    CheckResult,
    Finding,
    copy_similarity,
    kept_rows,
    overview,
    run_checks,
)
from csas_cli.data.langid import judge_language
from csas_cli.data.normalisation import normalise
from csas_cli.data.numbers import number_mismatch, numbers_in
from csas_cli.data.pairs import Example, read_jsonl

ASSETS = Path(__file__).resolve().parents[2] / "csas_cli" / "assets"
SAMPLE_ROWS = list(read_jsonl(ASSETS / "sample_pairs.jsonl"))
HELDOUT_ROWS = list(read_jsonl(ASSETS / "heldout_pairs.jsonl"))


def pair(source: str, target: str, lang: str = "en", pub: str | None = "2030/001", line: int = 1) -> Example:
    return Example(source, target, lang, "fr" if lang == "en" else "en", pub, line)


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {result.name: result for result in results}


# --------------------------------------------------------------------------------------------------------------------
# A file seeded with each problem in known numbers, on top of clean shipped rows
# --------------------------------------------------------------------------------------------------------------------


def clean_base(size: int = 120) -> list[Example]:
    """Shipped rows none of whose sentences (normalised, either side) appeared before: no duplicate or conflict."""
    seen: set[str] = set()
    base = []
    for ex in SAMPLE_ROWS:
        keys = {normalise(ex.source), normalise(ex.target)}
        if keys & seen:
            continue
        seen |= keys
        base.append(ex)
        if len(base) == size:
            break
    return base


BASE = clean_base()
B = len(BASE)
SEEDS = [
    # 0-2: three exact duplicates (of base rows 0, 1 and 1)
    BASE[0], BASE[1], BASE[1],
    # 3-4: two near duplicates (case, whitespace, punctuation)
    replace(BASE[2], source=BASE[2].source.upper(), target=BASE[2].target.replace(" ", "  ") + " !"),
    replace(BASE[3], source="« " + BASE[3].source.replace("'", "’") + " »", target=BASE[3].target.lower()),
    # 5-7: one source with three different targets
    pair("The survey index remained below its long-term mean for the third year.",
         "L'indice du relevé est resté sous sa moyenne à long terme pour la troisième année."),
    pair("The survey index remained below its long-term mean for the third year.",
         "L'indice du relevé est demeuré sous sa moyenne à long terme pour une troisième année."),
    pair("The survey index remained below its long-term mean for the third year.",
         "Pour la troisième année, l'indice du relevé est resté inférieur à sa moyenne à long terme."),
    # 8-9: two untranslated copies (the second once normalised); 10: a near copy (one phrase translated)
    pair("Sea surface temperatures were above normal across the region.",
         "Sea surface temperatures were above normal across the region."),
    pair("Les températures de surface étaient supérieures à la normale.",
         "les températures de surface étaient supérieures à la normale", lang="fr"),
    pair("Snow crab landings declined sharply in the southern Gulf after the closure.",
         "Snow crab landings declined sharply dans le southern Gulf after the closure."),
    # 11-12: two length outliers
    pair("Recruitment has been below average since the collapse of the stock in the early nineties.",
         "Voir le tableau."),
    pair("Résumé", "Summary of the stock assessment for northern shrimp in the estuary", lang="fr"),
    # 13-16: four number mismatches: swapped digits, a missing year, an English-style number in French, a lost minus
    pair("Dissolved oxygen saturation fell below 27% in 2009.",
         "La saturation en oxygène dissous est passée sous 72 % en 2009."),
    pair("Les débarquements ont atteint 4 500 t en 2012.", "Landings reached 4,500 t.", lang="fr"),
    pair("The total allowable catch was set at 1,234 t.", "Le total autorisé des captures a été fixé à 1,234 t."),
    pair("La température au fond était de −0,5 °C.", "The bottom temperature was 0.5°C.", lang="fr"),
    # 17-18: two targets in the wrong language (English where French is expected; German where English is)
    pair("Grey seal predation is a major source of mortality for adult cod.",
         "The fishery was closed early because the quota had been reached."),
    pair("La biomasse du stock reproducteur a diminué depuis 2010.",
         "Die Biomasse des Laicherbestands ist seit 2010 deutlich zurückgegangen.", lang="fr"),
    # 19: an empty target
    pair("A sentence that was never translated.", ""),
]  # fmt: skip
ROWS = [replace(ex, line=i + 1) for i, ex in enumerate(BASE + SEEDS)]
EXPECTED = {
    "empty": [19],
    "duplicates": [0, 1, 2],
    "near_duplicates": [3, 4],
    "conflicts": [5, 6, 7],
    "copies": [8, 9, 10],
    "length_ratio": [11, 12],
    "numbers": [13, 14, 15, 16],
    "language": [8, 9, 10, 17, 18],  # the copies' targets are not in the target language either
}
"""Flagged seeds per check (indices into SEEDS)."""


@pytest.fixture(scope="module")
def seeded() -> dict[str, CheckResult]:
    return by_name(run_checks(ROWS))


def test_clean_shipped_rows_are_not_flagged() -> None:
    results = run_checks(BASE)
    assert [r.name for r in results] == [n for n in CHECK_NAMES if n not in SHARED_CHECKS]
    assert {r.name: r.count for r in results} == dict.fromkeys(EXPECTED, 0)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_check_flags_exactly_the_seeded_rows(seeded: dict[str, CheckResult], name: str) -> None:
    result = seeded[name]
    assert result.flagged == tuple(B + i for i in EXPECTED[name])
    assert result.count == len(EXPECTED[name])
    assert result.total == len(ROWS)
    assert [f.line for f in result.examples] == [B + i + 1 for i in EXPECTED[name][:3]]
    assert result.share == pytest.approx(len(EXPECTED[name]) / len(ROWS))
    assert all(f.detail for f in result.examples)


def test_details_say_why(seeded: dict[str, CheckResult]) -> None:
    assert [f.detail for f in seeded["duplicates"].examples] == ["same as line 1", "same as line 2", "same as line 2"]
    assert seeded["near_duplicates"].examples[0].detail == "same as line 3 once normalised"
    assert seeded["conflicts"].examples[0].detail.startswith("3 different targets for this source (3 rows: lines ")
    assert seeded["copies"].examples[0].detail == "target = source once normalised"
    assert seeded["copies"].examples[2].detail == "similarity 0.95"
    assert seeded["length_ratio"].examples[0].detail == "ratio 5.6 (89 vs 16 characters)"
    assert [f.detail for f in seeded["numbers"].examples] == [
        "target lacks 27; source lacks 72", "target lacks 2012", "target lacks 1234; source lacks 1.234",
    ]  # fmt: skip
    language = {f.line - B - 1: f.detail for f in seeded["language"].examples}
    assert language[8].startswith("target detected en (") and language[8].endswith("), expected fr")
    assert seeded["empty"].examples[0] == Finding(B + 20, "A sentence that was never translated.", "", "empty target")


def test_numbers_detail_of_a_lost_minus(seeded: dict[str, CheckResult]) -> None:
    assert number_mismatch(ROWS[B + 16]) == "target lacks -0.5; source lacks 0.5"


def test_every_result_has_a_title_with_its_thresholds(seeded: dict[str, CheckResult]) -> None:
    for result in seeded.values():
        assert result.title and "\n" not in result.title
    assert "over 3.0" in seeded["length_ratio"].title and "20 characters" in seeded["length_ratio"].title
    assert ">= 0.9" in seeded["copies"].title
    assert "under 0.1" in seeded["language"].title and "20 letters" in seeded["language"].title


def test_shared_checks_compare_with_a_test_file() -> None:
    test_file = [
        pair(BASE[5].target, "Anything at all in the other language.", lang=BASE[5].target_lang, pub="2031/001"),
        pair("dissolved oxygen saturation fell below 27 in 2009", "Une phrase quelconque.", pub="2031/002"),
        pair(
            "Une phrase sans rapport avec le reste.",
            "A sentence unrelated to the rest.",
            lang="fr",
            pub=BASE[10].pub_number,
        ),
    ]
    results = by_name(run_checks(ROWS, against=test_file))
    assert [r.name for r in run_checks(ROWS, against=test_file)] == list(CHECK_NAMES)
    assert results["shared_sentences"].flagged == (5, B + 13)
    assert results["shared_sentences"].examples[0].detail == "target is in the test file (line 1)"
    same_publication = tuple(i for i, ex in enumerate(ROWS) if ex.pub_number == BASE[10].pub_number and ex.target)
    assert results["shared_publications"].flagged == same_publication and len(same_publication) > 1
    assert results["shared_publications"].examples[0].detail == f"publication {BASE[10].pub_number} is in the test file"
    # An empty test file still runs the checks; nothing is shared.
    empty = by_name(run_checks(ROWS, against=[]))
    assert empty["shared_sentences"].count == empty["shared_publications"].count == 0


# --------------------------------------------------------------------------------------------------------------------
# The shipped files
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_shipped_sample() -> None:
    results = by_name(run_checks(SAMPLE_ROWS, against=HELDOUT_ROWS))
    repeats = len(SAMPLE_ROWS) - len({(ex.source_lang, ex.source, ex.target) for ex in SAMPLE_ROWS})
    assert results["duplicates"].count == repeats > 0
    for name in ("empty", "near_duplicates", "conflicts", "copies", "length_ratio", "numbers", "language"):
        assert results[name].count == 0, (name, results[name].examples)
    # The held-out file shares no sentence with the sample, on either side (scripts/make_sample_data.py leaves such
    # rows out since check-data found nine, most of them the other direction's), nor any publication.
    assert results["shared_sentences"].count == 0
    assert results["shared_publications"].count == 0
    # A test file that took two sample rows, one of them turned around: both are found, with their sample lines.
    turned = Example(SAMPLE_ROWS[20].target, SAMPLE_ROWS[20].source, SAMPLE_ROWS[20].target_lang,
                     SAMPLE_ROWS[20].source_lang, "2026/999", 1)  # fmt: skip
    leaky = [*HELDOUT_ROWS, SAMPLE_ROWS[5], turned]
    shared = by_name(run_checks(SAMPLE_ROWS, against=leaky))["shared_sentences"]
    copies = {i for i, ex in enumerate(SAMPLE_ROWS) for j in (5, 20)
              if {ex.source, ex.target} & {SAMPLE_ROWS[j].source, SAMPLE_ROWS[j].target}}  # fmt: skip
    assert shared.flagged == tuple(sorted(copies)) and {5, 20} <= copies


def test_overview_of_the_shipped_sample() -> None:
    per_publication = Counter(ex.pub_number for ex in SAMPLE_ROWS)
    counts = sorted(per_publication.values())
    assert overview(SAMPLE_ROWS) == {
        "rows": 3000,
        "directions": {
            "en->fr": sum(ex.source_lang == "en" for ex in SAMPLE_ROWS),
            "fr->en": sum(ex.source_lang == "fr" for ex in SAMPLE_ROWS),
        },
        "publications": len(per_publication),
        "rows_without_pub_number": 0,
        "rows_per_publication": {"min": counts[0], "median": statistics.median(counts), "max": counts[-1]},
    }
    assert json.dumps(overview(SAMPLE_ROWS))


def test_overview_counts_rows_without_a_publication() -> None:
    rows = [pair("a", "b", pub=None), pair("c", "d", lang="fr", pub="P1"), pair("e", "f", pub="P1"),
            pair("g", "h", pub="P2")]  # fmt: skip
    assert overview(rows) == {
        "rows": 4,
        "directions": {"en->fr": 3, "fr->en": 1},
        "publications": 2,
        "rows_without_pub_number": 1,
        "rows_per_publication": {"min": 1, "median": 1.5, "max": 2},
    }
    assert overview([pair("a", "b", pub=None)])["rows_per_publication"] is None
    assert overview([]) == {"rows": 0, "directions": {"en->fr": 0, "fr->en": 0}, "publications": 0,
                            "rows_without_pub_number": 0, "rows_per_publication": None}  # fmt: skip


# --------------------------------------------------------------------------------------------------------------------
# Results, kept rows, determinism
# --------------------------------------------------------------------------------------------------------------------


def test_to_dict_is_json_ready(seeded: dict[str, CheckResult]) -> None:
    data = seeded["numbers"].to_dict()
    assert list(data) == ["name", "title", "count", "total", "share", "lines", "examples"]
    assert data["count"] == 4 and data["total"] == len(ROWS) and data["share"] == pytest.approx(4 / len(ROWS))
    assert data["lines"] == [B + 14, B + 15, B + 16, B + 17]
    assert len(data["examples"]) == checks.EXAMPLES_SHOWN == 3
    assert data["examples"][0] == {"line": B + 14, "source": ROWS[B + 13].source, "target": ROWS[B + 13].target,
                                   "detail": "target lacks 27; source lacks 72"}  # fmt: skip
    text = json.dumps([result.to_dict() for result in seeded.values()], ensure_ascii=False)
    assert "flagged" not in text and json.loads(text)[0]["name"] == "empty"


def test_every_flagged_row_has_a_finding(seeded: dict[str, CheckResult]) -> None:
    for result in seeded.values():
        assert len(result.findings) == len(result.flagged) == result.count
        assert [f.line for f in result.findings] == [ROWS[i].line for i in result.flagged] == list(result.lines)
        assert [(f.source, f.target) for f in result.findings] == [(ROWS[i].source, ROWS[i].target)
                                                                   for i in result.flagged]  # fmt: skip
        assert result.examples == result.findings[: checks.EXAMPLES_SHOWN]
        assert all(f.detail for f in result.findings)
    # past the examples: the fourth number mismatch and the fourth and fifth language findings
    assert seeded["numbers"].findings[3].detail == "target lacks -0.5; source lacks 0.5"
    language = seeded["language"]
    assert len(language.findings) == 5 and len(language.examples) == 3
    assert [f.line for f in language.findings[3:]] == [B + 18, B + 19]
    assert language.findings[4].detail.startswith("target detected de (")


def test_to_dict_shows_as_many_findings_as_asked(seeded: dict[str, CheckResult]) -> None:
    language = seeded["language"]
    everything = [f.to_dict() for f in language.findings]
    assert language.to_dict(shown=0)["examples"] == language.to_dict(shown=-1)["examples"] == everything
    assert language.to_dict(shown=1)["examples"] == everything[:1]
    assert language.to_dict(shown=99)["examples"] == everything
    assert language.to_dict()["examples"] == everything[:3]
    assert all(language.to_dict(shown=n)["lines"] == [B + i + 1 for i in EXPECTED["language"]] for n in (0, 1, 3))


def test_a_check_result_is_built_with_one_finding_per_flagged_row() -> None:
    findings = (Finding(5, "a", "b", "source cut"), Finding(9, "c", "d", "target cut"))
    result = CheckResult(name="too_long", title="cut by a tokenizer", count=2, total=10, flagged=(4, 8),
                         findings=findings)  # fmt: skip
    assert result.findings == findings and result.examples == findings and result.lines == (5, 9)
    assert result.to_dict(shown=1)["examples"] == [findings[0].to_dict()] and result.to_dict()["lines"] == [5, 9]
    with pytest.raises(ValueError, match="1 findings for 2 flagged rows"):
        CheckResult(name="too_long", title="t", count=2, total=10, flagged=(4, 8), findings=findings[:1])
    with pytest.raises(TypeError):
        CheckResult(name="too_long", title="t", count=2, total=10, flagged=(4, 8), examples=findings)  # type: ignore


def test_share_of_no_rows() -> None:
    results = run_checks([])
    assert [r.count for r in results] == [0] * len(results)
    assert all(r.share == 0.0 and r.total == 0 and r.examples == r.findings == () for r in results)


def test_kept_rows_drops_what_the_named_checks_flag(seeded: dict[str, CheckResult]) -> None:
    results = list(seeded.values())
    assert kept_rows(ROWS, results, []) == ROWS
    kept = kept_rows(ROWS, results, ["duplicates", "empty"])
    assert kept == [ex for i, ex in enumerate(ROWS) if i not in (B, B + 1, B + 2, B + 19)]
    everything = kept_rows(ROWS, results, [n for n in CHECK_NAMES if n not in SHARED_CHECKS])
    assert everything == ROWS[:B]
    assert kept_rows(ROWS, results, "empty") == kept_rows(ROWS, results, ["empty", "empty"]) == ROWS[:-1]
    with pytest.raises(ValueError, match="check dupes is unknown; expected some of empty, duplicates"):
        kept_rows(ROWS, results, ["dupes"])
    with pytest.raises(ValueError, match="check shared_sentences was not run"):
        kept_rows(ROWS, results, ["shared_sentences"])
    with pytest.raises(ValueError, match="ran over"):
        kept_rows(ROWS[:-1], results, ["empty"])


def test_kept_rows_takes_other_checks_over_the_same_rows(seeded: dict[str, CheckResult]) -> None:
    # e.g. a tokenizer-length check, one result per model under one name
    too_long = [CheckResult(name="too_long", title="cut by a tokenizer", count=1, total=len(ROWS), flagged=(i,),
                            findings=(Finding(ROWS[i].line, ROWS[i].source, ROWS[i].target, "source cut"),))
                for i in (4, 7)]  # fmt: skip
    results = [*seeded.values(), *too_long]
    kept = kept_rows(ROWS, results, ["too_long", "empty"])
    assert kept == [ex for i, ex in enumerate(ROWS) if i not in (4, 7, B + 19)]


def test_checks_are_deterministic() -> None:
    first = run_checks(ROWS, against=HELDOUT_ROWS)
    langid._IDENTIFIER = langid._BATCHED = None  # a fresh identifier gives the same judgements
    assert run_checks(ROWS, against=HELDOUT_ROWS) == first
    assert run_checks(list(ROWS), against=list(HELDOUT_ROWS)) == first


def test_rows_empty_after_stripping() -> None:
    rows = [pair("  ", "Une phrase."), pair("A sentence.", "\u00a0"), pair(" ", "")]
    empty = by_name(run_checks(rows))["empty"]
    assert [f.detail for f in empty.examples] == ["empty source", "empty target", "empty source and target"]


def test_importing_the_checks_loads_no_model() -> None:
    code = "import sys, csas_cli.data.checks; print(sorted({'py3langid', 'numpy', 'torch'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


def test_check_names() -> None:
    assert CHECK_NAMES == ("empty", "duplicates", "near_duplicates", "conflicts", "copies", "length_ratio",
                           "numbers", "language", "shared_sentences", "shared_publications")  # fmt: skip
    assert SHARED_CHECKS == CHECK_NAMES[-2:]


# --------------------------------------------------------------------------------------------------------------------
# Normalisation and copies
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("L'indice", "l’indice"),
        ("« Zone critique »", '"zone critique"'),
        ("The  stock\tis\u00a0low.", "the stock is low"),
        ("STRASSE", "straße"),
        ("stock-recruitment", "stock recruitment"),
        ("Ré\u00adsumé", "résumé"),  # a soft hyphen disappears
        ("ﬁsh", "fish"),  # NFKC
    ],
)
def test_normalise_makes_these_equal(a: str, b: str) -> None:
    assert normalise(a) == normalise(b)


@pytest.mark.parametrize(("a", "b"), [("résumé", "resume"), ("2.5", "25"), ("< 5", "> 5"), ("", "x")])
def test_normalise_keeps_these_apart(a: str, b: str) -> None:
    assert normalise(a) != normalise(b)


def test_copy_similarity() -> None:
    assert copy_similarity("the stock is low", "the stock is low") == 1.0
    assert copy_similarity("snow crab landings declined", "snow crab landing declined") > 0.9
    assert copy_similarity("the stock is in the cautious zone", "le stock se trouve dans la zone de prudence") is None
    assert copy_similarity("", "") is None


def test_few_translations_need_the_full_ratio() -> None:
    rows = SAMPLE_ROWS + list(read_jsonl(ASSETS / "pretrain_pairs.jsonl"))
    passing = sum(checks.copy_bounds_pass(normalise(ex.source), normalise(ex.target)) for ex in rows)
    assert passing <= len(rows) // 200
    assert checks.copy_bounds_pass("the stock is low", "the stock is lower")


def test_a_copy_is_not_a_conflicting_translation() -> None:
    rows = [pair("The stock is in the Cautious Zone.", "Le stock se trouve dans la zone de prudence."),
            pair("The stock is in the Cautious Zone.", "The stock is in the Cautious Zone.")]  # fmt: skip
    results = by_name(run_checks(rows))
    assert results["copies"].flagged == (1,) and results["conflicts"].count == 0


def test_a_list_of_names_is_reported_as_a_copy_with_its_similarity() -> None:
    # Latin names are not translated, so the row is mostly a copy: it is reported, and the detail says how similar
    rows = [pair("Species: Sebastes mentella, Sebastes fasciatus, Gadus morhua",
                 "Espèces : Sebastes mentella, Sebastes fasciatus, Gadus morhua")]  # fmt: skip
    copies = by_name(run_checks(rows))["copies"]
    assert copies.flagged == (0,) and copies.findings[0].detail == "similarity 0.96"


def test_copies_need_a_letter() -> None:
    assert by_name(run_checks([pair("2010", "2010"), pair("12,5", "12.5", lang="fr")]))["copies"].count == 0


# --------------------------------------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------------------------------------

NBSP, NNBSP, THIN = "\u00a0", "\u202f", "\u2009"


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        # English
        ("1,234.5 t", "en", ["1234.5"]),
        ("10,000 fish", "en", ["10000"]),
        ("1,234,567.89", "en", ["1234567.89"]),
        ("0.25 and 0.250", "en", ["0.25", "0.25"]),
        ("p < .05", "en", ["0.05"]),
        ("On August 8, 2010", "en", ["8", "2010"]),
        ("1,2 is not English", "en", ["1", "2"]),
        ("0,250 is not a group", "en", ["0", "250"]),
        ("12,5000", "en", ["12", "5000"]),
        (f"10{NBSP}000 t", "en", ["10000"]),
        ("10 000 t", "en", ["10", "0"]),  # a plain space does not group in English (number_mismatch retries)
        ("1.2.3", "en", ["1.2", "3"]),
        # French
        ("1 234,5 t", "fr", ["1234.5"]),
        ("10 000 t", "fr", ["10000"]),
        (f"10{NBSP}000 t", "fr", ["10000"]),
        (f"10{NNBSP}000 t", "fr", ["10000"]),
        (f"10{THIN}000 t", "fr", ["10000"]),
        ("2 000 000 d'œufs", "fr", ["2000000"]),
        ("0,25", "fr", ["0.25"]),
        ("0.25 (point décimal)", "fr", ["0.25"]),
        ("1, 2 et 3", "fr", ["1", "2", "3"]),
        ("1,2 et 3", "fr", ["1.2", "3"]),
        ("en 2009 123 navires", "fr", ["2009", "123"]),  # a group follows 1-3 digits
        ("1 2345", "fr", ["1", "2345"]),  # a group is exactly three digits
        ("1 234 567,8", "fr", ["1234567.8"]),
        ("1,234 t", "fr", ["1.234"]),
        # Percentages, signs, ranges, ids
        ("27%", "en", ["27"]),
        ("27 %", "fr", ["27"]),
        ("-5 °C", "en", ["-5"]),
        ("−0,5 °C", "fr", ["-0.5"]),
        ("(–1.5)", "en", ["-1.5"]),
        ("−0", "en", ["0"]),
        ("2010-2012", "en", ["2010", "2012"]),
        ("2010–2012", "fr", ["2010", "2012"]),
        ("ages 3 - 5", "en", ["3", "5"]),
        ("COVID-19", "en", ["19"]),
        ("Res. Doc. 2010/012", "en", ["2010", "12"]),
        ("NAFO 3NOPs4VWX5Zc", "en", ["3", "4", "5"]),
        ("10:30", "en", ["10", "30"]),
        ("No digits here.", "en", []),
        ("km² and 10⁶", "en", ["10"]),  # superscripts are not digits
    ],
)
def test_numbers_in(text: str, lang: str, expected: list[str]) -> None:
    assert numbers_in(text, lang) == Counter(expected)


def test_numbers_in_can_read_spaces_the_other_way() -> None:
    assert numbers_in("10 000 t", "en", space_groups=True) == Counter(["10000"])
    assert numbers_in("tableau 2 150 navires", "fr", space_groups=False) == Counter(["2", "150"])
    with pytest.raises(ValueError, match="lang"):
        numbers_in("1", "de")


@pytest.mark.parametrize(
    ("source", "target", "lang", "expected"),
    [
        ("A catch of 29,100 t in 2012.", "Des captures de 29 100 t en 2012.", "en", None),
        ("Des captures de 29 100 t en 2012.", "A catch of 29,100 t in 2012.", "fr", None),
        (f"De 1{NBSP}234,5 t à 0,25 t.", "From 1,234.5 t to 0.25 t.", "fr", None),
        (f"Une baisse de 35{NNBSP}% en 2010/012.", "A 35% decline in 2010/012.", "fr", None),
        ("Temperatures from −1.5 to 2°C.", "Températures de -1,5 à 2 °C.", "en", None),
        ("A catch of 10 000 t.", "Des captures de 10 000 t.", "en", None),  # SI-style English
        ("Table 2 150 vessels.", "Tableau 2 150 navires.", "en", None),  # a French space that is not a group
        ("Three surveys in 2010.", "3 relevés en 2010.", "en", None),  # written out on the other side
        ("3 surveys in 2010.", "Trois relevés en 2010.", "en", None),
        ("1 survey in 2010.", "Un relevé en 2010.", "en", "target lacks 1"),  # "un" is also an article
        ("No numbers.", "Pas de nombres.", "en", None),
        ("Below 27% in 2009.", "Sous 72 % en 2009.", "en", "target lacks 27; source lacks 72"),
        ("In 2009 and 2009.", "En 2009.", "en", "target lacks 2009"),
        ("In 2009.", "En 2009 et 2010.", "en", "source lacks 2010"),
        ("A catch of 1,234 t.", "Des captures de 1,234 t.", "en", "target lacks 1234; source lacks 1.234"),
        ("Des captures de 12 500 t.", "A catch of 1,250 t.", "fr", "target lacks 12500; source lacks 1250"),
        ("Figure 3.", "Figure 4.", "en", "target lacks 3; source lacks 4"),
    ],
)
def test_number_mismatch(source: str, target: str, lang: str, expected: str | None) -> None:
    assert number_mismatch(pair(source, target, lang=lang)) == expected


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        # times: one 24-hour value each
        ("The meeting started at 08:00.", "en", ["08:00"]),
        ("at 2:30 p.m.", "en", ["14:30"]),
        ("at 2:30 PM", "en", ["14:30"]),
        ("2 p.m. to 4 pm", "en", ["14:00", "16:00"]),
        ("9:15 a.m.", "en", ["09:15"]),
        ("12 a.m. and 12 p.m.", "en", ["00:00", "12:00"]),
        ("14:30:15", "en", ["14:30:15"]),
        ("à 14 h 30", "fr", ["14:30"]),
        ("à 14h30", "fr", ["14:30"]),
        (f"à 8{NBSP}h", "fr", ["08:00"]),
        ("vers 9 heures", "fr", ["09:00"]),
        ("de 8 h 05 à 16 h", "fr", ["08:05", "16:00"]),
        # not times
        ("13:75", "en", ["13", "75"]),
        ("a 3:1 ratio", "en", ["3", "1"]),
        ("13:30 p.m.", "en", ["13", "30"]),  # no such time: read as numbers
        ("8 ha", "fr", ["8"]),
        ("48 h", "fr", ["48"]),
        ("8,5 h", "fr", ["8.5"]),
        ("2010-2012", "en", ["2010", "2012"]),
        ("Res. Doc. 2010/012", "en", ["2010", "12"]),
        # dates: "YYYY-MM-DD", or "--MM-DD" without a year
        ("2023-11-07", "en", ["2023-11-07"]),
        ("2023-13-07", "en", ["2023", "13", "7"]),  # no month 13
        ("November 7, 2023", "en", ["2023-11-07"]),
        ("Nov. 7", "en", ["--11-07"]),
        ("7 November 2023", "en", ["2023-11-07"]),
        ("the 7th of November", "en", ["--11-07"]),
        ("November 7-9, 2023", "en", ["2023-11-07", "2023-11-09"]),
        ("November 7 and 8, 2023", "en", ["2023-11-07", "2023-11-08"]),
        ("7 novembre 2023", "fr", ["2023-11-07"]),
        ("le 1er nov. 2023", "fr", ["2023-11-01"]),
        ("7 nov.", "fr", ["--11-07"]),
        ("du 7 au 9 novembre 2023", "fr", ["2023-11-07", "2023-11-09"]),
        ("le 15 août", "fr", ["--08-15"]),
        ("in November 2023", "en", ["2023"]),  # a month without a day is not a date
        ("en mai 2023", "fr", ["2023"]),
        ("Mar. Ecol. Prog. Ser. 123: 45-67", "en", ["123", "45", "67"]),
        ("7 novembre 2023", "en", ["7", "2023"]),  # month names in the text's language only
        # with other numbers
        ("10 000 t le 7 mai 2023 à 14 h 30", "fr", ["10000", "2023-05-07", "14:30"]),
    ],
)
def test_values_in(text: str, lang: str, expected: list[str]) -> None:
    assert numbers.values_in(text, lang) == Counter(expected)


@pytest.mark.parametrize(
    ("source", "target", "lang", "expected"),
    [
        # times, both directions
        ("The meeting started at 08:00.", "La réunion a commencé à 8 h.", "en", None),
        ("La réunion a commencé à 8 h.", "The meeting started at 08:00.", "fr", None),
        ("The session resumed at 2:30 p.m.", "La séance a repris à 14 h 30.", "en", None),
        ("La séance a repris à 14 h 30.", "The session resumed at 2:30 p.m.", "fr", None),
        ("At 2 p.m.", "À 14 h.", "en", None),
        ("At 9:15 a.m.", "À 9 h 15.", "en", None),
        ("À 9 h 15.", "At 9:15 a.m.", "fr", None),
        ("At 14:30.", "À 14 h 30.", "en", None),
        ("From 8:00 to 16:00.", "De 8 h à 16 h.", "en", None),
        ("At noon.", "À midi.", "en", None),
        # a bare hour that is a duration
        ("The meeting started at 08:00 and lasted 3 hours.", "La réunion a commencé à 8 h et a duré 3 h.", "en", None),
        ("Tows of 3 h at 2 p.m.", "Traits de 3 h à 14 h.", "en", None),
        ("At 2:30 p.m.", "À 14 h 45.", "en", "target lacks 14:30; source lacks 14:45"),
        ("At 2 p.m.", "À 15 h.", "en", "target lacks 14:00; source lacks 15:00"),
        ("À 21 h 15.", "At 9:15 a.m.", "fr", "target lacks 21:15; source lacks 09:15"),
        ("At 08:00.", "À 9 h.", "en", "target lacks 08:00; source lacks 09:00"),
        # dates, both directions
        ("On 2023-11-07.", "Le 7 novembre 2023.", "en", None),
        ("Le 7 novembre 2023.", "On 2023-11-07.", "fr", None),
        ("On November 7, 2023.", "Le 7 novembre 2023.", "en", None),
        ("On Nov. 7.", "Le 7 nov.", "en", None),
        ("Le 7 nov.", "On Nov. 7.", "fr", None),
        ("On 2023-11-01.", "Le 1er novembre 2023.", "en", None),
        ("From 2023-11-07 to 2023-11-09.", "Du 7 au 9 novembre 2023.", "en", None),
        ("Du 7 au 9 novembre 2023.", "From November 7 to 9, 2023.", "fr", None),
        ("Sampled on 2023-06-15 at 14:30.", "Échantillonné le 15 juin 2023 à 14 h 30.", "en", None),
        ("In November 2023.", "En novembre 2023.", "en", None),
        ("On 2023-11-07.", "Le 8 novembre 2023.", "en", "target lacks 2023-11-07; source lacks 2023-11-08"),
        ("Le 8 novembre 2023.", "On 2023-11-07.", "fr", "target lacks 2023-11-08; source lacks 2023-11-07"),
        ("On 2023-11-07.", "Le 7 octobre 2023.", "en", "target lacks 2023-11-07; source lacks 2023-10-07"),
        ("On 2023-11-07.", "Le 7 novembre 2022.", "en", "target lacks 2023-11-07; source lacks 2022-11-07"),
        ("On Nov. 7.", "Le 17 nov.", "en", "target lacks --11-07; source lacks --11-17"),
        # where the times and dates are not read alike, the plain numbers may still agree
        ("On November 7, 8 stations were sampled.", "Le 7 novembre, 8 stations ont été échantillonnées.", "en", None),
    ],
)
def test_number_mismatch_of_times_and_dates(source: str, target: str, lang: str, expected: str | None) -> None:
    assert number_mismatch(pair(source, target, lang=lang)) == expected


def test_times_and_dates_read_unlike_fall_back_on_the_plain_numbers() -> None:
    source, target = "On November 7, 8 stations were sampled.", "Le 7 novembre, 8 stations ont été échantillonnées."
    assert numbers.values_in(source, "en") == Counter(["--11-07", "--11-08"])  # "7, 8" read as a list of days
    assert numbers.values_in(target, "fr") == Counter(["--11-07", "8"])
    assert numbers_in(source, "en") == numbers_in(target, "fr") == Counter(["7", "8"])
    assert number_mismatch(pair(source, target)) is None


# --------------------------------------------------------------------------------------------------------------------
# Language
# --------------------------------------------------------------------------------------------------------------------


def test_language_judgements() -> None:
    assert judge_language("In April 2019", "en") is None  # too short to tell
    english = judge_language("The stock remained in the critical zone for the third consecutive year.", "en")
    assert english is not None and not english.wrong and english.detected == "en"
    french = judge_language("Le stock est demeuré dans la zone critique pour une troisième année consécutive.", "en")
    assert french is not None and french.wrong and french.detected == "fr" and french.expected_probability < 0.1
    assert french.describe().startswith("detected fr (") and french.describe().endswith("), expected en")
    german = judge_language("Die natürliche Sterblichkeit der älteren Fische scheint gestiegen zu sein.", "fr")
    assert german is not None and german.wrong and german.detected == "de"
    greek = "Natural mortality was fixed at 0.2 and the observation error σ at 0.3 (α = 0.05, β = 0.2)."
    assert not judge_language(greek, "en").wrong


CODES_EN = "ISSN 1919-5044 ISBN 978-0-660-12345-6 Cat. No. Fs70-6/2023-045E-PDF"
CODES_FR = "ISSN 1919-5044 ISBN 978-0-660-12345-6 No de cat. Fs70-6/2023-045F-PDF"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (CODES_EN, 5),  # Cat, No: ISSN and ISBN are capitals, the other tokens have digits
        (CODES_FR, 7),
        ("La valeur est passée de 54 % à 77 %.", 20),  # one-letter words count
        ("L'espèce a été inscrite en 2009.", 21),
        ("Snow crab in NAFO Division 4T", 18),  # so this heading is no longer judged
        ("Capelin in NAFO Divisions 2J3KL", 18),
        ("STOCK STATUS AND TRENDS", 20),  # all in capitals: every word counts
        ("NAFO 3Ps COD", 0),
        ("NAFO 3PS COD", 7),  # in capitals
        ("Die Biomasse (SSB) ist seit 2010 gesunken.", 26),
        ("ÉTUDE des stocks", 9),
        ("", 0),
    ],
)
def test_word_letters(text: str, expected: int) -> None:
    assert langid.word_letters(text) == expected
    assert langid.word_letters(text, len(langid._NOT_LETTERS.sub("", text))) == expected


def test_a_line_of_codes_is_too_short_to_tell() -> None:
    for text in (CODES_EN, CODES_FR, f"{CODES_EN} {CODES_EN}", f"{CODES_FR} DFO CSAS"):
        assert judge_language(text, "en") is None and judge_language(text, "fr") is None, text
    assert langid.language_probabilities([CODES_FR, CODES_EN]) == [None, None]
    rows = [pair(CODES_EN, CODES_FR), pair(CODES_FR, CODES_EN, lang="fr")]
    assert by_name(run_checks(rows))["language"].count == 0
    # still judged: sentences with codes and acronyms in them, and text in capitals
    assert not judge_language("La valeur est passée de 54 % à 77 %.", "fr").wrong
    assert judge_language("La valeur est passée de 54 % à 77 %.", "en").wrong
    assert judge_language("Le stock de morue de la division 3Ps de l'OPANO (NAFO) reste faible.", "en").wrong
    assert judge_language("THE STOCK REMAINED IN THE CRITICAL ZONE FOR THE THIRD YEAR.", "fr").wrong


@pytest.mark.parametrize("text", ["ᐃᓄᒃᑎᑐᑦ ᐅᖃᐅᓯᖅ ᐊᑐᖅᑕᐅᔪᖅ ᓄᓇᕗᒻᒥ ᐃᓄᖕᓄᑦ ᐊᒥᓱᓄᑦ", "Биомасса нерестового запаса снизилась."])
def test_mostly_non_latin_text_is_the_wrong_language(text: str) -> None:
    judgement = judge_language(text, "en")
    assert judgement is not None and judgement.wrong and judgement.detected == "non-Latin script"


def test_long_texts_are_judged_on_their_start() -> None:
    text = "The stock remained in the critical zone for the third consecutive year. " * 40
    assert len(text) > 2000 and not judge_language(text, "en").wrong
    assert judge_language(text, "fr").wrong


def test_the_identifier_is_loaded_once() -> None:
    assert langid._identifier() is langid._identifier()
    assert sorted(langid._identifier().labels) == sorted(langid.LANGID_CANDIDATES)


def test_batches_give_py3langid_probabilities() -> None:
    texts = [text for ex in SAMPLE_ROWS[:400] for text in (ex.source, ex.target)]
    texts += [
        "THE STOCK REMAINED IN THE CRITICAL ZONE FOR THE THIRD YEAR.",
        "In April 2019",
        "x" * 30,
        "Die natürliche Sterblichkeit der älteren Fische scheint gestiegen zu sein.",
        "Ré" * 200,
    ]
    batched = langid.language_probabilities(texts)
    assert len(batched) == len(texts)
    for text, found in zip(texts, batched):
        part = langid._judged_part(text)[0]
        if part is None:
            assert found is None
            continue
        expected = dict(langid._identifier().rank(part))
        assert found is not None and found.keys() == expected.keys()
        assert max(abs(found[lang] - expected[lang]) for lang in found) < 1e-4, text


def test_swapped_sides_are_caught_on_shipped_rows() -> None:
    rows = SAMPLE_ROWS[:200]
    swapped = [replace(ex, source=ex.target, target=ex.source) for ex in rows]
    language = by_name(run_checks(swapped))["language"]
    assert language.count == len(rows)
    both = language.examples[0].detail.split("; ")
    assert both[0].startswith("source detected") and both[1].startswith("target detected")
