"""csas export (CTranslate2) and translate/evaluate with an exported directory, through the real CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import invoke, one_error_line

from csas_cli.shipped import HELDOUT_PAIRS
from csas_cli.inference.ctranslate import decoding_settings
from csas_cli.inference.source import EXPORTED, is_exported, resolve_source

pytest.importorskip("ctranslate2")

SOURCE_LANG = {"opus_mt_en_fr": "en", "m2m100_418m": "fr", "mbart50_mmt_fr": "en"}
"""One direction per family (M2M100 goes both ways: its French rows)."""


def sentences(tmp_path: Path, text: str = "The stock declined.\n") -> Path:
    path = tmp_path / "sentences.txt"
    path.write_text(text)
    return path


def export(model: Path, out: Path, *args: str) -> dict:
    result = invoke("export", model, out, *args)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"exported: {out}\n"
    return json.loads((out / "csas_export.json").read_text())


def hypotheses(model: Path, tmp_path: Path, name: str, *args: object) -> tuple[list[str], dict]:
    path = tmp_path / f"{name}.txt"
    result = invoke("evaluate", "--model", model, "--data", HELDOUT_PAIRS, "--hypotheses", path, "--json",
                    "--max-new-tokens", "64", *args)  # fmt: skip
    assert result.exit_code == 0, result.output
    return path.read_text(encoding="utf-8").split("\n")[:-1], json.loads(result.stdout)


@pytest.fixture(scope="module")
def opus_export(tiny_models, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "opus-f32"
    export(tiny_models["opus_mt_en_fr"], out, "--which", "opus_mt_en_fr", "--quantization", "float32")
    return out


def test_decoding_settings_follow_the_generation_config() -> None:
    tokenizer = SimpleNamespace(convert_ids_to_tokens=lambda ids: [f"<{i}>" for i in ids])
    marian = SimpleNamespace(bad_words_ids=[[1499]], forced_eos_token_id=0, length_penalty=None, early_stopping=None)
    assert decoding_settings(marian, tokenizer) == {
        "length_penalty": 1.0, "repetition_penalty": 1.0, "no_repeat_ngram_size": 0, "patience": 3.0,
        "suppress_sequences": [["<1499>"]], "forced_end": True}  # fmt: skip
    m2m = SimpleNamespace(early_stopping=True, length_penalty=0.8, no_repeat_ngram_size=3)
    found = decoding_settings(m2m, tokenizer)
    assert (found["patience"], found["length_penalty"], found["no_repeat_ngram_size"], found["forced_end"]) == (
        1.0, 0.8, 3, False)  # fmt: skip


@pytest.mark.slow
def test_an_export_records_what_it_is_and_is_found_by_its_files(opus_export: Path) -> None:
    record = json.loads((opus_export / "csas_export.json").read_text())
    assert (record["which"], record["format"], record["quantization"]) == ("opus_mt_en_fr", "ctranslate2", "float32")
    assert record["decoding"]["suppress_sequences"] == [["<pad>"]] and record["decoding"]["forced_end"] is True
    assert record["probe"]["sentences"] == 16 and record["probe"]["chrf_against_generate"] >= 90
    assert {"model.bin", "config.json", "shared_vocabulary.json", "tokenizer_config.json", "source.spm"} <= {
        p.name for p in opus_export.iterdir()}  # fmt: skip
    assert is_exported(opus_export)
    source = resolve_source(opus_export, None, None)
    assert (source.kind, source.which) == (EXPORTED, "opus_mt_en_fr")


def test_translate_with_an_export_keeps_lines_and_order(opus_export: Path, tiny_models, tmp_path: Path) -> None:
    text = tmp_path / "in.txt"
    text.write_text("The stock declined in 2023.\n\nCatches rose.\nThe spawning stock biomass is in the Critical "
                    "Zone.\n")  # fmt: skip
    fast = invoke("translate", text, "--model", opus_export, "--threads", "2")
    slow = invoke("translate", text, "--which", "opus_mt_en_fr", "--model-id", tiny_models["opus_mt_en_fr"])
    assert fast.exit_code == 0, fast.output
    lines = fast.stdout.split("\n")
    assert len(lines) == 5 and lines[1] == "" and lines[4] == ""
    assert fast.stdout == slow.stdout  # float32: the same translations as generate's on these


@pytest.mark.slow
def test_evaluate_an_export_gives_the_same_fields(opus_export: Path, tiny_models, tmp_path: Path) -> None:
    _, fast = hypotheses(opus_export, tmp_path, "fast", "--limit", "10")
    _, slow = hypotheses(Path(tiny_models["opus_mt_en_fr"]), tmp_path, "slow", "--limit", "10", "--which",
                         "opus_mt_en_fr")  # fmt: skip
    assert set(fast) == set(slow) and fast["which"] == "opus_mt_en_fr" and fast["n"] == 10


@pytest.mark.parametrize(
    "damage,message",
    [
        ("model.bin", "an exported model without model.bin"),
        ("shared_vocabulary.json", "an exported model without shared_vocabulary.json"),
        ("tokenizer_config.json", "an exported model without its tokenizer (tokenizer_config.json)"),
    ],
)
def test_a_damaged_export_is_refused_in_one_line(opus_export: Path, tmp_path: Path, damage: str, message: str) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(opus_export, broken)
    (broken / damage).unlink()
    line = one_error_line(invoke("translate", sentences(tmp_path), "--model", broken))
    assert line == f"csas: error: --model {broken}: {message}; " + line.split("; ", 1)[1]


def test_an_export_of_another_family_is_refused(opus_export: Path, tmp_path: Path) -> None:
    line = one_error_line(invoke("translate", sentences(tmp_path), "--model", opus_export, "--which", "m2m100_418m"))
    assert line == f"csas: error: --which m2m100_418m: {opus_export} is an exported model of opus_mt_en_fr"
    import shutil

    foreign = tmp_path / "foreign"
    shutil.copytree(opus_export, foreign)
    (foreign / "csas_export.json").unlink()  # a CTranslate2 export csas did not write: --which says what it is
    assert "pass --which KEY" in one_error_line(invoke("translate", sentences(tmp_path), "--model", foreign))
    line = one_error_line(invoke("translate", sentences(tmp_path), "--model", foreign, "--which",
                                 "mbart50_mmt_fr"))  # fmt: skip
    assert line.startswith(f"csas: error: --model {foreign}: no MBart50Tokenizer files")


def test_export_refuses_what_it_cannot_do(opus_export: Path, tiny_models, tmp_path: Path, monkeypatch) -> None:
    model = tiny_models["opus_mt_en_fr"]
    assert "already an exported model" in one_error_line(invoke("export", opus_export, tmp_path / "again"))
    assert "--quantization: expected one of int8, int8_float16, float16, float32, got 'int4'" in one_error_line(
        invoke("export", model, tmp_path / "x", "--which", "opus_mt_en_fr", "--quantization", "int4"))
    assert "--format: expected one of ctranslate2, got 'onnx'" in one_error_line(
        invoke("export", model, tmp_path / "x", "--which", "opus_mt_en_fr", "--format", "onnx"))
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    assert "exists and is not empty; pass --overwrite" in one_error_line(
        invoke("export", model, taken, "--which", "opus_mt_en_fr"))
    assert (taken / "keep.txt").read_text() == "mine"
    monkeypatch.setitem(sys.modules, "ctranslate2", None)  # not installed
    line = one_error_line(invoke("export", model, tmp_path / "y", "--which", "opus_mt_en_fr"))
    assert line == "csas: error: CTranslate2 is not installed: pip install 'csas[fast]' (or pip install ctranslate2)"


@pytest.mark.slow
def test_a_conversion_that_does_not_translate_as_generate_is_not_saved(tiny_models, tmp_path: Path, monkeypatch):
    """CTranslate2's own Marian loader starts the decoder from a zero vector; the tiny model's pad row is not zero,
    so that export translates differently, and the probe refuses it."""
    import contextlib

    from csas_cli.inference import ctranslate

    monkeypatch.setattr(ctranslate, "csas_loaders", contextlib.nullcontext)
    out = tmp_path / "stock-loader"
    result = invoke("export", tiny_models["opus_mt_en_fr"], out, "--which", "opus_mt_en_fr", "--quantization", "float32")
    assert result.exit_code == 2 and "Traceback" not in result.output
    line = result.stderr.splitlines()[-1]
    assert "the float32 export does not translate as the merged model does" in line and "nothing was saved" in line
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == []


@pytest.mark.slow
def test_export_a_run_merges_it_first(tiny_runs, tmp_path: Path) -> None:
    run = tiny_runs("opus_mt_en_fr")
    out = tmp_path / "run-int8"
    record = export(run, out)
    assert record["quantization"] == "int8" and record["run_dir"] == str(run.resolve())
    assert record["adapter_sha256"] and record["merged_model"] is None
    assert [p.name for p in tmp_path.iterdir()] == ["run-int8"]  # the temporary merge is gone
    result = invoke("translate", sentences(tmp_path), "--model", out)
    assert result.exit_code == 0 and result.stdout.strip()


@pytest.mark.slow
@pytest.mark.parametrize("key", ["opus_mt_en_fr", "m2m100_418m", "mbart50_mmt_fr"])
def test_exports_translate_the_heldout_rows_as_generate_does(key: str, tiny_models, tmp_path: Path) -> None:
    """float32: at least 95% of the sentences identical to generate's, chrF within 1.0; int8: chrF within 2.0 (the
    int8 kernels CTranslate2 picks depend on the CPU's instruction set: on an AVX2-only EPYC the tiny M2M100 and
    mBART-50 exports land 1.5 chrF from generate, within 1.0 on other machines)."""
    lang = ["--source-lang", SOURCE_LANG[key]]
    wanted, reference = hypotheses(Path(tiny_models[key]), tmp_path, "generate", "--which", key, *lang)
    for quantization, within in (("float32", 1.0), ("int8", 2.0)):
        out = tmp_path / quantization
        export(tiny_models[key], out, "--which", key, "--quantization", quantization)
        got, scores = hypotheses(out, tmp_path, quantization, *lang)
        assert abs(scores["chrf"] - reference["chrf"]) <= within, (quantization, scores["chrf"], reference["chrf"])
        if quantization == "float32":
            identical = sum(a == b for a, b in zip(got, wanted))
            assert identical >= 0.95 * len(wanted), (identical, len(wanted))


# --- scripts/bench_translate.py --------------------------------------------------------------------------------------

BENCH = Path(__file__).resolve().parents[2] / "scripts" / "bench_translate.py"


def run_bench(*args: str):
    import os
    import subprocess

    return subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, check=False)  # fmt: skip


@pytest.mark.slow
def test_bench_translate_reports_both_engines_and_ends_with_the_speedup() -> None:
    proc = run_bench("--which", "opus_mt_en_fr", "--quantization", "int8", "--sentences", "16", "--rounds", "1")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("tiny opus_mt_en_fr (en->fr, 16 sentences); beam 4, batches of 16, cpu, export int8")
    assert lines[1].startswith("generate") and "chrF" in lines[1]
    assert lines[2].startswith("ctranslate2") and "/16 as generate" in lines[2]
    assert lines[-1].startswith("speedup: ") and lines[-1].endswith("x") and float(lines[-1][9:-1]) > 0


@pytest.mark.slow
def test_bench_translate_random_init_converts_a_random_architecture() -> None:
    proc = run_bench("--random-init", "--preset", "tiny", "--sentences", "8", "--rounds", "1", "--decode-length", "6")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("random tiny (8 synthetic sources, 6 tokens each)")
    assert lines[-1].startswith("speedup: ")
    # exactly 6 tokens for each of the 8 sentences, in both engines
    for line in lines[1:3]:
        rate, tokens = float(line.split()[1]), float(line.split()[3])
        assert tokens == pytest.approx(6 * rate, rel=2e-3)  # both printed to one decimal


def test_device_and_threads_are_checked(opus_export: Path, tmp_path: Path) -> None:
    import torch

    if not torch.cuda.is_available():
        line = one_error_line(invoke("translate", sentences(tmp_path), "--model", opus_export, "--device", "cuda"))
        assert line == "csas: error: --device cuda: no CUDA device is visible here; pass --device cpu"
    line = one_error_line(invoke("translate", sentences(tmp_path), "--model", opus_export, "--device", "tpu"))
    assert line == "csas: error: --device: expected one of auto, cpu, cuda, got 'tpu'"
    line = one_error_line(invoke("evaluate", "--data", HELDOUT_PAIRS, "--model", opus_export, "--threads", "-1"))
    assert line == "csas: error: --threads must be at least 0, got -1"
