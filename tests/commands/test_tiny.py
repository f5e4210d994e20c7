"""The tiny offline checkpoints (csas_cli/commands/tiny.py), their committed pretrained bases and the shipped bilingual
text."""

from __future__ import annotations

import importlib.util
import json
import math
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

from csas_cli.commands.tiny import (
    SPM_MODEL,
    TINY_ASSETS,
    TINY_DIMS,
    base_name,
    base_weights,
    build_tiny_model,
    build_tiny_models,
)
from csas_cli.registry import MODEL_KEYS, REGISTRY
from csas_cli.shipped import HELDOUT_PAIRS, PRETRAIN_PAIRS, SAMPLE_PAIRS

pytestmark = pytest.mark.filterwarnings("ignore:Recommended. pip install sacremoses")

SCRIPT = ROOT / "scripts" / "make_sample_data.py"

TOKENIZER_CLASS = {"marian": "MarianTokenizer", "m2m100": "M2M100Tokenizer", "mbart50": "MBart50Tokenizer"}
MODEL_CLASS = {
    "marian": "MarianMTModel",
    "m2m100": "M2M100ForConditionalGeneration",
    "mbart50": "MBartForConditionalGeneration",
}
FRENCH_LETTERS = "àâæçéèêëîïôœùûüÿÀÉÎŒ"
ACCENTED_FR = (
    "À l'avenir, les mâles, les œufs et les cæcums pyloriques de la zone contiguë (Louÿs et Müller) : une mosaïque "
    "d'habitats où, en août, la pêche côtière a été évaluée de façon qualitative à 12 500 t... Œufs, "
    "Île-du-Prince-Édouard, huîtres, 35 %."
)


def _rows(path: Path = SAMPLE_PAIRS) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _script():
    spec = importlib.util.spec_from_file_location("make_sample_data", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _en_fr(row: dict) -> tuple[str, str]:
    return (row["source"], row["target"]) if row["source_lang"] == "en" else (row["target"], row["source"])


def _load(path: Path):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    return AutoTokenizer.from_pretrained(path), AutoModelForSeq2SeqLM.from_pretrained(path)


def _direction(key: str) -> tuple[str, str]:
    source = REGISTRY[key].source_langs[0]
    return source, "fr" if source == "en" else "en"


def _set_langs(tokenizer, key: str, source: str, target: str) -> None:
    family = REGISTRY[key].family
    if family.language_codes is not None:
        tokenizer.src_lang = family.code(source)
        tokenizer.tgt_lang = family.code(target)


@pytest.fixture(scope="module")
def loaded(tiny_models):
    return {key: _load(path) for key, path in tiny_models.items()}


def test_every_registry_key_is_built(tiny_models):
    assert list(tiny_models) == list(MODEL_KEYS)
    for key, path in tiny_models.items():
        assert path.name == key and (path / "model.safetensors").is_file()
        assert (path / "config.json").is_file() and (path / "generation_config.json").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("key", MODEL_KEYS)
def test_auto_classes_load_the_real_tokenizer_and_model(loaded, key):
    tokenizer, model = loaded[key]
    family = REGISTRY[key].family
    assert type(tokenizer).__name__ == TOKENIZER_CLASS[family.name]
    assert type(model).__name__ == MODEL_CLASS[family.name]
    assert model.config.model_type == family.model_type
    assert model.config.d_model == TINY_DIMS["d_model"] <= 128
    assert model.config.encoder_layers == model.config.decoder_layers == TINY_DIMS["layers"] <= 3


@pytest.mark.parametrize("key", MODEL_KEYS)
def test_round_trip_of_shipped_sentences(loaded, key):
    tokenizer, _ = loaded[key]
    source, target = _direction(key)
    _set_langs(tokenizer, key, source, target)
    rows = random.Random(7).sample(_rows(), 150)
    for row in rows:
        text = dict(zip(("en", "fr"), _en_fr(row)))
        encoded = tokenizer(text[source], text_target=text[target])
        assert tokenizer.unk_token_id not in encoded["input_ids"] + encoded["labels"], row
        assert tokenizer.decode(encoded["input_ids"], skip_special_tokens=True) == text[source]
        assert tokenizer.decode(encoded["labels"], skip_special_tokens=True) == text[target]


@pytest.mark.parametrize("key", MODEL_KEYS)
def test_round_trip_of_every_french_accent(loaded, key):
    tokenizer, _ = loaded[key]
    _set_langs(tokenizer, key, "fr", "en")
    assert set(FRENCH_LETTERS) <= set(ACCENTED_FR)
    ids = tokenizer(ACCENTED_FR)["input_ids"]
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == ACCENTED_FR


@pytest.mark.parametrize("key", ["m2m100_418m", "mbart50_mmt_fr", "mbart50_mmt_en"])
@pytest.mark.parametrize("source", ["en", "fr"])
def test_language_codes_lead_inputs_and_labels(loaded, key, source):
    tokenizer, _ = loaded[key]
    family = REGISTRY[key].family
    target = "fr" if source == "en" else "en"
    _set_langs(tokenizer, key, source, target)
    text = {"en": "The cod stock", "fr": "Le stock de morue"}
    encoded = tokenizer(text[source], text_target=text[target])
    lang_id = {lang: tokenizer.convert_tokens_to_ids(_lang_token(family.name, lang)) for lang in ("en", "fr")}
    assert encoded["input_ids"][0] == lang_id[source] and encoded["input_ids"][-1] == tokenizer.eos_token_id
    assert encoded["labels"][0] == lang_id[target] and encoded["labels"][-1] == tokenizer.eos_token_id
    assert tokenizer.eos_token == "</s>"
    body = encoded["input_ids"][1:-1]
    assert body and tokenizer.unk_token_id not in body
    if family.name == "m2m100":
        assert lang_id["fr"] == tokenizer.get_lang_id("fr")


def _lang_token(family: str, lang: str) -> str:
    return f"__{lang}__" if family == "m2m100" else {"en": "en_XX", "fr": "fr_XX"}[lang]


@pytest.mark.parametrize("key", ["opus_mt_en_fr", "opus_mt_fr_en"])
def test_marian_appends_only_eos(loaded, key):
    tokenizer, _ = loaded[key]
    encoded = tokenizer("The cod stock", text_target="Le stock de morue")
    for ids in (encoded["input_ids"], encoded["labels"]):
        assert ids[-1] == tokenizer.eos_token_id == 0
        assert all(i not in tokenizer.all_special_ids for i in ids[:-1])
    assert tokenizer.convert_ids_to_tokens(encoded["input_ids"][:1]) == ["▁The"]


@pytest.mark.parametrize("key", MODEL_KEYS)
def test_special_ids_follow_the_hub_conventions(loaded, key):
    tokenizer, model = loaded[key]
    config, generation = model.config, model.generation_config
    family = REGISTRY[key].family.name
    assert config.pad_token_id == tokenizer.pad_token_id
    assert config.eos_token_id == tokenizer.eos_token_id
    if family == "marian":
        assert config.decoder_start_token_id == config.pad_token_id == len(tokenizer) - 1
        assert config.eos_token_id == 0
        assert generation.bad_words_ids == [[config.pad_token_id]]
    else:
        assert config.decoder_start_token_id == config.eos_token_id == tokenizer.convert_tokens_to_ids("</s>") == 2
        assert (config.bos_token_id, config.pad_token_id) == (0, 1)
    for name in ("decoder_start_token_id", "pad_token_id", "eos_token_id"):
        assert getattr(generation, name) == getattr(config, name), name
    assert generation.forced_bos_token_id is None
    assert generation.max_length <= 128


@pytest.mark.parametrize("key", MODEL_KEYS)
def test_vocab_covers_the_tokenizer_and_embeddings_are_tied(loaded, key):
    tokenizer, model = loaded[key]
    vocab_size = model.config.vocab_size
    assert vocab_size >= len(tokenizer)
    assert max(tokenizer.get_vocab().values()) < vocab_size
    assert model.get_input_embeddings().weight.shape[0] == vocab_size
    embeddings = model.get_input_embeddings().weight
    assert model.get_output_embeddings().weight is embeddings
    family = REGISTRY[key].family.name
    if family == "mbart50":
        assert vocab_size == len(tokenizer)
        assert model.config.max_position_embeddings >= 512
        assert model.model.encoder.embed_positions.weight.shape[0] >= 514
    elif family == "marian":
        assert vocab_size == len(tokenizer)


@pytest.mark.parametrize("key", MODEL_KEYS)
def test_forward_pass_with_labels(loaded, key):
    import torch

    tokenizer, model = loaded[key]
    source, target = _direction(key)
    _set_langs(tokenizer, key, source, target)
    rows = [_en_fr(row) for row in _rows()[:2]]
    sources = [pair[0] if source == "en" else pair[1] for pair in rows]
    targets = [pair[1] if source == "en" else pair[0] for pair in rows]
    batch = tokenizer(sources, text_target=targets, padding=True, return_tensors="pt")
    batch["labels"][batch["labels"] == tokenizer.pad_token_id] = -100
    model.eval()
    with torch.no_grad():
        out = model(**batch)
        assert torch.isfinite(out.loss)
        assert out.logits.shape[-1] == model.config.vocab_size
        # 512-token inputs fit the position embeddings.
        long = tokenizer(" ".join(sources * 40), truncation=True, max_length=512, return_tensors="pt")
        assert long["input_ids"].shape[1] == 512
        model(**long, labels=batch["labels"][:1])


# --- the pretrained bases -------------------------------------------------------------------------------------------


def _mean_loss(tokenizer, model, key: str, pairs: list[tuple[str, str]]) -> float:
    """Token-averaged cross-entropy (no label smoothing) in the key's direction, teacher-forced as csas trains:
    decoder inputs are the labels shifted right from decoder_start_token_id."""
    import torch
    import torch.nn.functional as F

    source, target = _direction(key)
    _set_langs(tokenizer, key, source, target)
    texts = {"en": [en for en, _ in pairs], "fr": [fr for _, fr in pairs]}
    batch = tokenizer(texts[source], text_target=texts[target], padding=True, return_tensors="pt")
    labels = batch["labels"]
    mask = batch["labels"] != tokenizer.pad_token_id
    decoder_inputs = torch.cat(
        [torch.full_like(labels[:, :1], model.config.decoder_start_token_id), labels[:, :-1]], dim=1
    )
    model.eval()
    with torch.no_grad():
        logits = model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], decoder_input_ids=decoder_inputs
        ).logits
    return F.cross_entropy(logits[mask], labels[mask]).item()


def _pairs(path: Path, n: int) -> list[tuple[str, str]]:
    return [_en_fr(row) for row in random.Random(11).sample(_rows(path), n)]


@pytest.fixture(scope="module")
def random_models(tmp_path_factory):
    out = tmp_path_factory.mktemp("random-init")
    return {key: _load(path) for key, path in build_tiny_models(out, random_init=True).items()}


@pytest.mark.slow
@pytest.mark.parametrize("key", MODEL_KEYS)
def test_pretrained_base_knows_the_languages_but_not_the_domain(loaded, random_models, key):
    tokenizer, model = loaded[key]
    ln_vocab = math.log(model.config.vocab_size)
    general = _mean_loss(tokenizer, model, key, _pairs(PRETRAIN_PAIRS, 24))
    domain = _mean_loss(tokenizer, model, key, _pairs(SAMPLE_PAIRS, 24))
    random_tokenizer, random_model = random_models[key]
    at_random = _mean_loss(random_tokenizer, random_model, key, _pairs(PRETRAIN_PAIRS, 24))
    assert at_random > 0.9 * ln_vocab, (at_random, ln_vocab)  # random init: no better than uniform
    assert general < 0.6 * ln_vocab, (general, ln_vocab)  # pretrained on this kind of text
    assert domain > general + 1.0, (domain, general)  # the domain's phrasing is new: fine-tuning has work to do


@pytest.mark.parametrize("key", ["opus_mt_en_fr", "m2m100_418m"])
def test_random_init_is_the_same_architecture_with_other_weights(loaded, random_models, key):
    import torch

    (_, model), (_, random_model) = loaded[key], random_models[key]
    config, random_config = model.config.to_dict(), random_model.config.to_dict()
    config.pop("_name_or_path"), random_config.pop("_name_or_path")
    assert config == random_config
    assert config["dropout"] == config["attention_dropout"] == 0.0  # none in the shipped checkpoints
    weights, random_weights = model.state_dict(), random_model.state_dict()
    assert weights.keys() == random_weights.keys()
    assert not torch.equal(weights["model.shared.weight"], random_weights["model.shared.weight"])
    embeddings = random_model.get_input_embeddings().weight
    assert abs(embeddings.std().item() - model.config.d_model**-0.5) < 0.01  # fairseq-style init
    assert not embeddings[model.config.pad_token_id].any()  # pretraining moves it through the tied output layer


def test_committed_bases_are_small_float16_files():
    from safetensors import safe_open

    bases = {base_name(key) for key in MODEL_KEYS}
    assert bases == {"marian-en-fr", "marian-fr-en", "m2m100", "mbart50"}
    assert base_weights("mbart50_mmt_fr") == base_weights("mbart50_mmt_en")
    for key in MODEL_KEYS:
        with safe_open(base_weights(key), "pt") as handle:
            assert {handle.get_slice(name).get_dtype() for name in handle.keys()} == {"F16"}
    assert sorted(p.name for p in TINY_ASSETS.iterdir()) == sorted([f"{b}.safetensors" for b in bases] + ["spm.model"])
    total = sum(p.stat().st_size for p in TINY_ASSETS.parent.rglob("*") if p.is_file())
    assert total < 15_000_000, total


def test_tokenizers_use_the_committed_sentencepiece_model(tiny_models):
    committed = SPM_MODEL.read_bytes()
    assert (tiny_models["opus_mt_en_fr"] / "source.spm").read_bytes() == committed
    assert (tiny_models["opus_mt_en_fr"] / "target.spm").read_bytes() == committed
    assert (tiny_models["m2m100_418m"] / "sentencepiece.bpe.model").read_bytes() == committed


@pytest.mark.slow
def test_building_twice_gives_identical_files(tiny_models, tmp_path):
    again = build_tiny_models(tmp_path)
    for key, first in tiny_models.items():
        first_files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
        second_files = sorted(p.relative_to(again[key]) for p in again[key].rglob("*") if p.is_file())
        assert first_files == second_files, key
        for name in first_files:
            assert (first / name).read_bytes() == (again[key] / name).read_bytes(), f"{key}/{name}"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(MODEL_KEYS)  # no leftover work folders


@pytest.mark.slow
def test_single_build_matches_and_leaves_torch_rng_alone(tiny_models, tmp_path):
    import torch

    state = torch.random.get_rng_state()
    path = build_tiny_model("opus_mt_fr_en", tmp_path)
    assert torch.equal(state, torch.random.get_rng_state())
    assert path == tmp_path / "opus_mt_fr_en"
    for name in ("model.safetensors", "vocab.json", "source.spm", "tokenizer_config.json"):
        assert (path / name).read_bytes() == (tiny_models["opus_mt_fr_en"] / name).read_bytes()
    build_tiny_model("opus_mt_fr_en", tmp_path)  # rebuilding over an existing folder works
    with pytest.raises(KeyError):
        build_tiny_model("no_such_model", tmp_path)


def test_importing_tiny_does_not_import_torch():
    code = (
        "import sys, csas_cli.commands.tiny; "
        "sys.exit(int('torch' in sys.modules or 'transformers' in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# --- the shipped text -------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_sample_data_script_regenerates_the_shipped_files(tmp_path):
    out, heldout, pretrain = tmp_path / "pairs.jsonl", tmp_path / "heldout.jsonl", tmp_path / "pretrain.jsonl"
    subprocess.run(
        [sys.executable, str(SCRIPT), "--out", out, "--heldout-out", heldout, "--pretrain-out", pretrain],
        check=True,
        capture_output=True,
    )
    assert out.read_bytes() == SAMPLE_PAIRS.read_bytes()
    assert heldout.read_bytes() == HELDOUT_PAIRS.read_bytes()
    assert pretrain.read_bytes() == PRETRAIN_PAIRS.read_bytes()


def test_heldout_pairs_are_later_publications_of_the_same_domain():
    rows, domain = _rows(HELDOUT_PAIRS), _rows()
    assert 300 <= len(rows) <= 400
    assert all(set(row) == {"source", "target", "source_lang", "pub_number"} for row in rows)
    assert {row["pub_number"][:4] for row in rows} <= {"2025", "2026"}
    assert not {row["pub_number"] for row in rows} & {row["pub_number"] for row in domain}
    domain_sentences = {text for row in domain for text in (row["source"], row["target"])}
    assert not {text for row in rows for text in (row["source"], row["target"])} & domain_sentences  # unseen
    english = sum(row["source_lang"] == "en" for row in rows)
    assert 0.35 < english / len(rows) < 0.65


def test_shipped_sample_pairs_shape():
    assert SAMPLE_PAIRS.stat().st_size < 1_200_000
    rows = _rows()
    assert 2500 <= len(rows) <= 3500
    assert all(set(row) == {"source", "target", "source_lang", "pub_number"} for row in rows)
    assert all(re.fullmatch(r"\d{4}/\d{3}", row["pub_number"]) for row in rows)
    assert 120 <= len({row["pub_number"] for row in rows}) <= 180
    english = sum(row["source_lang"] == "en" for row in rows)
    assert {row["source_lang"] for row in rows} == {"en", "fr"}
    assert 0.4 < english / len(rows) < 0.6
    lengths = [len(text.split()) for row in rows for text in (row["source"], row["target"])]
    assert min(lengths) >= 5 and max(lengths) <= 45 and max(lengths) >= 35
    french = "".join(_en_fr(row)[1] for row in rows)
    assert set(FRENCH_LETTERS) <= set(french)
    assert "%" in french and " %" in french


def test_sample_data_has_enough_templates():
    module = _script()
    assert len(module.TEMPLATES) >= 40
    assert len({en for en, _ in module.TEMPLATES}) == len(module.TEMPLATES)
    assert len(module.PRETRAIN_TEMPLATES) >= 40
    assert len({en for en, _ in module.PRETRAIN_TEMPLATES}) == len(module.PRETRAIN_TEMPLATES)


def test_pretraining_text_is_disjoint_from_the_domain_text():
    module = _script()
    assert not {en for en, _ in module.TEMPLATES} & {en for en, _ in module.PRETRAIN_TEMPLATES}
    assert not {fr for _, fr in module.TEMPLATES} & {fr for _, fr in module.PRETRAIN_TEMPLATES}
    domain = {text for row in _rows() for text in (row["source"], row["target"])}
    pretrain = _rows(PRETRAIN_PAIRS)
    assert not domain & {text for row in pretrain for text in (row["source"], row["target"])}


def test_shipped_pretrain_pairs_shape():
    assert PRETRAIN_PAIRS.stat().st_size < 2_000_000
    rows = _rows(PRETRAIN_PAIRS)
    assert len(rows) >= 5000
    assert all(set(row) == {"source", "target", "source_lang", "pub_number"} for row in rows)
    english = sum(row["source_lang"] == "en" for row in rows)
    assert 0.4 < english / len(rows) < 0.6
