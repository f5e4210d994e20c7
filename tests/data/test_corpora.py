"""Real corpora into clean train and test sets, through the real CLI: line-aligned files read as the equivalent
JSON Lines, TSV as people write it, documents named by a TMX's tuid or prop, `csas split`, both directions from one
memory, and misaligned pairs and documents found by `check-data` with and without a model."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path

import pytest
from helpers import SAMPLE, invoke, one_error_line

from csas_cli.data.alignment import binomial_cdf, binomial_sf, lexical_anchors, publication_summary
from csas_cli.data.pairs import Example, load_examples, read_pairs, split_examples

KEY = "opus_mt_en_fr"


def sample_rows() -> list[dict]:
    return [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


# -- line-aligned files --------------------------------------------------------------------------------------------


@pytest.fixture
def aligned(tmp_path: Path) -> tuple[str, Path]:
    """(corpus.en-fr.en,corpus.en-fr.fr, the same pairs as JSON Lines): 60 English-source pairs of the sample, with
    one line empty on the French side and one empty on both."""
    rows = [r for r in sample_rows() if r["source_lang"] == "en"][:60]
    english = [r["source"] for r in rows] + ["An orphan sentence.", ""]
    french = [r["target"] for r in rows] + ["", ""]
    (tmp_path / "corpus.en-fr.en").write_text("\n".join(english) + "\n", encoding="utf-8")
    (tmp_path / "corpus.en-fr.fr").write_bytes(b"\xef\xbb\xbf" + ("\r\n".join(french) + "\r\n").encode("utf-8"))
    pairs = f"{tmp_path / 'corpus.en-fr.en'},{tmp_path / 'corpus.en-fr.fr'}"
    plain = [{"source": r["source"], "target": r["target"], "source_lang": "en"} for r in rows]
    return pairs, write_jsonl(tmp_path / "corpus.jsonl", plain)


def test_line_aligned_files_give_the_plan_of_the_equivalent_jsonl(aligned, tiny_models, tmp_path: Path) -> None:
    pairs, jsonl = aligned
    plans = []
    for data in (pairs, jsonl):
        result = invoke("finetune", "--which", KEY, "--model-id", tiny_models[KEY], "--data", data, "--output-dir",
                        tmp_path / "runs", "--dry-run")  # fmt: skip
        assert result.exit_code == 0, result.output
        plan = json.loads(result.stdout)
        assert plan.pop("data") == str(data)
        plans.append(plan)
    assert plans[0].pop("lines_one_sided") == 1 and plans[1].pop("lines_one_sided") == 0
    assert plans[0] == plans[1] and plans[0]["rows_read"] == 60
    out = tmp_path / "new" / "folder" / "out.jsonl"  # convert creates the folders
    result = invoke("convert", pairs, out)
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8") == jsonl.read_text(encoding="utf-8")
    assert "60 rows written" in result.stderr and "1 line with text on one side only skipped" in result.stderr
    reversed_pairs = ",".join(reversed(pairs.split(",")))
    records = [json.loads(line) for line in invoke("convert", reversed_pairs, "-").stdout.splitlines()]
    assert {r["source_lang"] for r in records} == {"fr"} and len(records) == 60


@pytest.mark.parametrize("names,message", [
    (("flores.eng", "flores.txt"), "flores.txt: its name does not say its language; name each file by its language"),
    (("a.en", "b.en_CA"), "b.en_CA: both line-aligned files are English by their names (a.en, b.en_CA)"),
    (("eng_Latn.devtest", "fra_Latn.short"), "eng_Latn.devtest: 3 lines, but {dir}/fra_Latn.short has 2; line-aligned "
                                             "files must have as many lines"),
])  # fmt: skip
def test_line_aligned_files_csas_cannot_pair_are_refused(tmp_path: Path, names, message) -> None:
    for name in names:
        lines = 2 if "short" in name else 3
        (tmp_path / name).write_text("".join(f"Line {i}.\n" for i in range(lines)), encoding="utf-8")
    pairs = ",".join(str(tmp_path / n) for n in names)
    line = one_error_line(invoke("convert", pairs, tmp_path / "out.jsonl"))
    assert line.startswith("csas: error: ") and message.format(dir=tmp_path) in line, line
    assert not (tmp_path / "out.jsonl").exists()


def test_a_unicode_line_separator_inside_a_sentence_keeps_the_alignment(tmp_path: Path) -> None:
    (tmp_path / "t.en").write_text("One\u2028still one.\nTwo.\n", encoding="utf-8")
    (tmp_path / "t.fr").write_text("Un\u2028encore un.\nDeux.\n", encoding="utf-8")
    rows = list(load_examples(f"{tmp_path / 't.en'},{tmp_path / 't.fr'}", ["en"]).examples)
    assert [(r.target, r.line) for r in rows] == [("Un\u2028encore un.", 1), ("Deux.", 2)]


# -- documents, split, both directions --------------------------------------------------------------------------------

TICO = """<?xml version="1.0" encoding="UTF-8"?>
<tmx version="1.4"><header creationtool="unknown" creationtoolversion="unknown" segtype="paragraph" o-tmf="unknown" adminlang="en" srclang="en" datatype="text"></header><body>
{units}</body>
</tmx>
"""


def tico_memory(path: Path, documents: int = 6, rows: int = 8) -> Path:
    """A TICO-19-style memory: documents named by the tuid's prefix (`CMU_1:3`) and a DGT-style doc prop."""
    sample = [r for r in sample_rows() if r["source_lang"] == "en"]
    units = []
    for d in range(documents):
        for n in range(rows):
            row = sample[d * rows + n]
            units.append(f'<tu tuid="doc_{d}:{n + 1}"><prop type="Txt::Doc. No.">3200{d}R0001</prop>'
                         f'<tuv xml:lang="en"><seg>{row["source"]}</seg></tuv>'
                         f'<tuv xml:lang="fr"><seg>{row["target"]}</seg></tuv></tu>\n')  # fmt: skip
    path.write_text(TICO.format(units="".join(units)), encoding="utf-8")
    return path


def test_publications_from_the_tuid_or_a_prop(tmp_path: Path) -> None:
    memory = tico_memory(tmp_path / "tico.tmx")
    cases = (("tuid-prefix", "doc_0"), ("prop:Txt::Doc. No.", "32000R0001"), ("prop:Doc. No.", "32000R0001"))
    for option, first in cases:
        out = tmp_path / "out.jsonl"
        assert invoke("convert", memory, out, "--publication-from", option, "--overwrite").exit_code == 0
        publications = [json.loads(line).get("pub_number") for line in out.read_text().splitlines()]
        assert publications[0] == first and len(set(publications)) == 6
    line = one_error_line(invoke("convert", memory, tmp_path / "x.jsonl", "--publication-from", "tuid"))
    assert "--publication-from 'tuid': expected tuid-prefix or prop:NAME" in line


def test_split_writes_whole_publications_the_same_every_time(tmp_path: Path) -> None:
    memory = tico_memory(tmp_path / "tico.tmx")
    args = ["split", memory, "--train-out", tmp_path / "a" / "train.jsonl", "--test-out", tmp_path / "a" / "test.jsonl",
            "--test-ratio", "0.2", "--publication-from", "tuid-prefix"]  # fmt: skip
    first = invoke(*args)
    assert first.exit_code == 0, first.output
    assert "train: 40 rows (5 publications)" in first.stderr and "test: 8 rows (1 publication)" in first.stderr
    files = [(tmp_path / "a" / n).read_bytes() for n in ("train.jsonl", "test.jsonl")]
    assert "exists; pass --overwrite" in one_error_line(invoke(*args))
    assert invoke(*args, "--overwrite").exit_code == 0
    assert [(tmp_path / "a" / n).read_bytes() for n in ("train.jsonl", "test.jsonl")] == files
    report = json.loads(invoke("check-data", tmp_path / "a" / "train.jsonl", "--against", tmp_path / "a" / "test.jsonl",
                               "--json").stdout)  # fmt: skip
    assert next(c for c in report["checks"] if c["name"] == "shared_publications")["count"] == 0
    plain = invoke("split", SAMPLE, "--train-out", tmp_path / "b.jsonl", "--test-out", tmp_path / "c.jsonl")
    assert "train: 2851 rows (142 publications)" in plain.stderr and "test: 149 rows (8 publications)" in plain.stderr


def test_a_pair_and_its_reverse_stay_on_one_side() -> None:
    rows = [Example(f"s{i}", f"t{i}", "en", "fr", None, i) for i in range(40)]
    rows += [Example(r.target, r.source, "fr", "en", None, r.line) for r in rows]  # *all* units, both directions
    split = split_examples(rows, 0.2, seed=3)
    held = {ex.line for ex in split.eval}
    assert held and not held & {ex.line for ex in split.train} and len(split.eval) == 2 * len(held)


@pytest.mark.slow
def test_both_directions_train_the_other_models_from_one_memory(tmp_path: Path, tiny_models) -> None:
    data = write_jsonl(tmp_path / "en-fr.jsonl", [r for r in sample_rows() if r["source_lang"] == "en"][:200])
    line = one_error_line(invoke("finetune", "--which", "opus_mt_fr_en", "--data", data, "--dry-run"))
    assert "no rows with source_lang fr" in line
    plans = json.loads(invoke("finetune-all", "--data", data, "--both-directions", "--only",
                              "opus_mt_fr_en,m2m100_418m", "--dry-run").stdout)  # fmt: skip
    counts = {p["which"]: (p["rows_read"], p["rows_reversed"], p["train_rows"] + p["eval_rows"]) for p in plans}
    assert counts == {"opus_mt_fr_en": (200, 200, 200), "m2m100_418m": (200, 200, 400)}
    assert all(p["both_directions"] for p in plans)
    args = ["finetune", "--which", "opus_mt_fr_en", "--model-id", tiny_models["opus_mt_fr_en"], "--data", data,
            "--both-directions", "--output-dir", tmp_path / "runs", "--no-qlora", "--max-steps", "2", "--disable-tqdm"]
    trained = invoke(*args)
    assert trained.exit_code == 0, trained.output
    log = (tmp_path / "runs" / "opus_mt_fr_en" / "train.log").read_text()
    assert "200 pairs reversed to serve the other direction (--both-directions)" in log
    plan = json.loads((tmp_path / "runs" / "opus_mt_fr_en" / "run.json").read_text())["plan"]
    assert plan["rows_reversed"] == 200 and plan["both_directions"] is True


# -- misaligned pairs and documents ----------------------------------------------------------------------------------


def shuffled_sample(path: Path, publications: int = 3, seed: int = 7, limit: int | None = None) -> list[str]:
    """The sample (its first `limit` publications) with the targets of `publications` of them shuffled within each
    direction; the shuffled publications."""
    rows = sample_rows()
    if limit is not None:
        keep = sorted({r["pub_number"] for r in rows})[:limit]
        rows = [r for r in rows if r["pub_number"] in keep]
    by_pub: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        by_pub[row["pub_number"]].append(i)
    rng = random.Random(seed)
    chosen = rng.sample(sorted(p for p, idx in by_pub.items() if len(idx) >= 12), publications)
    for pub in chosen:
        for lang in ("en", "fr"):
            idx = [i for i in by_pub[pub] if rows[i]["source_lang"] == lang]
            targets = [rows[i]["target"] for i in idx]
            rng.shuffle(targets)
            for i, target in zip(idx, targets):
                rows[i]["target"] = target
    write_jsonl(path, rows)
    return chosen


@pytest.mark.slow
def test_check_data_names_the_shuffled_publications_first(tmp_path: Path) -> None:
    data = tmp_path / "shuffled.jsonl"
    chosen = shuffled_sample(data)
    report = json.loads(invoke("check-data", data, "--json").stdout)
    flagged = report["publications_flagged"]
    assert {p["publication"] for p in flagged[:3]} == set(chosen)
    assert all(p["share"] >= 0.5 for p in flagged[:3])
    assert list(flagged[0]) == ["publication", "rows", "flagged", "share"]
    text = invoke("check-data", data).stdout
    assert "publications far above the file's share of rows flagged by misaligned, numbers, length_ratio, language" \
        in text  # fmt: skip
    clean = json.loads(invoke("check-data", SAMPLE, "--json").stdout)
    assert clean["publications_flagged"] == []
    assert next(c for c in clean["checks"] if c["name"] == "misaligned")["count"] <= 5
    assert "no publication stands out" in invoke("check-data", SAMPLE).stdout


@pytest.mark.slow
def test_check_data_with_a_model_and_the_clean_file_it_writes(tmp_path: Path, tiny_models) -> None:
    data = tmp_path / "shuffled.jsonl"
    chosen = shuffled_sample(data, limit=30)
    root = Path(tiny_models[KEY]).parent
    out = tmp_path / "clean.jsonl"
    result = invoke("check-data", data, "--score-with", "opus_mt_en_fr,opus_mt_fr_en", "--model-root", root, "--json",
                    "--write-clean", out, "--drop", "misaligned", "--drop-publications")  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {p["publication"] for p in report["publications_flagged"][:3]} == set(chosen)
    assert report["scored_with"] == ["opus_mt_en_fr", "opus_mt_fr_en"]
    misaligned = next(c for c in report["checks"] if c["name"] == "misaligned")
    assert "or whose score under opus_mt_en_fr, opus_mt_fr_en is above" in misaligned["title"]
    assert "scoring" in result.stderr and "pairs" in result.stderr  # a progress line a batch log shows
    kept = [json.loads(line) for line in out.read_text().splitlines()]
    assert not {r.get("pub_number") for r in kept} & set(chosen)
    assert f"rows written to {out} (dropped: misaligned, 3 publications flagged)" in result.stderr
    line = one_error_line(invoke("check-data", data, "--drop-publications"))
    assert "--drop-publications leaves out rows of --write-clean OUT" in line


def test_the_lexical_anchors_and_the_binomial_law() -> None:
    pair = Example("The biomass of Atlantic cod rose 12% in 2019.", "La biomasse de la morue franche a augmenté de "
                   "12 % en 2019.", "en", "fr", None, 1)  # fmt: skip
    matched, total = lexical_anchors(pair)
    assert total >= 8 and matched / total >= 0.5
    wrong = Example(pair.source, "Les pêcheurs ont signalé une saison difficile.", "en", "fr", None, 2)
    assert lexical_anchors(wrong)[0] == 0
    assert binomial_cdf(0, 10, 0.5) == pytest.approx(0.5**10) and binomial_sf(10, 10, 0.5) == pytest.approx(0.5**10)
    rows = [Example("a", "b", "en", "fr", "P1" if i < 10 else "P2", i) for i in range(40)]
    found, rate = publication_summary(rows, set(range(10)))
    assert [f.publication for f in found] == ["P1"] and rate == 0.25


def test_what_a_user_of_real_corpora_meets(tmp_path: Path) -> None:
    """UTF-16 without its mark, blank lines at one file's end, one-sided lines in check-data's overview, a
    hypothesis file with a line per source line, a --publication-from that finds nothing."""
    (tmp_path / "u.en").write_bytes("Hello.\nWorld.\n".encode("utf-16-le"))
    (tmp_path / "u.fr").write_bytes("Salut.\nMonde.\n".encode("utf-16-le"))
    line = one_error_line(invoke("convert", f"{tmp_path / 'u.en'},{tmp_path / 'u.fr'}", tmp_path / "x.jsonl"))
    assert line.endswith("u.en:1: looks like UTF-16 without a byte order mark: save it as UTF-8 (or UTF-16 with its "
                         "mark)")  # fmt: skip
    (tmp_path / "t.en").write_text("The stock grew.\n\nOnly English.\nThe survey ended.\n\n\n", encoding="utf-8")
    (tmp_path / "t.fr").write_text("Le stock a augmenté.\n\n\nLe relevé a pris fin.\n", encoding="utf-8")
    pairs = f"{tmp_path / 't.en'},{tmp_path / 't.fr'}"
    overview = invoke("check-data", pairs).stdout.splitlines()[0]
    assert "2 rows (2 en->fr, 0 fr->en); 1 line with text on one side only skipped" in overview
    hypotheses = tmp_path / "hyp.txt"  # one line per line of the source file, as sacrebleu takes them
    hypotheses.write_text("Le stock a augmenté.\n\nSeulement.\nLe relevé a pris fin.\n", encoding="utf-8")
    scored = json.loads(invoke("evaluate", "--data", pairs, "--translations", hypotheses, "--source-lang", "en",
                               "--json").stdout)  # fmt: skip
    assert scored["n"] == 2 and scored["chrf"] == 100.0
    memory = tico_memory(tmp_path / "tico.tmx", documents=2, rows=3)
    text = invoke("check-data", memory, "--publication-from", "prop:Txt::DocNo").stdout.splitlines()[0]
    assert ("warning: --publication-from prop:Txt::DocNo: 6 units without a publication, no such prop (the units' "
            "props: Txt::Doc. No.)") in text  # fmt: skip


def test_tsv_rows_may_leave_out_trailing_columns(tmp_path: Path) -> None:
    path = tmp_path / "a.tsv"
    path.write_text('English\tFrench\tNotes\nThe stock.\tLe stock.\n""\tVide.\tx\n', encoding="utf-8")
    assert [(ex.source, ex.target) for ex in read_pairs(path)] == [("The stock.", "Le stock."), ("", "Vide.")]


def test_drop_publications_alone_and_the_both_directions_hint(tmp_path: Path) -> None:
    data = tmp_path / "shuffled.jsonl"
    chosen = shuffled_sample(data, limit=30)
    out = tmp_path / "clean.jsonl"
    result = invoke("check-data", data, "--write-clean", out, "--drop-publications")
    assert result.exit_code == 0, result.output
    kept = [json.loads(line) for line in out.read_text().splitlines()]
    assert not {r["pub_number"] for r in kept} & set(chosen) and "(dropped: 3 publications flagged)" in result.stderr
    english = write_jsonl(tmp_path / "en.jsonl", [r for r in sample_rows() if r["source_lang"] == "en"][:20])
    line = one_error_line(invoke("finetune", "--which", "opus_mt_fr_en", "--data", english, "--dry-run"))
    assert line.endswith("20 with another source_lang, 0 with empty source or target; --both-directions trains on "
                         "them reversed)")  # fmt: skip


def test_a_models_flag_needs_the_lexical_check_not_to_vouch_for_the_pair() -> None:
    from csas_cli.data.alignment import misaligned

    rows = [Example(f"The biomass of cod rose {i}% in 20{i:02d}.", f"La biomasse de la morue a augmenté de {i} % en "
                    f"20{i:02d}.", "en", "fr", None, i) for i in range(1, 30)]  # fmt: skip
    scores = {i: 1.0 + 0.01 * i for i in range(len(rows))}
    scores[5] = 50.0  # the model's outlier, a pair the lexical check finds well anchored
    found = misaligned(rows, list(range(len(rows))), scores)
    assert found.threshold is not None and 5 not in found.details
