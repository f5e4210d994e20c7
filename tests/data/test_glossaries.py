"""Glossaries as termbases publish them (tests/termbases.py): each layout through `csas check-glossary --json` and
`csas evaluate --glossary`; the refusals; and whether a glossary fits a text (data/fit.py): the evaluation's warning,
the entries `--term-constraints` forces, and `check-glossary --against`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import SAMPLE, invoke, one_error_line
from termbases import TERMBASES, TERMIUM_HEADER, Termbase

from csas_cli.data.fit import Fit, forced_entries, single_common_word
from csas_cli.data.glossary import read_glossary
from csas_cli.data.terms import TermIndex, term_success

KEY = "opus_mt_en_fr"


def written(termbase: Termbase, folder: Path) -> Path:
    path = folder / termbase.file
    termbase.write(path)
    return path


def pairs_file(path: Path, rows: list[tuple[str, str]], source_lang: str = "en") -> Path:
    path.write_text("".join(json.dumps({"source": s, "target": t, "source_lang": source_lang}, ensure_ascii=False)
                            + "\n" for s, t in rows), encoding="utf-8")  # fmt: skip
    return path


@pytest.mark.parametrize("name", TERMBASES)
def test_check_glossary_reads_each_layout(name: str, tmp_path: Path) -> None:
    termbase = TERMBASES[name]
    result = invoke("check-glossary", written(termbase, tmp_path), *termbase.options, "--json", "--examples", "0")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["layout"].startswith(termbase.layout)
    assert report["entries"] == len(termbase.entries)
    assert {k: v for k, v in report["skipped"].items() if v} == termbase.skipped
    assert [(tuple(e["en"]), tuple(e["fr"])) for e in report["examples"]] == list(termbase.entries)
    text = invoke("check-glossary", tmp_path / termbase.file, *termbase.options).stdout
    assert text.startswith(f"{tmp_path / termbase.file}: {report['layout']}")


@pytest.mark.parametrize("name", TERMBASES)
def test_evaluate_scores_terms_with_each_layout(name: str, tmp_path: Path) -> None:
    termbase = TERMBASES[name]
    (en, *_), (fr, *_) = termbase.entries[0]
    data = pairs_file(tmp_path / "held.jsonl", [(f"We saw the {en} today.", f"Nous avons vu {fr} aujourd'hui."),
                                                ("Nothing here.", "Rien ici.")])  # fmt: skip
    hypotheses = tmp_path / "hyp.txt"
    hypotheses.write_text(f"Nous avons vu {fr} aujourd'hui.\nRien.\n", encoding="utf-8")
    result = invoke("evaluate", "--data", data, "--translations", hypotheses, "--source-lang", "en", "--glossary",
                    written(termbase, tmp_path), *termbase.options, "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["terms"]["hits"], report["terms"]["occurrences"]) == (1, 1)
    assert report["reference_terms"]["success"] == 1.0 and report["glossary_fit"]["fits"]
    count = "1 entry" if len(termbase.entries) == 1 else f"{len(termbase.entries)} entries"
    assert f"glossary {tmp_path / termbase.file}: {count} ({termbase.layout}" in result.stderr


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("g.tsv", "source\ttarget\nstock\tstock\n", 'g.tsv:1: no header row matches a glossary layout; got "source | '
         'target"; csas reads columns named for English and French (en, fr, en-CA, English, French, Anglais, '
         "Français), a TERMIUM Plus export (TERM_EN, TERME_FR, ...) and term pairs (sourceLang, targetLang, "
         "sourceString, targetString), in .tsv, .csv or .xlsx, and TBX termbases (.tbx)"),
        ("g.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100),
         "g.xls: is an Excel 97-2003 workbook (.xls): save it from Excel as .xlsx or as CSV UTF-8"),
        ("g.xlsx", b"not a zip", "g.xlsx: cannot be read as an Excel workbook (File is not a zip file)"),
        ("g.csv", "English,French\nstock,\n,stock\n",
         "g.csv: no glossary entries with both an English and a French term (2 empty)"),
        ("g.tsv", b"en\tfr\nsummer\t\x81t\x8d\n",
         "g.tsv:2: invalid UTF-8 (csas reads UTF-8, UTF-16 with a byte order mark, or Windows-1252)"),
    ],
)
def test_glossaries_csas_cannot_read_are_refused_in_one_line(tmp_path: Path, name: str, content, message) -> None:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    line = one_error_line(invoke("check-glossary", path))
    assert line.startswith(f"csas: error: {tmp_path}/{message}"), line


def test_a_workbook_named_csv_is_read_as_a_workbook_and_sheet_needs_a_workbook(tmp_path: Path) -> None:
    path = tmp_path / "exported.csv"
    TERMBASES["workbook"].write(path)
    report = json.loads(invoke("check-glossary", path, "--json").stdout)
    assert report["entries"] == 3
    line = one_error_line(invoke("check-glossary", written(TERMBASES["spreadsheet-csv"], tmp_path), "--glossary-sheet",
                                 "Sigles"))  # fmt: skip
    assert "is not an Excel workbook (.xlsx, .xlsm)" in line
    line = one_error_line(invoke("check-glossary", path, "--glossary-sheet", "Nope"))
    assert line.endswith("has no such sheet (its sheets: Glossaire, Sigles)")


def test_a_subject_needs_subject_fields(tmp_path: Path) -> None:
    line = one_error_line(invoke("check-glossary", written(TERMBASES["tbx-microsoft"], tmp_path), "--glossary-subject",
                                 "fish"))  # fmt: skip
    assert "gives no subject fields" in line
    line = one_error_line(invoke("translate", SAMPLE, "--which", KEY, "--glossary-subject", "fish"))
    assert line == "csas: error: --glossary-subject needs --glossary FILE"


def test_one_source_term_with_several_targets_is_reported_and_the_first_used(tmp_path: Path) -> None:
    path = tmp_path / "g.csv"
    path.write_text("en,fr\nplant,usine\npower plant,centrale\nplant,plante\nstock,stock\nstock,stock\n")
    glossary = read_glossary(path)
    assert [c.describe(glossary.entries) for c in glossary.report.conflicts] == [
        "'plant' (en->fr): 'usine' (line 2) is used, not 'plante' (line 4)"]
    assert glossary.report.skipped == {"duplicates": 1}
    score = term_success(glossary, ["The plant closed."], ["L'usine a fermé."], "en", "fr")
    assert (score.hits, score.occurrences) == (1, 1)
    report = json.loads(invoke("check-glossary", path, "--json").stdout)
    assert report["conflicts"] == [{"direction": "en->fr", "term": "plant", "used": {"target": "usine", "line": 2},
                                    "unused": {"target": "plante", "line": 4}}]  # fmt: skip
    assert "1 term has several targets" in invoke("check-glossary", path).stdout
    assert [m.entry for m in TermIndex.build(glossary, "fr").find("la plante et l'usine")] == [2, 0]


# -- fit to the text -------------------------------------------------------------------------------------------------

SPORTS = TERMIUM_HEADER + """
Golf,plant,correct,,,,,,,,Golf,"mettre un pied à terre",correct,,,,,,,,,,,,,,,,,,,,,,,,,,,,
Baseball,out,correct,,,,,,,,Baseball,retrait,correct,,,,,,,,,,,,,,,,,,,,,,,,,,,,
Football,down,correct,,,,,,,,Football,essai,correct,,,,,,,,,,,,,,,,,,,,,,,,,,,,
Fishing,stock,correct,,,,,,,,Pêche,stock,correct,,,,,,,,,,,,,,,,,,,,,,,,,,,,
Fishing,landings,correct,,,,,,,,Pêche,débarquements,correct,,,,,,,,,,,,,,,,,,,,,,,,,,,,
"""
GENERAL = [
    ("The plant closed down in 2019.", "L'usine a fermé en 2019."),
    ("Catches were down from last year.", "Les prises étaient en baisse par rapport à l'an dernier."),
    ("Fishers went out at dawn.", "Les pêcheurs sont sortis à l'aube."),
    ("The power plant is out of service.", "La centrale est hors service."),
    ("He made a plant at the door.", "Il a posé une plante près de la porte."),
    ("Landings went down again.", "Les débarquements ont de nouveau diminué."),
    ("The stock is down to its lowest level.", "Le stock est à son plus bas niveau."),
    ("They found out the plant was old.", "Ils ont découvert que l'usine était vieille."),
]
"""Everyday sentences with the sports senses' words: the references contradict "plant", "out" and "down"."""


@pytest.fixture
def sports(tmp_path: Path) -> tuple[Path, Path]:
    glossary = tmp_path / "sports.csv"
    glossary.write_text(SPORTS, encoding="utf-8")
    return glossary, pairs_file(tmp_path / "general.jsonl", GENERAL)


def test_evaluate_warns_when_the_glossary_does_not_fit_the_text(sports, tmp_path: Path) -> None:
    glossary, data = sports
    hypotheses = tmp_path / "hyp.txt"
    hypotheses.write_text("".join(target + "\n" for _, target in GENERAL), encoding="utf-8")
    result = invoke("evaluate", "--data", data, "--translations", hypotheses, "--source-lang", "en", "--glossary",
                    glossary, "--json")  # fmt: skip
    report = json.loads(result.stdout)
    fit = report["glossary_fit"]
    assert not fit["fits"] and report["reference_terms"]["success"] == pytest.approx(2 / 13)
    assert [(c["entry"], c["occurrences"], c["used"]) for c in fit["contradicted"]] == [
        ("plant / mettre un pied à terre", 4, 0), ("down / essai", 4, 0), ("out / retrait", 3, 0)]
    assert ("warning: the glossary does not fit this text: the references use its target terms for 2 of the 13 "
            "source terms found (0.154); the entries they contradict most: plant / mettre un pied à terre (0 of 4), "
            "down / essai (0 of 4), out / retrait (0 of 3)") in result.stderr  # fmt: skip
    plain = invoke("evaluate", "--data", data, "--translations", hypotheses, "--source-lang", "en", "--glossary",
                   glossary)  # fmt: skip
    assert "warning: the glossary does not fit this text" in plain.stdout


@pytest.mark.slow
def test_term_constraints_force_what_the_references_confirm(sports, tiny_models) -> None:
    glossary, data = sports
    model = ["--which", KEY, "--model-id", tiny_models[KEY], "--max-new-tokens", "48", "--glossary", glossary]
    fitted = json.loads(invoke("evaluate", "--data", data, *model, "--term-constraints", "--json").stdout)
    assert fitted["constrained_entries"] == {"forced": 2, "left_out": 3, "chosen_by": "confirmed",
                                             "evidence": "the references"}  # fmt: skip
    assert fitted["terms"]["hits"] <= 4  # the sports senses are not forced into everyday sentences
    forced = json.loads(invoke("evaluate", "--data", data, *model, "--term-constraints", "--constrain-all",
                               "--json").stdout)  # fmt: skip
    assert forced["constrained_entries"]["chosen_by"] == "all" and forced["terms"]["success"] == 1.0


@pytest.mark.slow
def test_translate_leaves_single_common_words_unforced_unless_data_confirm_them(sports, tiny_models,
                                                                               tmp_path: Path) -> None:  # fmt: skip
    glossary, data = sports
    sentences = tmp_path / "in.txt"
    sentences.write_text("He made a plant at the door.\nLandings went down.\n")
    model = ["--which", KEY, "--model-id", tiny_models[KEY], "--max-new-tokens", "48", "--glossary", glossary,
             "--no-apply-glossary", "--term-constraints"]  # fmt: skip
    result = invoke("translate", sentences, *model)
    assert result.exit_code == 0, result.output
    assert "term constraints: 1 glossary entry forced; 4 single common words left out" in result.stderr
    assert "mettre un pied à terre" not in result.stdout
    everything = invoke("translate", sentences, *model, "--constrain-all")
    assert "mettre un pied à terre" in everything.stdout and "essai" in everything.stdout.lower()
    confirmed = invoke("translate", sentences, *model, "--confirm-with", data)
    assert "2 glossary entries forced, those --confirm-with" in confirmed.stderr
    line = one_error_line(invoke("translate", sentences, "--which", KEY, "--glossary", glossary, "--constrain-all"))
    assert line == "csas: error: --constrain-all chooses the entries --term-constraints forces: add --term-constraints"


@pytest.mark.slow
def test_sources_are_annotated_only_for_a_model_trained_to_read_annotations(tiny_models, tmp_path: Path) -> None:
    sentences = tmp_path / "in.txt"
    sentences.write_text("The spawning stock biomass declined.\n")
    model = ["--which", KEY, "--model-id", tiny_models[KEY], "--max-new-tokens", "24", "--glossary",
             SAMPLE.parent / "glossary.tsv"]  # fmt: skip
    plain = invoke("translate", sentences, *model)
    assert plain.exit_code == 0, plain.output
    assert "note: the model was trained without --term-annotation, so the sources are not annotated" in plain.stderr
    forced = invoke("translate", sentences, *model, "--apply-glossary")
    assert "the sources are annotated with the glossary's terms (--apply-glossary)" in forced.stderr
    assert forced.stdout != plain.stdout  # the annotation reached the model


def test_check_glossary_against_data_reports_each_entry(sports) -> None:
    glossary, data = sports
    report = json.loads(invoke("check-glossary", glossary, "--against", data, "--json").stdout)
    uses = {u["en"][0]: (u["occurrences"], u["used"], u["confirmed"]) for u in report["against"]["uses"]}
    assert uses == {"plant": (4, 0, False), "down": (4, 0, False), "out": (3, 0, False), "stock": (1, 1, True),
                    "landings": (1, 1, True)}  # fmt: skip
    assert report["against"]["directions"]["en->fr"]["confirmed"] == 2
    assert report["common_words"]["en"] == ["plant", "out", "down", "stock"]
    text = invoke("check-glossary", glossary, "--against", data).stdout
    assert "contradicted most" in text and "plant / mettre un pied à terre: 0 of 4 (line 2)" in text


def test_common_words_and_forced_entries() -> None:
    assert single_common_word("make", "en") and single_common_word("Survey", "en")
    assert not single_common_word("biomass", "en") and not single_common_word("TAC", "en")
    assert not single_common_word("stock assessment", "en") and single_common_word("usine", "fr")
    glossary = read_glossary(SAMPLE.parent / "glossary.tsv")
    unforced = forced_entries(glossary, "en", None)
    assert unforced.reason == "not common words" and unforced.left_out == 1  # survey
    fit = Fit.of(glossary, ["The survey ended."], ["Le relevé a pris fin."], "en", "fr", "the references")
    assert forced_entries(glossary, "en", fit).entries == frozenset(
        i for i, e in enumerate(glossary.entries) if e.en[0] == "survey")


def test_finetune_takes_the_glossary_subject_and_records_it(tiny_models, tmp_path: Path) -> None:
    termium = written(TERMBASES["termium-plus"], tmp_path)
    base = ["finetune", "--which", KEY, "--model-id", tiny_models[KEY], "--data", SAMPLE, "--output-dir", tmp_path,
            "--glossary", termium]  # fmt: skip
    result = invoke(*base, "--glossary-subject", "boxing", "--dry-run")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["glossary_subject"] == "boxing" and plan["glossary_sheet"] is None
    assert "8 entries (TERMIUM Plus, subject 'boxing'); skipped: 1 empty, 1 retired, 1 other subject, 1 duplicates" \
        in result.stderr  # fmt: skip
    line = one_error_line(invoke("finetune", "--which", KEY, "--data", SAMPLE, "--glossary-sheet", "x", "--dry-run"))
    assert line == "csas: error: --glossary-sheet needs --glossary FILE"


def test_check_data_cuts_long_examples_in_text_but_not_in_json(tmp_path: Path) -> None:
    long = "word " * 1000
    data = pairs_file(tmp_path / "long.jsonl", [(long.strip(), "mot"), ("Hi.", "Salut.")])
    text = invoke("check-data", data).stdout
    shown = [line for line in text.splitlines() if line.strip().startswith("word word")]
    assert shown and all(len(line) < 300 for line in shown)
    assert all(line.endswith("[... cut: 4999 characters, --json shows them all]") for line in shown)
    examples = [e for c in json.loads(invoke("check-data", data, "--json").stdout)["checks"] for e in c["examples"]]
    assert any(e["source"] == long.strip() for e in examples)
