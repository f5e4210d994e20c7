"""csas_cli.training.workloads: what `csas bench` and scripts/bench_vs_hf.py train on (synthetic CSAS-like pairs, the
shipped architectures and presets, random-weight checkpoints)."""

from __future__ import annotations

import json
import math
import statistics

import pytest
import torch

from csas_cli.training.workloads import (
    BenchSettings,
    LENGTH_MEDIAN,
    PRESET_KEY,
    PRESETS,
    PROVENANCE,
    TARGET_RATIO,
    architecture_config,
    architecture_dict,
    config_path,
    count_parameters,
    padded_tokens,
    pair_tokens,
    prepare_workload,
    random_batch_padding,
    shipped_architectures,
    special_ids,
    synthetic_lengths,
    synthetic_pairs,
)
from csas_cli.data.features import TokenizedPair
from csas_cli.errors import SettingsError
from csas_cli.registry import MARIAN, MODEL_KEYS, REGISTRY

# --- synthetic data ------------------------------------------------------------------------------------------------


def test_synthetic_lengths_have_the_csas_distribution():
    lengths = synthetic_lengths(20_000, seed=1)
    sources = [s for s, _ in lengths]
    ratios = [t / s for s, t in lengths]
    assert abs(statistics.median(sources) - LENGTH_MEDIAN) <= 1
    assert statistics.stdev(math.log(s) for s in sources) == pytest.approx(0.6, abs=0.03)
    lo, hi = TARGET_RATIO
    assert all(lo <= r <= hi for r in ratios)
    assert statistics.mean(ratios) == pytest.approx((lo + hi) / 2, abs=0.01)
    assert min(sources) >= 1


def test_synthetic_lengths_are_seeded_and_capped():
    assert synthetic_lengths(100, seed=3) == synthetic_lengths(100, seed=3)
    assert synthetic_lengths(100, seed=3) != synthetic_lengths(100, seed=4)
    capped = synthetic_lengths(5_000, seed=3, max_len=40)
    assert max(max(s, t) for s, t in capped) == 40


def test_synthetic_pairs_use_ordinary_ids_and_end_with_eos():
    config = architecture_config("tiny")
    lengths = synthetic_lengths(300, seed=0, max_len=config.max_position_embeddings)
    pairs = synthetic_pairs(lengths, config, seed=0)
    assert [(len(p.input_ids), len(p.labels)) for p in pairs] == lengths
    specials = special_ids(config)
    for pair in pairs:
        for side in (pair.input_ids, pair.labels):
            assert side[-1] == config.eos_token_id
            assert all(4 <= i < config.vocab_size and i not in specials for i in side[:-1])
    assert synthetic_pairs(lengths, config, seed=0) == pairs  # seeded
    assert synthetic_pairs(lengths, config, seed=1) != pairs


def test_pair_and_padded_tokens_count_real_and_padded_positions():
    pairs = [TokenizedPair((1, 2, 3), (4, 5)), TokenizedPair((1,), (4, 5, 6, 7))]
    assert pair_tokens(pairs) == 5 + 5
    assert padded_tokens(pairs) == 2 * (3 + 4)
    assert padded_tokens([]) == 0
    assert padded_tokens(pairs[:1]) == pair_tokens(pairs[:1])  # one pair: no padding


def test_random_batch_padding_is_zero_for_equal_lengths_and_grows_with_the_spread():
    config = architecture_config("tiny")
    equal = synthetic_pairs([(20, 20)] * 200, config, seed=0)
    assert random_batch_padding(equal, 8, seed=0) == 0.0
    spread = synthetic_pairs(synthetic_lengths(2_000, seed=0), config, seed=0)
    padding = random_batch_padding(spread, 8, seed=0)
    assert 0.2 < padding < 0.8
    assert random_batch_padding(spread, 8, seed=0) == padding  # seeded
    assert random_batch_padding(spread, 2, seed=0) < padding  # smaller batches pad less


# --- shipped architectures -----------------------------------------------------------------------------------------

# (model class, d_model, encoder+decoder layers, heads, ffn, vocabulary, parameters in millions)
ARCHITECTURES = {
    "marian": ("MarianMTModel", 1024, (6, 6), 16, 4096, 53017, 233),
    "m2m100": ("M2M100ForConditionalGeneration", 1024, (12, 12), 16, 4096, 128112, 484),
    "mbart50": ("MBartForConditionalGeneration", 1024, (12, 12), 16, 4096, 250054, 611),
}


@pytest.mark.parametrize("key", MODEL_KEYS)
def test_shipped_architecture_is_the_registry_models(key):
    from transformers import AutoModelForSeq2SeqLM

    spec = REGISTRY[key]
    raw = json.loads(config_path(spec.hub_id).read_text(encoding="utf-8"))
    assert spec.hub_id in raw[PROVENANCE] and "Reconstructed" in raw[PROVENANCE]
    config = architecture_config(spec.hub_id)
    name, d_model, layers, heads, ffn, vocab, millions = ARCHITECTURES[spec.family.name]
    assert config.model_type == spec.family.model_type
    assert (config.d_model, (config.encoder_layers, config.decoder_layers)) == (d_model, layers)
    assert (config.encoder_attention_heads, config.decoder_attention_heads) == (heads, heads)
    assert (config.encoder_ffn_dim, config.decoder_ffn_dim) == (ffn, ffn)
    assert config.vocab_size == vocab
    assert not hasattr(config, PROVENANCE)
    with torch.device("meta"):  # shapes only: no 600M parameters allocated
        model = AutoModelForSeq2SeqLM.from_config(config)
    assert type(model).__name__ == name
    assert model.get_input_embeddings().weight.shape == (vocab, d_model)
    assert round(sum(p.numel() for p in model.parameters()) / 1e6) == millions


def test_marian_architectures_keep_the_hub_special_ids():
    config = architecture_config("Helsinki-NLP/opus-mt-tc-big-en-fr")
    assert (config.pad_token_id, config.decoder_start_token_id, config.eos_token_id) == (53016, 53016, 43311)
    for hub_id in ("facebook/m2m100_418M", "facebook/mbart-large-50-many-to-many-mmt"):
        config = architecture_config(hub_id)
        assert (config.pad_token_id, config.decoder_start_token_id, config.eos_token_id) == (1, 2, 2)


def test_cpu_preset_has_at_least_ten_million_parameters():
    assert set(PRESETS) == {"small", "tiny"}
    assert count_parameters(architecture_config("small")) >= 10_000_000
    assert architecture_config("small").model_type == "marian"


def test_shipped_architectures_are_every_registry_model_and_the_presets():
    shipped = set(shipped_architectures())
    assert shipped == {REGISTRY[key].hub_id.replace("/", "--") for key in MODEL_KEYS} | set(PRESETS.values())
    assert REGISTRY[PRESET_KEY].family is MARIAN  # presets are Marian models and train as a Marian key
    for name in PRESETS:
        assert PROVENANCE not in architecture_dict(name)
        assert architecture_dict(name)["model_type"] == "marian"


def test_an_unknown_architecture_names_the_shipped_ones():
    with pytest.raises(SettingsError, match=r"no shipped architecture for 'bogus/model' \(have: .*bench-marian-tiny"):
        architecture_dict("bogus/model")


# --- workloads -----------------------------------------------------------------------------------------------------


def test_a_preset_workload_is_a_random_checkpoint_and_enough_synthetic_pairs(tmp_path):
    from transformers import AutoConfig

    settings = BenchSettings.create(which=PRESET_KEY, preset="tiny", batch_size=4, grad_accum=2, steps=3,
                                    warmup_steps=1, num_pairs=20, device="cpu", qlora=False)  # fmt: skip
    workload = prepare_workload(settings, tmp_path, "cpu")
    assert workload.which == PRESET_KEY and workload.data == "synthetic"
    assert workload.description == "preset tiny, random weights"
    config = AutoConfig.from_pretrained(workload.model_dir)
    assert config.d_model == architecture_config("tiny").d_model
    assert workload.parameters == count_parameters(architecture_config("tiny"))
    # 20 pairs are fewer than (1 + 3) steps x 4 x 2: repeated so that no epoch ends inside the measured steps.
    assert len(workload.pairs) == 32
    assert workload.pairs[20:] == workload.pairs[:12]
    limit = min(settings.max_source_len, settings.max_target_len, config.max_position_embeddings)
    assert max(p.length for p in workload.pairs) <= limit
