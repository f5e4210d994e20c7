"""Glossaries (TSV, CSV, TBX), term matching and the term success rate, annotation, and quality flags; through the
real CLI where a command shows them (evaluate --glossary, translate --glossary, finetune --term-annotation)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import SAMPLE, invoke, one_error_line, write_pairs

from csas_cli.data.glossary import read_glossary
from csas_cli.data.terms import TERM_CLOSE, TERM_OPEN, Annotator, TermIndex, annotate_share, term_success
from csas_cli.errors import DataError
from csas_cli.inference.quality import quality_flags, repetition

GLOSSARY_TSV = (
    "# a comment line\n"
    "en\tfr\tnote\n"
    "spawning stock biomass\tbiomasse du stock reproducteur\tSSB\n"
    "stock\tstock\t\n"
    "Critical Zone\tzone critique|zones critiques\t\n"
    "limit reference point\tpoint de référence limite\t\n"
    "fishing effort\teffort de pêche\t\n"
)

GLOSSARY_TBX = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE martif SYSTEM "TBXcoreStructV02.dtd">
<martif type="TBX" xml:lang="en">
<text><body>
<termEntry id="1"><langSet xml:lang="en"><tig><term>spawning stock biomass</term></tig></langSet>
  <langSet xml:lang="fr-CA"><tig><term>biomasse du stock reproducteur</term></tig></langSet></termEntry>
<termEntry id="2"><langSet xml:lang="EN"><tig><term>stock</term></tig></langSet>
  <langSet xml:lang="fr"><tig><term>stock</term></tig></langSet></termEntry>
<termEntry id="3"><langSet xml:lang="en"><ntig><termGrp><term>Critical Zone</term></termGrp></ntig></langSet>
  <langSet xml:lang="fr"><tig><term>zone critique</term></tig><tig><term>zones critiques</term></tig></langSet></termEntry>
<termEntry id="4"><langSet xml:lang="en"><tig><term>limit reference point</term></tig></langSet>
  <langSet xml:lang="fr"><tig><term>point de référence limite</term></tig></langSet></termEntry>
<termEntry id="5"><langSet xml:lang="en"><tig><term>fishing effort</term></tig></langSet>
  <langSet xml:lang="fr"><tig><term>effort de pêche</term></tig></langSet></termEntry>
<termEntry id="6"><langSet xml:lang="de"><tig><term>Laicherbestand</term></tig></langSet></termEntry>
</body></text></martif>
"""

GLOSSARY_TBX3 = """<?xml version="1.0"?>
<tbx type="TBX-Basic" style="dca" xml:lang="en" xmlns="urn:iso:std:iso:30042:ed-2">
<text><body>
<conceptEntry id="c1"><langSec xml:lang="en"><termSec><term>spawning stock biomass</term></termSec></langSec>
<langSec xml:lang="fr"><termSec><term>biomasse du stock reproducteur</term></termSec></langSec></conceptEntry>
<conceptEntry id="c2"><langSec xml:lang="en"><termSec><term>stock</term></termSec></langSec>
<langSec xml:lang="fr"><termSec><term>stock</term></termSec></langSec></conceptEntry>
<conceptEntry id="c3"><langSec xml:lang="en"><termSec><term>Critical Zone</term></termSec></langSec>
<langSec xml:lang="fr"><termSec><term>zone critique</term></termSec><termSec><term>zones critiques</term></termSec>
</langSec></conceptEntry>
<conceptEntry id="c4"><langSec xml:lang="en"><termSec><term>limit reference point</term></termSec></langSec>
<langSec xml:lang="fr"><termSec><term>point de référence limite</term></termSec></langSec></conceptEntry>
<conceptEntry id="c5"><langSec xml:lang="en"><termSec><term>fishing effort</term></termSec></langSec>
<langSec xml:lang="fr"><termSec><term>effort de pêche</term></termSec></langSec></conceptEntry>
</body></text></tbx>
"""

# Hand-made sentences. Counted by hand, entry by entry (source occurrences -> hits in the translation):
SOURCES = [
    # spawning stock biomass 1 -> 1 (nested "stock" is not a second term); Critical Zone 1 -> 1 (plural variant)
    "The spawning stock biomass is in the Critical Zone.",
    # stock 2 -> 1 (the translation says it once); limit reference points 1 -> 1 (plural, French -s on both words)
    "The stock is below its limit reference points, and the STOCK declined.",
    # fishing effort 1 -> 1 ("l'effort de pêche": the elision is a token boundary, the typographic apostrophe too)
    "Fishing effort increased.",
    # stock 1 -> 0 ("stocks" counts as "stock" but the translation says "population"); "restocking" is no term
    "Both stocks are restocking slowly.",
    # no term at all: not counted
    "Catches fell in 2023.",
]
TRANSLATIONS = [
    "La biomasse du stock reproducteur se trouve dans les zones critiques.",
    "Le stock est sous ses points de référence limites, et il a diminué.",
    "L\u2019effort de pêche a augmenté.",
    "Les deux populations se reconstituent lentement.",
    "Les prises ont diminué en 2023.",
]
HITS, OCCURRENCES = 1 + 1 + 1 + 1 + 1 + 0, 1 + 1 + 2 + 1 + 1 + 1


@pytest.fixture(params=["tsv", "csv", "tbx", "tbx3"])
def glossary(request, tmp_path: Path) -> Path:
    if request.param == "tsv":
        path = tmp_path / "g.tsv"
        path.write_text(GLOSSARY_TSV, encoding="utf-8")
    elif request.param == "csv":
        path = tmp_path / "g.csv"
        path.write_text(GLOSSARY_TSV.replace("\t", ",").replace("fishing effort,effort de pêche",
                                                                '"fishing effort","effort de pêche"'))  # fmt: skip
    else:
        path = tmp_path / "g.tbx"
        path.write_text(GLOSSARY_TBX if request.param == "tbx" else GLOSSARY_TBX3, encoding="utf-8")
    return path


def test_every_format_reads_the_same_entries(glossary: Path) -> None:
    entries = read_glossary(glossary).entries
    assert [(e.en, e.fr) for e in entries] == [
        (("spawning stock biomass",), ("biomasse du stock reproducteur",)), (("stock",), ("stock",)),
        (("Critical Zone",), ("zone critique", "zones critiques")),
        (("limit reference point",), ("point de référence limite",)), (("fishing effort",), ("effort de pêche",)),
    ]  # fmt: skip


def test_term_success_counted_by_hand(glossary: Path) -> None:
    score = term_success(read_glossary(glossary), SOURCES, TRANSLATIONS, "en", "fr")
    assert (score.hits, score.occurrences) == (HITS, OCCURRENCES)
    assert score.rate == pytest.approx(5 / 7)
    assert score.missed == {1: 2}  # "stock": once in row 2 (said once of twice), once in row 4


def test_matching_is_token_bounded_longest_first_and_case_folded(tmp_path: Path) -> None:
    path = tmp_path / "g.tsv"
    path.write_text(GLOSSARY_TSV)
    index = TermIndex.build(read_glossary(path), "en")
    found = index.find("SPAWNING STOCK BIOMASS and stock, not restock nor stockpile; stock-recruitment")
    assert [(m.entry, m.length) for m in found] == [(0, 3), (1, 1), (1, 1)]
    fr = TermIndex.build(read_glossary(path), "fr")
    assert [m.entry for m in fr.find("les zones critiques ; la zone\u00a0critique ; l'effort de pêche")] == [2, 2, 4]
    assert fr.find("les zonescritiques") == []


def test_annotation_inserts_the_preferred_target_term(tmp_path: Path) -> None:
    path = tmp_path / "g.tsv"
    path.write_text(GLOSSARY_TSV)
    annotator = Annotator(read_glossary(path), "en", "fr")
    assert annotator.source("The spawning stock biomass is in the Critical Zones.") == (
        f"The spawning stock biomass{TERM_OPEN}biomasse du stock reproducteur{TERM_CLOSE} is in the Critical Zones"
        f"{TERM_OPEN}zone critique{TERM_CLOSE}."
    )
    # Training: only terms whose target term the reference uses are annotated.
    assert annotator.training_pair("The stock is in the Critical Zone.", "Le stock est dans la zone critique.") == (
        f"The stock{TERM_OPEN}stock{TERM_CLOSE} is in the Critical Zone{TERM_OPEN}zone critique{TERM_CLOSE}.")
    assert annotator.training_pair("The stock is in the Critical Zone.", "La population est en zone rouge.") is None
    pairs = [("The stock grew.", "Le stock a augmenté.")] * 10 + [("Catches fell.", "Les prises ont baissé.")] * 5
    sources, annotated, eligible = annotate_share(annotator, pairs, 0.5, seed=42)
    assert (annotated, eligible) == (5, 10) and sum(TERM_OPEN in s for s in sources) == 5
    assert annotate_share(annotator, pairs, 0.5, seed=42)[0] == sources  # seeded
    assert sources[10:] == ["Catches fell."] * 5


@pytest.mark.parametrize(
    "name,text,message",
    [
        ("g.tsv", "source\ttarget\nstock\tstock\n", "g.tsv:1: no header row matches a glossary layout; got "
                                                      '"source | target"; csas reads columns named for English'),
        ("g.tsv", "en\tfr\nstock\t\n", "g.tsv: no glossary entries with both an English and a French term (1 empty)"),
        ("g.tsv", "en\tfr\nstock\n", "g.tsv: no glossary entries with both an English and a French term (1 empty)"),
        ("g.tsv", "# only a comment\n", "g.tsv: empty: expected a header row"),
        ("g.csv", "en,fr\n\"stock,stock\n", "g.csv:2: not valid CSV"),
        ("g.tbx", "<martif><text><body><termEntry><langSet xml:lang='en'><term>x</term></langSet>\n</body>",
         "g.tbx:2: not well-formed TBX"),
        ("g.tbx", '<!DOCTYPE x [<!ENTITY e "boom">]><martif/>', "g.tbx:1: declares an entity"),
        ("g.tbx", "<tmx/>", "g.tbx:1: the root element is <tmx>, expected <tbx> or <martif>"),
        ("g.tbx", "<martif><text><body></body></text></martif>", "g.tbx: no glossary entries"),
    ],
)
def test_malformed_glossaries_are_refused_in_one_line(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DataError) as error:
        read_glossary(path)
    assert str(error.value).startswith(f"{tmp_path}/{message}"), error.value
    data = write_pairs(tmp_path / "held.jsonl", 2)
    line = one_error_line(invoke("evaluate", "--data", data, "--translations", data, "--source-lang", "en",
                                 "--glossary", path))  # fmt: skip
    assert line == f"csas: error: {error.value}"


def test_the_shipped_glossary_reads_and_its_references_use_it() -> None:
    from csas_cli.shipped import SAMPLE_PAIRS

    glossary = read_glossary(SAMPLE_PAIRS.parent / "glossary.tsv")
    assert len(glossary) >= 30
    rows = [json.loads(line) for line in SAMPLE_PAIRS.read_text().splitlines()]
    en = [r for r in rows if r["source_lang"] == "en"]
    score = term_success(glossary, [r["source"] for r in en], [r["target"] for r in en], "en", "fr")
    assert score.occurrences > 500 and score.rate > 0.99


def test_glossary_encodings_quotes_and_the_lang_attribute(tmp_path: Path) -> None:
    text = "en\tfr\nstock\t\"stock\"\"s\"\"\"\n\"fishing effort\"\teffort de pêche\n"
    path = tmp_path / "g.tsv"
    for encoding in ("utf-8-sig", "utf-16"):  # Excel's "Unicode text" is UTF-16 with its mark, cells quoted
        path.write_bytes(text.encode(encoding))
        assert [(e.en, e.fr) for e in read_glossary(path).entries] == [
            (("stock",), ('stock"s"',)), (("fishing effort",), ("effort de pêche",))]  # fmt: skip
    path.write_bytes(text.encode("utf-16-le"))
    with pytest.raises(DataError, match="looks like UTF-16 without a byte order mark"):
        read_glossary(path)
    tbx = tmp_path / "g.tbx"
    tbx.write_text("<martif><text><body><termEntry><langSet lang='en'><tig><term>stock</term></tig></langSet>"
                   "<langSet lang='fr'><tig><term>stock</term></tig></langSet></termEntry></body></text></martif>")
    assert [(e.en, e.fr) for e in read_glossary(tbx).entries] == [(("stock",), ("stock",))]


def test_tbx_statuses_prefixes_and_other_languages(tmp_path: Path) -> None:
    path = tmp_path / "g.tbx"
    path.write_text("""<?xml version="1.0"?>
<tbx:tbx xmlns:tbx="urn:iso:std:iso:30042:ed-2" type="TBX-Basic"><tbx:text><tbx:body>
<tbx:conceptEntry id="1">
 <tbx:langSec xml:lang="en">
  <tbx:termSec><tbx:term>TAC</tbx:term></tbx:termSec>
  <tbx:termSec><tbx:term>quota total</tbx:term>
   <tbx:termNote type="administrativeStatus">deprecatedTerm-admn-sts</tbx:termNote></tbx:termSec>
  <tbx:termSec><tbx:term>total allowable catch</tbx:term>
   <tbx:termNote type="administrativeStatus">preferredTerm-admn-sts</tbx:termNote></tbx:termSec>
 </tbx:langSec>
 <tbx:langSec xml:lang="fr">
  <tbx:termSec><tbx:term>prise totale autorisée</tbx:term>
   <tbx:termNote type="normativeAuthorization">supersededTerm</tbx:termNote></tbx:termSec>
  <tbx:termSec><tbx:term>total autorisé des captures</tbx:term></tbx:termSec>
 </tbx:langSec>
 <tbx:langSec xml:lang="de"><tbx:termSec><tbx:term/></tbx:termSec></tbx:langSec>
</tbx:conceptEntry>
<tbx:conceptEntry id="2"><tbx:langSec xml:lang="en"><tbx:termSec><tbx:term>old word</tbx:term>
 <tbx:termNote type="administrativeStatus">deprecatedTerm-admn-sts</tbx:termNote></tbx:termSec></tbx:langSec>
 <tbx:langSec xml:lang="fr"><tbx:termSec><tbx:term>vieux mot</tbx:term></tbx:termSec></tbx:langSec></tbx:conceptEntry>
</tbx:body></tbx:text></tbx:tbx>
""")
    glossary = read_glossary(path)
    assert [(e.en, e.fr) for e in glossary.entries] == [
        (("total allowable catch", "TAC"), ("total autorisé des captures",))]  # the retired terms are no variants
    score = term_success(glossary, ["The TAC was set."] * 2, ["Le TAC est fixé.", "La prise totale autorisée est fixée."],
                         "en", "fr")  # fmt: skip
    assert (score.hits, score.occurrences) == (0, 2)  # "TAC" is no French variant; the superseded term misses


def test_matching_stops_at_clause_breaks_and_keeps_acronyms_in_capitals(tmp_path: Path) -> None:
    path = tmp_path / "g.tsv"
    path.write_text("en\tfr\nstock biomass\tbiomasse du stock\nTAC\tTAC\nspawn\tfrai\nbiomass index\tindice de "
                    "biomasse\nbiomass\tbiomasse\n")
    glossary = read_glossary(path)
    en, fr = TermIndex.build(glossary, "en"), TermIndex.build(glossary, "fr")
    assert [m.entry for m in en.find("The stock. Biomass fell; stock (biomass) too, stock-biomass and stock biomass")] \
        == [4, 4, 0, 0]  # fmt: skip
    assert [m.entry for m in en.find("The TAC, two TACs, not a tac or tacs.")] == [1, 1]
    assert [m.entry for m in fr.find("le frai, les frais de gestion")] == [2]
    # The translation is searched for the source's entries only: "indice de biomasse" does not take "biomasse".
    score = term_success(glossary, ["The biomass rose."], ["L'indice de biomasse a augmenté."], "en", "fr")
    assert (score.hits, score.occurrences) == (1, 1)


def test_annotation_is_not_repeated_on_an_annotated_source(tmp_path: Path) -> None:
    path = tmp_path / "g.tsv"
    path.write_text(GLOSSARY_TSV)
    annotator = Annotator(read_glossary(path), "en", "fr")
    once = annotator.source("The spawning stock biomass fell; the stock too.")
    assert once.count(TERM_OPEN) == 2
    assert annotator.source(once) == once


# -- quality flags ------------------------------------------------------------------------------------------------


def test_repetition_loops() -> None:
    assert repetition("la biomasse la biomasse la biomasse du stock") == "la biomasse"
    assert repetition("de 2001, de 2001, de 2001, de 2001 à 2022") == "de 2001"
    assert repetition("très très bien") is None and repetition("") is None
    assert repetition("0 0 0 0 12") is None  # a table row of zeros
    assert repetition("non non non", "no no no") == "non"
    assert repetition("le stock le stock le stock", "the stock the stock the stock") == "le stock"
    assert repetition("go go go", "go go go") is None  # the source loops too


def test_rows_without_words_and_blank_or_short_sources() -> None:
    report = quality_flags(["2019 2020 2021", "Yes.", "", "0 0 0 0"],
                           ["2019 2020 2021", "", "Une sortie sans aucune source à traduire.", "0 0 0 0"], "fr")
    assert (report.count("copy"), report.count("repetition")) == (0, 0)  # numbers are no copies, zeros no loop
    assert [(f.row, f.detail) for f in report.flagged["length_ratio"]] == [
        (1, "empty output"), (2, "41 characters for a blank source")]


def test_a_seeded_hypotheses_file_is_flagged_with_the_right_counts(tmp_path: Path) -> None:
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    en = [r for r in rows if r["source_lang"] == "en" and len(r["source"]) > 60][:20]
    data = tmp_path / "held.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in en))
    outputs = [r["target"] for r in en]
    outputs[0] = outputs[1] = en[0]["source"]  # copies of a source (row 1's is also in English)
    outputs[1] = en[1]["source"]
    outputs[2] = "The stock assessment was completed by the science branch this year, as planned."  # wrong language
    outputs[3] = "Le stock le stock le stock le stock."  # a loop (and far shorter than its source)
    outputs[4] = outputs[4][:8]  # truncated
    outputs[5] = ""  # empty
    translations = tmp_path / "hyp.txt"
    translations.write_text("\n".join(outputs) + "\n")
    result = invoke("evaluate", "--data", data, "--translations", translations, "--source-lang", "en", "--json")
    assert result.exit_code == 0, result.output
    quality = json.loads(result.stdout)["quality"]
    counts = {flag: quality[flag]["count"] for flag in quality}
    assert counts == {"wrong_language": 3, "copy": 2, "repetition": 1, "length_ratio": 3}
    assert [e["row"] for e in quality["length_ratio"]["examples"]] == [3, 4, 5]
    assert quality["copy"]["share"] == pytest.approx(2 / 20)
    direct = quality_flags([r["source"] for r in en], outputs, "fr")
    assert {flag: direct.count(flag) for flag in counts} == counts
    human = invoke("evaluate", "--data", data, "--translations", translations, "--source-lang", "en")
    assert "quality flags: wrong language 3 (15.0%), copies 2 (10.0%), repetition loops 1 (5.0%), length ratio 3 " \
           "(15.0%)" in human.stdout  # fmt: skip


def test_translations_must_line_up_with_the_rows(tmp_path: Path) -> None:
    data = write_pairs(tmp_path / "held.jsonl", 3)
    short = tmp_path / "hyp.txt"
    short.write_text("one line\n")
    line = one_error_line(invoke("evaluate", "--data", data, "--translations", short, "--source-lang", "en"))
    assert "1 line for the 3 en->fr rows" in line
    assert "--source-lang en or fr" in one_error_line(invoke("evaluate", "--data", data, "--translations", short))
    for flags, named in ((["--compare-base"], "--compare-base"), (["--hypotheses", tmp_path / "h.txt"], "--hypotheses"),
                         (["--glossary", SAMPLE.parent / "glossary.tsv", "--apply-glossary"], "--apply-glossary")):
        line = one_error_line(invoke("evaluate", "--data", data, "--translations", short, "--source-lang", "en", *flags))
        assert f"--translations scores a file, no model translates: drop {named}" in line
    # A byte order mark and a line separator inside a line (U+2028) do not shift the lines.
    three = tmp_path / "three.txt"
    three.write_bytes("\ufeffune\u2028ligne\r\ndeux\ntrois\n".encode("utf-8"))
    result = invoke("evaluate", "--data", data, "--translations", three, "--source-lang", "en", "--json")
    assert result.exit_code == 0, result.output and json.loads(result.stdout)["n"] == 3


# -- through the CLI with a model -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_evaluate_reports_term_success_of_model_base_and_references(tiny_models, tiny_runs, tmp_path: Path) -> None:
    glossary = tmp_path / "g.tsv"
    glossary.write_text(GLOSSARY_TSV)
    data = tmp_path / "held.jsonl"
    data.write_text("".join(json.dumps({"source": s, "target": t, "source_lang": "en"}, ensure_ascii=False) + "\n"
                            for s, t in zip(SOURCES, TRANSLATIONS)))  # fmt: skip
    model = tiny_models["opus_mt_en_fr"]
    result = invoke("evaluate", "--which", "opus_mt_en_fr", "--model-id", model, "--data", data, "--glossary",
                    glossary, "--max-new-tokens", "8", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["reference_terms"] == {"success": 5 / 7, "hits": 5, "occurrences": 7,
                                         "most_missed": [["stock / stock", 2]]}  # fmt: skip
    assert report["terms"]["occurrences"] == 7 and 0 <= report["terms"]["hits"] <= 7
    assert set(report["quality"]) == {"wrong_language", "copy", "repetition", "length_ratio"}
    human = invoke("evaluate", "--which", "opus_mt_en_fr", "--model-id", model, "--data", data, "--glossary",
                   glossary, "--max-new-tokens", "8")  # fmt: skip
    assert "references (the ceiling)" in human.stdout and "0.714" in human.stdout
    both = invoke("evaluate", "--model", tiny_runs("opus_mt_en_fr"), "--data", data, "--glossary",
                  glossary, "--apply-glossary", "--compare-base", "--max-new-tokens", "8", "--json")  # fmt: skip
    assert both.exit_code == 0, both.output
    report = json.loads(both.stdout)
    assert (report["tuned"]["apply_glossary"], report["base"]["apply_glossary"]) == (True, False)


@pytest.mark.slow
def test_term_annotation_trains_translates_and_resumes_as_recorded(tiny_models, tmp_path: Path) -> None:
    from csas_cli.shipped import SAMPLE_PAIRS

    glossary = SAMPLE_PAIRS.parent / "glossary.tsv"
    data = write_pairs(tmp_path / "pairs.jsonl", 40)
    key = "opus_mt_en_fr"
    args = ["finetune", "--which", key, "--model-id", tiny_models[key], "--data", data, "--output-dir", tmp_path,
            "--no-qlora", "--max-steps", "4", "--eval-steps", "2", "--eval-chrf", "--eval-chrf-samples", "4",
            "--glossary", glossary, "--term-annotation", "0.5", "--disable-tqdm"]  # fmt: skip
    trained = invoke(*args)
    assert trained.exit_code == 0, trained.output
    assert "--term-annotation 0.5:" in trained.stderr and "training pairs that use a glossary term" in trained.stderr
    run = tmp_path / key
    plan = json.loads((run / "run.json").read_text())["plan"]
    assert plan["term_annotation"] == 0.5 and plan["glossary_sha256"] and plan["rows_annotated"] > 0
    assert plan["rows_annotated"] == round(0.5 * plan["rows_annotatable"])
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("eval_chrf" in m for m in metrics)
    assert all("eval_term_success" in m for m in metrics if "eval_chrf" in m)
    line = one_error_line(invoke(*args[:-3], "--term-annotation", "0.25", "--disable-tqdm", "--resume", "auto"))
    assert "term_annotation 0.5 -> 0.25" in line
    sentences = tmp_path / "in.txt"
    sentences.write_text("The spawning stock biomass is in the Critical Zone.\n\n")
    translated = invoke("translate", sentences, "--model", run, "--glossary", glossary, "--max-new-tokens", "8")
    assert translated.exit_code == 0, translated.output
    assert "annotated with the glossary's terms: the model was trained to read them (--term-annotation 0.5" \
        in translated.stderr  # fmt: skip
    assert len(translated.stdout.splitlines()) == 2 and translated.stdout.splitlines()[1] == ""


def test_term_annotation_needs_a_glossary() -> None:
    line = one_error_line(invoke("finetune", "--which", "opus_mt_en_fr", "--data", SAMPLE, "--term-annotation", "0.5",
                                 "--dry-run"))  # fmt: skip
    assert "--term-annotation needs --glossary FILE" in line
    line = one_error_line(invoke("finetune", "--which", "opus_mt_en_fr", "--data", SAMPLE, "--glossary", SAMPLE,
                                 "--term-annotation", "1.5", "--dry-run"))  # fmt: skip
    assert "--term-annotation must be in [0, 1], got 1.5" in line


def test_training_sources_that_already_hold_the_markers_get_a_note() -> None:
    from csas_cli.data.pairs import Example
    from csas_cli.training.run import marker_note

    rows = [Example("A plain source.", "Une source.", "en", "fr", None, 1),
            Example("See [[Table 2]].", "Voir [[tableau 2]].", "en", "fr", None, 2)]  # fmt: skip
    (note,) = marker_note(rows)
    assert note.startswith("1 training source already holds the annotation markers '[[' or ']]' (the first at "
                           "line 2 of --data)")  # fmt: skip
    assert marker_note(rows[:1]) == ()
