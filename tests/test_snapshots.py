"""Snapshots as the hub publishes them: `.bin`-only weights read weights-only, sharded safetensors, a fast tokenizer
alone or SentencePiece files alone; a `.bin` that would run code refused before anything loads it; --revision."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import SAMPLE, invoke, one_error_line, write_pairs
from layouts import build_layout, hub_cache, malicious_bin, sharded_bin

from csas_cli.errors import ModelError, SettingsError
from csas_cli.modeling import Precision, load_config, load_model, load_tokenizer
from csas_cli.registry import REGISTRY
from csas_cli.plan import build_plan
from csas_cli.settings import FinetuneSettings
from csas_cli.snapshots import check_pickle, check_weights, local_weights
from csas_cli.training.resume import plan_differences

FAMILY_KEYS = ("opus_mt_en_fr", "m2m100_418m", "mbart50_mmt_fr")
SENTENCE = {"en": "The stock is in the Cautious Zone.", "fr": "Le stock se trouve dans la zone de prudence."}


def logits(model_dir: str, key: str) -> torch.Tensor:
    config = load_config(model_dir, REGISTRY[key].family, key)
    model, _ = load_model(model_dir, config, Precision("fp32", "cpu"), torch.device("cpu"), device_map=None,
                          qlora=False)  # fmt: skip
    ids = torch.tensor([[5, 6, 7, 2]])
    with torch.no_grad():
        return model(input_ids=ids, decoder_input_ids=ids).logits


# -- weights -------------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("key", FAMILY_KEYS)
def test_bin_only_and_sharded_snapshots_load_the_same_weights(tiny_models, tmp_path, key):
    reference = logits(str(tiny_models[key]), key)
    for layout, fmt in (("bin", "pytorch-bin"), ("sharded", "safetensors-sharded")):
        snapshot = build_layout(tiny_models[key], tmp_path / layout, layout)
        weights = check_weights(str(snapshot))
        assert weights is not None and weights.format == fmt
        assert weights.pickled == (layout == "bin")
        assert torch.equal(logits(str(snapshot), key), reference), layout
    shards = local_weights(str(tmp_path / "sharded")).files
    assert len(shards) > 1 and all(name.endswith(".safetensors") for name in shards)


@pytest.mark.slow
def test_sharded_bin_is_read_weights_only(tiny_models, tmp_path):
    snapshot = sharded_bin(tiny_models["opus_mt_en_fr"], tmp_path / "snap")
    weights = local_weights(str(snapshot))
    assert weights.format == "pytorch-bin-sharded" and len(weights.files) == 3
    assert "3 .bin shards" in weights.notice(str(snapshot))
    reference = logits(str(tiny_models["opus_mt_en_fr"]), "opus_mt_en_fr")
    assert torch.equal(logits(str(snapshot), "opus_mt_en_fr"), reference)


def test_notice_says_how_pickled_weights_are_read(tiny_models, tmp_path):
    snapshot = build_layout(tiny_models["opus_mt_en_fr"], tmp_path / "bin", "bin")
    notice = local_weights(str(snapshot)).notice(str(snapshot))
    assert notice == (
        f"{snapshot}: pickled weights (pytorch_model.bin), read with torch's weights-only unpickler: tensors only, "
        "no code is run"
    )
    assert local_weights(str(tiny_models["opus_mt_en_fr"])).notice("x") is None


def test_snapshot_without_weights_is_refused(tiny_models, tmp_path):
    (tmp_path / "config.json").write_text((tiny_models["opus_mt_en_fr"] / "config.json").read_text())
    (tmp_path / "tf_model.h5").write_bytes(b"\0")
    with pytest.raises(ModelError, match=r"no PyTorch weights.*it holds tf_model\.h5"):
        check_weights(str(tmp_path))


def test_index_naming_a_missing_shard_is_refused(tiny_models, tmp_path):
    snapshot = build_layout(tiny_models["m2m100_418m"], tmp_path / "snap", "sharded")
    shard = sorted(snapshot.glob("model-*.safetensors"))[-1]
    shard.unlink()
    with pytest.raises(ModelError, match=rf"names {shard.name}, which is not there"):
        check_weights(str(snapshot))
    (snapshot / "model.safetensors.index.json").write_text("{not json")
    with pytest.raises(ModelError, match="cannot read model.safetensors.index.json"):
        check_weights(str(snapshot))


def test_a_bin_that_would_run_code_is_refused_and_the_code_does_not_run(tiny_models, tmp_path):
    marker = tmp_path / "code-ran"
    snapshot = malicious_bin(tiny_models["opus_mt_en_fr"], tmp_path / "evil", marker)
    with pytest.raises(ModelError, match=r"pytorch_model\.bin holds more than tensors \(it refers to posix\.system\)"):
        check_pickle(snapshot / "pytorch_model.bin", str(snapshot))
    assert not marker.exists()
    config = load_config(str(snapshot), REGISTRY["opus_mt_en_fr"].family, "opus_mt_en_fr")
    with pytest.raises(ModelError, match="could run code"):
        load_model(str(snapshot), config, Precision("fp32", "cpu"), torch.device("cpu"), device_map=None, qlora=False)
    assert not marker.exists()


def test_a_truncated_bin_is_named(tiny_models, tmp_path):
    snapshot = build_layout(tiny_models["opus_mt_en_fr"], tmp_path / "bin", "bin")
    data = (snapshot / "pytorch_model.bin").read_bytes()
    (snapshot / "pytorch_model.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match=r"cannot read pytorch_model\.bin"):
        check_weights(str(snapshot))


@pytest.mark.slow
def test_the_cli_refuses_a_code_running_bin_in_one_line(tiny_models, tmp_path):
    marker = tmp_path / "code-ran"
    snapshot = malicious_bin(tiny_models["opus_mt_en_fr"], tmp_path / "evil", marker)
    data = write_pairs(tmp_path / "pairs.jsonl", 8)
    finetune = invoke("finetune", "--which", "opus_mt_en_fr", "--model-id", snapshot, "--data", data,
                      "--output-dir", tmp_path / "runs", "--max-steps", "1", "--no-qlora")  # fmt: skip
    assert "pytorch_model.bin holds more than tensors" in one_error_line(finetune)
    assert not (tmp_path / "runs" / "opus_mt_en_fr").exists()
    sentences = tmp_path / "in.txt"
    sentences.write_text(SENTENCE["en"] + "\n")
    translate = invoke("translate", sentences, "--which", "opus_mt_en_fr", "--model-id", snapshot)
    assert "could run code" in one_error_line(translate)
    assert not marker.exists()


# -- tokenizers ----------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("key", ["opus_mt_en_fr", "m2m100_418m"])
def test_a_fast_tokenizer_alone_is_refused_for_families_transformers_reads_from_sentencepiece(
    tiny_models, tmp_path, key
):
    family = REGISTRY[key].family
    snapshot = build_layout(tiny_models[key], tmp_path / "snap", "tokenizer-json")
    with pytest.raises(ModelError) as caught:
        load_tokenizer(str(snapshot), family)
    wanted = " + ".join(family.tokenizer_files[0])
    assert str(caught.value) == (
        f"--model-id {snapshot}: no {family.tokenizer_class} files ({wanted}); it holds tokenizer.json only"
    )
    data = write_pairs(tmp_path / "pairs.jsonl", 8)
    result = invoke("finetune", "--which", key, "--model-id", snapshot, "--data", data, "--output-dir",
                    tmp_path / "runs", "--max-steps", "1", "--no-qlora")  # fmt: skip
    assert f"no {family.tokenizer_class} files" in one_error_line(result)


def test_mbart50_reads_either_its_fast_tokenizer_or_its_sentencepiece_model(tiny_models, tmp_path):
    key = "mbart50_mmt_fr"
    family = REGISTRY[key].family
    fast = load_tokenizer(str(build_layout(tiny_models[key], tmp_path / "json", "tokenizer-json")), family)
    slow = load_tokenizer(str(build_layout(tiny_models[key], tmp_path / "spm", "spm")), family)
    assert type(fast).__name__ == type(slow).__name__ == "MBart50Tokenizer"
    for tok in (fast, slow):
        tok.src_lang, tok.tgt_lang = "en_XX", "fr_XX"
    text = [SENTENCE["en"], "Dissolved oxygen saturation fell below 27% in 2009."]
    assert fast(text)["input_ids"] == slow(text)["input_ids"]
    assert fast(text_target=[SENTENCE["fr"]])["input_ids"] == slow(text_target=[SENTENCE["fr"]])["input_ids"]


def test_a_tokenizer_of_another_class_is_refused(tiny_models, tmp_path):
    snapshot = build_layout(tiny_models["mbart50_mmt_fr"], tmp_path / "snap", "tokenizer-json")
    config = json.loads((snapshot / "tokenizer_config.json").read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    (snapshot / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match=r"loads as (PreTrainedTokenizerFast|TokenizersBackend), not MBart50Tokenizer"):
        load_tokenizer(str(snapshot), REGISTRY["mbart50_mmt_fr"].family)


# -- --revision ----------------------------------------------------------------------------------------------------


def test_revision_is_recorded_and_part_of_the_resume_check():
    at_tag = build_plan(FinetuneSettings.create(which="opus_mt_en_fr", revision="v1.0"))
    assert at_tag.to_dict()["revision"] == "v1.0"
    recorded = {"plan": at_tag.to_dict(), "data_sha256": "abc"}
    other = build_plan(FinetuneSettings.create(which="opus_mt_en_fr", revision="main"))
    assert plan_differences(recorded, other, "abc") == ["revision 'v1.0' -> 'main'"]
    assert plan_differences(recorded, at_tag, "abc") == []


def test_bench_refuses_a_revision_of_a_local_snapshot(tiny_models):
    result = invoke("bench", "--which", "opus_mt_en_fr", "--random-init", "--model-id", tiny_models["opus_mt_en_fr"],
                    "--revision", "v2", "--steps", "1")  # fmt: skip
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.splitlines()[-1].endswith("is a local snapshot; --revision applies to hub ids only")


def test_revision_with_a_local_snapshot_is_refused(tiny_models, tmp_path):
    result = invoke("finetune", "--which", "opus_mt_en_fr", "--model-id", tiny_models["opus_mt_en_fr"], "--data",
                    SAMPLE, "--output-dir", tmp_path, "--revision", "v2", "--dry-run")  # fmt: skip
    assert one_error_line(result) == (
        f"csas: error: --revision v2: --model-id {tiny_models['opus_mt_en_fr']} is a local snapshot; --revision "
        "applies to hub ids only"
    )
    with pytest.raises(SettingsError, match="must not be empty"):
        FinetuneSettings.create(which="opus_mt_en_fr", revision=" ")


def test_revision_reaches_the_hub_client(monkeypatch):
    """Offline, the hub client says which revision it looked for: the one --revision named."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError) as caught:
        load_config("Helsinki-NLP/opus-mt-tc-big-en-fr", REGISTRY["opus_mt_en_fr"].family, "opus_mt_en_fr",
                    "0123456789abcdef0123456789abcdef01234567")  # fmt: skip
    assert str(caught.value) == (
        "--model-id Helsinki-NLP/opus-mt-tc-big-en-fr: cannot load its config: it is not in this machine's hub cache "
        "at that revision and the hub cannot be reached; download it where there is internet (`hf download "
        "Helsinki-NLP/opus-mt-tc-big-en-fr --revision 0123456789abcdef0123456789abcdef01234567`) or pass a "
        "local snapshot"
    )


# -- every command on every layout --------------------------------------------------------------------------

LAYOUT_RUNS = [(key, layout) for layout in ("bin", "sharded") for key in FAMILY_KEYS] + [("mbart50_mmt_fr", "spm")]


@pytest.mark.slow
@pytest.mark.parametrize("key,layout", LAYOUT_RUNS, ids=[f"{k}-{layout}" for k, layout in LAYOUT_RUNS])
def test_finetune_translate_and_merge_on_each_layout(tiny_models, tmp_path, key, layout):
    snapshot = build_layout(tiny_models[key], tmp_path / "snapshot", layout)
    data = write_pairs(tmp_path / "pairs.jsonl", 12)
    trained = invoke("finetune", "--which", key, "--model-id", snapshot, "--data", data, "--output-dir",
                     tmp_path / "runs", "--max-steps", "2", "--no-qlora", "--batch-size", "4", "--eval-steps", "2",
                     "--save-steps", "2", "--disable-tqdm")  # fmt: skip
    assert trained.exit_code == 0, trained.output
    run = tmp_path / "runs" / key
    record = json.loads((run / "run.json").read_text())
    expected = {"bin": "pytorch-bin", "sharded": "safetensors-sharded", "spm": "safetensors"}[layout]
    assert record["base_weights"]["format"] == expected
    assert ("pickled weights (pytorch_model.bin)" in trained.stderr) == (layout == "bin")

    source_lang = REGISTRY[key].source_langs[0]
    sentences = tmp_path / "in.txt"
    sentences.write_text(SENTENCE[source_lang] + "\n")
    translated = invoke("translate", sentences, "--model", run, "--source-lang", source_lang, "--max-new-tokens", "8")
    assert translated.exit_code == 0, translated.output
    assert len(translated.stdout.splitlines()) == 1

    merged = invoke("merge", run, tmp_path / "merged")
    assert merged.exit_code == 0, merged.output
    assert (tmp_path / "merged" / "model.safetensors").is_file()
    again = invoke("translate", sentences, "--model", tmp_path / "merged", "--source-lang", source_lang,
                   "--max-new-tokens", "8")  # fmt: skip
    assert again.exit_code == 0, again.output
    assert again.stdout == translated.stdout


# -- a hub id, offline, from the hub client's cache ------------------------------------------------------------------


@pytest.mark.slow
def test_a_hub_id_at_a_revision_is_trained_translated_and_merged_at_that_revision(tiny_models, tmp_path):
    """main holds safetensors, v2 the .bin-only re-upload: the run, translate and merge all read v2 (the notice
    about pickled weights comes only from v2), offline, from the cache."""
    import os
    import subprocess
    import sys

    key, repo = "opus_mt_en_fr", "csas-test/opus-mt-en-fr"
    bin_snapshot = build_layout(tiny_models[key], tmp_path / "bin", "bin")
    marker = tmp_path / "code-ran"
    evil = malicious_bin(tiny_models[key], tmp_path / "evil", marker)
    cache = hub_cache(tmp_path / "cache", repo, {"main": tiny_models[key], "v2": bin_snapshot, "v3": evil})
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}

    def csas(*args: object) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "csas_cli", *map(str, args)], env=env, capture_output=True,
                              text=True, timeout=600, check=False)  # fmt: skip

    data = write_pairs(tmp_path / "pairs.jsonl", 8)
    trained = csas("finetune", "--which", key, "--model-id", repo, "--revision", "v2", "--data", data, "--output-dir",
                   tmp_path / "runs", "--max-steps", "1", "--no-qlora", "--disable-tqdm")  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    assert f"{repo}: pickled weights (pytorch_model.bin)" in trained.stderr
    assert "Could not find a config file" not in trained.stderr  # peft no longer looks the base up
    run = tmp_path / "runs" / key
    record = json.loads((run / "run.json").read_text())
    assert (record["plan"]["model_id"], record["plan"]["revision"]) == (repo, "v2")
    assert record["base_weights"]["format"] == "pytorch-bin"
    assert record["base_commit"] == "2" * 40  # the commit refs/v2 names in the cache

    sentences = tmp_path / "in.txt"
    sentences.write_text(SENTENCE["en"] + "\n")
    translated = csas("translate", sentences, "--model", run, "--max-new-tokens", "8")
    assert translated.returncode == 0, translated.stderr
    assert "pickled weights" in translated.stderr
    merged = csas("merge", run, tmp_path / "merged")
    assert merged.returncode == 0, merged.stderr
    assert json.loads((tmp_path / "merged" / "csas_merge.json").read_text())["base_revision"] == "2" * 40
    at_main = csas("translate", sentences, "--which", key, "--model-id", repo, "--max-new-tokens", "8")
    assert at_main.returncode == 0, at_main.stderr
    assert "pickled weights" not in at_main.stderr
    tampered = csas("translate", sentences, "--which", key, "--model-id", repo, "--revision", "v3")
    assert tampered.returncode != 0
    assert tampered.stderr.splitlines() == [
        f"csas: error: --model-id {repo}: its .bin weights hold more than tensors (it refers to posix.system); "
        "unpickling could run code, so csas does not load it. Use a safetensors copy of the model"
    ]
    assert not marker.exists()
