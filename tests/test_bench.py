"""csas_cli.bench, `csas bench` and scripts/bench_vs_hf.py; and that csas trains what a plain PyTorch loop trains.

Timings are noisy on shared machines, so no test asserts a speed: the benchmark tests check that the commands run
end to end and report what they promise. The quality tests check csas's loss and LoRA gradients (and a few
optimizer steps) against a reference loop written from scratch.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from csas_cli.batches import optimizer_steps
from csas_cli.bench import (
    LENGTH_MEDIAN,
    PRESETS,
    PROVENANCE,
    TARGET_RATIO,
    architecture_config,
    config_path,
    special_ids,
    synthetic_lengths,
    synthetic_pairs,
)
from csas_cli.cli import app
from csas_cli.registry import MODEL_KEYS, REGISTRY
from csas_cli.settings import FinetuneSettings
from csas_cli.train import FinetuneRecipe, prepare_run

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "csas_cli" / "assets" / "sample_pairs.jsonl"
SCRIPT = ROOT / "scripts" / "bench_vs_hf.py"


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
    from csas_cli.bench import count_parameters

    assert set(PRESETS) == {"small", "tiny"}
    assert count_parameters(architecture_config("small")) >= 10_000_000
    assert architecture_config("small").model_type == "marian"


# --- csas bench ----------------------------------------------------------------------------------------------------


@pytest.fixture
def cpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--device cpu` hides GPUs through CUDA_VISIBLE_DEVICES; give the variable back afterwards."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", os.environ.get("CUDA_VISIBLE_DEVICES", ""))
    for name in ("WORLD_SIZE", "LOCAL_RANK", "RANK"):
        monkeypatch.delenv(name, raising=False)


BENCH_FIELDS = {
    "which", "model", "parameters", "data", "device", "precision", "qlora", "batch_size", "grad_accum",
    "samples_per_step", "steps", "seconds", "samples_per_second", "tokens_per_second", "padding", "final_loss",
    "peak_memory_gib", "peak_memory_longest_gib", "longest_pair_tokens", "peak_memory_measure", "versions",
}  # fmt: skip


def test_csas_bench_prints_a_json_measurement(cpu_only):
    args = [
        "bench", "--which", "opus_mt_en_fr", "--preset", "tiny", "--steps", "2", "--warmup-steps", "1",
        "--batch-size", "4", "--no-qlora", "--device", "cpu", "--json",
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert BENCH_FIELDS <= set(record)
    assert record["steps"] == 2 and record["samples_per_step"] == 8 and record["device"] == "cpu"
    assert record["samples_per_second"] > 0 and record["tokens_per_second"] > record["samples_per_second"]
    assert 0 <= record["padding"] < 0.5  # length grouping: little padding
    assert record["final_loss"] > 0 and math.isfinite(record["final_loss"])
    assert record["qlora"] is False and record["precision"] == "fp32"
    assert record["model"].startswith("preset tiny")


def test_csas_bench_on_a_data_file_with_a_real_tokenizer(tiny_models, cpu_only):
    args = [
        "bench", "--which", "m2m100_418m", "--model-id", str(tiny_models["m2m100_418m"]), "--data", str(SAMPLE),
        "--steps", "1", "--warmup-steps", "0", "--batch-size", "4", "--grad-accum", "1", "--no-qlora",
        "--device", "cpu", "--json",
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["data"] == str(SAMPLE) and record["steps"] == 1 and record["samples_per_step"] == 4


def test_csas_bench_sizes_token_budget_batches(cpu_only):
    """--max-tokens: the record says so, and the pairs per step are what the budget held (varying, averaged)."""
    args = [
        "bench", "--which", "opus_mt_en_fr", "--preset", "tiny", "--steps", "3", "--warmup-steps", "1",
        "--max-tokens", "1200", "--max-source-len", "128", "--max-target-len", "128", "--no-qlora", "--device",
        "cpu",
    ]  # fmt: skip
    human = CliRunner().invoke(app, args)
    assert human.exit_code == 0, human.output
    assert "2 micro-batches of up to 1200 tokens per step" in human.stdout
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["max_tokens"] == 1200 and record["batch_size"] is None
    # Synthetic pairs have a median of 30 source tokens: a 1200-token budget holds several times the table's 16.
    assert record["samples_per_step"] > 2 * 16
    assert 0 <= record["padding"] < 0.5


def test_csas_bench_refuses_a_preset_of_another_family(cpu_only):
    result = CliRunner().invoke(app, ["bench", "--which", "m2m100_418m", "--preset", "tiny", "--device", "cpu"])
    assert result.exit_code == 2
    assert "Marian" in result.output


def load_script():
    spec = importlib.util.spec_from_file_location("bench_vs_hf", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_vs_hf_runs_one_block_per_architecture():
    script = load_script()
    random_init = script.blocks(script.parse_args(["--which", "all", "--random-init"]))
    assert random_init == [["m2m100_418m"], ["mbart50_mmt_fr", "mbart50_mmt_en"], ["opus_mt_en_fr", "opus_mt_fr_en"]]
    hub_models = script.blocks(script.parse_args(["--which", "all"]))
    assert hub_models == [["m2m100_418m"], ["mbart50_mmt_fr", "mbart50_mmt_en"], ["opus_mt_en_fr"], ["opus_mt_fr_en"]]
    assert script.blocks(script.parse_args([])) == [["opus_mt_en_fr"]]  # the preset


@pytest.mark.parametrize("key", ["opus_mt_en_fr", "m2m100_418m"])
def test_bench_vs_hf_runs_end_to_end_and_ends_with_the_speedup(tiny_models, key):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1"}
    for name in ("WORLD_SIZE", "LOCAL_RANK", "RANK"):
        env.pop(name, None)
    # Marian through the tiny preset; M2M100 (whose decoder inputs the HF side must build) as a tiny random model.
    model = ["--preset", "tiny"] if key == "opus_mt_en_fr" else [
        "--which", key, "--random-init", "--model-id", str(tiny_models[key])
    ]  # fmt: skip
    command = [
        sys.executable, str(SCRIPT), "--device", "cpu", *model, "--steps", "2", "--rounds", "1", "--warmup-steps", "1",
        "--batch-size", "4", "--num-pairs", "200",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert re.fullmatch(r"speedup: \d+\.\d\dx", lines[-1]), lines[-5:]
    assert any(re.match(rf"speedup {key}: \d+\.\d\dx", line) for line in lines)
    for engine in ("csas", "hf"):
        assert any(re.match(rf"round 1/1 {engine}\s+\d+\.\d+ samples/s", line) for line in lines), lines
        assert any(line.startswith(f"{engine:<4} median of 1:") for line in lines)


@pytest.mark.parametrize("variant", ["as-is", "cudnn-sdpa", "full-logits", "pad8", "random-batches"])
def test_bench_vs_hf_csas_variants_train_the_same_step(tiny_models, tmp_path, variant):
    """Each engine variant (but compile, minutes to build) runs csas's step and gives the loss of the unchanged
    engine up to its own change: pad8 and full-logits compute the same function, random-batches other batches."""
    script = load_script()
    context, adapt = script.csas_variant(variant)
    recipe = make_recipe(tiny_models, tmp_path, "opus_mt_en_fr")
    try:
        with context:
            if adapt is not None:
                adapt(recipe)
            groups = first_steps(recipe, 1)[0]
            if variant == "pad8":
                assert all(t.shape[1] % 8 == 0 for t in recipe.to_device(groups[0]).values())
            loss = recipe.optimizer_step(groups, sum(len(p.labels) for g in groups for p in g))[0]
        assert recipe.objective.fused is (variant != "full-logits")
        assert math.isfinite(loss)
    finally:
        recipe.cleanup()
    if variant in ("pad8", "full-logits", "cudnn-sdpa"):
        baseline = make_recipe(tiny_models, tmp_path / "baseline", "opus_mt_en_fr")
        try:
            same = first_steps(baseline, 1)[0]
            want = baseline.optimizer_step(same, sum(len(p.labels) for g in same for p in g))[0]
        finally:
            baseline.cleanup()
        assert loss == pytest.approx(want, rel=1e-5)


# --- training quality: csas against a plain PyTorch loop ------------------------------------------------------------


def make_recipe(tiny_models, tmp_path: Path, key: str) -> FinetuneRecipe:
    settings = FinetuneSettings(
        which=key, model_id=str(tiny_models[key]), data=SAMPLE, output_dir=tmp_path, no_qlora=True,
        lora_dropout=0.0, batch_size=4, grad_accum=2, max_steps=3, warmup_ratio=0.0, lr=3e-3, disable_tqdm=True,
    )  # fmt: skip
    prepared = prepare_run(settings, environ={})
    recipe = FinetuneRecipe(prepared.plan, prepared.split)
    recipe.setup()
    with torch.no_grad():  # LoRA B starts at zero, which would leave every lora_A gradient zero
        generator = torch.Generator().manual_seed(0)
        for name, param in recipe.model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.02)
    return recipe


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


def first_steps(recipe: FinetuneRecipe, n: int) -> list[list[list]]:
    plan = recipe.plan
    lengths = [p.length for p in recipe.train_pairs]
    return [
        [[recipe.train_pairs[i] for i in mb] for mb in micro_batches]
        for _, _, micro_batches in optimizer_steps(lengths, plan.batch_size, plan.grad_accum, plan.seed, n)
    ]


def trainable(model) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("key", ["m2m100_418m", "opus_mt_en_fr", "mbart50_mmt_fr"])
@pytest.mark.filterwarnings("ignore:Seems like `optimizer.step\\(\\)` has been overridden")  # the capture below
def test_csas_step_has_the_loss_and_lora_gradients_of_a_plain_loop(tiny_models, tmp_path, key):
    recipe = make_recipe(tiny_models, tmp_path, key)
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
        clip = min(1.0, recipe.plan.max_grad_norm / (expected_norm.item() + 1e-6))
        assert seen.keys() == expected.keys() and any("lora_A" in n for n in seen)
        for name, grad in expected.items():
            torch.testing.assert_close(seen[name], grad * clip, rtol=1e-4, atol=1e-7, msg=name)
        assert all(expected[n].abs().sum() > 0 for n in expected)
    finally:
        recipe.cleanup()


def test_csas_training_follows_a_plain_loop_step_by_step(tiny_models, tmp_path):
    """Three optimizer steps of csas and of a reference loop (AdamW, linear schedule, clipping at 1.0) from the same
    weights on the same batches: the same losses and the same adapter weights after."""
    from transformers import get_linear_schedule_with_warmup

    recipe = make_recipe(tiny_models, tmp_path, "m2m100_418m")
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
        optimizer = torch.optim.AdamW(params, lr=recipe.plan.learning_rate, weight_decay=0.01, eps=eps)
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


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_gpu_bench_script_refuses_an_unknown_stage_and_a_machine_without_gpu(tmp_path):
    script = ROOT / "scripts" / "gpu_bench.sh"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    bad = subprocess.run(["bash", str(script), str(tmp_path), "bogus"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "unknown stage 'bogus'" in bad.stderr
    run = subprocess.run(["bash", str(script), str(tmp_path), "main"], capture_output=True, text=True, env=env)
    assert run.returncode == 2
    last_line = run.stderr.strip().splitlines()[-1]
    assert last_line == "bench_vs_hf: error: --device cuda: no CUDA GPU is visible to this process"
    assert "'transformers': '5." in (tmp_path / "versions.txt").read_text()  # written before measuring
