"""The training core: what an optimizer step computes, checked against independent references, the loop's
seams (a per-step callback, the batching strategy), and that csas trains what a plain PyTorch loop trains."""

from __future__ import annotations

import copy
import errno
import math
import os
from pathlib import Path
from typing import Sequence

import pytest
import torch
import torch.nn.functional as F
from helpers import SAMPLE, first_steps, make_recipe
from safetensors.torch import load_file

from csas_cli.data.batches import IGNORE_INDEX, Batching, LengthGrouped, target_tokens
from csas_cli.errors import CsasError, TrainingError
from csas_cli.layout import METRICS, read_metrics
from csas_cli.settings import MAX_GRAD_NORM, FinetuneSettings
from csas_cli.training.checkpoints import list_checkpoints, read_state
from csas_cli.training.evaluation import Evaluator
from csas_cli.training.recipe import FinetuneRecipe, StepReport
from csas_cli.training.run import build_recipe, prepare_run


def recipe_with(tiny_models, out: Path, key: str, engine: dict, **values) -> FinetuneRecipe:
    """helpers.make_recipe's recipe, built with the recipe keyword arguments `engine` (on_step, batching, ...)."""
    plain = make_recipe(tiny_models, out, key, setup=False, **values)
    plain.cleanup()
    recipe = build_recipe(prepare_run(plain.plan.settings, environ={}), **engine)
    recipe.setup()
    return recipe


@pytest.fixture
def m2m_recipe(tiny_models, tmp_path):
    recipe = make_recipe(tiny_models, tmp_path, "m2m100_418m")
    yield recipe
    recipe.cleanup()


def lora_grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.slow
def test_decoder_inputs_are_labels_shifted_from_decoder_start(m2m_recipe):
    from transformers.models.m2m_100.modeling_m2m_100 import shift_tokens_right

    r = m2m_recipe
    batch = r.to_device(r.data.train[:6])
    labels = batch["labels"].masked_fill(batch["labels"] == -100, r.pad_id)
    expected = shift_tokens_right(labels, r.pad_id, r.decoder_start_id)
    real = batch["labels"] != -100
    assert torch.equal(batch["decoder_input_ids"][real], expected[real])
    # M2M100: the decoder starts from </s>, then sees the target-language code, as in generation.
    assert (batch["decoder_input_ids"][:, 0] == r.tokenizer.eos_token_id).all()
    lang_ids = {r.tokenizer.get_lang_id("en"), r.tokenizer.get_lang_id("fr")}
    assert set(batch["decoder_input_ids"][:, 1].tolist()) <= lang_ids
    assert set(batch["labels"][:, 0].tolist()) <= lang_ids


@pytest.mark.slow
def test_loss_equals_label_smoothed_cross_entropy_of_hf_forward(m2m_recipe):
    r = m2m_recipe
    r.model.eval()
    pairs = r.data.train[:5]
    batch = r.to_device(pairs)
    with torch.no_grad():
        ours = r.loss_sum(pairs) / target_tokens(pairs)
        # transformers builds its own decoder inputs from `labels`: the reference for teacher forcing.
        logits = r.model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]
        ).logits
        reference = F.cross_entropy(
            logits.view(-1, logits.size(-1)), batch["labels"].view(-1), ignore_index=-100, label_smoothing=0.1
        )
    assert ours.item() == pytest.approx(reference.item(), rel=1e-5)


@pytest.mark.slow
def test_accumulated_micro_batches_equal_one_batch(m2m_recipe):
    """Two micro-batches, each divided by the step's tokens, give the gradient of one batch of both."""
    r = m2m_recipe
    r.model.eval()  # no dropout, so both paths see the same function
    pairs = sorted(r.data.train[:8], key=lambda p: p.length)  # unequal lengths on purpose
    total = target_tokens(pairs)

    r.model.zero_grad()
    (r.loss_sum(pairs) / total).backward()
    whole = lora_grads(r.model)

    r.model.zero_grad()
    for half in (pairs[:4], pairs[4:]):
        (r.loss_sum(half) / total).backward()
    accumulated = lora_grads(r.model)

    assert whole.keys() == accumulated.keys() and whole
    for name in whole:
        torch.testing.assert_close(accumulated[name], whole[name], rtol=1e-4, atol=1e-6, msg=name)
    assert any(g.abs().sum() > 0 for g in whole.values())


@pytest.mark.slow
def test_steps_move_only_the_adapters(m2m_recipe):
    r = m2m_recipe
    before = {n: p.detach().clone() for n, p in r.model.named_parameters()}
    groups = [r.data.train[:4], r.data.train[4:8]]
    tokens = sum(target_tokens(g) for g in groups)
    first = r.optimizer_step(groups, tokens)
    assert first[2] == 0.0  # warm-up starts from a zero learning rate
    loss, grad_norm, lr = r.optimizer_step(groups, tokens)
    assert loss > 0 and grad_norm > 0 and lr > 0
    changed = {n for n, p in r.model.named_parameters() if not torch.equal(before[n], p.detach())}
    trainable = {n for n, p in r.model.named_parameters() if p.requires_grad}
    assert changed and changed <= trainable
    assert any("lora_B" in n for n in changed)


@pytest.mark.slow
def test_non_finite_loss_stops_with_the_step(m2m_recipe, monkeypatch):
    r = m2m_recipe
    monkeypatch.setattr(r, "loss_sum", lambda pairs: torch.tensor(float("nan"), requires_grad=True))
    with pytest.raises(TrainingError, match="step 1: the training loss is nan"):
        r.train()
    assert issubclass(TrainingError, CsasError)


@pytest.mark.slow
def test_non_finite_loss_keeps_the_last_good_checkpoint(tiny_models, tmp_path, monkeypatch):
    recipe = make_recipe(tiny_models, tmp_path, "opus_mt_en_fr", max_steps=8, save_steps=2, batch_size=4)
    try:
        real = recipe.loss_sum
        # From step 5 on the loss is nan; the weights it produces must never reach a checkpoint.
        monkeypatch.setattr(
            recipe, "loss_sum", lambda pairs: real(pairs) * (float("nan") if recipe.steps_done >= 4 else 1.0)
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


@pytest.mark.slow
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
    settings = FinetuneSettings.create(
        which=key, model_id=str(tiny_models[key]), data=SAMPLE, output_dir=tmp_path, qlora=qlora, bf16=bf16,
        max_steps=1, disable_tqdm=True,
    )  # fmt: skip
    recipe = build_recipe(prepare_run(settings, environ={}))
    recipe.setup()
    try:
        assert recipe.objective.fused
        recipe.model.eval()  # no dropout: both forwards see the same function
        pairs = recipe.data.train[:6]
        batch = recipe.to_device(pairs)
        with torch.no_grad():
            ours = recipe.loss_sum(pairs).item()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = recipe.model(**{k: v for k, v in batch.items() if k != "labels"}).logits
            target = batch["labels"] != IGNORE_INDEX
            labels = batch["labels"][target]
            want = F.cross_entropy(logits[target].float(), labels, label_smoothing=0.1, reduction="sum")
        assert ours == pytest.approx(want.item(), rel=2e-3 if bf16 else 1e-5)
    finally:
        recipe.cleanup()


def validation_loss(recipe: FinetuneRecipe, evaluator: Evaluator) -> float:
    recipe.model.eval()
    try:
        return evaluator.loss(recipe.loss_sum, recipe.batch_device)
    finally:
        recipe.model.train()


@pytest.mark.slow
def test_token_budget_batches_evaluate_the_same_loss_and_name_their_flag_when_out_of_memory(
    tiny_models, tmp_path, monkeypatch
):
    """The validation loss is a token average, so budget batches and fixed batches give the same number."""
    recipe = make_recipe(tiny_models, tmp_path, "opus_mt_en_fr", max_tokens=300, max_source_len=128, max_target_len=128)
    try:
        by_budget = validation_loss(recipe, recipe.evaluator)
        generation = recipe.evaluator.generation
        fixed = Evaluator(recipe.data, LengthGrouped(8), recipe.group, chrf_rows=[], generation=generation)
        assert fixed.batches != recipe.evaluator.batches  # two cuts of the validation split
        assert by_budget == pytest.approx(validation_loss(recipe, fixed), rel=1e-6)

        def out_of_memory(*args, **kwargs):
            raise torch.OutOfMemoryError("CUDA out of memory")

        monkeypatch.setattr(recipe, "optimizer_step", out_of_memory)
        with pytest.raises(TrainingError, match="up to 300 tokens.* lower --max-tokens .*--grad-accum"):
            recipe.train()
    finally:
        recipe.cleanup()


@pytest.mark.slow
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
        assert all(p.input_ids[0] == src_code and p.input_ids[-1] == tok.eos_token_id for p in recipe.data.train)
        assert all(p.labels[0] == tgt_code and p.labels[-1] == tok.eos_token_id for p in recipe.data.train)
    finally:
        recipe.cleanup()


@pytest.mark.slow
def test_marian_rows_have_no_language_codes(tiny_models, tmp_path):
    recipe = make_recipe(tiny_models, tmp_path, "opus_mt_fr_en", max_source_len=8, max_target_len=6)
    try:
        eos = recipe.tokenizer.eos_token_id
        assert all(p.labels[-1] == eos and p.input_ids[-1] == eos for p in recipe.data.train)
        assert max(len(p.input_ids) for p in recipe.data.train) == 8
        assert max(len(p.labels) for p in recipe.data.train) == 6
        assert recipe.decoder_start_id == recipe.pad_id  # Marian starts the decoder from <pad>
    finally:
        recipe.cleanup()


def test_prepare_run_applies_the_sample_caps_after_the_split(tmp_path):
    def prepared(**caps):
        settings = FinetuneSettings.create(which="opus_mt_en_fr", data=SAMPLE, output_dir=tmp_path, **caps)
        return prepare_run(settings, environ={})

    whole = prepared()
    capped = prepared(max_train_samples=100, max_eval_samples=7)
    assert (len(capped.split.train), len(capped.split.eval)) == (100, 7)
    assert (capped.plan.resolved.train_rows, capped.plan.resolved.eval_rows) == (100, 7)
    assert (capped.plan.corpus.max_train_samples, capped.plan.corpus.max_eval_samples) == (100, 7)
    assert {e.line for e in capped.split.train} <= {e.line for e in whole.split.train}
    assert {e.line for e in capped.split.eval} <= {e.line for e in whole.split.eval}
    assert capped.split == prepared(max_train_samples=100, max_eval_samples=7).split  # deterministic
    # A cap above the split's size changes nothing.
    roomy = prepared(max_train_samples=10**6, max_eval_samples=10**6)
    assert roomy.split == whole.split and roomy.plan.resolved.train_rows == whole.plan.resolved.train_rows


@pytest.mark.slow
def test_chrf_generation_forces_each_rows_target_language_and_restores_the_model(tiny_models, tmp_path, monkeypatch):
    from csas_cli.inference.generation import LoadedModel

    recipe = make_recipe(tiny_models, tmp_path, "m2m100_418m", eval_chrf=True, eval_chrf_samples=12)
    try:
        tok = recipe.tokenizer
        config = recipe.model.get_base_model().generation_config
        before = (tok.src_lang, tok.tgt_lang, config.forced_bos_token_id)
        starts = []
        real = LoadedModel.generate_ids

        def spy(self, input_ids, settings, constraints=None):
            assert not self.model.training and constraints is None  # generation in eval mode: no dropout
            ids = real(self, input_ids, settings)
            cap = min(recipe.plan.corpus.max_target_len, math.ceil(1.5 * max(map(len, input_ids))) + 10)
            assert settings.max_new_tokens == cap  # the length cap follows the batch's longest source
            starts.append((input_ids[0][0], set(ids[:, 1].tolist()), settings.num_beams, settings.max_new_tokens))
            return ids

        monkeypatch.setattr(LoadedModel, "generate_ids", spy)
        recipe.evaluate_and_select(1)
        value = recipe.last_eval_chrf
        assert value is not None and 0 <= value <= 100
        # m2m100_418m's sample holds both directions: each batch starts with its target's code, after </s>.
        en, fr = tok.get_lang_id("en"), tok.get_lang_id("fr")
        assert {(source, frozenset(first)) for source, first, _, _ in starts} == {(en, frozenset({fr})),
                                                                                  (fr, frozenset({en}))}  # fmt: skip
        assert {beams for _, _, beams, _ in starts} == {1} and all(new < recipe.plan.corpus.max_target_len
                                                                   for _, _, _, new in starts)  # fmt: skip
        assert recipe.model.training
        assert (tok.src_lang, tok.tgt_lang, config.forced_bos_token_id) == before
        recipe.evaluate_and_select(2)
        assert recipe.last_eval_chrf == value  # the same rows, the same weights: the same score
        chrf_rows = recipe.evaluator.chrf_rows
        assert sorted(chrf_rows) == chrf_rows and len(chrf_rows) == 12
        logged = read_metrics(tmp_path / "m2m100_418m" / METRICS)
        assert [(r["step"], r["eval_chrf"]) for r in logged] == [(1, value), (2, value)]
    finally:
        recipe.cleanup()


# --- the loop's seams: a callback after every optimizer step, the batching strategy ---------------------------------


@pytest.mark.slow
def test_on_step_hears_every_optimizer_step_with_its_batches_tokens_and_loss(tiny_models, tmp_path):
    reports: list[StepReport] = []
    recipe = recipe_with(tiny_models, tmp_path, "opus_mt_en_fr", {"on_step": reports.append}, max_steps=4,
                         batch_size=4, grad_accum=2, logging_steps=1)  # fmt: skip
    returned: list[tuple[float, float, float]] = []
    real_step = recipe.optimizer_step

    def optimizer_step(groups, step_tokens, idle=False):
        returned.append(real_step(groups, step_tokens, idle=idle))
        assert len(reports) == len(returned) - 1  # the callback comes after the step, once
        return returned[-1]

    recipe.optimizer_step = optimizer_step
    try:
        recipe.train()
        expected = first_steps(recipe, 4)
    finally:
        recipe.cleanup()
    assert [r.step for r in reports] == [1, 2, 3, 4]
    assert [r.epoch for r in reports] == [0, 0, 0, 0]
    assert [[list(g) for g in r.micro_batches] for r in reports] == expected
    assert all(len(r.micro_batches) == 2 and all(len(g) == 4 for g in r.micro_batches) for r in reports)
    assert [r.step_tokens for r in reports] == [sum(target_tokens(g) for g in step) for step in expected]
    assert [(r.loss, r.grad_norm, r.learning_rate) for r in reports] == returned
    logged = [r for r in read_metrics(tmp_path / "opus_mt_en_fr" / METRICS) if "loss" in r]
    assert [r["step"] for r in logged] == [1, 2, 3, 4]
    # Logging every step, the logged loss is the step's own (a token average over the step's targets).
    assert [r["loss"] for r in logged] == pytest.approx([r.loss for r in reports], rel=1e-9)
    assert [r["grad_norm"] for r in logged] == [r.grad_norm for r in reports]
    assert [r["learning_rate"] for r in logged] == [r.learning_rate for r in reports]
    assert all(math.isfinite(r.loss) and r.loss > 0 for r in reports)


@pytest.mark.parametrize("limit", [None, 40])
def test_eval_max_len_replaces_the_cap_that_follows_the_source(tiny_models, tmp_path, limit):
    recipe = make_recipe(tiny_models, tmp_path, "opus_mt_en_fr", setup=False, eval_chrf=True, max_target_len=300,
                         eval_max_len=limit)  # fmt: skip
    try:
        evaluator = recipe.evaluator
        assert evaluator.generation.max_new_tokens == (300 if limit is None else limit)
        assert evaluator.follow_source is (limit is None)
        assert recipe.plan.to_dict()["eval_max_len"] == limit
    finally:
        recipe.cleanup()


@pytest.mark.slow
def test_the_progress_bar_shows_what_the_next_log_line_logs(tiny_models, tmp_path):
    """The bar's loss is the token-averaged loss since the last log, so that at every logged step (the last one
    included) the bar and the log line agree."""
    recipe = make_recipe(tiny_models, tmp_path, "opus_mt_en_fr", max_steps=7, logging_steps=3, batch_size=4)
    bar: dict[int, dict] = {}
    real_step = recipe.reporter.step
    recipe.reporter.step = lambda step, stats: (bar.__setitem__(step, dict(stats)), real_step(step, stats))
    try:
        recipe.train()
    finally:
        recipe.cleanup()
    logged = [r for r in read_metrics(tmp_path / "opus_mt_en_fr" / METRICS) if "loss" in r]
    assert [r["step"] for r in logged] == [1, 3, 6, 7] and sorted(bar) == list(range(1, 8))
    for record in logged:
        shown = bar[record["step"]]
        assert shown["loss"] == pytest.approx(record["loss"], rel=1e-12)
        assert (shown["learning_rate"], shown["samples_per_second"]) == (record["learning_rate"],
                                                                         record["samples_per_second"])  # fmt: skip


class LongestFirst(Batching):
    """Pairs of two, longest first, the same every epoch: nothing like csas's length-grouped shuffle."""

    def __init__(self) -> None:
        self.epochs: list[int] = []

    def epoch(self, lengths: Sequence[int], seed: int, epoch: int) -> list[list[int]]:
        self.epochs.append(epoch)
        order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
        return [order[i : i + 2] for i in range(0, len(order), 2)]

    def validation(self, lengths: Sequence[int]) -> list[list[int]]:
        return [[i] for i in range(len(lengths))]

    def describe(self) -> str:
        return "two pairs"


@pytest.mark.slow
def test_the_batching_strategy_decides_what_the_loop_trains_and_evaluates_on(tiny_models, tmp_path):
    batching = LongestFirst()
    reports: list[StepReport] = []
    recipe = recipe_with(tiny_models, tmp_path, "opus_mt_en_fr", {"batching": batching, "on_step": reports.append},
                         max_steps=3, grad_accum=2)  # fmt: skip
    try:
        assert recipe.batching is batching
        n = len(recipe.data.train)
        assert recipe.steps.batches_per_epoch == math.ceil(n / 2)  # counted from the strategy's epoch
        assert recipe.evaluator.batches == [[i] for i in range(len(recipe.data.eval))]
        recipe.train()
    finally:
        recipe.cleanup()
    pairs = recipe.data.train
    order = sorted(range(n), key=lambda i: (-pairs[i].length, i))
    expected = [[[pairs[i] for i in order[j : j + 2]] for j in range(k, k + 4, 2)] for k in range(0, 12, 4)]
    assert [[list(g) for g in r.micro_batches] for r in reports] == expected
    assert set(batching.epochs) == {0}
    # The longest pairs of the split, in that order: not what the default strategy would have trained on.
    assert max(p.length for g in reports[0].micro_batches for p in g) == max(p.length for p in pairs)
    assert [[list(g) for g in step] for step in first_steps(recipe, 3)] == expected


# --- training quality: csas against a plain PyTorch loop ------------------------------------------------------------

PLAIN_LOOP = {"batch_size": 4, "grad_accum": 2, "max_steps": 3, "warmup_ratio": 0.0, "learning_rate": 3e-3}
"""Small steps of two micro-batches, no warm-up, a learning rate that moves the adapters visibly in three steps."""


def loop_recipe(tiny_models, out: Path, key: str) -> FinetuneRecipe:
    """helpers.make_recipe with PLAIN_LOOP's values, and random lora_B weights."""
    return make_recipe(tiny_models, out, key, random_lora_b=True, **PLAIN_LOOP)


def reference_batch(pairs, config) -> dict[str, torch.Tensor]:
    """Padding and teacher forcing written out independently of csas's collate."""
    start, pad = config.decoder_start_token_id, config.pad_token_id
    src_len = max(len(p.input_ids) for p in pairs)
    tgt_len = max(len(p.labels) for p in pairs)
    return {
        "input_ids": torch.tensor([list(p.input_ids) + [pad] * (src_len - len(p.input_ids)) for p in pairs]),
        "attention_mask": torch.tensor([[1] * len(p.input_ids) + [0] * (src_len - len(p.input_ids)) for p in pairs]),
        "decoder_input_ids": torch.tensor(
            [[start] + list(p.labels[:-1]) + [pad] * (tgt_len - len(p.labels)) for p in pairs]
        ),
        "labels": torch.tensor([list(p.labels) + [-100] * (tgt_len - len(p.labels)) for p in pairs]),
    }


def reference_loss(model, groups, config) -> torch.Tensor:
    """Backward the step's loss (summed label-smoothed cross-entropy over its target tokens) and return it."""
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=0.1, ignore_index=-100, reduction="sum")
    tokens = sum(len(p.labels) for g in groups for p in g)
    total = torch.zeros(())
    for pairs in groups:
        batch = reference_batch(pairs, config)
        logits = model(**batch).logits
        loss = criterion(logits.reshape(-1, logits.size(-1)), batch["labels"].reshape(-1)) / tokens
        loss.backward()
        total += loss.detach()
    return total


def trainable(model) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.slow
@pytest.mark.parametrize("key", ["m2m100_418m", "opus_mt_en_fr", "mbart50_mmt_fr"])
@pytest.mark.filterwarnings("ignore:Seems like `optimizer.step\\(\\)` has been overridden")  # the capture below
def test_csas_step_has_the_loss_and_lora_gradients_of_a_plain_loop(tiny_models, tmp_path, key):
    recipe = loop_recipe(tiny_models, tmp_path, key)
    try:
        model, config = recipe.model, recipe.model.get_base_model().config
        model.train()
        groups = first_steps(recipe, 1)[0]
        assert len(groups) == 2 and len({len(p.labels) for g in groups for p in g}) > 1  # padding is exercised

        model.zero_grad(set_to_none=True)
        expected_loss = reference_loss(model, groups, config)
        expected = {n: p.grad.detach().clone() for n, p in trainable(model).items()}
        expected_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in expected.values()]))
        model.zero_grad(set_to_none=True)

        # csas's own step; its gradients are read when the optimizer is about to use them (after clipping).
        seen: dict[str, torch.Tensor] = {}
        real_step = recipe.optimizer.step

        def capture(*args, **kwargs):
            seen.update({n: p.grad.detach().clone() for n, p in trainable(model).items()})
            return real_step(*args, **kwargs)

        recipe.optimizer.step = capture
        tokens = sum(len(p.labels) for g in groups for p in g)
        loss, grad_norm, _ = recipe.optimizer_step(groups, tokens)

        assert loss == pytest.approx(expected_loss.item(), rel=1e-5)
        assert grad_norm == pytest.approx(expected_norm.item(), rel=1e-4)
        clip = min(1.0, MAX_GRAD_NORM / (expected_norm.item() + 1e-6))
        assert seen.keys() == expected.keys() and any("lora_A" in n for n in seen)
        for name, grad in expected.items():
            torch.testing.assert_close(seen[name], grad * clip, rtol=1e-4, atol=1e-7, msg=name)
        assert all(expected[n].abs().sum() > 0 for n in expected)
    finally:
        recipe.cleanup()


@pytest.mark.slow
def test_csas_training_follows_a_plain_loop_step_by_step(tiny_models, tmp_path):
    """Three optimizer steps of csas and of a reference loop (AdamW, linear schedule, clipping at 1.0) from the same
    weights on the same batches: the same losses and the same adapter weights after."""
    from transformers import get_linear_schedule_with_warmup

    recipe = loop_recipe(tiny_models, tmp_path, "m2m100_418m")
    try:
        steps = first_steps(recipe, 3)
        reference = copy.deepcopy(recipe.model)
        reference.train()
        config = reference.get_base_model().config
        params = list(trainable(reference).values())
        # AdamW moves every entry by about one learning rate whatever its gradient's size, down to eps. Some entries
        # are zero in exact arithmetic (softmax is shift-invariant, so parts of the key and query projections'
        # gradients cancel), and their rounding noise (~1e-9 here) differs between any two correct implementations
        # of the loss; with the default eps (1e-8) Adam would turn it into steps of up to a learning rate. A larger
        # eps on both sides keeps those entries still and leaves the others' updates as they were.
        eps = 1e-5
        for group in recipe.optimizer.param_groups:
            group["eps"] = eps
        optimizer = torch.optim.AdamW(params, lr=recipe.plan.training.learning_rate, weight_decay=0.01, eps=eps)
        schedule = get_linear_schedule_with_warmup(optimizer, 0, len(steps))
        expected_losses = []
        for groups in steps:
            optimizer.zero_grad(set_to_none=True)
            expected_losses.append(reference_loss(reference, groups, config).item())
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()

        start = {n: p.detach().clone() for n, p in trainable(recipe.model).items()}
        recipe.model.train()
        losses = [recipe.optimizer_step(g, sum(len(p.labels) for m in g for p in m))[0] for g in steps]

        assert losses == pytest.approx(expected_losses, rel=1e-5)
        ours = trainable(recipe.model)
        for name, param in trainable(reference).items():
            # Within 1e-5 of each other after three steps: a 300th of the learning rate (3e-3).
            torch.testing.assert_close(ours[name].detach(), param.detach(), rtol=1e-4, atol=1e-5, msg=name)
        assert all(not torch.equal(start[n], p.detach()) for n, p in ours.items())  # every adapter moved
    finally:
        recipe.cleanup()
