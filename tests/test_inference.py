"""Tests for csas_cli.inference: resolving a model source, directions, per-family generation settings, and that
M2M100 and mBART-50 generate the target language's code first in both directions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from csas_cli.errors import ModelError, SettingsError
from csas_cli.inference import (
    BASE,
    MERGE_RECORD,
    MERGED,
    RUN,
    Direction,
    GenerationSettings,
    generation_overrides,
    language_token_id,
    load_for_inference,
    resolve_direction,
    resolve_source,
)
from csas_cli.registry import M2M100, MARIAN, MBART50, REGISTRY
from tiny_runs import tiny_runs  # noqa: F401 - a fixture

FAST = GenerationSettings(num_beams=2, max_new_tokens=16, batch_size=4)


def fake_run(root: Path, which: str = "opus_mt_en_fr", *, finished: bool = True, lora: bool = True,
             model_id: str = "/models/base", tokenizer: bool = True) -> Path:  # fmt: skip
    """A run directory's files, without weights (resolve_source reads only these)."""
    root.mkdir(parents=True)
    (root / "run.json").write_text(json.dumps({"plan": {"which": which, "model_id": model_id}}))
    if lora:
        (root / "lora").mkdir()
        (root / "lora" / "adapter_config.json").write_text("{}")
    if tokenizer:
        (root / "tokenizer_config.json").write_text("{}")
    if finished:
        (root / "finished.json").write_text('{"status": "ok"}')
    return root


def fake_model_dir(root: Path, record: dict | None = None) -> Path:
    root.mkdir(parents=True)
    (root / "config.json").write_text("{}")
    (root / "tokenizer_config.json").write_text("{}")
    if record is not None:
        (root / MERGE_RECORD).write_text(json.dumps(record))
    return root


# --- resolve_source -----------------------------------------------------------------------------------------------


def test_a_finished_run_means_its_base_plus_adapter_and_its_own_tokenizer(tmp_path):
    run = fake_run(tmp_path / "run")
    source = resolve_source(run, None, None)
    assert source.kind == RUN and source.which == "opus_mt_en_fr"
    assert source.model_id == "/models/base" and source.base_model_id == "/models/base"
    assert source.adapter == run / "lora"
    assert source.tokenizer_id == str(run)
    assert source.base_from_record


def test_model_id_overrides_a_runs_base(tmp_path):
    run = fake_run(tmp_path / "run")
    source = resolve_source(run, "opus_mt_en_fr", "/cluster/models/opus")
    assert source.model_id == "/cluster/models/opus" and not source.base_from_record


def test_a_run_without_tokenizer_files_uses_the_bases(tmp_path):
    source = resolve_source(fake_run(tmp_path / "run", tokenizer=False), None, None)
    assert source.tokenizer_id == "/models/base"


def test_which_alone_means_the_registry_base_or_model_id():
    hub = resolve_source(None, "mbart50_mmt_en", None)
    assert hub.kind == BASE and hub.model_id == REGISTRY["mbart50_mmt_en"].hub_id and hub.adapter is None
    local = resolve_source(None, "mbart50_mmt_en", "/models/mbart")
    assert local.model_id == local.tokenizer_id == "/models/mbart"


def test_a_merged_directory_names_its_model_in_csas_merge_json(tmp_path):
    merged = fake_model_dir(tmp_path / "merged", {"which": "m2m100_418m", "base_model_id": "/models/m2m"})
    source = resolve_source(merged, None, None)
    assert source.kind == MERGED and source.which == "m2m100_418m"
    assert source.model_id == source.tokenizer_id == str(merged)
    assert source.base().model_id == "/models/m2m"
    assert resolve_source(merged, None, "/other/m2m").base().model_id == "/other/m2m"


def test_a_plain_model_directory_needs_which(tmp_path):
    plain = fake_model_dir(tmp_path / "plain")
    with pytest.raises(SettingsError, match="--which KEY"):
        resolve_source(plain, None, None)
    assert resolve_source(plain, "opus_mt_fr_en", None).which == "opus_mt_fr_en"


def make_file(path: Path) -> None:
    path.write_text("not a directory")


BAD_SOURCES = {
    "nothing": (None, (None, None), SettingsError, "pass --model RUN_OR_MERGED_DIR, or --which KEY"),
    "unknown-which": (None, ("nope", None), SettingsError, "--which: unknown model 'nope'"),
    "missing": (lambda p: None, (None, None), ModelError, "--model {m}: no such directory"),
    "a-file": (make_file, (None, None), ModelError, "--model {m}: not a directory"),
    "unfinished": (lambda p: fake_run(p, finished=False), (None, None), ModelError, "an unfinished run (no finished"),
    "no-lora": (lambda p: fake_run(p, lora=False), (None, None), ModelError, "no adapter (lora/adapter_config.json"),
    "which-mismatch": (fake_run, ("m2m100_418m", None), SettingsError, "--which m2m100_418m: {m} is a opus_mt_en_fr"),
    "empty-dir": (Path.mkdir, (None, None), ModelError, "--model {m}: neither a csas run"),
    "merged-which-mismatch": (lambda p: fake_model_dir(p, {"which": "m2m100_418m"}), ("opus_mt_en_fr", None),
                              SettingsError, "is a merged m2m100_418m model"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_SOURCES))
def test_bad_sources_are_refused_in_one_line_naming_the_flag(tmp_path, case):
    make, args, error, message = BAD_SOURCES[case]
    model = None
    if make is not None:
        model = tmp_path / "m"
        make(model)
    with pytest.raises(error) as info:
        resolve_source(model, *args)
    assert message.format(m=model) in str(info.value)
    assert "\n" not in str(info.value)


def test_compare_base_of_a_base_model_is_refused():
    with pytest.raises(SettingsError, match="--compare-base"):
        resolve_source(None, "opus_mt_en_fr", "/m").base()


# --- directions ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key, lang, want",
    [
        ("opus_mt_en_fr", None, ("en", "fr")),
        ("opus_mt_fr_en", None, ("fr", "en")),
        ("mbart50_mmt_fr", "EN", ("en", "fr")),
        ("mbart50_mmt_en", None, ("fr", "en")),
        ("m2m100_418m", "en", ("en", "fr")),
        ("m2m100_418m", " fr ", ("fr", "en")),
    ],
)
def test_direction_follows_the_model(key, lang, want):
    assert resolve_direction(REGISTRY[key], lang) == Direction(*want)


def test_m2m100_needs_source_lang():
    with pytest.raises(SettingsError, match=r"--source-lang: m2m100_418m translates both ways"):
        resolve_direction(REGISTRY["m2m100_418m"], None)


@pytest.mark.parametrize("key, lang, message", [
    ("opus_mt_en_fr", "fr", "translates en->fr only"),
    ("mbart50_mmt_en", "en", "translates fr->en only"),
    ("m2m100_418m", "de", "expected en or fr"),
])  # fmt: skip
def test_a_source_lang_the_model_does_not_translate_is_refused(key, lang, message):
    with pytest.raises(SettingsError, match=message):
        resolve_direction(REGISTRY[key], lang)


def test_generation_settings_are_validated():
    assert GenerationSettings() == GenerationSettings(num_beams=4, max_new_tokens=256, batch_size=16)
    for field in ("num_beams", "max_new_tokens", "batch_size"):
        with pytest.raises(SettingsError, match=f"--{field.replace('_', '-')} must be at least 1"):
            GenerationSettings(**{field: 0})


# --- per-family generation settings -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizers(tiny_models):
    from transformers import AutoTokenizer

    keys = ("opus_mt_en_fr", "m2m100_418m", "mbart50_mmt_fr")
    return {key: AutoTokenizer.from_pretrained(tiny_models[key]) for key in keys}


def test_language_tokens_per_family(tokenizers):
    m2m, mbart = tokenizers["m2m100_418m"], tokenizers["mbart50_mmt_fr"]
    assert language_token_id(m2m, M2M100, "fr") == m2m.get_lang_id("fr") == m2m.convert_tokens_to_ids("__fr__")
    assert language_token_id(m2m, M2M100, "en") == m2m.convert_tokens_to_ids("__en__")
    assert language_token_id(mbart, MBART50, "fr") == mbart.convert_tokens_to_ids("fr_XX") != mbart.unk_token_id
    assert language_token_id(mbart, MBART50, "en") == mbart.convert_tokens_to_ids("en_XX") != mbart.unk_token_id
    assert language_token_id(tokenizers["opus_mt_en_fr"], MARIAN, "fr") is None
    assert generation_overrides(tokenizers["opus_mt_en_fr"], MARIAN, Direction("en", "fr")) == {}
    assert generation_overrides(mbart, MBART50, Direction("fr", "en")) == {
        "forced_bos_token_id": mbart.convert_tokens_to_ids("en_XX")
    }


def test_a_tokenizer_without_the_language_code_is_a_model_error(tokenizers):
    marian = tokenizers["opus_mt_en_fr"]  # no fr_XX token: it maps to <unk>
    with pytest.raises(ModelError, match="no language token for 'fr_XX'"):
        language_token_id(marian, MBART50, "fr")


# --- generation: the target code comes first ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "key, lang, qlora",
    [("m2m100_418m", "en", False), ("m2m100_418m", "fr", False), ("mbart50_mmt_fr", None, False),
     ("mbart50_mmt_en", None, True)],
    ids=["m2m100-en-fr", "m2m100-fr-en", "mbart50-en-fr", "mbart50-fr-en-qlora-run"],
)  # fmt: skip
def test_the_first_generated_token_is_the_target_language_code(tiny_runs, key, lang, qlora):  # noqa: F811
    source = resolve_source(tiny_runs(key, qlora=qlora), None, None)
    direction = resolve_direction(source.spec, lang)
    loaded = load_for_inference(source)
    assert loaded.model.__class__.__name__.startswith("Peft") and not loaded.model.training
    assert all(p.dtype.is_floating_point and p.dtype.itemsize == 4 for p in loaded.model.parameters())  # CPU: fp32
    loaded.use_direction(direction)
    sentences = {"en": ["The stock is in the critical zone.", "No survey was conducted in 2009."],
                 "fr": ["Le stock se trouve dans la zone critique.", "Aucun relevé n'a été effectué en 2009."]}
    encoded = loaded.tokenizer(sentences[direction.source])["input_ids"]
    source_code = language_token_id(loaded.tokenizer, loaded.family, direction.source)
    target_code = language_token_id(loaded.tokenizer, loaded.family, direction.target)
    assert all(ids[0] == source_code for ids in encoded)  # src_lang was set: sources start with their code
    ids = loaded.generate_ids(encoded, FAST)
    config = loaded.transformers_model.generation_config
    assert config.forced_bos_token_id == target_code
    assert ids[:, 0].tolist() == [config.decoder_start_token_id] * len(encoded)
    assert ids[:, 1].tolist() == [target_code] * len(encoded)
    texts = loaded.decode(ids)
    assert all(t.strip() for t in texts)
    code_text = loaded.tokenizer.convert_ids_to_tokens(target_code)
    assert not any(code_text in t for t in texts)


def test_marian_forces_nothing(tiny_runs):  # noqa: F811
    loaded = load_for_inference(resolve_source(tiny_runs("opus_mt_en_fr"), None, None))
    before = loaded.transformers_model.generation_config.to_dict()
    loaded.use_direction(Direction("en", "fr"))
    assert loaded.transformers_model.generation_config.to_dict() == before
    assert loaded.transformers_model.generation_config.forced_bos_token_id is None
    ids = loaded.generate_ids(loaded.tokenizer(["The stock is in the critical zone."])["input_ids"], FAST)
    assert ids[0, 0].item() == loaded.transformers_model.config.decoder_start_token_id


def test_a_missing_base_names_run_json_and_model_id(tiny_runs, tmp_path):  # noqa: F811
    run = tiny_runs("opus_mt_en_fr")
    moved = tmp_path / "run"
    moved.mkdir()
    for item in run.iterdir():
        (moved / item.name).symlink_to(item)
    (moved / "run.json").unlink()
    record = json.loads((run / "run.json").read_text())
    record["plan"]["model_id"] = "/no/such/cluster/path"
    (moved / "run.json").write_text(json.dumps(record))
    with pytest.raises(ModelError) as info:
        load_for_inference(resolve_source(moved, None, None))
    assert "/no/such/cluster/path" in str(info.value) and "pass --model-id PATH" in str(info.value)
