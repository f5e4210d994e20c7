"""The shared core: what an optimizer step computes, checked against independent references."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from csas_cli.batches import IGNORE_INDEX, collate
from csas_cli.checkpoints import list_checkpoints, read_state
from csas_cli.errors import CsasError
from csas_cli.settings import FinetuneSettings
from csas_cli.train import FinetuneRecipe, TrainingError, prepare_run, token_count

SAMPLE = Path(__file__).resolve().parents[1] / "csas_cli" / "assets" / "sample_pairs.jsonl"


def make_recipe(tiny_models, tmp_path: Path, key: str, **overrides) -> FinetuneRecipe:
    settings = FinetuneSettings(
        which=key, model_id=str(tiny_models[key]), data=SAMPLE, output_dir=tmp_path, no_qlora=True,
        lora_dropout=0.0, disable_tqdm=True, **{"max_steps": 3, **overrides},
    )  # fmt: skip
    prepared = prepare_run(settings, environ={})
    recipe = FinetuneRecipe(prepared.plan, prepared.split)
    recipe.setup()
    return recipe


@pytest.fixture
def m2m_recipe(tiny_models, tmp_path):
    recipe = make_recipe(tiny_models, tmp_path, "m2m100_418m")
    yield recipe
    recipe.cleanup()


def lora_grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def test_decoder_inputs_are_labels_shifted_from_decoder_start(m2m_recipe):
    from transformers.models.m2m_100.modeling_m2m_100 import shift_tokens_right

    r = m2m_recipe
    batch = collate(r.train_pairs[:6], r.pad_id, r.decoder_start_id)
    labels = batch["labels"].masked_fill(batch["labels"] == -100, r.pad_id)
    expected = shift_tokens_right(labels, r.pad_id, r.decoder_start_id)
    real = batch["labels"] != -100
    assert torch.equal(batch["decoder_input_ids"][real], expected[real])
    # M2M100: the decoder starts from </s>, then sees the target-language code, as in generation.
    assert (batch["decoder_input_ids"][:, 0] == r.tokenizer.eos_token_id).all()
    lang_ids = {r.tokenizer.get_lang_id("en"), r.tokenizer.get_lang_id("fr")}
    assert set(batch["decoder_input_ids"][:, 1].tolist()) <= lang_ids
    assert set(batch["labels"][:, 0].tolist()) <= lang_ids


def test_loss_equals_label_smoothed_cross_entropy_of_hf_forward(m2m_recipe):
    r = m2m_recipe
    r.model.eval()
    pairs = r.train_pairs[:5]
    batch = collate(pairs, r.pad_id, r.decoder_start_id)
    with torch.no_grad():
        ours = r.forward_loss_sum(batch) / token_count(pairs)
        # transformers builds its own decoder inputs from `labels`: the reference for teacher forcing.
        logits = r.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).logits
        reference = F.cross_entropy(
            logits.view(-1, logits.size(-1)), batch["labels"].view(-1), ignore_index=-100, label_smoothing=0.1
        )
    assert ours.item() == pytest.approx(reference.item(), rel=1e-5)


def test_accumulated_micro_batches_equal_one_batch(m2m_recipe):
    """Two micro-batches, each divided by the step's tokens, give the gradient of one batch of both."""
    r = m2m_recipe
    r.model.eval()  # no dropout, so both paths see the same function
    pairs = sorted(r.train_pairs[:8], key=lambda p: p.length)  # unequal lengths on purpose
    total = token_count(pairs)

    r.model.zero_grad()
    (r.forward_loss_sum(collate(pairs, r.pad_id, r.decoder_start_id)) / total).backward()
    whole = lora_grads(r.model)

    r.model.zero_grad()
    for half in (pairs[:4], pairs[4:]):
        (r.forward_loss_sum(collate(half, r.pad_id, r.decoder_start_id)) / total).backward()
    accumulated = lora_grads(r.model)

    assert whole.keys() == accumulated.keys() and whole
    for name in whole:
        torch.testing.assert_close(accumulated[name], whole[name], rtol=1e-4, atol=1e-6, msg=name)
    assert any(g.abs().sum() > 0 for g in whole.values())


def test_steps_move_only_the_adapters(m2m_recipe):
    r = m2m_recipe
    before = {n: p.detach().clone() for n, p in r.model.named_parameters()}
    groups = [r.train_pairs[:4], r.train_pairs[4:8]]
    tokens = sum(token_count(g) for g in groups)
    first = r.optimizer_step(groups, tokens)
    assert first[2] == 0.0  # warm-up starts from a zero learning rate
    loss, grad_norm, lr = r.optimizer_step(groups, tokens)
    assert loss > 0 and grad_norm > 0 and lr > 0
    changed = {n for n, p in r.model.named_parameters() if not torch.equal(before[n], p.detach())}
    trainable = {n for n, p in r.model.named_parameters() if p.requires_grad}
    assert changed and changed <= trainable
    assert any("lora_B" in n for n in changed)


def test_non_finite_loss_stops_with_the_step(m2m_recipe, monkeypatch):
    r = m2m_recipe
    monkeypatch.setattr(r, "forward_loss_sum", lambda batch: torch.tensor(float("nan"), requires_grad=True))
    with pytest.raises(TrainingError, match="step 1: the training loss is nan"):
        r.train()
    assert issubclass(TrainingError, CsasError)


def test_non_finite_loss_keeps_the_last_good_checkpoint(tiny_models, tmp_path, monkeypatch):
    recipe = make_recipe(tiny_models, tmp_path, "opus_mt_en_fr", max_steps=8, save_steps=2, batch_size=4)
    try:
        real = recipe.forward_loss_sum
        # From step 5 on the loss is nan; the weights it produces must never reach a checkpoint.
        monkeypatch.setattr(
            recipe, "forward_loss_sum", lambda batch: real(batch) * (float("nan") if recipe.steps_done >= 4 else 1.0)
        )
        with pytest.raises(TrainingError, match="^step 5: the training loss is nan"):
            recipe.train()
    finally:
        recipe.cleanup()
    run = tmp_path / "opus_mt_en_fr"
    kept = list_checkpoints(run / "checkpoints")
    assert [p.name for p in kept] == ["step-000002", "step-000004"]
    assert read_state(kept[-1])["step"] == 4
    weights = load_file(str(kept[-1] / "adapter" / "adapter_model.safetensors"))
    assert weights and all(torch.isfinite(w).all() for w in weights.values())
    assert not (run / "finished.json").exists()


def test_out_of_memory_suggests_a_smaller_batch(m2m_recipe, monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(m2m_recipe, "optimizer_step", out_of_memory)
    with pytest.raises(TrainingError, match="^step 1: out of memory .* lower --batch-size .*--grad-accum"):
        m2m_recipe.train()


@pytest.mark.parametrize("qlora,bf16", [(False, False), (True, False), (False, True)], ids=["lora", "qlora", "bf16"])
def test_the_loop_computes_the_sliced_loss_of_the_models_own_logits(tiny_models, tmp_path, qlora, bf16):
    """Through PEFT, 4-bit layers and bf16 autocast the loop takes loss.py's sliced output layer, and its loss is
    the model's logits + cross_entropy over the target positions."""
    key = "mbart50_mmt_fr"
    settings = FinetuneSettings(
        which=key, model_id=str(tiny_models[key]), data=SAMPLE, output_dir=tmp_path, no_qlora=not qlora, bf16=bf16,
        max_steps=1, disable_tqdm=True,
    )  # fmt: skip
    prepared = prepare_run(settings, environ={})
    recipe = FinetuneRecipe(prepared.plan, prepared.split)
    recipe.setup()
    try:
        assert recipe.objective.fused
        recipe.model.eval()  # no dropout: both forwards see the same function
        batch = collate(recipe.train_pairs[:6], recipe.pad_id, recipe.decoder_start_id)
        with torch.no_grad():
            ours = recipe.forward_loss_sum(batch).item()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = recipe.model(**{k: v for k, v in batch.items() if k != "labels"}).logits
            target = batch["labels"] != IGNORE_INDEX
            labels = batch["labels"][target]
            want = F.cross_entropy(logits[target].float(), labels, label_smoothing=0.1, reduction="sum")
        assert ours == pytest.approx(want.item(), rel=2e-3 if bf16 else 1e-5)
    finally:
        recipe.cleanup()


def test_token_budget_batches_evaluate_the_same_loss_and_name_their_flag_when_out_of_memory(
    tiny_models, tmp_path, monkeypatch
):
    """The validation loss is a token average, so budget batches and fixed batches give the same number."""
    from dataclasses import replace

    recipe = make_recipe(tiny_models, tmp_path, "opus_mt_en_fr", max_tokens=300, max_source_len=128, max_target_len=128)
    try:
        by_budget = recipe.evaluate()
        recipe.plan = replace(recipe.plan, max_tokens=None, batch_size=8)
        assert by_budget == pytest.approx(recipe.evaluate(), rel=1e-6)
        recipe.plan = replace(recipe.plan, max_tokens=300)

        def out_of_memory(*args, **kwargs):
            raise torch.OutOfMemoryError("CUDA out of memory")

        monkeypatch.setattr(recipe, "optimizer_step", out_of_memory)
        with pytest.raises(TrainingError, match="up to 300 tokens.* lower --max-tokens .*--grad-accum"):
            recipe.train()
    finally:
        recipe.cleanup()


def test_a_full_disk_at_a_checkpoint_stops_in_one_line_and_keeps_the_previous_one(tiny_models, tmp_path, monkeypatch):
    recipe = make_recipe(tiny_models, tmp_path, "opus_mt_en_fr", max_steps=8, save_steps=2, batch_size=4)
    real_save = torch.save

    def save(obj, path, *args, **kwargs):
        if "step-000004" in str(path):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    try:
        with pytest.raises(CsasError) as caught:
            recipe.train()
    finally:
        recipe.cleanup()
    assert "\n" not in str(caught.value) and "No space left on device" in str(caught.value)
    checkpoints = tmp_path / "opus_mt_en_fr" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step-000002"]
    assert read_state(checkpoints / "step-000002")["step"] == 2


@pytest.mark.parametrize("key,codes", [("mbart50_mmt_fr", ("en_XX", "fr_XX")), ("mbart50_mmt_en", ("fr_XX", "en_XX"))])
def test_mbart_rows_carry_their_language_codes(tiny_models, tmp_path, key, codes):
    recipe = make_recipe(tiny_models, tmp_path, key)
    try:
        tok = recipe.tokenizer
        src_code, tgt_code = (tok.convert_tokens_to_ids(c) for c in codes)
        assert all(p.input_ids[0] == src_code and p.input_ids[-1] == tok.eos_token_id for p in recipe.train_pairs)
        assert all(p.labels[0] == tgt_code and p.labels[-1] == tok.eos_token_id for p in recipe.train_pairs)
    finally:
        recipe.cleanup()


def test_marian_rows_have_no_language_codes(tiny_models, tmp_path):
    recipe = make_recipe(tiny_models, tmp_path, "opus_mt_fr_en", max_source_len=8, max_target_len=6)
    try:
        eos = recipe.tokenizer.eos_token_id
        assert all(p.labels[-1] == eos and p.input_ids[-1] == eos for p in recipe.train_pairs)
        assert max(len(p.input_ids) for p in recipe.train_pairs) == 8
        assert max(len(p.labels) for p in recipe.train_pairs) == 6
        assert recipe.decoder_start_id == recipe.pad_id  # Marian starts the decoder from <pad>
    finally:
        recipe.cleanup()


def test_prepare_run_applies_the_sample_caps_after_the_split(tmp_path):
    def prepared(**caps):
        settings = FinetuneSettings(which="opus_mt_en_fr", data=SAMPLE, output_dir=tmp_path, **caps)
        return prepare_run(settings, environ={})

    whole = prepared()
    capped = prepared(max_train_samples=100, max_eval_samples=7)
    assert (len(capped.split.train), len(capped.split.eval)) == (100, 7)
    assert (capped.plan.train_rows, capped.plan.eval_rows) == (100, 7)
    assert (capped.plan.max_train_samples, capped.plan.max_eval_samples) == (100, 7)
    assert {e.line for e in capped.split.train} <= {e.line for e in whole.split.train}
    assert {e.line for e in capped.split.eval} <= {e.line for e in whole.split.eval}
    assert capped.split == prepared(max_train_samples=100, max_eval_samples=7).split  # deterministic
    # A cap above the split's size changes nothing.
    roomy = prepared(max_train_samples=10**6, max_eval_samples=10**6)
    assert roomy.split == whole.split and roomy.plan.train_rows == whole.plan.train_rows


def test_chrf_generation_forces_each_rows_target_language_and_restores_the_model(tiny_models, tmp_path, monkeypatch):
    from csas_cli.inference import LoadedModel

    recipe = make_recipe(tiny_models, tmp_path, "m2m100_418m", eval_chrf=True, eval_chrf_samples=12)
    try:
        tok = recipe.tokenizer
        config = recipe.model.get_base_model().generation_config
        before = (tok.src_lang, tok.tgt_lang, config.forced_bos_token_id)
        starts = []
        real = LoadedModel.generate_ids

        def spy(self, input_ids, settings):
            assert not self.model.training  # generation in eval mode: no dropout
            ids = real(self, input_ids, settings)
            starts.append((input_ids[0][0], set(ids[:, 1].tolist()), settings.num_beams, settings.max_new_tokens))
            return ids

        monkeypatch.setattr(LoadedModel, "generate_ids", spy)
        value = recipe.evaluate_chrf()
        assert 0 <= value <= 100
        # m2m100_418m's sample holds both directions: each batch starts with its target's code, after </s>.
        en, fr = tok.get_lang_id("en"), tok.get_lang_id("fr")
        assert {(source, frozenset(first)) for source, first, _, _ in starts} == {(en, frozenset({fr})),
                                                                                  (fr, frozenset({en}))}  # fmt: skip
        assert {(beams, new) for _, _, beams, new in starts} == {(1, recipe.plan.max_target_len)}
        assert recipe.model.training
        assert (tok.src_lang, tok.tgt_lang, config.forced_bos_token_id) == before
        assert recipe.evaluate_chrf() == value  # the same rows, the same weights: the same score
        assert sorted(recipe.chrf_rows) == recipe.chrf_rows and len(recipe.chrf_rows) == 12
    finally:
        recipe.cleanup()
