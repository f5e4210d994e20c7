"""Tiny, pretrained, offline stand-ins for every registry model, for tests, CI and the demo.

`build_tiny_models(out_dir)` writes `out_dir/<key>` for each registry key: a checkpoint of the key's family
(MarianMTModel, M2M100ForConditionalGeneration, MBartForConditionalGeneration) with TINY_DIMS (d_model 128, two
encoder and two decoder layers), saved with `save_pretrained` (float32 safetensors, config.json,
generation_config.json) next to the family's *real* tokenizer class (MarianTokenizer, M2M100Tokenizer,
MBart50Tokenizer), so `AutoTokenizer` and `AutoModelForSeq2SeqLM.from_pretrained(dir)` load them offline without
trust_remote_code.

The weights are not random: they come from `assets/tiny/<base>.safetensors` (float16), which
`scripts/pretrain_tiny.py` trained on `assets/pretrain_pairs.jsonl`: general sentences about the same fish, places,
numbers and dates as the domain file `assets/sample_pairs.jsonl`, from a disjoint set of templates. The bases
therefore translate a little, and LoRA fine-tuning on the domain file has something real to learn: its phrasing.
There are four bases: the two Marian directions are separate models (as on the hub), M2M100 is one bidirectional
model, and mBART-50 is one bidirectional model shared by both mBART keys. `random_init=True` builds the same
architecture with random weights instead (for benchmarks).

The tokenizers share one SentencePiece unigram model, `assets/tiny/spm.model`, trained once on both languages of
both shipped files (`train_sentencepiece`; character coverage 1.0, so every character of that text - French accents
included - round-trips) and committed, so every machine builds the same vocabulary. Each family lays it out as its
hub checkpoints do:

- Marian: `source.spm`, `target.spm` and a `vocab.json` of `</s>`=0, `<unk>`=1, pieces..., `<pad>`=last;
  pad is the decoder start token, eos is 0.
- M2M100: `sentencepiece.bpe.model` and a fairseq `vocab.json` (`<s>`=0, `<pad>`=1, `</s>`=2, `<unk>`=3, pieces...);
  the 100 `__xx__` language tokens follow the vocabulary (ids len(vocab.json) + i) and, as on the hub, the model's
  embedding also has room for 8 "madeup words" after them. Decoder start = eos = `</s>` = 2.
- mBART-50: `tokenizer.json` (built from `sentencepiece.bpe.model`): `<s>`=0, `<pad>`=1, `</s>`=2, `<unk>`=3,
  pieces..., the 52 `xx_XX` language codes, `<mask>`. Decoder start = eos = 2; learned positions (1024 + 2 rows).

Random weights (the starting point of pretraining, and `random_init=True`) are seeded from the hub id; the tied
token embeddings are drawn as fairseq draws them, N(0, d_model^-1/2) with a zero pad row. Everything is
deterministic: building twice gives byte-identical files. torch, transformers and sentencepiece are imported inside
the functions so importing csas_cli stays cheap.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import warnings
import zlib
from pathlib import Path
from typing import Iterable, Sequence

from ..modeling import save_model_quietly
from ..registry import MODEL_KEYS, REGISTRY, select_keys, split_keys
from ..shipped import ASSETS, PRETRAIN_PAIRS, SAMPLE_PAIRS

TINY_ASSETS = ASSETS / "tiny"
SPM_MODEL = TINY_ASSETS / "spm.model"
"""The committed SentencePiece model every tiny tokenizer is built from."""

SPM_VOCAB_SIZE = 1500
"""SentencePiece pieces (the shipped text supports at most about 2,400 unigram pieces)."""

SPM_SEED = 20240917
TINY_DIMS = dict(d_model=128, layers=2, heads=4, ffn=512)
PRETRAIN_DROPOUT = 0.1
"""Dropout (and attention dropout) while pretraining the bases; the shipped configs have none."""
GENERATION_MAX_LENGTH = 64
M2M100_MADEUP_WORDS = 8

_MARIAN_MAX_POSITIONS = 1024  # the opus-mt-tc-big checkpoints; sinusoidal, not saved
_FAIRSEQ_MAX_POSITIONS = 1024  # m2m100 (sinusoidal) and mbart-50 (learned, +2 offset rows)


def train_sentencepiece(
    corpora: Iterable[Path] = (SAMPLE_PAIRS, PRETRAIN_PAIRS), vocab_size: int = SPM_VOCAB_SIZE
) -> bytes:
    """A serialized SentencePiece unigram model trained (deterministically) on both sides of `corpora`.

    Piece ids follow SentencePiece's defaults (`<unk>`=0, `<s>`=1, `</s>`=2, no pad), which is what
    MBart50Tokenizer's conversion expects when it reorders them into fairseq order. Builds do not call this: they
    read the committed SPM_MODEL, which scripts/pretrain_tiny.py --retrain-spm wrote with it (sentencepiece versions
    may train slightly different models, and the pretrained weights belong to one vocabulary).
    """
    import io

    import sentencepiece as spm

    sentences = []
    for corpus in corpora:
        with open(corpus, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    row = json.loads(line)
                    sentences += [row["source"], row["target"]]
    model = io.BytesIO()
    spm.set_random_generator_seed(SPM_SEED)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        model_type="unigram",
        vocab_size=vocab_size,
        character_coverage=1.0,
        num_threads=1,
        shuffle_input_sentence=False,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        minloglevel=2,
    )
    return model.getvalue()


def base_name(key: str) -> str:
    """The pretrained base a registry key uses: marian-en-fr, marian-fr-en, m2m100 or mbart50."""
    spec = REGISTRY[key]
    if spec.family.language_codes is None:
        source = spec.source_langs[0]
        return f"{spec.family.name}-{source}-{'fr' if source == 'en' else 'en'}"
    return spec.family.name


def base_weights(key: str) -> Path:
    """The committed float16 weights of `key`'s base."""
    return TINY_ASSETS / f"{base_name(key)}.safetensors"


def build_tiny_models(
    out_dir: Path, keys: Iterable[str] = MODEL_KEYS, *, random_init: bool = False
) -> dict[str, Path]:
    """Write a tiny checkpoint for each of `keys` into `out_dir/<key>`; returns key -> directory."""
    keys = list(keys)
    for key in keys:
        REGISTRY[key]  # KeyError before any work
    spm_model = SPM_MODEL.read_bytes()
    return {key: _build(key, Path(out_dir), spm_model, random_init) for key in keys}


def build_tiny_model(key: str, out_dir: Path, *, random_init: bool = False) -> Path:
    """Write the tiny checkpoint of registry `key` into `out_dir/<key>` and return that directory.

    The weights are `key`'s pretrained base, or random ones (same architecture and seed) with `random_init`.
    """
    REGISTRY[key]
    return _build(key, Path(out_dir), SPM_MODEL.read_bytes(), random_init)


# ---------------------------------------------------------------------------------------------------------------------


def _build(key: str, out_dir: Path, spm_model: bytes, random_init: bool) -> Path:
    spec = REGISTRY[key]
    builders = {"marian": _marian, "m2m100": _m2m100, "mbart50": _mbart50}
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / key
    # Build next to the target and swap it in, so a failed build never leaves a half-written checkpoint.
    work = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=out_dir))
    try:
        staging, result = work / "staging", work / "result"
        staging.mkdir()
        tokenizer, config, generation = builders[spec.family.name](spec, staging, spm_model)
        tokenizer.save_pretrained(result)
        weights = None if random_init else base_weights(key)
        _save_model(spec.family.name, config, generation, result, zlib.crc32(spec.hub_id.encode()), weights)
        if target.exists():
            shutil.rmtree(target)
        os.replace(result, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _pieces(spm_model: bytes) -> list[str]:
    import sentencepiece as spm

    processor = spm.SentencePieceProcessor(model_proto=spm_model)
    pieces = [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
    assert pieces[:3] == ["<unk>", "<s>", "</s>"], pieces[:3]
    return pieces[3:]


def _write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def _common(vocab_size: int, pad: int, eos: int, bos: int | None, decoder_start: int) -> dict:
    d = TINY_DIMS
    return dict(
        vocab_size=vocab_size,
        d_model=d["d_model"],
        encoder_layers=d["layers"],
        decoder_layers=d["layers"],
        encoder_attention_heads=d["heads"],
        decoder_attention_heads=d["heads"],
        encoder_ffn_dim=d["ffn"],
        decoder_ffn_dim=d["ffn"],
        encoder_layerdrop=0.0,
        decoder_layerdrop=0.0,
        # No dropout in the shipped checkpoints: tests and demos fine-tune them for tens to hundreds of steps on a
        # few thousand rows, where dropout only adds noise. scripts/pretrain_tiny.py pretrains with PRETRAIN_DROPOUT.
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        scale_embedding=True,
        pad_token_id=pad,
        eos_token_id=eos,
        bos_token_id=bos,
        decoder_start_token_id=decoder_start,
        tie_word_embeddings=True,
    )


def _marian(spec, staging: Path, spm_model: bytes):
    from transformers import MarianConfig, MarianTokenizer

    vocab = {"</s>": 0, "<unk>": 1}
    for piece in _pieces(spm_model):
        vocab[piece] = len(vocab)
    vocab["<pad>"] = len(vocab)
    (staging / "source.spm").write_bytes(spm_model)
    (staging / "target.spm").write_bytes(spm_model)
    _write_json(staging / "vocab.json", vocab)
    source = spec.source_langs[0]
    target = "fr" if source == "en" else "en"
    _write_json(
        staging / "tokenizer_config.json",
        {
            "tokenizer_class": "MarianTokenizer",
            "source_lang": source,
            "target_lang": target,
            "unk_token": "<unk>",
            "eos_token": "</s>",
            "pad_token": "<pad>",
            "model_max_length": 512,
            "separate_vocabs": False,
        },
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Recommended: pip install sacremoses")
        tokenizer = MarianTokenizer.from_pretrained(staging)
    pad, eos = vocab["<pad>"], vocab["</s>"]
    config = MarianConfig(
        **_common(len(vocab), pad=pad, eos=eos, bos=None, decoder_start=pad),
        decoder_vocab_size=len(vocab),
        max_position_embeddings=_MARIAN_MAX_POSITIONS,
        activation_function="relu",
        share_encoder_decoder_embeddings=True,
        forced_eos_token_id=eos,
    )
    generation = dict(
        decoder_start_token_id=pad,
        pad_token_id=pad,
        eos_token_id=eos,
        forced_eos_token_id=eos,
        bad_words_ids=[[pad]],
    )
    return tokenizer, config, generation


def _m2m100(spec, staging: Path, spm_model: bytes):
    from transformers import M2M100Config, M2M100Tokenizer
    from transformers.models.m2m_100.tokenization_m2m_100 import FAIRSEQ_LANGUAGE_CODES

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for piece in _pieces(spm_model):
        vocab[piece] = len(vocab)
    (staging / "sentencepiece.bpe.model").write_bytes(spm_model)
    _write_json(staging / "vocab.json", vocab)
    _write_json(
        staging / "tokenizer_config.json",
        {
            "tokenizer_class": "M2M100Tokenizer",
            "language_codes": "m2m100",
            "num_madeup_words": M2M100_MADEUP_WORDS,
            # As on the hub: without this list transformers 5 does not mark the language tokens special, so
            # decode(skip_special_tokens=True) would keep "__fr__".
            "additional_special_tokens": [f"__{code}__" for code in FAIRSEQ_LANGUAGE_CODES["m2m100"]],
            "model_max_length": 1024,
        },
    )
    tokenizer = M2M100Tokenizer.from_pretrained(staging)
    lang_ids = [tokenizer.get_lang_id(code) for code in FAIRSEQ_LANGUAGE_CODES["m2m100"]]
    # Hub layout: vocab.json, then the 100 language tokens, then room for the madeup words (128004+100+8 = 128112).
    vocab_size = max(len(tokenizer), max(lang_ids) + 1) + M2M100_MADEUP_WORDS
    config = M2M100Config(
        **_common(vocab_size, pad=1, eos=2, bos=0, decoder_start=2),
        max_position_embeddings=_FAIRSEQ_MAX_POSITIONS,
        activation_function="relu",
    )
    generation = dict(bos_token_id=0, decoder_start_token_id=2, pad_token_id=1, eos_token_id=2)
    return tokenizer, config, generation


def _mbart50(spec, staging: Path, spm_model: bytes):
    from transformers import MBart50Tokenizer, MBartConfig

    # MBart50Tokenizer(vocab_file=...) builds an empty vocabulary on transformers 5 (constructors take `vocab`);
    # from_pretrained on a folder holding sentencepiece.bpe.model converts the model and reorders it to fairseq ids.
    (staging / "sentencepiece.bpe.model").write_bytes(spm_model)
    _write_json(
        staging / "tokenizer_config.json",
        {"tokenizer_class": "MBart50Tokenizer", "model_max_length": 1024},
    )
    tokenizer = MBart50Tokenizer.from_pretrained(staging)
    expected = 4 + len(_pieces(spm_model)) + 52 + 1  # specials, pieces, language codes, <mask>
    if len(tokenizer) != expected or tokenizer.convert_tokens_to_ids("▁de") == tokenizer.unk_token_id:
        raise RuntimeError(f"MBart50Tokenizer lost its vocabulary ({len(tokenizer)} tokens, expected {expected})")
    config = MBartConfig(
        **_common(len(tokenizer), pad=1, eos=2, bos=0, decoder_start=2),
        max_position_embeddings=_FAIRSEQ_MAX_POSITIONS,
        activation_function="relu",
        forced_eos_token_id=2,
    )
    generation = dict(bos_token_id=0, decoder_start_token_id=2, pad_token_id=1, eos_token_id=2, forced_eos_token_id=2)
    return tokenizer, config, generation


def _save_model(family: str, config, generation: dict, directory: Path, seed: int, weights: Path | None) -> None:
    import torch
    from transformers import (
        GenerationConfig,
        M2M100ForConditionalGeneration,
        MarianMTModel,
        MBartForConditionalGeneration,
    )

    model_class = {
        "marian": MarianMTModel,
        "m2m100": M2M100ForConditionalGeneration,
        "mbart50": MBartForConditionalGeneration,
    }[family]

    with torch.random.fork_rng(devices=[]):  # seeded init without disturbing the caller's RNG
        torch.manual_seed(seed)
        model = model_class(config)
        # Token embeddings as fairseq initialises them: N(0, d_model^-1/2), pad row zero. With scale_embedding the
        # encoder input then has unit variance (with transformers' init_std=0.02 the sinusoidal positions swamp the
        # tokens), and the tied lm_head gives logits a usable range.
        embeddings = model.get_input_embeddings().weight
        with torch.no_grad():
            embeddings.normal_(0.0, config.d_model**-0.5)
            embeddings[config.pad_token_id].zero_()
    if weights is not None:
        load_weights(model, weights)
    model.generation_config = GenerationConfig(**generation, max_length=GENERATION_MAX_LENGTH)
    save_model_quietly(model, directory)


# Weights a checkpoint file does not hold: the token embeddings tied to `shared`, and sinusoidal positions.
_NOT_STORED = ("embed_tokens.weight", "lm_head.weight", "embed_positions.weight", "embed_positions.weights")


def load_weights(model, path: Path) -> None:
    """Load a float16 base (written by scripts/pretrain_tiny.py) into `model`, as float32; every stored tensor
    must match a parameter or buffer of `model`, and every weight it lacks must be tied or computed."""
    import torch
    from safetensors.torch import load_file

    state = {name: tensor.to(torch.float32) for name, tensor in load_file(str(path)).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    untied = [name for name in missing if not name.endswith(_NOT_STORED)]
    if unexpected or untied:
        raise RuntimeError(f"{path.name} does not fit {type(model).__name__}: unexpected {unexpected}, missing {untied}")


def run(out_dir: Path, only: Sequence[str] | None = None) -> None:
    """`csas tiny-models`: build them, then print each key and its folder."""
    built = build_tiny_models(out_dir, select_keys(split_keys(only)))
    for key, path in built.items():
        sys.stdout.write(f"{key}\t{path}\n")


__all__ = [
    "run",
    "SPM_MODEL",
    "TINY_DIMS",
    "base_name",
    "base_weights",
    "build_tiny_model",
    "build_tiny_models",
    "load_weights",
    "train_sentencepiece",
]
