"""Tests for csas_cli.inference.generation: per-family generation settings, a loaded model and its direction()
context, length-sorted batching with order restored, one output line per input, and loading for inference (M2M100
and mBART-50 generate the target language's code first in both directions)."""

from __future__ import annotations

import json
from contextlib import contextmanager

import pytest

from csas_cli.errors import ModelError, SettingsError
from csas_cli.inference.generation import (
    GenerationSettings,
    LoadedModel,
    fit_length,
    length_sorted_batches,
    load_for_inference,
    single_line,
    translate_texts,
)
from csas_cli.inference.source import resolve_direction, resolve_source
from csas_cli.languages import Direction, generation_overrides, language_token_id
from csas_cli.registry import M2M100, MARIAN, MBART50, REGISTRY

FAST = GenerationSettings(num_beams=2, max_new_tokens=16, batch_size=4)
EN_FR = Direction("en", "fr")


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


# --- LoadedModel.direction(): set for the body, put back after ------------------------------------------------------


@pytest.fixture(scope="module")
def bases(tiny_models):
    """The tiny M2M100 and mBART-50 bases, loaded once as LoadedModels (no adapter)."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    out = {}
    for key in ("m2m100_418m", "mbart50_mmt_fr"):
        model = AutoModelForSeq2SeqLM.from_pretrained(tiny_models[key]).eval()
        tokenizer = AutoTokenizer.from_pretrained(tiny_models[key])
        out[key] = LoadedModel(model, tokenizer, REGISTRY[key].family, torch.device("cpu"))
    return out


def direction_state(loaded: LoadedModel) -> tuple:
    """What direction() changes: the tokenizer's languages, the forced first token, and the code sources start with."""
    tokenizer = loaded.tokenizer
    first = tokenizer(["The stock is in the critical zone."])["input_ids"][0][0]
    forced_bos = loaded.transformers_model.generation_config.forced_bos_token_id
    return tokenizer.src_lang, tokenizer.tgt_lang, forced_bos, first


@pytest.mark.parametrize("key", ["m2m100_418m", "mbart50_mmt_fr"])
@pytest.mark.parametrize("direction", [Direction("en", "fr"), Direction("fr", "en")], ids=str)
@pytest.mark.parametrize("forced_before", ["other-language", "none"])
def test_direction_sets_the_languages_for_its_body_and_puts_them_back(bases, key, direction, forced_before):
    loaded = bases[key]
    family, tokenizer = loaded.family, loaded.tokenizer
    config = loaded.transformers_model.generation_config
    # Start pointed at the opposite direction, so that every field direction() sets visibly changes.
    tokenizer.src_lang, tokenizer.tgt_lang = family.code(direction.target), family.code(direction.source)
    config.forced_bos_token_id = (
        language_token_id(tokenizer, family, direction.source) if forced_before == "other-language" else None
    )
    before = direction_state(loaded)
    assert before[3] == language_token_id(tokenizer, family, direction.target)
    source_code = language_token_id(tokenizer, family, direction.source)
    target_code = language_token_id(tokenizer, family, direction.target)
    with loaded.direction(direction):
        assert direction_state(loaded) == (
            family.code(direction.source), family.code(direction.target), target_code, source_code
        )
    assert direction_state(loaded) == before


@pytest.mark.parametrize("key", ["m2m100_418m", "mbart50_mmt_fr"])
def test_direction_puts_the_languages_back_when_its_body_raises(bases, key):
    loaded = bases[key]
    family, tokenizer = loaded.family, loaded.tokenizer
    config = loaded.transformers_model.generation_config
    tokenizer.src_lang, tokenizer.tgt_lang = family.code("fr"), family.code("en")
    config.forced_bos_token_id = None
    before = direction_state(loaded)
    with pytest.raises(RuntimeError, match="in the body"):
        with loaded.direction(EN_FR):
            assert config.forced_bos_token_id == language_token_id(tokenizer, family, "fr")
            assert (tokenizer.src_lang, tokenizer.tgt_lang) == (family.code("en"), family.code("fr"))
            raise RuntimeError("in the body")
    assert direction_state(loaded) == before
    assert config.forced_bos_token_id is None


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


class EchoModel:
    """Stands in for LoadedModel: 'translates' by upper-casing, records each batch and the direction it was
    tokenized and generated in, can emit line breaks."""

    max_source_tokens = 6

    def __init__(self):
        self.batches: list[list[int]] = []
        self.active: Direction | None = None
        self.seen: list[tuple[str, Direction | None]] = []

    def tokenizer(self, texts):
        self.seen.append(("tokenize", self.active))
        return {"input_ids": [[len(t)] * len(t.split()) + [0] for t in texts]}  # words + a closing token

    @contextmanager
    def direction(self, direction):
        self.active = direction
        try:
            yield
        finally:
            self.active = None

    def translate_batches(self, batches, settings):
        for input_ids in batches:
            self.seen.append(("generate", self.active))
            self.batches.append([len(ids) for ids in input_ids])
            yield [f"T{row[0]}\nline" for row in input_ids]


def test_translate_texts_restores_input_order_and_keeps_empty_lines():
    texts = ["a b", "", "one two three four", "x", "   ", "p q r s t u v w"]
    model = EchoModel()
    advanced = []
    result = translate_texts(model, texts, EN_FR, GenerationSettings(batch_size=2), advanced.append)
    assert model.seen == [("tokenize", EN_FR), ("generate", EN_FR), ("generate", EN_FR)]  # all in the direction
    assert model.active is None  # and the direction is left afterwards
    assert result.lines == ["T3 line", "", "T18 line", "T1 line", "", "T15 line"]
    assert result.truncated == 1  # 8 words + 1 > 6 tokens
    assert model.batches == [[6, 5], [3, 2]]  # longest first, the long one cut to 6 tokens
    assert advanced == [2, 2]


def test_translate_texts_with_nothing_to_translate():
    model = EchoModel()
    assert translate_texts(model, ["", " "], EN_FR, GenerationSettings()).lines == ["", ""]
    assert model.batches == []


# --- loading and generating: the target code comes first ----------------------------------------------------------


@pytest.mark.parametrize(
    "key, lang, qlora",
    [("m2m100_418m", "en", False), ("m2m100_418m", "fr", False), ("mbart50_mmt_fr", None, False),
     ("mbart50_mmt_en", None, True)],
    ids=["m2m100-en-fr", "m2m100-fr-en", "mbart50-en-fr", "mbart50-fr-en-qlora-run"],
)  # fmt: skip
@pytest.mark.slow
def test_the_first_generated_token_is_the_target_language_code(tiny_runs, key, lang, qlora):
    source = resolve_source(tiny_runs(key, qlora=qlora), None, None)
    direction = resolve_direction(source.spec, lang)
    loaded = load_for_inference(source)
    assert loaded.model.__class__.__name__.startswith("Peft") and not loaded.model.training
    assert loaded.family is source.spec.family
    assert all(p.dtype.is_floating_point and p.dtype.itemsize == 4 for p in loaded.model.parameters())  # CPU: fp32
    sentences = {"en": ["The stock is in the critical zone.", "No survey was conducted in 2009."],
                 "fr": ["Le stock se trouve dans la zone critique.", "Aucun relevé n'a été effectué en 2009."]}
    source_code = language_token_id(loaded.tokenizer, loaded.family, direction.source)
    target_code = language_token_id(loaded.tokenizer, loaded.family, direction.target)
    config = loaded.transformers_model.generation_config
    with loaded.direction(direction):
        encoded = loaded.tokenizer(sentences[direction.source])["input_ids"]
        assert all(ids[0] == source_code for ids in encoded)  # src_lang was set: sources start with their code
        ids = loaded.generate_ids(encoded, FAST)
        assert config.forced_bos_token_id == target_code
    assert ids[:, 0].tolist() == [config.decoder_start_token_id] * len(encoded)
    assert ids[:, 1].tolist() == [target_code] * len(encoded)
    texts = loaded.decode(ids)
    assert all(t.strip() for t in texts)
    code_text = loaded.tokenizer.convert_ids_to_tokens(target_code)
    assert not any(code_text in t for t in texts)


def test_marian_forces_nothing(tiny_runs):
    loaded = load_for_inference(resolve_source(tiny_runs("opus_mt_en_fr"), None, None))
    before = loaded.transformers_model.generation_config.to_dict()
    with loaded.direction(Direction("en", "fr")):
        assert loaded.transformers_model.generation_config.to_dict() == before
        assert loaded.transformers_model.generation_config.forced_bos_token_id is None
        ids = loaded.generate_ids(loaded.tokenizer(["The stock is in the critical zone."])["input_ids"], FAST)
    assert loaded.transformers_model.generation_config.to_dict() == before
    assert ids[0, 0].item() == loaded.transformers_model.config.decoder_start_token_id


def test_a_missing_base_names_run_json_and_model_id(tiny_runs, tmp_path):
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
