"""Tests for csas_cli.commands.merge, `csas merge` and `csas merge-all`: a merged directory translates exactly like
its run, loads offline with plain transformers (Marian's tied embeddings intact, the target code forced for
mBART-50), QLoRA runs merge into an unquantized base, and what must not be replaced is not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import invoke, one_error_line

from csas_cli.commands.merge import merge_all
from csas_cli.training.merging import check_out_dir
from csas_cli.errors import OutputError
from csas_cli.files import file_sha256
from csas_cli.inference.generation import load_for_inference
from csas_cli.inference.source import MERGE_RECORD, resolve_source
from csas_cli.languages import Direction, language_token_id, model_generation_overrides

FAMILY_KEYS = ["opus_mt_en_fr", "m2m100_418m", "mbart50_mmt_fr"]
SENTENCES = [
    "The stock is in the critical zone.",
    "No survey was conducted in 2009.",
    "Catches of Atlantic cod were low in the southern Gulf.",
]
GREEDY = ["--num-beams", "1", "--max-new-tokens", "24", "--batch-size", "1"]
BEAMS = ["--num-beams", "2", "--max-new-tokens", "24", "--batch-size", "2"]
LANG = {"m2m100_418m": ["--source-lang", "en"]}

PLAIN_TRANSFORMERS = r"""
import json, sys
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

dirs, sentences = json.loads(sys.argv[1]), json.loads(sys.argv[2])
out = {}
for key, path in dirs.items():
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSeq2SeqLM.from_pretrained(path).eval()
    kwargs = {}
    if key.startswith("m2m100"):  # trained both ways: no forced language recorded, the caller chooses
        tok.src_lang = "en"
        kwargs["forced_bos_token_id"] = tok.get_lang_id("fr")
    ids = [model.generate(**tok([s], return_tensors="pt"), num_beams=1, max_new_tokens=24, **kwargs)[0]
           for s in sentences]
    out_emb, in_emb = model.get_output_embeddings().weight, model.get_input_embeddings().weight
    out[key] = {
        "texts": [tok.decode(i, skip_special_tokens=True) for i in ids],
        "second_tokens": [int(i[1]) for i in ids],
        "forced_bos": model.generation_config.forced_bos_token_id,
        "fr_code": tok.get_lang_id("fr") if hasattr(tok, "get_lang_id") else tok.convert_tokens_to_ids("fr_XX"),
        "tied_storage": out_emb.data_ptr() == in_emb.data_ptr(),
        "tied_values": bool(torch.equal(out_emb, in_emb)),
        "dtype": str(next(model.parameters()).dtype),
        "modules": sorted({type(m).__module__.split(".")[0] for m in model.modules()}),
    }
print(json.dumps(out))
"""


def translate(model: Path, key: str, *options: str) -> list[str]:
    sentences = model.parent / f"sentences-{key}.txt"
    sentences.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    result = invoke("translate", sentences, "-m", model, *LANG.get(key, []), *options)
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


@pytest.fixture(scope="module")
def merged(tiny_runs, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("merged")
    out = {}
    for key in FAMILY_KEYS:
        result = invoke("merge", tiny_runs(key), root / key)
        assert result.exit_code == 0, result.output
        assert result.stdout == f"merged: {root / key}\n"
        out[key] = root / key
    return out


@pytest.fixture(scope="module")
def plain(merged) -> dict[str, dict]:
    """What transformers alone, offline and without csas imported, makes of each merged directory."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    dirs = {key: str(path) for key, path in merged.items()}
    done = subprocess.run(
        [sys.executable, "-c", PLAIN_TRANSFORMERS, json.dumps(dirs), json.dumps(SENTENCES)],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("key", FAMILY_KEYS)
def test_merged_directory_translates_exactly_like_the_run(tiny_runs, merged, key):
    from_run = translate(tiny_runs(key), key, *BEAMS)
    from_merged = translate(merged[key], key, *BEAMS)
    assert len(from_run) == len(SENTENCES) and all(from_run)
    assert from_merged == from_run


@pytest.mark.slow
@pytest.mark.parametrize("key", FAMILY_KEYS)
def test_merged_directory_works_with_plain_transformers_offline(merged, plain, key):
    seen = plain[key]
    assert seen["modules"] == ["torch", "transformers"]  # no peft layer survived the merge
    assert seen["dtype"] == "torch.float32"
    # Greedy, one sentence at a time: the same text csas translate gives from the merged directory (which strips
    # the ends of each line).
    assert [t.strip() for t in seen["texts"]] == translate(merged[key], key, *GREEDY)
    if key == "opus_mt_en_fr":
        assert seen["tied_storage"] and seen["tied_values"], "lm_head lost its tie to the shared embeddings"
        assert seen["forced_bos"] is None
    elif key == "mbart50_mmt_fr":
        assert seen["forced_bos"] == seen["fr_code"]  # recorded in generation_config.json: nothing to pass
        assert seen["second_tokens"] == [seen["fr_code"]] * len(SENTENCES)
    else:
        assert seen["forced_bos"] is None  # m2m100_418m goes both ways: the caller forces the language
        assert seen["second_tokens"] == [seen["fr_code"]] * len(SENTENCES)


@pytest.mark.slow
@pytest.mark.parametrize("key", FAMILY_KEYS)
def test_merged_weights_reproduce_the_adapters_logits(tiny_runs, merged, key):
    import torch
    from transformers import AutoModelForSeq2SeqLM

    run = load_for_inference(resolve_source(tiny_runs(key), None, None))
    reloaded = AutoModelForSeq2SeqLM.from_pretrained(merged[key]).eval()
    with run.direction(Direction("en", "fr")):
        batch = run.tokenizer(SENTENCES[:2], padding=True, return_tensors="pt")
    start = run.transformers_model.config.decoder_start_token_id
    decoder = torch.cat([torch.full((2, 1), start), batch["input_ids"][:, :-1]], dim=1)
    with torch.inference_mode():
        want = run.model(**batch, decoder_input_ids=decoder).logits
        got = reloaded(**batch, decoder_input_ids=decoder).logits
        with run.model.disable_adapter():
            without = run.model(**batch, decoder_input_ids=decoder).logits
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    assert (want - without).abs().max() > 1e-3, "the adapter changes the logits, so the check above means something"


def test_merge_record(tiny_runs, merged):
    for key in FAMILY_KEYS:
        record = json.loads((merged[key] / MERGE_RECORD).read_text())
        run = tiny_runs(key)
        plan = json.loads((run / "run.json").read_text())["plan"]
        assert record["which"] == key and record["base_model_id"] == plan["model_id"]
        assert record["run_dir"] == str(run.resolve()) and record["dtype"] == "float32"
        assert record["adapter_sha256"] == file_sha256(run / "lora" / "adapter_model.safetensors")
        assert (merged[key] / "model.safetensors").is_file() and not list(merged[key].glob("*.bin"))
        assert not list(merged[key].parent.glob(".*tmp*"))
    assert json.loads((merged["m2m100_418m"] / MERGE_RECORD).read_text())["directions"] == ["en->fr", "fr->en"]


def test_m2m100_merge_says_translate_needs_source_lang(tiny_runs, tmp_path):
    result = invoke("merge", tiny_runs("m2m100_418m"), tmp_path / "m2m")
    assert result.exit_code == 0, result.output
    assert "--source-lang" in result.stderr
    missing = invoke("translate", "-", "-m", tmp_path / "m2m")
    assert "--source-lang: m2m100_418m translates both ways" in one_error_line(missing)


@pytest.mark.slow
def test_qlora_run_merges_into_an_unquantized_base_and_translates(tiny_runs, tmp_path):
    run = tiny_runs("mbart50_mmt_en", qlora=True)
    assert json.loads((run / "run.json").read_text())["plan"]["qlora"] is True
    out = tmp_path / "merged"
    result = invoke("merge", run, out)
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as weights:
        dtypes = {str(weights.get_slice(name).get_dtype()) for name in weights.keys()}
    assert dtypes == {"F32"}
    french = tmp_path / "fr.txt"
    french.write_text("Aucun relevé n'a été effectué en 2009.\nLe stock se trouve dans la zone critique.\n")
    from_run = invoke("translate", french, "-m", run, *BEAMS)
    from_merged = invoke("translate", french, "-m", out, *BEAMS)
    assert from_run.exit_code == 0 and from_merged.exit_code == 0, from_merged.output
    assert from_merged.stdout == from_run.stdout and len(from_run.stdout.splitlines()) == 2
    generation = json.loads((out / "generation_config.json").read_text())
    from transformers import AutoTokenizer

    assert generation["forced_bos_token_id"] == AutoTokenizer.from_pretrained(out).convert_tokens_to_ids("en_XX")


@pytest.mark.slow
def test_bfloat16_merge_halves_the_weights_and_still_translates(tiny_runs, merged, tmp_path):
    out = tmp_path / "bf16"
    result = invoke("merge", tiny_runs("opus_mt_en_fr"), out, "--dtype", "bfloat16")
    assert result.exit_code == 0, result.output
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as weights:
        assert {str(weights.get_slice(n).get_dtype()) for n in weights.keys()} == {"BF16"}
    full = merged["opus_mt_en_fr"] / "model.safetensors"
    assert (out / "model.safetensors").stat().st_size < 0.6 * full.stat().st_size
    assert json.loads((out / MERGE_RECORD).read_text())["dtype"] == "bfloat16"
    assert len(translate(out, "opus_mt_en_fr", *GREEDY)) == len(SENTENCES)


@pytest.mark.slow
def test_overwrite_replaces_an_existing_output(tiny_runs, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    refused = invoke("merge", tiny_runs("opus_mt_en_fr"), out)
    assert "exists and is not empty; pass --overwrite" in one_error_line(refused)
    assert [p.name for p in out.iterdir()] == ["old.txt"]
    replaced = invoke("merge", tiny_runs("opus_mt_en_fr"), out, "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert not (out / "old.txt").exists() and (out / "model.safetensors").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging or old folders left


def copy_run(run: Path, dest: Path, drop: str | None = None) -> Path:
    """A run folder of symlinks to `run`'s files, without `drop`."""
    dest.mkdir(parents=True)
    for item in run.iterdir():
        if item.name != drop:
            (dest / item.name).symlink_to(item)
    return dest


@pytest.mark.parametrize("case", ["missing", "unfinished", "no-lora", "merged-dir", "out-is-run", "bad-dtype",
                                  "out-holds-run"])  # fmt: skip
def test_bad_merges_are_one_error_line_and_write_nothing(tiny_runs, merged, tmp_path, case):
    run = tiny_runs("opus_mt_en_fr")
    out = tmp_path / "out"
    args = ["merge", run, out]
    if case == "missing":
        args[1], message = tmp_path / "nope", "RUN_DIR {}: no such directory".format(tmp_path / "nope")
    elif case == "unfinished":
        args[1], message = copy_run(run, tmp_path / "run", "finished.json"), "an unfinished run (no finished.json)"
    elif case == "no-lora":
        args[1], message = copy_run(run, tmp_path / "run", "lora"), "no adapter (lora/adapter_config.json"
    elif case == "merged-dir":
        args[1], message = merged["opus_mt_en_fr"], "a model directory, not a csas run"
    elif case == "out-is-run":
        args[2], message = run, "holds the run"
    elif case == "bad-dtype":
        args += ["--dtype", "int8"]
        message = "--dtype: expected one of float32, bfloat16, float16"
    else:
        args[2], message = copy_run(run, tmp_path / "other-run"), "holds a csas run"
        args.append("--overwrite")
    assert message in one_error_line(invoke(*args))
    assert not out.exists()


def test_check_out_dir(tmp_path):
    run = tmp_path / "runs" / "opus"
    run.mkdir(parents=True)
    check_out_dir(tmp_path / "new", run, overwrite=False)
    (tmp_path / "empty").mkdir()
    check_out_dir(tmp_path / "empty", run, overwrite=False)
    with pytest.raises(OutputError, match="holds the run"):
        check_out_dir(tmp_path / "runs", run, overwrite=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="not a directory"):
        check_out_dir(tmp_path / "file", run, overwrite=True)


def test_generation_overrides_for_merged_models(tiny_models):
    from transformers import AutoTokenizer

    expected = {"opus_mt_en_fr": None, "m2m100_418m": "none", "mbart50_mmt_fr": "fr_XX", "mbart50_mmt_en": "en_XX"}
    for key, code in expected.items():
        tokenizer = AutoTokenizer.from_pretrained(tiny_models[key])
        source = resolve_source(None, key, str(tiny_models[key]))
        overrides = model_generation_overrides(tokenizer, source.spec.family, source.spec.source_langs)
        if code is None:
            assert overrides == {}
        elif code == "none":
            assert overrides == {"forced_bos_token_id": None}
        else:
            assert overrides == {"forced_bos_token_id": tokenizer.convert_tokens_to_ids(code)}
            assert overrides["forced_bos_token_id"] == language_token_id(tokenizer, source.spec.family,
                                                                         "fr" if code == "fr_XX" else "en")


# --- merge-all -----------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_merge_all_merges_finished_runs_skips_unfinished_and_reruns_cheaply(tiny_runs, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "opus_mt_en_fr").symlink_to(tiny_runs("opus_mt_en_fr"))
    (runs / "mbart50_mmt_fr").symlink_to(tiny_runs("mbart50_mmt_fr"))
    copy_run(tiny_runs("m2m100_418m"), runs / "m2m100_418m", "finished.json")
    (runs / "notes").mkdir()  # not a run: ignored
    out = tmp_path / "merged"
    first = invoke("merge-all", runs, out)
    assert first.exit_code == 0, first.output
    assert sorted(p.name for p in out.iterdir()) == ["mbart50_mmt_fr", "opus_mt_en_fr"]
    assert "m2m100_418m: unfinished run (no finished.json), skipped" in first.stderr
    assert "merge-all" in first.stderr  # the summary table
    for key in ("mbart50_mmt_fr", "opus_mt_en_fr"):
        assert json.loads((out / key / MERGE_RECORD).read_text())["which"] == key
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    again = invoke("merge-all", runs, out)
    assert again.exit_code == 0 and again.stderr.count("already holds this adapter merged") == 2
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before


def test_merge_all_goes_on_after_a_failure_and_exits_1(tiny_runs, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    copy_run(tiny_runs("opus_mt_en_fr"), runs / "opus_mt_en_fr", "lora")  # finished, but its adapter is gone
    (runs / "mbart50_mmt_fr").symlink_to(tiny_runs("mbart50_mmt_fr"))
    result = invoke("merge-all", runs, tmp_path / "merged")
    assert result.exit_code == 1
    assert "opus_mt_en_fr: failed" in result.stderr and "Traceback" not in result.stderr
    assert (tmp_path / "merged" / "mbart50_mmt_fr" / "model.safetensors").is_file()
    assert not (tmp_path / "merged" / "opus_mt_en_fr").exists()


def test_merge_all_needs_runs(tmp_path):
    (tmp_path / "empty").mkdir()
    assert "no csas runs in it" in one_error_line(invoke("merge-all", tmp_path / "empty", tmp_path / "out"))
    assert "no such directory" in one_error_line(invoke("merge-all", tmp_path / "nope", tmp_path / "out"))


def test_merge_all_passes_model_root_and_dtype(tmp_path):
    runs = tmp_path / "runs"
    for name in ("opus_mt_en_fr", "unfinished"):
        (runs / name).mkdir(parents=True)
        (runs / name / "run.json").write_text(json.dumps({"plan": {"which": "opus_mt_en_fr", "model_id": "x"}}))
    (runs / "opus_mt_en_fr" / "finished.json").write_text("{}")
    (tmp_path / "models" / "opus_mt_en_fr").mkdir(parents=True)
    calls = []

    def quiet(message: str) -> None:
        pass

    outcomes = merge_all(
        runs, tmp_path / "out", dtype="bfloat16", model_root=tmp_path / "models", say=quiet,
        merge_one=lambda run, out, **kw: calls.append((run.name, out.name, kw)),
    )  # fmt: skip
    assert [(o.name, o.status) for o in outcomes] == [("opus_mt_en_fr", "ok"), ("unfinished", "skipped")]
    assert calls == [("opus_mt_en_fr", "opus_mt_en_fr", {"dtype": "bfloat16", "overwrite": False,
                                                         "model_id": str(tmp_path / "models" / "opus_mt_en_fr"),
                                                         "adapter": "last", "say": quiet})]  # no best/: lora/


@pytest.mark.slow
def test_merge_of_a_runs_best_adapter(tiny_runs, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_runs("opus_mt_en_fr"), run)
    shutil.copytree(run / "lora", run / "best", dirs_exist_ok=True)  # as training writes it at a best evaluation
    result = invoke("merge", run / "best", tmp_path / "best-merged")
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "best-merged" / MERGE_RECORD).read_text())
    assert record["adapter"] == str((run / "best").resolve()) and record["run_dir"] == str(run.resolve())
    assert record["adapter_sha256"] == file_sha256(run / "best" / "adapter_model.safetensors")


# --- which adapter: best/ or lora/ ------------------------------------------------------------------------------------


def run_with_best(root: Path, *, best_step: int | None = 10, steps: int = 40) -> Path:
    """A finished run's records and adapter folders (configs and weight files, no real weights): lora/ of the last
    step and, unless `best_step` is None, best/ with best.json."""
    run = root / "opus_mt_en_fr"
    (run / "lora").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"plan": {"which": "opus_mt_en_fr", "model_id": "x"}}))
    finished = {"status": "ok", "steps": steps, "best": "best" if best_step else None, "best_step": best_step}
    (run / "finished.json").write_text(json.dumps(finished))
    (run / "lora" / "adapter_config.json").write_text("{}")
    (run / "lora" / "adapter_model.safetensors").write_bytes(b"last")
    if best_step is not None:
        (run / "best").mkdir()
        (run / "best" / "adapter_config.json").write_text("{}")
        (run / "best" / "adapter_model.safetensors").write_bytes(b"best")
        (run / "best" / "best.json").write_text(json.dumps({"step": best_step, "metric": "eval_chrf", "value": 15.31,
                                                            "eval_loss": 4.1234, "eval_chrf": 15.31}))  # fmt: skip
    return run


def test_a_run_directory_means_its_best_adapter_where_it_has_one(tmp_path):
    from csas_cli.errors import ModelError, SettingsError
    from csas_cli.training.merging import chosen_source

    run = run_with_best(tmp_path)
    source, choice = chosen_source(run, None, None, None, "RUN_DIR")
    assert (choice.kind, choice.step, choice.defaulted, source.adapter) == ("best", 10, True, run / "best")
    assert choice.describe() == "best/ (step 10: eval_chrf 15.31, eval_loss 4.1234); lora/ is step 40"
    source, choice = chosen_source(run, "last", None, None, "RUN_DIR")
    assert (choice.kind, choice.step, choice.defaulted, source.adapter) == ("last", 40, False, run / "lora")
    assert choice.describe() == "lora/ (step 40); best/ is step 10: eval_chrf 15.31, eval_loss 4.1234"
    # A folder named itself is that adapter, as before; an --adapter that contradicts it is refused.
    assert chosen_source(run / "best", None, None, None, "RUN_DIR")[1].kind == "best"
    assert chosen_source(run / "lora", "last", None, None, "RUN_DIR")[1].kind == "last"
    with pytest.raises(SettingsError, match="--adapter last: RUN_DIR .*/best names the best adapter itself"):
        chosen_source(run / "best", "last", None, None, "RUN_DIR")
    with pytest.raises(SettingsError, match="--adapter: expected best or last, got 'newest'"):
        chosen_source(run, "newest", None, None, "RUN_DIR")
    # Without best/ (no evaluation): lora/, and --adapter best is refused.
    plain = run_with_best(tmp_path / "plain", best_step=None)
    source, choice = chosen_source(plain, None, None, None, "RUN_DIR")
    assert (choice.kind, source.adapter) == ("last", plain / "lora")
    assert "the run has no best/" in choice.describe()
    with pytest.raises(ModelError, match="--adapter best: .* has no best/"):
        chosen_source(plain, "best", None, None, "RUN_DIR")


def test_merge_all_merges_the_chosen_adapter_and_skips_it_when_merged(tmp_path):
    runs = tmp_path / "runs"
    run = run_with_best(runs)
    out = tmp_path / "out"
    lines, calls = [], []
    merge_one = lambda run, out, **kw: calls.append(kw["adapter"])  # noqa: E731
    outcomes = merge_all(runs, out, say=lines.append, merge_one=merge_one)
    assert calls == ["best"] and outcomes[0].adapter == "best"
    assert lines == [f"opus_mt_en_fr: merging into {out / 'opus_mt_en_fr'}: best/ (step 10: eval_chrf 15.31, "
                     "eval_loss 4.1234); lora/ is step 40"]  # fmt: skip
    (out / "opus_mt_en_fr").mkdir(parents=True)
    (out / "opus_mt_en_fr" / MERGE_RECORD).write_text(json.dumps({"adapter_sha256": file_sha256(
        run / "best" / "adapter_model.safetensors")}))  # fmt: skip
    again = merge_all(runs, out, say=lines.append, merge_one=merge_one)
    assert (again[0].status, calls) == ("skipped", ["best"])  # the best adapter is merged there already
    last = merge_all(runs, out, adapter="last", say=lines.append, merge_one=merge_one)
    # Another adapter's merge is there: said before anything is announced, and left alone without --overwrite.
    assert (last[0].status, calls) == ("skipped", ["best"]) and "holds another merge" in lines[-1]
    last = merge_all(runs, out, adapter="last", overwrite=True, say=lines.append, merge_one=merge_one)
    assert (last[0].status, last[0].adapter, calls) == ("ok", "last", ["best", "last"])  # lora/ is not merged there
    (run / "best" / "best.json").unlink()
    (run / "best" / "adapter_config.json").unlink()
    failed = merge_all(runs, out, adapter="best", say=lines.append, merge_one=merge_one)
    assert failed[0].status == "failed" and "has no best/" in failed[0].message and calls == ["best", "last"]
