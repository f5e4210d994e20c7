"""Tests for csas_cli.commands.translate and `csas translate`: readers of text, stdin and JSON Lines, one output
line per input line, and the command's refusals."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from helpers import invoke, one_error_line
from typer.testing import CliRunner

from csas_cli.cli import app
from csas_cli.commands.translate import decode_text, read_sources
from csas_cli.errors import DataError
from csas_cli.languages import Direction

EN_FR = Direction("en", "fr")
FAST = ["--num-beams", "1", "--max-new-tokens", "24", "--batch-size", "3"]


# --- pure pieces ---------------------------------------------------------------------------------------------------


def test_decode_text_handles_bom_crlf_and_a_missing_final_newline():
    assert decode_text("f", b"\xef\xbb\xbfone\r\n\r\nthree") == ["one", "", "three"]
    assert decode_text("f", b"one\n\n") == ["one", ""]
    assert decode_text("f", b"") == []


def test_invalid_utf8_names_the_file_and_line():
    with pytest.raises(DataError, match=r"^in.txt:2: invalid UTF-8 at byte 3"):
        decode_text("in.txt", b"ok\nab\xff\n")


def test_read_sources_from_text_jsonl_and_stdin(tmp_path):
    text = tmp_path / "in.txt"
    text.write_text("one\n\ntwo\n", encoding="utf-8")
    assert read_sources(str(text), EN_FR) == ["one", "", "two"]
    pairs = tmp_path / "in.jsonl"
    rows = [{"source": "one", "target": "un", "source_lang": "en"}, {"source": "two"}]
    pairs.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    assert read_sources(str(pairs), EN_FR) == ["one", "two"]
    stdin = io.TextIOWrapper(io.BytesIO("é\nx\n".encode()), encoding="utf-8")
    assert read_sources("-", EN_FR, stdin=stdin) == ["é", "x"]


@pytest.mark.parametrize("content, message", [
    ('{"source": "a"}\nnot json\n', r"in.jsonl:2: invalid JSON"),
    ('{"target": "a"}\n', r"in.jsonl:1: expected an object with a string field 'source'"),
    ('["a"]\n', r"in.jsonl:1: expected an object"),
    ('{"source": "a", "source_lang": "fr"}\n', r"in.jsonl:1: source_lang 'fr', but the model translates en->fr"),
    ("\n\n", r"in.jsonl: no rows"),
])  # fmt: skip
def test_bad_jsonl_names_the_file_and_line(tmp_path, content, message):
    path = tmp_path / "in.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        read_sources(str(path), EN_FR)


def test_a_regional_source_lang_in_jsonl_is_its_language(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"source": "one", "source_lang": "en-CA"}\n{"source": "two", "source_lang": "EN_us"}\n')
    assert read_sources(str(pairs), EN_FR) == ["one", "two"]
    with pytest.raises(DataError, match="source_lang 'en-CA', but the model translates fr->en"):
        read_sources(str(pairs), Direction("fr", "en"))


def test_read_sources_from_a_translation_memory_and_tsv(tmp_path):
    tmx = tmp_path / "memory.tmx"
    tmx.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<tmx version="1.4"><header srclang="en-CA" datatype="plaintext"/>'
        "<body>\n"
        '<tu><tuv xml:lang="en-CA"><seg>The <bpt i="1">&lt;b&gt;</bpt>stock<ept i="1">&lt;/b&gt;</ept> grew.</seg>'
        '</tuv><tuv xml:lang="fr-CA"><seg>Le stock a augmenté.</seg></tuv></tu>\n'
        '<tu srclang="fr-CA"><tuv xml:lang="en-CA"><seg>No.</seg></tuv><tuv xml:lang="fr-CA"><seg>Non.</seg></tuv>'
        "</tu>\n"
        '<tu srclang="*all*"><tuv xml:lang="EN"><seg>Table 3</seg></tuv><tuv xml:lang="FR"><seg>Tableau 3</seg>'
        "</tuv></tu>\n</body></tmx>\n",
        encoding="utf-8",
    )
    assert read_sources(str(tmx), EN_FR) == ["The stock grew.", "Table 3"]
    assert read_sources(str(tmx), Direction("fr", "en")) == ["Non.", "Tableau 3"]
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("source\ttarget\tsource_lang\nBonjour\tHello\tfr\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"pairs\.tsv: no rows with source language en \(the model translates en->fr\)"):
        read_sources(str(tsv), EN_FR)


def test_missing_input_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_sources(str(tmp_path / "nope.txt"), EN_FR)
    with pytest.raises(DataError, match="is a directory"):
        read_sources(str(tmp_path), EN_FR)


# --- the command ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sentences(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("translate") / "in.txt"
    path.write_text(
        "The stock is in the critical zone.\n\nNo survey was conducted in 2009.\nCatches were low.\r\n",
        encoding="utf-8",
    )
    return path


@pytest.mark.slow
def test_translate_a_file_from_a_run(tiny_runs, sentences, tmp_path):
    run = tiny_runs("opus_mt_en_fr")
    out = tmp_path / "out.txt"
    result = invoke("translate", sentences, "--model", run, "--output", out, *FAST)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    lines = out.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "" and len(lines[:-1]) == 4
    assert lines[1] == "" and all(lines[i].strip() for i in (0, 2, 3))
    # stdin and stdout give the same lines; so does the same text as .jsonl pairs (without the empty line)
    piped = CliRunner().invoke(app, ["translate", "-", "-m", str(run), *FAST], input=sentences.read_bytes())
    assert piped.exit_code == 0, piped.output
    assert piped.stdout == out.read_text(encoding="utf-8")
    pairs = tmp_path / "in.jsonl"
    kept = [line for line in sentences.read_text(encoding="utf-8").splitlines() if line.strip()]
    pairs.write_text("".join(json.dumps({"source": s, "source_lang": "en"}) + "\n" for s in kept), encoding="utf-8")
    from_jsonl = invoke("translate", pairs, "-m", run, *FAST)
    assert from_jsonl.stdout.splitlines() == [line for line in lines[:-1] if line]


def test_translate_with_a_base_model_alone_differs_from_the_run(tiny_runs, tiny_models, sentences):
    run = invoke("translate", sentences, "-m", tiny_runs("mbart50_mmt_fr"), *FAST)
    base = invoke("translate", sentences, "--which", "mbart50_mmt_fr", "--model-id", tiny_models["mbart50_mmt_fr"],
                  *FAST)  # fmt: skip
    assert run.exit_code == 0 and base.exit_code == 0, base.output
    assert len(run.stdout.splitlines()) == len(base.stdout.splitlines()) == 4
    assert run.stdout != base.stdout, "the adapter changes the translations"


def test_m2m100_translates_both_ways_with_source_lang(tiny_runs, tmp_path):
    run = tiny_runs("m2m100_418m")
    fr = tmp_path / "fr.txt"
    fr.write_text("Aucun relevé n'a été effectué en 2009.\n", encoding="utf-8")
    result = invoke("translate", fr, "-m", run, "--source-lang", "fr", *FAST)
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 1 and "__en__" not in result.stdout
    missing = invoke("translate", fr, "-m", run, *FAST)
    assert "--source-lang: m2m100_418m translates both ways" in one_error_line(missing)


def test_existing_output_is_kept_without_overwrite(tiny_runs, sentences, tmp_path):
    out = tmp_path / "out.txt"
    out.write_text("keep me\n")
    result = invoke("translate", sentences, "-m", tiny_runs("opus_mt_en_fr"), "-o", out, *FAST)
    assert "exists; pass --overwrite" in one_error_line(result)
    assert out.read_text() == "keep me\n"
    replaced = invoke("translate", sentences, "-m", tiny_runs("opus_mt_en_fr"), "-o", out, "--overwrite", *FAST)
    assert replaced.exit_code == 0 and len(out.read_text().splitlines()) == 4


@pytest.mark.parametrize("case", ["missing-run", "unfinished", "no-lora", "no-model", "bad-input", "same-file",
                                  "bad-beams", "wrong-language-row"])  # fmt: skip
def test_bad_input_is_one_error_line(tiny_runs, sentences, tmp_path, case):
    run = tiny_runs("opus_mt_en_fr")
    args, message = ["translate", sentences, "-m", run], ""
    if case == "missing-run":
        args[3], message = tmp_path / "nope", "--model {p}: no such directory"
    elif case in ("unfinished", "no-lora"):
        copy = tmp_path / "run"
        copy.mkdir()
        dropped = "finished.json" if case == "unfinished" else "lora"
        for item in run.iterdir():
            if item.name != dropped:
                (copy / item.name).symlink_to(item)
        args[3] = copy
        message = "an unfinished run (no finished.json)" if case == "unfinished" else "no adapter (lora/"
    elif case == "no-model":
        args, message = ["translate", sentences], "pass --model RUN_OR_MERGED_DIR, or --which KEY"
    elif case == "bad-input":
        args[1], message = tmp_path / "missing.txt", "missing.txt: file not found"
    elif case == "same-file":
        args += ["-o", sentences, "--overwrite"]
        message = "the same file as the input"
    elif case == "bad-beams":
        args += ["--num-beams", "0"]
        message = "--num-beams must be at least 1"
    elif case == "wrong-language-row":
        rows = tmp_path / "rows.jsonl"
        rows.write_text('{"source": "a", "source_lang": "en"}\n{"source": "b", "source_lang": "fr"}\n')
        args[1], message = rows, "rows.jsonl:2: source_lang 'fr', but the model translates en->fr"
    line = one_error_line(invoke(*args))
    assert message.format(p=args[3] if len(args) > 3 else "") in line


def test_a_runs_best_adapter_is_used_when_named(tiny_runs, tiny_models, sentences, tmp_path):
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    run = tmp_path / "run"
    shutil.copytree(tiny_runs("mbart50_mmt_fr"), run)
    # A best/ that tells itself apart: with every lora_B zero the adapter changes nothing, so it translates as the base.
    shutil.copytree(run / "lora", run / "best", dirs_exist_ok=True)
    weights = run / "best" / "adapter_model.safetensors"
    tensors = load_file(str(weights))
    save_file({k: torch.zeros_like(v) if "lora_B" in k else v for k, v in tensors.items()}, str(weights))
    best = invoke("translate", sentences, "-m", run / "best", *FAST)
    last = invoke("translate", sentences, "-m", run / "lora", *FAST)
    plain = invoke("translate", sentences, "-m", run, *FAST)
    base = invoke("translate", sentences, "--which", "mbart50_mmt_fr", "--model-id", tiny_models["mbart50_mmt_fr"],
                  *FAST)  # fmt: skip
    assert all(r.exit_code == 0 for r in (best, last, plain, base)), best.output
    assert best.stdout == base.stdout
    assert last.stdout == plain.stdout != best.stdout

