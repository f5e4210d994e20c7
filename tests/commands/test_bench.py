"""`csas bench` (csas_cli.commands.bench), scripts/bench_vs_hf.py and scripts/gpu_bench.sh.

Timings are noisy on shared machines, so no test asserts a speed: the benchmark tests check that the commands run
end to end and report what they promise, and that bench_vs_hf.py's csas variants train csas's own step. What they
train on is tested in test_workloads.py; that csas trains what a plain PyTorch loop trains, in test_recipe.py.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import helpers
import pytest
import torch
from helpers import ROOT, SAMPLE, first_steps, invoke

from csas_cli.training.workloads import BenchSettings
from csas_cli.data.batches import LengthGrouped
from csas_cli.training.recipe import FinetuneRecipe

SCRIPT = ROOT / "scripts" / "bench_vs_hf.py"


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


@pytest.mark.slow
def test_csas_bench_prints_a_json_measurement(cpu_only):
    args = [
        "bench", "--which", "opus_mt_en_fr", "--preset", "tiny", "--steps", "2", "--warmup-steps", "1",
        "--batch-size", "4", "--no-qlora", "--device", "cpu", "--json",
    ]  # fmt: skip
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert BENCH_FIELDS <= set(record)
    assert record["steps"] == 2 and record["samples_per_step"] == 8 and record["device"] == "cpu"
    assert record["samples_per_second"] > 0 and record["tokens_per_second"] > record["samples_per_second"]
    assert 0 <= record["padding"] < 0.5  # length grouping: little padding
    assert record["final_loss"] > 0 and math.isfinite(record["final_loss"])
    assert record["qlora"] is False and record["precision"] == "fp32"
    assert record["model"].startswith("preset tiny")


@pytest.mark.slow
def test_csas_bench_on_a_data_file_with_a_real_tokenizer(tiny_models, cpu_only):
    args = [
        "bench", "--which", "m2m100_418m", "--model-id", str(tiny_models["m2m100_418m"]), "--data", str(SAMPLE),
        "--steps", "1", "--warmup-steps", "0", "--batch-size", "4", "--grad-accum", "1", "--no-qlora",
        "--device", "cpu", "--json",
    ]  # fmt: skip
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["data"] == str(SAMPLE) and record["steps"] == 1 and record["samples_per_step"] == 4


@pytest.mark.slow
def test_csas_bench_sizes_token_budget_batches(cpu_only):
    """--max-tokens: the record says so, and the pairs per step are what the budget held (varying, averaged)."""
    args = [
        "bench", "--which", "opus_mt_en_fr", "--preset", "tiny", "--steps", "3", "--warmup-steps", "1",
        "--max-tokens", "1200", "--max-source-len", "128", "--max-target-len", "128", "--no-qlora", "--device",
        "cpu",
    ]  # fmt: skip
    human = invoke(*args)
    assert human.exit_code == 0, human.output
    assert "2 micro-batches of up to 1200 tokens per step" in human.stdout
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["max_tokens"] == 1200 and record["batch_size"] is None
    # Synthetic pairs have a median of 30 source tokens: a 1200-token budget holds several times the table's 16.
    assert record["samples_per_step"] > 2 * 16
    assert 0 <= record["padding"] < 0.5


def test_csas_bench_refuses_a_preset_of_another_family(cpu_only):
    result = invoke("bench", "--which", "m2m100_418m", "--preset", "tiny", "--device", "cpu")
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


@pytest.mark.slow
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


# --- bench_vs_hf.py's csas variants ---------------------------------------------------------------------------------

BENCH_VALUES = {"batch_size": 4, "grad_accum": 2, "max_steps": 3, "warmup_ratio": 0.0, "learning_rate": 3e-3}
"""Steps of two micro-batches of 4 pairs, no warm-up (the first step already moves the adapters)."""


def make_recipe(tiny_models, out: Path, key: str, **engine) -> FinetuneRecipe:
    """helpers.make_recipe with BENCH_VALUES and random lora_B weights, built with the recipe keyword arguments
    `engine` (a bench_vs_hf.py variant)."""
    return helpers.make_recipe(tiny_models, out, key, engine=engine, random_lora_b=True, **BENCH_VALUES)


def first_step_loss(recipe: FinetuneRecipe) -> tuple[list[list], float]:
    """The first step's micro-batches, and the loss of one optimizer step on them under the recipe's kernels."""
    groups = first_steps(recipe, 1)[0]
    with recipe.attention():  # as inside train()
        loss = recipe.optimizer_step(groups, sum(len(p.labels) for g in groups for p in g))[0]
    return groups, loss


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["as-is", "cudnn-sdpa", "full-logits", "pad8", "random-batches"])
def test_bench_vs_hf_csas_variants_train_the_same_step(tiny_models, tmp_path, variant):
    """Each engine variant (but compile, minutes to build) runs csas's step and gives the loss of the unchanged
    engine up to its own change: pad8, full-logits and cudnn-sdpa compute the same function, random-batches trains
    other batches."""
    script = load_script()
    settings = BenchSettings.create(which="opus_mt_en_fr", batch_size=4, grad_accum=2)
    engine = script.engine_variant(variant, settings)
    assert (engine == {}) is (variant == "as-is")
    recipe = make_recipe(tiny_models, tmp_path, "opus_mt_en_fr", **engine)
    try:
        if variant == "pad8":
            assert recipe.pad_to_multiple_of == 8
            groups = first_steps(recipe, 1)[0]
            assert all(t.shape[1] % 8 == 0 for g in groups for t in recipe.to_device(g).values())
        if variant == "cudnn-sdpa":
            assert recipe.cudnn_attention is True
        if variant == "random-batches":
            assert isinstance(recipe.batching, LengthGrouped) and recipe.batching.batch_size == 4
            assert type(recipe.batching) is not LengthGrouped
        groups, loss = first_step_loss(recipe)
        assert recipe.objective.fused is (variant != "full-logits")
        assert math.isfinite(loss) and loss > 0
    finally:
        recipe.cleanup()
    baseline = make_recipe(tiny_models, tmp_path / "baseline", "opus_mt_en_fr")
    try:
        assert baseline.objective.fused and type(baseline.batching) is LengthGrouped
        same, want = first_step_loss(baseline)
    finally:
        baseline.cleanup()
    if variant == "random-batches":
        assert groups != same  # other batches: not the length-grouped ones
        assert sorted(id(p) for g in groups for p in g) != sorted(id(p) for g in same for p in g)
    else:
        assert groups == same
        assert loss == pytest.approx(want, rel=1e-5)


@pytest.mark.slow
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
