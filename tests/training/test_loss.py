"""The training objective computed by slices of the output layer equals the model's logits + cross_entropy."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from csas_cli.data.batches import collate
from csas_cli.data.features import TokenizedPair
from csas_cli.training.loss import TargetTokenLoss, head_cross_entropy_sum


def reference(hidden, weight, bias, labels, smoothing, dtype=None):
    dtype = dtype or weight.dtype
    logits = (hidden.to(dtype) @ weight.to(dtype).t()).float()
    if bias is not None:
        logits = logits + bias.float()
    return F.cross_entropy(logits, labels, label_smoothing=smoothing, reduction="sum")


def inputs(rows=37, d=16, vocab=101, seed=0, bias=True):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(rows, d, generator=g, requires_grad=True)
    weight = torch.randn(vocab, d, generator=g)
    b = torch.randn(vocab, generator=g) if bias else None
    labels = torch.randint(0, vocab, (rows,), generator=g)
    return hidden, weight, b, labels


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("chunk_elements", [1, 101 * 5, 1 << 25])  # one row, five rows, all rows per slice
@pytest.mark.parametrize("bias", [True, False])
def test_sliced_loss_and_gradient_equal_cross_entropy_on_full_logits(smoothing, chunk_elements, bias):
    hidden, weight, b, labels = inputs(bias=bias)
    ours = head_cross_entropy_sum(hidden, weight, b, labels, smoothing, chunk_elements=chunk_elements)
    (ours * 0.5).backward()  # the saved gradient is scaled by what flows back
    got = hidden.grad.clone()
    hidden.grad = None
    want = reference(hidden, weight, b, labels, smoothing)
    (want * 0.5).backward()
    assert ours.item() == pytest.approx(want.item(), rel=1e-6)
    torch.testing.assert_close(got, hidden.grad, rtol=1e-5, atol=1e-6)


def test_bf16_output_layer_matches_a_bf16_lm_head():
    """Under autocast the model's lm_head multiplies in bf16; the slices do the same, then take the softmax in fp32."""
    hidden, weight, b, labels = inputs(rows=64, d=32, vocab=500)
    ours = head_cross_entropy_sum(hidden, weight.bfloat16(), b, labels, 0.1, torch.bfloat16, chunk_elements=500 * 7)
    ours.backward()
    got = hidden.grad.clone()
    hidden.grad = None
    want = reference(hidden, weight.bfloat16(), b, labels, 0.1, torch.bfloat16)
    want.backward()
    assert ours.item() == pytest.approx(want.item(), rel=1e-4)
    torch.testing.assert_close(got, hidden.grad, rtol=2e-2, atol=2e-2)
    assert got.dtype == torch.float32  # the gradient comes back in the hidden states' dtype


def test_without_gradients_only_the_loss_is_computed():
    hidden, weight, b, labels = inputs()
    with torch.no_grad():
        ours = head_cross_entropy_sum(hidden, weight, b, labels, 0.1)
    assert not ours.requires_grad
    assert ours.item() == pytest.approx(reference(hidden, weight, b, labels, 0.1).item(), rel=1e-6)


def test_a_trainable_output_layer_is_refused():
    hidden, weight, b, labels = inputs()
    with pytest.raises(ValueError, match="frozen"):
        head_cross_entropy_sum(hidden, weight.requires_grad_(), b, labels, 0.1)


@pytest.mark.parametrize("key", ["opus_mt_en_fr", "m2m100_418m", "mbart50_mmt_fr"])
def test_target_token_loss_equals_the_models_own_logits(tiny_models, key):
    """Each family's trunk + output layer (+ final_logits_bias, made non-zero here) gives the loss and the gradients
    of the model's forward followed by cross_entropy over the target positions."""
    from transformers import AutoModelForSeq2SeqLM

    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_models[key])
    model.train()
    for p in model.parameters():
        p.requires_grad_(False)
    trained = model.get_encoder().layers[0].self_attn.q_proj.weight.requires_grad_()
    if hasattr(model, "final_logits_bias"):
        model.final_logits_bias.copy_(torch.randn_like(model.final_logits_bias))
    pairs = [TokenizedPair((5, 6, 7, 8, 2), (9, 10, 2)), TokenizedPair((11, 2), (12, 13, 14, 15, 16, 2))]
    config = model.config
    batch = collate(pairs, config.pad_token_id, config.decoder_start_token_id)

    objective = TargetTokenLoss(model, 0.1)
    assert objective.fused
    ours = objective(**batch)
    ours.backward()
    got = trained.grad.clone()
    trained.grad = None

    logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    target = batch["labels"] != -100
    want = F.cross_entropy(logits[target], batch["labels"][target], label_smoothing=0.1, reduction="sum")
    want.backward()
    assert ours.item() == pytest.approx(want.item(), rel=1e-5)
    torch.testing.assert_close(got, trained.grad, rtol=1e-4, atol=1e-6)


def test_a_trained_output_layer_falls_back_to_the_models_logits(tiny_models):
    from transformers import AutoModelForSeq2SeqLM

    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_models["opus_mt_en_fr"])
    model.get_output_embeddings().weight.requires_grad_()  # a trained output layer needs its own gradient
    objective = TargetTokenLoss(model, 0.1)
    assert not objective.fused
    batch = collate([TokenizedPair((5, 6, 2), (7, 2))], model.config.pad_token_id, model.config.decoder_start_token_id)
    objective(**batch).backward()
    assert model.get_output_embeddings().weight.grad is not None


def test_a_model_spread_over_several_devices_keeps_its_own_forward(tiny_models):
    """accelerate's hooks move activations between the devices of a split model; the sliced path would not."""
    from transformers import AutoModelForSeq2SeqLM

    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_models["m2m100_418m"]).requires_grad_(False)
    model.hf_device_map = {"model.encoder": 0, "model.decoder": 1, "lm_head": 0}
    assert not TargetTokenLoss(model, 0.1).fused
    model.hf_device_map = {"": 0}
    assert TargetTokenLoss(model, 0.1).fused


def test_unsliced_loss_takes_the_models_own_logits_and_gives_the_same_loss(tiny_models):
    """sliced=False (bench_vs_hf.py's full-logits variant) calls the model's output layer; the number is the same."""
    from transformers import AutoModelForSeq2SeqLM

    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_models["opus_mt_en_fr"]).requires_grad_(False).eval()
    calls: list[tuple[int, ...]] = []
    model.get_output_embeddings().register_forward_hook(lambda module, args, out: calls.append(tuple(out.shape)))
    pairs = [TokenizedPair((5, 6, 7, 8, 2), (9, 10, 2)), TokenizedPair((11, 2), (12, 13, 14, 15, 16, 2))]
    batch = collate(pairs, model.config.pad_token_id, model.config.decoder_start_token_id)
    sliced, full = TargetTokenLoss(model, 0.1), TargetTokenLoss(model, 0.1, sliced=False)
    assert sliced.fused and not full.fused
    with torch.no_grad():
        by_slices = sliced(**batch).item()
        assert calls == []  # the sliced path multiplies by the weight itself
        by_logits = full(**batch).item()
    assert calls == [(2, 6, model.config.vocab_size)]  # the whole logits tensor, once
    assert by_logits == pytest.approx(by_slices, rel=1e-5)
