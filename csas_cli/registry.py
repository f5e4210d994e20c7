"""The model registry, the finetune-all table and the sweep grids: data only, in one place.

Each model family's differences (language codes, decoder start, whether a device map may shard it) live on a small
`Family` record, so the rest of the code asks the family instead of testing registry keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Mapping, Sequence

from .errors import SettingsError

LANGUAGES = ("en", "fr")


def other_language(lang: str) -> str:
    """The target language of a row whose source is `lang` (csas translates between English and French only)."""
    return "fr" if lang == "en" else "en"


def primary_language(code: str) -> str:
    """A language code's primary subtag, lower-cased: `en`, `EN`, `en-CA` and `en_GB` are all `en`."""
    return re.split(r"[-_]", code.strip().lower(), maxsplit=1)[0]


LANGUAGE_NAMES = {
    "en": ("english", "anglais", "inglés", "ingles", "englisch", "inglese"),
    "fr": ("french", "français", "francais", "französisch", "francés", "frances", "francese"),
}
"""Words that name a language in a column header."""
LOCALE = re.compile(r"(en|fr)([-_][a-z0-9]{1,8})*")
_FILE_LANGUAGE = re.compile(r"(?P<lang>en|eng|fr|fra|fre)(?:[-_](?P<region>[a-z]{2}|latn))?")
_FILE_CODES = {"en": "en", "eng": "en", "fr": "fr", "fra": "fr", "fre": "fr"}


def header_language(cell: str) -> str | None:
    """The language a column header names: a code (`en`, `fr-CA`, `FR_ca`) or a language name in it (`English`,
    `Terme anglais`, `Français (Canada)`); None when it names none, or both."""
    text = cell.strip().casefold()
    if LOCALE.fullmatch(text):
        return primary_language(text)
    words = set(re.findall(r"\w+", text))
    found = [lang for lang in LANGUAGES if words & set(LANGUAGE_NAMES[lang]) or lang in words]
    return found[0] if len(found) == 1 else None


def file_language(name: str) -> str | None:
    """The language a line-aligned file's name gives, the way OPUS and test sets name them: a dot-separated part
    that is a code, the last such part (`corpus.en-fr.en`, `newstest2014.fr`, `tatoeba.eng`, FLORES's
    `fra_Latn.devtest`, `train.en_CA`); None when no part is one (`test.src`). A pair of languages (`en-fr`) is not a
    regional code."""
    for part in reversed(name.casefold().split(".")):
        found = _FILE_LANGUAGE.fullmatch(part)
        if found and found["region"] not in ("en", "fr"):
            return _FILE_CODES[found["lang"]]
    return None


PUBLICATION_FROM = ("tuid-prefix", "prop:NAME")
"""Where a TMX unit's publication may come from besides its pub_number prop (`--publication-from`)."""


def check_publication_from(value: str | None) -> str | None:
    """`--publication-from`: `tuid-prefix` (the unit's tuid up to its first `:`) or `prop:NAME` (a `<prop>` of that
    type, such as DGT-TM's `prop:Txt::Doc. No.`); None: the pub_number prop."""
    if value is None:
        return None
    value = value.strip()
    if value == "tuid-prefix" or (value.startswith("prop:") and value[5:].strip()):
        return value
    raise SettingsError(f"--publication-from {value!r}: expected tuid-prefix or prop:NAME (a <prop> type, e.g. "
                        "prop:Txt::Doc. No.)")


def locale_key(code: str) -> str:
    """A locale as locales are compared: case-folded, `_` read as `-` (`FR_ca` and `fr-CA` are one locale)."""
    return code.strip().casefold().replace("_", "-")


def parse_locales(value: str | Sequence[str]) -> tuple[str, ...]:
    """`--locales fr-CA,en-CA`: which regional variant of a language to take where a translation unit holds several
    (data/tmx.py), in order of preference; each an English or French locale, written as given (stripped)."""
    parts = value.split(",") if isinstance(value, str) else list(value)
    locales = tuple(dict.fromkeys(p.strip() for p in parts if p.strip()))
    for locale in locales:
        if primary_language(locale) not in LANGUAGES or not re.fullmatch(r"[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8})*",
                                                                          locale):
            raise SettingsError(f"--locales: {locale!r} is not an English or French locale; expected codes such as "
                                "fr-CA,en-CA (the variants preferred where a translation unit holds several)")
        if primary_language(locale) == locale.strip().lower():
            raise SettingsError(f"--locales: {locale!r} names a language, not one of its variants; expected codes "
                                "such as fr-CA,en-CA")  # fmt: skip
    return locales


@dataclass(frozen=True)
class Family:
    """What differs between the three model families csas trains."""

    name: str
    """Short family name: marian, m2m100 or mbart50."""
    model_type: str
    """The `model_type` in the checkpoint's config.json, checked when a model is loaded."""
    language_codes: Mapping[str, str] | None
    """csas language -> the tokenizer's language code; None for families that are one direction per checkpoint."""
    shardable: bool
    """Whether `--device-map` may spread the model over devices (finetune.py never sharded an OPUS-MT model)."""
    fixed_positions: bool
    """Whether inputs are limited to config.max_position_embeddings (M2M100's sinusoidal positions grow)."""
    tokenizer_class: str
    """The transformers tokenizer class of the family's checkpoints; another class is refused when loading."""
    tokenizer_files: tuple[tuple[str, ...], ...]
    """The file sets that class can load from, any one of them: transformers 5 reads Marian's and M2M100's tokenizers
    from SentencePiece files only, mBART-50's from tokenizer.json or its SentencePiece model."""

    def code(self, lang: str) -> str | None:
        return None if self.language_codes is None else self.language_codes[lang]


MARIAN = Family(
    "marian", "marian", None, shardable=False, fixed_positions=True, tokenizer_class="MarianTokenizer",
    tokenizer_files=(("source.spm", "target.spm", "vocab.json"),),
)
M2M100 = Family(
    "m2m100", "m2m_100", MappingProxyType({"en": "en", "fr": "fr"}), shardable=True, fixed_positions=False,
    tokenizer_class="M2M100Tokenizer", tokenizer_files=(("sentencepiece.bpe.model", "vocab.json"),),
)
MBART50 = Family(
    "mbart50", "mbart", MappingProxyType({"en": "en_XX", "fr": "fr_XX"}), shardable=True, fixed_positions=True,
    tokenizer_class="MBart50Tokenizer", tokenizer_files=(("tokenizer.json",), ("sentencepiece.bpe.model",)),
)

FAMILIES = {f.name: f for f in (MARIAN, M2M100, MBART50)}


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry: a base model and the rows it trains on."""

    key: str
    hub_id: str
    family: Family
    source_langs: tuple[str, ...]
    """Rows whose source_lang is in here are trained on; the target is the other language."""


REGISTRY: Mapping[str, ModelSpec] = MappingProxyType(
    {
        spec.key: spec
        for spec in (
            ModelSpec("m2m100_418m", "facebook/m2m100_418M", M2M100, ("en", "fr")),
            ModelSpec("mbart50_mmt_fr", "facebook/mbart-large-50-many-to-many-mmt", MBART50, ("en",)),
            ModelSpec("mbart50_mmt_en", "facebook/mbart-large-50-many-to-many-mmt", MBART50, ("fr",)),
            ModelSpec("opus_mt_en_fr", "Helsinki-NLP/opus-mt-tc-big-en-fr", MARIAN, ("en",)),
            ModelSpec("opus_mt_fr_en", "Helsinki-NLP/opus-mt-tc-big-fr-en", MARIAN, ("fr",)),
        )
    }
)

MODEL_KEYS = tuple(REGISTRY)
"""Registry keys in the finetune-all table's order."""


@dataclass(frozen=True)
class TableRow:
    """finetune_all.py's per-model hyperparameters."""

    batch_size: int
    learning_rate: float
    lora_r: int
    lora_alpha: int
    lora_dropout: float
    save_steps: int
    eval_steps: int


FINETUNE_ALL_TABLE: Mapping[str, TableRow] = MappingProxyType(
    {
        "m2m100_418m": TableRow(12, 2e-4, 32, 64, 0.05, 1000, 1000),
        "mbart50_mmt_fr": TableRow(8, 1.5e-4, 32, 64, 0.05, 1000, 1000),
        "mbart50_mmt_en": TableRow(8, 1.5e-4, 32, 64, 0.05, 1000, 1000),
        "opus_mt_en_fr": TableRow(16, 3e-4, 32, 64, 0.05, 1000, 1000),
        "opus_mt_fr_en": TableRow(16, 3e-4, 32, 64, 0.05, 1000, 1000),
    }
)

FINETUNE_ALL_CONSTANTS: Mapping[str, object] = MappingProxyType(
    {
        "grad_accum": 2,
        "epochs": 1.0,
        "logging_steps": 50,
        "seed": 42,
        "warmup_ratio": 0.03,
        "val_ratio": 0.05,
        "max_source_len": 512,
        "max_target_len": 512,
        "bf16": True,
        "fp16": False,
        "qlora": False,
        "device_map": "auto",
        "disable_tqdm": True,
    }
)
"""Settings finetune_all.py used for every model, by their settings names (settings.py)."""


@dataclass(frozen=True)
class SweepGrid:
    """The sweep launcher's default grid for one model; every combination is one trial."""

    lrs: tuple[float, ...]
    ranks: tuple[int, ...]
    """LoRA ranks; a trial's alpha is 2 x r unless --lora-alpha fixes it."""
    dropouts: tuple[float, ...] = (0.05,)


M2M100_GRID = SweepGrid(lrs=(7e-5, 1e-4, 2e-4), ranks=(8, 16, 32))
MBART50_GRID = SweepGrid(lrs=(7e-5, 1e-4, 1.5e-4), ranks=(16, 32))
OPUS_GRID = SweepGrid(lrs=(1e-4, 2e-4, 3e-4), ranks=(8, 16, 32))

SWEEP_TABLE: Mapping[str, SweepGrid] = MappingProxyType(
    {
        "m2m100_418m": M2M100_GRID,
        "mbart50_mmt_fr": MBART50_GRID,
        "mbart50_mmt_en": MBART50_GRID,
        "opus_mt_en_fr": OPUS_GRID,
        "opus_mt_fr_en": OPUS_GRID,
    }
)

SWEEP_CONSTANTS: Mapping[str, object] = MappingProxyType(
    {"max_steps": 4000, "max_train_samples": 200_000, "max_eval_samples": 10_000}
)
"""What every sweep trial adds to the model's finetune-all row and constants: capped steps and samples."""

DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj")
"""What finetune.py trained in practice: the attention query/key/value projections (self- and cross-attention)."""

ALL_LINEAR_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")
"""Every linear layer of the encoder and decoder blocks of these families (peft has no defaults for them)."""


def did_you_mean(value: str, choices: Sequence[str]) -> str:
    """" (did you mean X?)" for the choice closest to a mistyped `value`, or "" when none is close."""
    import difflib

    close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def check_which(which: str, flag: str = "--which") -> str:
    """`which` when it is a registry key; otherwise a one-line error naming `flag`, the closest key and the keys."""
    if which not in REGISTRY:
        raise SettingsError(
            f"{flag}: unknown model {which!r}{did_you_mean(which, MODEL_KEYS)}; choose one of {', '.join(MODEL_KEYS)}"
        )
    return which


def split_keys(values: Sequence[str] | None) -> list[str]:
    """Keys given by a repeatable option, each possibly comma-separated: `--only a,b --only c` -> [a, b, c]."""
    return [k.strip() for v in values or [] for k in v.split(",") if k.strip()]


def select_keys(only: Sequence[str] = (), skip: Sequence[str] = (), keys: Sequence[str] = MODEL_KEYS) -> list[str]:
    """The `keys` to run (default: the registry's, in the table's order; a settings file may list fewer, in its
    order), less --only/--skip; unknown keys are a flag error."""
    for option, named in (("--only", only), ("--skip", skip)):
        unknown = [k for k in named if k not in MODEL_KEYS]
        if unknown:
            hint = did_you_mean(unknown[0], MODEL_KEYS)
            raise SettingsError(f"{option}: unknown model {', '.join(unknown)}{hint}; choose from {', '.join(MODEL_KEYS)}")
    chosen = [k for k in keys if (not only or k in only) and k not in skip]
    if not chosen:
        raise SettingsError("--only/--skip leave no model to train")
    return chosen


def check_model_root(model_root: Path | None) -> None:
    """`--model-root DIR` must be a directory (it holds one local snapshot per registry key)."""
    if model_root is not None and not model_root.is_dir():
        raise SettingsError(f"--model-root: {model_root} is not a directory")


def model_id_under(model_root: Path | None, key: str) -> str | None:
    """`--model-root DIR`: DIR/<key> when it exists (a local snapshot); None, meaning the registry's hub id, else."""
    if model_root is None:
        return None
    candidate = model_root / key
    return str(candidate) if candidate.is_dir() else None


__all__ = [
    "ALL_LINEAR_TARGETS",
    "DEFAULT_LORA_TARGETS",
    "FAMILIES",
    "FINETUNE_ALL_CONSTANTS",
    "FINETUNE_ALL_TABLE",
    "LANGUAGES",
    "MODEL_KEYS",
    "REGISTRY",
    "SWEEP_CONSTANTS",
    "SWEEP_TABLE",
    "Family",
    "ModelSpec",
    "SweepGrid",
    "TableRow",
    "check_model_root",
    "check_which",
    "model_id_under",
    "LANGUAGE_NAMES",
    "PUBLICATION_FROM",
    "check_publication_from",
    "file_language",
    "header_language",
    "locale_key",
    "other_language",
    "parse_locales",
    "primary_language",
    "select_keys",
]
