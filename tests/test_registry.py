"""The registry and the finetune-all table: one test walks every entry."""

from __future__ import annotations

import pytest

from csas_cli.errors import SettingsError
from csas_cli.registry import (
    ALL_LINEAR_TARGETS,
    DEFAULT_LORA_TARGETS,
    FAMILIES,
    FINETUNE_ALL_TABLE,
    MODEL_KEYS,
    REGISTRY,
    check_model_root,
    check_which,
    other_language,
)

EXPECTED = {
    # key: (hub id, family, source langs, batch, lr)
    "m2m100_418m": ("facebook/m2m100_418M", "m2m100", ("en", "fr"), 12, 2e-4),
    "mbart50_mmt_fr": ("facebook/mbart-large-50-many-to-many-mmt", "mbart50", ("en",), 8, 1.5e-4),
    "mbart50_mmt_en": ("facebook/mbart-large-50-many-to-many-mmt", "mbart50", ("fr",), 8, 1.5e-4),
    "opus_mt_en_fr": ("Helsinki-NLP/opus-mt-tc-big-en-fr", "marian", ("en",), 16, 3e-4),
    "opus_mt_fr_en": ("Helsinki-NLP/opus-mt-tc-big-fr-en", "marian", ("fr",), 16, 3e-4),
}


def test_keys_in_the_tables_order():
    assert MODEL_KEYS == tuple(EXPECTED)
    assert tuple(FINETUNE_ALL_TABLE) == MODEL_KEYS


@pytest.mark.parametrize("key", list(EXPECTED))
def test_every_entry(key):
    hub_id, family, langs, batch, lr = EXPECTED[key]
    spec, row = REGISTRY[key], FINETUNE_ALL_TABLE[key]
    assert (spec.key, spec.hub_id, spec.family.name, spec.source_langs) == (key, hub_id, family, langs)
    assert (row.batch_size, row.learning_rate) == (batch, lr)
    assert (row.lora_r, row.lora_alpha, row.lora_dropout, row.save_steps, row.eval_steps) == (32, 64, 0.05, 1000, 1000)


def test_families_carry_their_differences_as_data():
    assert FAMILIES["marian"].language_codes is None and not FAMILIES["marian"].shardable
    assert FAMILIES["m2m100"].code("fr") == "fr" and FAMILIES["m2m100"].model_type == "m2m_100"
    assert FAMILIES["mbart50"].code("en") == "en_XX" and FAMILIES["mbart50"].code("fr") == "fr_XX"
    assert FAMILIES["mbart50"].shardable and FAMILIES["m2m100"].shardable


def test_languages_and_targets():
    assert other_language("en") == "fr" and other_language("fr") == "en"
    assert DEFAULT_LORA_TARGETS == ("q_proj", "k_proj", "v_proj")
    assert set(DEFAULT_LORA_TARGETS) < set(ALL_LINEAR_TARGETS)


def test_check_which_names_the_flag_and_the_keys():
    assert check_which("m2m100_418m") == "m2m100_418m"
    with pytest.raises(SettingsError) as info:
        check_which("opus", flag="--only")
    message = str(info.value)
    assert message.startswith("--only: unknown model 'opus'; choose one of ")
    assert message.endswith(", ".join(MODEL_KEYS)) and "\n" not in message


def test_check_model_root_needs_a_directory(tmp_path):
    check_model_root(None)
    check_model_root(tmp_path)
    (tmp_path / "file").write_text("x")
    for bad in (tmp_path / "file", tmp_path / "missing"):
        with pytest.raises(SettingsError, match=f"--model-root: {bad} is not a directory"):
            check_model_root(bad)
