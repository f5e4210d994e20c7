"""Tests for csas_cli.translate and `csas translate`: readers, length-sorted batching with order restored, one output
line per input line, and the command's refusals."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from csas_cli.cli import app
from csas_cli.errors import DataError, OutputError
from csas_cli.inference import Direction, GenerationSettings
from csas_cli.translate import (
    check_output_file,
    decode_text,
    fit_length,
    length_sorted_batches,
    read_sources,
    single_line,
    translate_texts,
    write_lines,
)
from tiny_runs import invoke, one_error_line, tiny_runs  # noqa: F401 - tiny_runs is a fixture

EN_FR = Direction("en", "fr")
FAST = ["--num-beams", "1", "--max-new-tokens", "24", "--batch-size", "3"]


# --- pure pieces ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lengths, size", [([], 2), ([5], 1), ([3, 9, 1, 9, 4, 7, 2], 3), ([2] * 5, 2), ([1, 2, 3], 10)]
)
def test_length_sorted_batches_cover_every_index_once_longest_first(lengths, size):
    batches = length_sorted_batches(lengths, size)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    assert all(len(b) == size for b in batches[:-1]) and all(0 < len(b) <= size for b in batches)
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)
    for b in batches:  # ties keep input order
        assert [i for i in b if lengths[i] == lengths[b[0]]] == sorted(i for i in b if lengths[i] == lengths[b[0]])


def test_length_sorted_batches_rejects_a_zero_batch():
    with pytest.raises(ValueError):
        length_sorted_batches([1], 0)


def test_fit_length_keeps_the_closing_token():
    assert fit_length([5, 6, 7, 2], 10) == [5, 6, 7, 2]
    assert fit_length([5, 6, 7, 8, 2], 3) == [5, 6, 2]


@pytest.mark.parametrize("text, want", [
    ("Bonjour.", "Bonjour."), ("a\nb", "a b"), ("a\r\nb", "a  b"), ("  x\u2028y\x85z ", "x y z"), ("\n", ""),
])  # fmt: skip
def test_single_line(text, want):
    assert single_line(text) == want
    assert len(single_line(text).splitlines()) <= 1


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


def test_missing_input_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_sources(str(tmp_path / "nope.txt"), EN_FR)
    with pytest.raises(DataError, match="is a directory"):
        read_sources(str(tmp_path), EN_FR)


def test_output_checks(tmp_path):
    existing = tmp_path / "out.txt"
    existing.write_text("keep\n")
    with pytest.raises(OutputError, match="--output .*out.txt: exists; pass --overwrite"):
        check_output_file(existing, overwrite=False)
    check_output_file(existing, overwrite=True)
    check_output_file(None, overwrite=False)
    with pytest.raises(OutputError, match="is a directory"):
        check_output_file(tmp_path, overwrite=True)
    with pytest.raises(OutputError, match="no such directory"):
        check_output_file(tmp_path / "no" / "out.txt", overwrite=False)


def test_write_lines_writes_one_line_per_entry(tmp_path):
    path = tmp_path / "out.txt"
    write_lines(["a", "", "c"], path)
    assert path.read_text(encoding="utf-8") == "a\n\nc\n"
    assert not list(tmp_path.glob(".*tmp*"))
    stream = io.StringIO()
    write_lines([], None, stdout=stream)
    assert stream.getvalue() == ""


class EchoModel:
    """Stands in for LoadedModel: 'translates' by upper-casing, records each batch, can emit line breaks."""

    max_source_tokens = 6

    def __init__(self):
        self.batches: list[list[int]] = []
        self.direction = None

    def tokenizer(self, texts):
        return {"input_ids": [[len(t)] * len(t.split()) + [0] for t in texts]}  # words + a closing token

    def use_direction(self, direction):
        self.direction = direction

    def generate_ids(self, input_ids, settings):
        self.batches.append([len(ids) for ids in input_ids])
        return input_ids

    def decode(self, ids):
        return [f"T{row[0]}\nline" for row in ids]


def test_translate_texts_restores_input_order_and_keeps_empty_lines():
    texts = ["a b", "", "one two three four", "x", "   ", "p q r s t u v w"]
    model = EchoModel()
    advanced = []
    result = translate_texts(model, texts, EN_FR, GenerationSettings(batch_size=2), advanced.append)
    assert model.direction == EN_FR
    assert result.lines == ["T3 line", "", "T18 line", "T1 line", "", "T15 line"]
    assert result.truncated == 1  # 8 words + 1 > 6 tokens
    assert model.batches == [[6, 5], [3, 2]]  # longest first, the long one cut to 6 tokens
    assert advanced == [2, 2]


def test_translate_texts_with_nothing_to_translate():
    model = EchoModel()
    assert translate_texts(model, ["", " "], EN_FR, GenerationSettings()).lines == ["", ""]
    assert model.batches == []


# --- the command ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sentences(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("translate") / "in.txt"
    path.write_text(
        "The stock is in the critical zone.\n\nNo survey was conducted in 2009.\nCatches were low.\r\n",
        encoding="utf-8",
    )
    return path


def test_translate_a_file_from_a_run(tiny_runs, sentences, tmp_path):  # noqa: F811
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


def test_translate_with_a_base_model_alone_differs_from_the_run(tiny_runs, tiny_models, sentences):  # noqa: F811
    run = invoke("translate", sentences, "-m", tiny_runs("mbart50_mmt_fr"), *FAST)
    base = invoke("translate", sentences, "--which", "mbart50_mmt_fr", "--model-id", tiny_models["mbart50_mmt_fr"],
                  *FAST)  # fmt: skip
    assert run.exit_code == 0 and base.exit_code == 0, base.output
    assert len(run.stdout.splitlines()) == len(base.stdout.splitlines()) == 4
    assert run.stdout != base.stdout, "the adapter changes the translations"


def test_m2m100_translates_both_ways_with_source_lang(tiny_runs, tmp_path):  # noqa: F811
    run = tiny_runs("m2m100_418m")
    fr = tmp_path / "fr.txt"
    fr.write_text("Aucun relevé n'a été effectué en 2009.\n", encoding="utf-8")
    result = invoke("translate", fr, "-m", run, "--source-lang", "fr", *FAST)
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 1 and "__en__" not in result.stdout
    missing = invoke("translate", fr, "-m", run, *FAST)
    assert "--source-lang: m2m100_418m translates both ways" in one_error_line(missing)


def test_existing_output_is_kept_without_overwrite(tiny_runs, sentences, tmp_path):  # noqa: F811
    out = tmp_path / "out.txt"
    out.write_text("keep me\n")
    result = invoke("translate", sentences, "-m", tiny_runs("opus_mt_en_fr"), "-o", out, *FAST)
    assert "exists; pass --overwrite" in one_error_line(result)
    assert out.read_text() == "keep me\n"
    replaced = invoke("translate", sentences, "-m", tiny_runs("opus_mt_en_fr"), "-o", out, "--overwrite", *FAST)
    assert replaced.exit_code == 0 and len(out.read_text().splitlines()) == 4


@pytest.mark.parametrize("case", ["missing-run", "unfinished", "no-lora", "no-model", "bad-input", "same-file",
                                  "bad-beams", "wrong-language-row"])  # fmt: skip
def test_bad_input_is_one_error_line(tiny_runs, sentences, tmp_path, case):  # noqa: F811
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


def test_a_runs_best_adapter_is_used_when_named(tiny_runs, tiny_models, sentences, tmp_path):  # noqa: F811
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


def test_a_failed_write_names_the_flag_that_gave_the_path(tmp_path):
    from csas_cli.translate import write_lines

    (tmp_path / "out.txt").mkdir()  # the rename onto it fails after the text is written
    with pytest.raises(OutputError, match=r"^--hypotheses .*out\.txt: cannot be written"):
        write_lines(["one"], tmp_path / "out.txt", flag="--hypotheses")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]  # the temporary file is gone
