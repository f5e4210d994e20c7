"""csas check-data and csas convert through the real CLI: the report, --json, each model's tokenizer lengths,
--against, --write-clean/--drop, and their errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import SAMPLE, invoke, one_error_line

from csas_cli.commands.check_data import DataChecks, check_data, length_check, load_tokenizers
from csas_cli.data.pairs import example_record, read_pairs
from csas_cli.modeling import load_tokenizer
from csas_cli.registry import REGISTRY

ROWS = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
HELDOUT = SAMPLE.parent / "heldout_pairs.jsonl"


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def seeded(tmp_path: Path) -> Path:
    """60 clean rows, then 2 exact duplicates, 1 copy, 1 number mismatch and 1 empty target."""
    clean = []
    seen = set()
    for r in ROWS:
        if (r["source"], r["target"]) not in seen:
            seen.add((r["source"], r["target"]))
            clean.append(r)
        if len(clean) == 60:
            break
    bad = [
        dict(clean[3]), dict(clean[7]),
        {**clean[10], "target": clean[10]["source"]},
        {"source": "The quota was 12,500 t in 2019.", "target": "Le quota était de 15 500 t en 2019.",
         "source_lang": "en", "pub_number": "2019/001"},
        {**clean[12], "target": "   "},
    ]  # fmt: skip
    return write(tmp_path / "seeded.jsonl", clean + bad)


@pytest.mark.slow
def test_the_report_names_each_problem_with_its_count_and_lines(seeded):
    result = invoke("check-data", seeded, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    counts = {c["name"]: c["count"] for c in report["checks"]}
    assert counts["duplicates"] == 2
    assert counts["copies"] == 1
    assert counts["numbers"] == 1
    assert counts["empty"] == 1
    assert counts["conflicts"] == 0 and counts["length_ratio"] == 0
    by_name = {c["name"]: c for c in report["checks"]}
    assert [e["line"] for e in by_name["duplicates"]["examples"]] == [61, 62]
    assert [e["line"] for e in by_name["numbers"]["examples"]] == [64]
    assert by_name["duplicates"]["share"] == pytest.approx(2 / 65)
    assert report["overview"]["rows"] == 65
    assert report["lengths"] == [] and report["against"] is None

    text = invoke("check-data", seeded)
    assert text.exit_code == 0
    lines = text.stdout.splitlines()
    assert lines[0].startswith(f"{seeded}: 65 rows")
    duplicates = next(i for i, line in enumerate(lines) if line.split()[2:3] == ["duplicates"])
    assert lines[duplicates].split()[:2] == ["2", "3.1%"]
    assert lines[duplicates + 1].strip().startswith("line 61: ")
    assert max(len(line) for line in lines) < 400  # one example per line, sentences clipped


def test_each_models_tokenizer_counts_its_cut_pairs(tiny_models, seeded, tmp_path):
    args = ("--which", "m2m100_418m", "--model-id", tiny_models["m2m100_418m"], "--max-source-len", "16",
            "--max-target-len", "20", "--json")  # fmt: skip
    report = json.loads(invoke("check-data", seeded, *args).stdout)
    (length,) = report["lengths"]
    tokenizer = load_tokenizer(str(tiny_models["m2m100_418m"]), REGISTRY["m2m100_418m"].family)
    rows = [ex for ex in read_pairs(seeded) if ex.source and ex.target]
    sources = targets = 0
    for ex in rows:
        tokenizer.src_lang, tokenizer.tgt_lang = ex.source_lang, ex.target_lang
        sources += len(tokenizer(ex.source)["input_ids"]) > 16
        targets += len(tokenizer(text_target=ex.target)["input_ids"]) > 20
    assert (length["which"], length["sources_cut"], length["targets_cut"]) == ("m2m100_418m", sources, targets)
    assert 0 < sources < len(rows) and length["judged"] == len(rows) and length["total"] == 65
    assert "--max-source-len 16" in length["title"]


def test_all_models_use_the_model_root(tiny_models, seeded):
    root = next(iter(tiny_models.values())).parent
    report = check_data(seeded, DataChecks(all_models=True, model_root=root, max_source_len=12, max_target_len=12))
    assert [c.key for c in report.lengths] == list(REGISTRY)
    assert [c.model_id for c in report.lengths] == [str(root / k) for k in REGISTRY]
    # mbart50_mmt_fr and opus_mt_en_fr both train on the English rows: the same rows are judged.
    totals = {c.key: c.judged for c in report.lengths}
    assert totals["mbart50_mmt_fr"] == totals["opus_mt_en_fr"]
    assert totals["m2m100_418m"] == totals["mbart50_mmt_fr"] + totals["mbart50_mmt_en"]


def test_against_a_test_file_counts_the_leak(tmp_path):
    test_rows = [json.loads(line) for line in HELDOUT.read_text(encoding="utf-8").splitlines()]
    train = write(tmp_path / "train.jsonl", ROWS[:100] + test_rows[:4])
    report = json.loads(invoke("check-data", train, "--against", HELDOUT, "--json").stdout)
    counts = {c["name"]: c["count"] for c in report["checks"]}
    assert counts["shared_sentences"] >= 4
    assert counts["shared_publications"] >= 4
    assert report["against"] == str(HELDOUT)


def test_write_clean_keeps_the_rows_that_pass_the_named_checks(seeded, tmp_path):
    out = tmp_path / "clean.jsonl"
    result = invoke("check-data", seeded, "--write-clean", out, "--drop", "duplicates,copies,empty")
    assert result.exit_code == 0, result.output
    kept = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(kept) == 65 - 2 - 1 - 1
    assert "12,500 t" in kept[-1]["source"]  # the number mismatch was not asked to be dropped
    assert "61 of 65 rows written" in result.stderr
    again = invoke("check-data", seeded, "--write-clean", out, "--drop", "duplicates")
    assert "--write-clean" in one_error_line(again) and "exists" in again.stderr
    assert len(out.read_text(encoding="utf-8").splitlines()) == 61  # not overwritten


@pytest.mark.parametrize(
    "args,message",
    [
        (["--drop", "duplicates"], "--write-clean OUT and --drop CHECKS go together"),
        (["--write-clean", "{tmp}/o.jsonl", "--drop", "dupes"], "--drop: unknown check dupes"),
        (["--write-clean", "{tmp}/o.jsonl", "--drop", "shared_sentences"], "shared_* need --against"),
        (["--write-clean", "{tmp}/o.jsonl", "--drop", "too_long"], "too_long needs --which or --all"),
        (["--write-clean", "{tmp}/o.tmx", "--drop", "copies"], "csas writes JSON Lines; name it .jsonl"),
        (["--which", "nope"], "--which: unknown model nope"),
        (["--which", "opus_mt_en_fr", "--all"], "--all and --which: pass one of them"),
        (["--all", "--model-id", "x"], "--model-id names one model's tokenizer"),
        (["--max-source-len", "0"], "--max-source-len must be at least 1"),
    ],
)
def test_bad_flags_are_named_in_one_line(seeded, tmp_path, args, message):
    result = invoke("check-data", seeded, *[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert message in one_error_line(result)


def test_a_bad_file_is_named_in_one_line(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("source\ttarget\n", encoding="utf-8")
    assert f"{bad}:1: header lacks column 'source_lang'" in one_error_line(invoke("check-data", bad))
    assert "file not found" in one_error_line(invoke("check-data", tmp_path / "absent.jsonl"))


def test_length_check_flags_rows_of_the_models_directions_only(tiny_models, tmp_path):
    examples = list(read_pairs(SAMPLE))[:200]
    tokenizer = load_tokenizers({"opus_mt_en_fr": str(tiny_models["opus_mt_en_fr"])}, None)["opus_mt_en_fr"]
    check = length_check("opus_mt_en_fr", tokenizer, examples, max_source_len=10, max_target_len=10)
    assert all(examples[i].source_lang == "en" for i in check.result.flagged)
    assert check.judged == sum(ex.source_lang == "en" for ex in examples) and check.result.total == len(examples)
    assert check.result.count == len(check.result.flagged) >= max(check.sources, check.targets)


def test_convert_writes_what_training_reads(tmp_path):
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("source_lang\tsource\ttarget\tpub_number\n"
                   "EN\tThe stock is healthy.\tLe stock est en bonne santé.\t2020/001\n"
                   "fr\tBonjour\tHello\t\n", encoding="utf-8")  # fmt: skip
    out = tmp_path / "pairs.jsonl"
    result = invoke("convert", tsv, out)
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == f"2 rows written to {out}"
    assert [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()] == [
        {"source": "The stock is healthy.", "target": "Le stock est en bonne santé.", "source_lang": "en",
         "pub_number": "2020/001"},
        {"source": "Bonjour", "target": "Hello", "source_lang": "fr"},
    ]  # fmt: skip
    assert [example_record(ex) for ex in read_pairs(out)] == [example_record(ex) for ex in read_pairs(tsv)]
    assert "exists" in one_error_line(invoke("convert", tsv, out))
    assert "the same file as an input" in one_error_line(invoke("convert", out, out, "--overwrite"))


def test_every_flagged_row_can_be_shown(seeded):
    report = json.loads(invoke("check-data", seeded, "--json", "--examples", "1").stdout)
    duplicates = next(c for c in report["checks"] if c["name"] == "duplicates")
    assert duplicates["lines"] == [61, 62] and [e["line"] for e in duplicates["examples"]] == [61]
    short = invoke("check-data", seeded, "--examples", "1").stdout
    assert "... 1 more (--examples 0 shows them all; --json lists every line)" in short
    whole = invoke("check-data", seeded, "--examples", "0").stdout.splitlines()
    at = next(i for i, line in enumerate(whole) if line.strip() == "line 62: same as line 8")
    row = json.loads(seeded.read_text(encoding="utf-8").splitlines()[61])
    assert (whole[at + 1].strip(), whole[at + 2].strip()) == (row["source"], row["target"])
    assert not any("more (--examples 0" in line for line in whole)


def test_write_clean_can_drop_the_pairs_a_model_would_cut(tiny_models, tmp_path):
    """The length check judges one model's directions, and --drop too_long still keeps every other row."""
    rows = ROWS[:40]  # both directions
    data = write(tmp_path / "mixed.jsonl", rows + [{**ROWS[0], "target": ""}])
    out = tmp_path / "clean.jsonl"
    result = invoke("check-data", data, "--which", "opus_mt_en_fr", "--model-id", tiny_models["opus_mt_en_fr"],
                    "--max-source-len", "12", "--write-clean", out, "--drop", "too_long")  # fmt: skip
    assert result.exit_code == 0, result.output
    report = check_data(data, DataChecks(which=["opus_mt_en_fr"], model_id=str(tiny_models["opus_mt_en_fr"]),
                                       max_source_len=12))
    cut = set(report.lengths[0].result.flagged)
    assert cut
    examples = list(read_pairs(data))
    assert all(examples[i].source_lang == "en" for i in cut)
    kept = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert kept == [example_record(ex) for i, ex in enumerate(examples) if i not in cut]
    assert report.lengths[0].result.total == len(examples)
