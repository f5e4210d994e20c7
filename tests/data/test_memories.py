"""Translation memories as their producers write them (tests/producers.py): every one loads through the real CLI
(`convert`, `check-data`, `finetune --dry-run`), with the right rows, skipped units and chosen variants; `--locales`
chooses between a unit's variants everywhere pairs are read; a tiny model trains on a multilingual memory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import SAMPLE, invoke, one_error_line
from producers import DGT_LANGUAGES, LOCALES, MEMORIES, Memory

from csas_cli.data.pairs import ReadCounts, ReadOptions, load_examples, read_pairs
from csas_cli.data.tmx import segment_text
from csas_cli.errors import SettingsError
from csas_cli.registry import parse_locales

KEY = "opus_mt_en_fr"


def write(memory: Memory, folder: Path) -> Path:
    path = folder / memory.file
    path.write_bytes(memory.data)
    return path


def rows_of(jsonl: Path) -> tuple[tuple[str, str, str], ...]:
    records = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines()]
    return tuple((r["source_lang"], r["source"], r["target"]) for r in records)


@pytest.mark.parametrize("name", MEMORIES)
def test_every_producers_memory_converts_with_its_counts(name: str, tmp_path: Path) -> None:
    memory = MEMORIES[name]
    out = tmp_path / "out.jsonl"
    result = invoke("convert", write(memory, tmp_path), out)
    assert result.exit_code == 0, result.output
    assert rows_of(out) == memory.rows
    line = result.stderr.strip()
    assert line.startswith(f"{len(memory.rows)} row{'s' if len(memory.rows) != 1 else ''} written to {out}"), line
    assert (f"{memory.skipped} TMX unit" in line) == bool(memory.skipped), line
    assert (f"{memory.variants} unit" in line and "several variants" in line) == bool(memory.variants), line


@pytest.mark.parametrize("name,locales", LOCALES)
def test_locales_choose_between_a_units_variants(name: str, locales: str, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    result = invoke("convert", write(MEMORIES[name], tmp_path), out, "--locales", locales)
    assert result.exit_code == 0, result.output
    assert rows_of(out) == LOCALES[name, locales]
    assert f"by --locales {locales}" in result.stderr


def test_the_publication_field_as_trados_names_it(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    assert invoke("convert", write(MEMORIES["trados-studio"], tmp_path), out).exit_code == 0
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r.get("pub_number") for r in records] == ["2019/045", None, None]  # x-pub_number:SingleString


def test_check_data_reports_skipped_units_and_variants(tmp_path: Path) -> None:
    dgt = write(MEMORIES["dgt-tm"], tmp_path)
    report = json.loads(invoke("check-data", dgt, "--json").stdout)["overview"]
    assert (report["rows"], report["units_skipped"], report["units_with_variants"]) == (3, 2, 0)
    regional = write(MEMORIES["regional-variants"], tmp_path)
    text = invoke("check-data", regional, "--locales", "fr-CA").stdout.splitlines()[0]
    assert "2 units with several variants of one language, by --locales fr-CA, else the first" in text
    assert "skipped" not in text


def test_finetune_dry_run_counts_skipped_units_and_records_the_locales(tiny_models, tmp_path: Path) -> None:
    dgt = write(MEMORIES["dgt-tm"], tmp_path)
    regional = write(MEMORIES["regional-variants"], tmp_path)
    result = invoke("finetune", "--which", KEY, "--model-id", tiny_models[KEY], "--data", dgt, "--eval-data", regional,
                    "--output-dir", tmp_path / "runs", "--locales", "fr-CA,en-CA", "--dry-run")  # fmt: skip
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert (plan["units_skipped"], plan["units_with_variants"], plan["train_rows"], plan["eval_rows"]) == (2, 2, 3, 3)
    assert plan["locales"] == ["fr-CA", "en-CA"]


def test_a_memory_without_a_usable_unit_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "de-en.tmx"
    path.write_text('<tmx version="1.4"><header srclang="en"/><body>\n'
                    '<tu><tuv xml:lang="en"><seg>File</seg></tuv><tuv xml:lang="de"><seg>Datei</seg></tuv></tu>\n'
                    '<tu><tuv xml:lang="EN-GB"><seg>Folder</seg></tuv><tuv xml:lang="NL-NL"><seg>Map</seg></tuv></tu>\n'
                    "</body></tmx>\n")  # fmt: skip
    line = one_error_line(invoke("convert", path, tmp_path / "out.jsonl"))
    assert line == (f"csas: error: {path}: none of its 2 <tu> units holds both an English and a French <tuv> "
                    "(languages: en, de, nl-nl)")  # fmt: skip


def test_locales_are_checked_where_they_are_given() -> None:
    assert parse_locales(" fr-CA, en_GB ,,fr-CA") == ("fr-CA", "en_GB")
    for bad in ("de-DE", "fr CA", "french"):
        with pytest.raises(SettingsError, match="is not an English or French locale"):
            parse_locales(bad)
    with pytest.raises(SettingsError, match="'FR' names a language, not one of its variants"):
        parse_locales("fr-CA,FR")
    line = one_error_line(invoke("finetune", "--which", KEY, "--data", SAMPLE, "--locales", "es-ES", "--dry-run"))
    assert line.startswith("csas: error: --locales: 'es-ES' is not an English or French locale")


def test_a_dropped_code_between_two_spaces_leaves_one() -> None:
    code = "\x00"
    assert segment_text(["click the ", code, " Open button"]) == "click the Open button"
    assert segment_text(["Click", code, "here"]) == "Clickhere"
    assert segment_text(["Prix\u00a0:", code, "\u00a010 $"]) == "Prix\u00a0:\u00a010 $"
    assert segment_text(["a ", code, " ", code, " b"]) == "a b"


def test_the_reader_counts_as_it_streams(tmp_path: Path) -> None:
    counts = ReadCounts()
    rows = read_pairs(write(MEMORIES["dgt-tm"], tmp_path), ReadOptions(), counts)
    next(rows)
    list(rows)
    assert (counts.units_skipped, counts.units_with_variants) == (2, 0)
    loaded = load_examples(tmp_path / MEMORIES["dgt-tm"].file, ["en"])
    assert (loaded.read.units_skipped, loaded.rows_read) == (2, 3)


def multilingual_memory(path: Path, per_language: int = 24) -> tuple[int, int]:
    """A DGT-style memory of the shipped sample's English-source pairs: 24 languages a unit (lang=, -01 codes),
    every fifth unit without French, every seventh with a Canadian French variant too; (units skipped, units with
    variants)."""
    from xml.sax.saxutils import escape

    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    rows = [r for r in rows if r["source_lang"] == "en"][:per_language * 5]
    units, skipped, variants = [], 0, 0
    for i, row in enumerate(rows):
        others = "".join(f'<tuv lang="{code}">\n<seg>{code} {i}</seg>\n</tuv>\n'
                         for code in DGT_LANGUAGES if code not in ("EN-GB", "FR-FR"))  # fmt: skip
        french = "" if i % 5 == 4 else f'<tuv lang="FR-FR">\n<seg>{escape(row["target"])}</seg>\n</tuv>\n'
        if french and i % 7 == 0:
            french += f'<tuv lang="FR-CA">\n<seg>{escape(row["target"])} (CA)</seg>\n</tuv>\n'
            variants += 1
        skipped += not french
        units.append(f'<tu>\n<prop type="Txt::Doc. No.">{escape(row["pub_number"])}</prop>\n'
                     f'<tuv lang="EN-GB">\n<seg>{escape(row["source"])}</seg>\n</tuv>\n{french}{others}</tu>\n')
    text = ('<?xml version="1.0" encoding="UTF-16LE"?>\n<tmx version="1.4">\n<header o-tmf="Euramis" '
            'creationtool="tm3" segtype="sentence" datatype="PlainText" adminlang="EN-US" srclang="EN-GB">\n'
            f'</header>\n<body>\n{"".join(units)}</body>\n</tmx>\n')  # fmt: skip
    path.write_bytes(b"\xff\xfe" + text.replace("\n", "\r\n").encode("utf-16-le"))
    return skipped, variants


@pytest.mark.slow
def test_a_tiny_model_trains_on_a_multilingual_memory(tiny_models, tmp_path: Path) -> None:
    memory = tmp_path / "dgt.tmx"
    skipped, variants = multilingual_memory(memory)
    args = ["finetune", "--which", KEY, "--model-id", tiny_models[KEY], "--data", memory, "--output-dir", tmp_path,
            "--no-qlora", "--max-steps", "2", "--disable-tqdm", "--locales", "fr-CA"]  # fmt: skip
    trained = invoke(*args)
    assert trained.exit_code == 0, trained.output
    plan = json.loads((tmp_path / KEY / "run.json").read_text())["plan"]
    assert (plan["units_skipped"], plan["units_with_variants"]) == (skipped, variants) and skipped and variants
    assert plan["train_rows"] + plan["eval_rows"] == plan["rows_read"] == 120 - skipped
    log = (tmp_path / KEY / "train.log").read_text()
    assert f"{skipped} TMX units without both an English and a French segment skipped" in log
    assert f"{variants} units with several variants of one language, by --locales fr-CA, else the first" in log
    line = one_error_line(invoke(*args[:-1], "fr-FR", "--resume", "auto"))
    assert "locales ['fr-CA'] -> ['fr-FR']" in line
