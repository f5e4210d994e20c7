"""Tests for csas_cli.commands.evaluate (and csas_cli.inference.scoring) and `csas evaluate`: sacrebleu scores and
signatures, the JSON shapes, agreement with sacrebleu run on `csas translate`'s output, --compare-base, --hypotheses
and the refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sacrebleu
from helpers import SAMPLE, invoke, one_error_line

from csas_cli.commands import evaluate
from csas_cli.commands.evaluate import Report, Scores
from csas_cli.inference.scoring import score

FAST = ["--num-beams", "1", "--max-new-tokens", "24", "--batch-size", "4"]
LIMIT = 6
SCORE_KEYS = {"model", "which", "direction", "n", "bleu", "chrf", "bleu_signature", "chrf_signature", "quality",
              "apply_glossary", "term_constraints"}
"""Every report has quality flags; "terms" comes with --glossary."""


def test_score_is_sacrebleus_corpus_bleu_and_chrf():
    hyps = ["Le stock est dans la zone critique.", "Aucun relevé en 2009.", ""]
    refs = ["Le stock se trouve dans la zone critique.", "Aucun relevé n'a été effectué en 2009.", "Bonjour."]
    bleu, chrf, bleu_sig, chrf_sig = score(hyps, refs)
    assert bleu == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    assert chrf == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score)
    assert bleu_sig.startswith("nrefs:1|case:mixed|") and "tok:13a" in bleu_sig
    assert bleu_sig.endswith(f"version:{sacrebleu.__version__}")
    assert chrf_sig.startswith("nrefs:1|case:mixed|") and "nc:6" in chrf_sig
    assert score(refs, refs)[:2] == (pytest.approx(100.0), pytest.approx(100.0))
    with pytest.raises(ValueError):
        score(hyps, refs[:2])
    assert evaluate.score is score  # csas evaluate and evaluation during training score alike


def test_report_json_shapes():
    tuned = Scores("run", "opus_mt_en_fr", "en->fr", 3, 30.0, 50.0, "b", "c")
    base = Scores("base", "opus_mt_en_fr", "en->fr", 3, 20.0, 55.0, "b", "c")
    assert Report(tuned).to_dict() == {"model": "run", "which": "opus_mt_en_fr", "direction": "en->fr", "n": 3,
                                      "bleu": 30.0, "chrf": 50.0, "bleu_signature": "b", "chrf_signature": "c",
                                      "quality": None, "apply_glossary": False,
                                      "term_constraints": False}  # fmt: skip
    both = Report(tuned, base).to_dict()
    assert set(both) == {"base", "tuned", "delta"}
    assert both["delta"] == {"bleu": 10.0, "chrf": -5.0}


@pytest.fixture(scope="module")
def en_pairs(tmp_path_factory) -> Path:
    """A pairs file whose first rows are French-source (skipped for an en->fr model), then English-source ones."""
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    fr = [r for r in rows if r["source_lang"] == "fr"][:3]
    en = [r for r in rows if r["source_lang"] == "en"][:LIMIT + 4]
    path = tmp_path_factory.mktemp("evaluate") / "pairs.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in fr + en), encoding="utf-8")
    return path


@pytest.mark.slow
def test_evaluate_json_agrees_with_sacrebleu_on_translate_output(tiny_runs, en_pairs, tmp_path):
    run = tiny_runs("opus_mt_en_fr")
    hyp_file = tmp_path / "hyps.txt"
    result = invoke("evaluate", "--data", en_pairs, "-m", run, "--limit", LIMIT, "--json", "--hypotheses", hyp_file,
                    *FAST)  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == SCORE_KEYS
    assert report["n"] == LIMIT and report["which"] == "opus_mt_en_fr" and report["direction"] == "en->fr"
    assert report["model"] == str(run)

    # The same rows, through `csas translate` and sacrebleu itself.
    rows = [json.loads(line) for line in en_pairs.read_text(encoding="utf-8").splitlines()]
    en = [r for r in rows if r["source_lang"] == "en"][:LIMIT]
    subset = tmp_path / "subset.jsonl"
    subset.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in en), encoding="utf-8")
    translated = invoke("translate", subset, "-m", run, *FAST)
    assert translated.exit_code == 0, translated.output
    hyps = translated.stdout.splitlines()
    refs = [r["target"] for r in en]
    assert len(hyps) == LIMIT
    assert report["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score, abs=0.01)
    assert report["chrf"] == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score, abs=0.01)
    bleu, chrf = sacrebleu.BLEU(), sacrebleu.CHRF()
    bleu.corpus_score(hyps, [refs]), chrf.corpus_score(hyps, [refs])
    assert report["bleu_signature"] == str(bleu.get_signature())
    assert report["chrf_signature"] == str(chrf.get_signature())
    assert hyp_file.read_text(encoding="utf-8").splitlines() == hyps


@pytest.mark.slow
def test_compare_base_scores_both_side_by_side(tiny_runs, tiny_models, en_pairs):
    run = tiny_runs("mbart50_mmt_fr")
    result = invoke("evaluate", "--data", en_pairs, "-m", run, "--limit", 4, "--json", "--compare-base", *FAST)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == {"base", "tuned", "delta"}
    assert set(report["base"]) == set(report["tuned"]) == SCORE_KEYS
    assert report["base"]["model"] == str(tiny_models["mbart50_mmt_fr"]) and report["tuned"]["model"] == str(run)
    assert report["base"]["n"] == report["tuned"]["n"] == 4
    for metric in ("bleu", "chrf"):
        assert report["delta"][metric] == pytest.approx(report["tuned"][metric] - report["base"][metric])
    # The base alone, scored directly, gives the base column.
    alone = invoke("evaluate", "--data", en_pairs, "--which", "mbart50_mmt_fr", "--model-id",
                   tiny_models["mbart50_mmt_fr"], "--limit", 4, "--json", *FAST)  # fmt: skip
    assert json.loads(alone.stdout)["chrf"] == pytest.approx(report["base"]["chrf"])


@pytest.mark.slow
def test_human_output_is_a_table_with_signatures(tiny_runs, en_pairs):
    result = invoke("evaluate", "--data", en_pairs, "-m", tiny_runs("opus_mt_en_fr"), "--limit", 2, *FAST)
    assert result.exit_code == 0, result.output
    assert "BLEU" in result.stdout and "chrF" in result.stdout and "en->fr" in result.stdout
    assert "BLEU nrefs:1|" in result.stdout and "chrF nrefs:1|" in result.stdout


@pytest.mark.slow
def test_human_compare_base_ends_with_the_before_after_line(tiny_runs, en_pairs):
    args = ["--data", en_pairs, "-m", tiny_runs("opus_mt_en_fr"), "--limit", 3, *FAST]
    human = invoke("evaluate", *args, "--compare-base")
    scores = json.loads(invoke("evaluate", *args, "--compare-base", "--json").stdout)
    assert human.exit_code == 0, human.output
    before, after = scores["base"]["chrf"], scores["tuned"]["chrf"]
    assert human.stdout.splitlines()[-1] == f"chrF before -> after: {before:.1f} -> {after:.1f}"


@pytest.mark.slow
def test_m2m100_scores_the_chosen_direction(tiny_runs, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    rows = [{"source": "Aucun relevé n'a été effectué en 2009.", "target": "No survey was conducted in 2009.",
             "source_lang": "fr"}, {"source": "Hello.", "target": "Bonjour.", "source_lang": "en"}]  # fmt: skip
    pairs.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    result = invoke("evaluate", "--data", pairs, "-m", tiny_runs("m2m100_418m"), "--source-lang", "fr", "--json", *FAST)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["direction"] == "fr->en" and report["n"] == 1


@pytest.mark.parametrize("case", ["limit-zero", "no-rows", "compare-base-of-base", "m2m100-no-lang", "hypotheses-exist",
                                  "bad-data"])  # fmt: skip
def test_bad_input_is_one_error_line(tiny_runs, tiny_models, en_pairs, tmp_path, case):
    args = ["evaluate", "--data", en_pairs, *FAST]
    if case == "limit-zero":
        args += ["-m", tiny_runs("opus_mt_en_fr"), "--limit", "0"]
        message = "--limit must be at least 1"
    elif case == "no-rows":
        args += ["--which", "opus_mt_fr_en", "--model-id", tiny_models["opus_mt_fr_en"]]
        fr_only = tmp_path / "en_only.jsonl"
        fr_only.write_text('{"source": "Hi.", "target": "Salut.", "source_lang": "en"}\n')
        args[2] = fr_only
        message = "no rows with source_lang fr"
    elif case == "compare-base-of-base":
        args += ["--which", "opus_mt_en_fr", "--model-id", tiny_models["opus_mt_en_fr"], "--compare-base"]
        message = "--compare-base: the model is already a base model"
    elif case == "m2m100-no-lang":
        args += ["-m", tiny_runs("m2m100_418m")]
        message = "--source-lang: m2m100_418m translates both ways"
    elif case == "hypotheses-exist":
        existing = tmp_path / "h.txt"
        existing.write_text("keep\n")
        args += ["-m", tiny_runs("opus_mt_en_fr"), "--hypotheses", existing]
        message = f"--hypotheses {existing}: exists; pass --overwrite"
    else:
        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"source": "a", "target": "b", "source_lang": "en"}\n{"source": 3}\n')
        args[2] = bad
        args += ["-m", tiny_runs("opus_mt_en_fr")]
        message = "bad.jsonl:2: missing field 'target'"
    assert message in one_error_line(invoke(*args))
