"""End to end: the real CLI trains tiny checkpoints of every family on CPU, offline, and writes a complete run."""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import SAMPLE, invoke

from csas_cli.layout import read_metrics
from csas_cli.settings import FinetuneSettings

pytestmark = pytest.mark.slow

QLORA_FP32: list[str] = []
LORA_BF16 = ["--no-qlora", "--bf16"]
FAMILY_RUNS = [("opus_mt_en_fr", QLORA_FP32), ("m2m100_418m", QLORA_FP32), ("mbart50_mmt_fr", LORA_BF16)]
"""One full run per family, each family in one precision: QLoRA in fp32 for opus (QLoRA is also trained by
test_qlora_training_goes_on_after_generating for mbart50 and by test_resume.py for opus) and m2m100, plain LoRA in
bf16 for mbart50 (finetune-all below trains every model in plain LoRA bf16 too)."""


def tree_digest(root: Path) -> dict[str, str]:
    files = (p for p in sorted(root.rglob("*")) if p.is_file())
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def train(tiny_models, tmp_path: Path, key: str, *extra: str, steps: int = 40):
    return invoke(
        "finetune", "--which", key, "--model-id", tiny_models[key], "--data", SAMPLE, "--output-dir", tmp_path,
        "--max-steps", steps, "--lr", "3e-3", "--batch-size", "4", "--logging-steps", "10", "--eval-steps", "20",
        "--save-steps", "15", "--disable-tqdm", *extra,
    )  # fmt: skip


@pytest.mark.parametrize(
    "key,precision", FAMILY_RUNS, ids=[f"{k}-{'lora-bf16' if p else 'qlora-fp32'}" for k, p in FAMILY_RUNS]
)
def test_finetune_learns_and_writes_a_complete_run(tiny_models, tmp_path, key, precision):
    result = train(tiny_models, tmp_path, key, *precision)
    assert result.exit_code == 0, result.output
    run = tmp_path / key
    metrics = read_metrics(run / "metrics.jsonl")
    losses = [m["loss"] for m in metrics if "loss" in m]
    evals = [m for m in metrics if "eval_loss" in m]
    assert [m["step"] for m in metrics if "loss" in m] == [1, 10, 20, 30, 40]
    assert losses[-1] <= 0.8 * losses[0], losses  # the committed bases reach 40-54% lower in these 40 steps
    assert [m["step"] for m in evals] == [20, 40]
    # Held-out pairs too: the committed bases' validation loss falls by 8% from step 20 to step 40, in either
    # precision (opus 2.37 -> 2.18, m2m100 2.95 -> 2.71, mbart50 2.47 -> 2.26).
    assert evals[-1]["eval_loss"] < 0.95 * evals[0]["eval_loss"], evals

    assert (run / "lora" / "adapter_model.safetensors").is_file()
    assert not list((run / "lora").glob("*.bin"))
    adapter_config = json.loads((run / "lora" / "adapter_config.json").read_text())
    assert adapter_config["r"] == 32 and set(adapter_config["target_modules"]) == {"q_proj", "k_proj", "v_proj"}
    # Checkpoints every 15 steps: 15 and 30 (none at the end, where the final adapter is written).
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000015", "step-000030"]
    finished = json.loads((run / "finished.json").read_text())
    assert finished["status"] == "ok" and finished["steps"] == 40
    record = json.loads((run / "run.json").read_text())
    assert record["plan"]["which"] == key and record["plan"]["qlora"] is (precision == QLORA_FP32)
    assert record["plan"]["precision"] == ("fp32" if precision == QLORA_FP32 else "bf16")
    assert record["versions"]["transformers"].startswith("5.")
    # What the next run on this machine must fit: at least the model's weights, and a believable amount.
    peak = record["peak_memory"]
    assert peak["device"] == "cpu" and "resident" in peak["measure"]
    assert sum(p.stat().st_size for p in (tiny_models[key]).glob("*.safetensors")) < peak["bytes"] < 64 << 30
    assert "loss" in (run / "train.log").read_text()
    assert result.stdout.strip().endswith(str(run / "lora"))


def test_finished_run_is_not_overwritten_without_flag(tiny_models, tmp_path):
    key = "opus_mt_fr_en"
    first = train(tiny_models, tmp_path, key, "--no-qlora", "--save-steps", "2", steps=4)
    assert first.exit_code == 0, first.output
    assert (tmp_path / key / "checkpoints" / "step-000002").is_dir()
    before = tree_digest(tmp_path)
    again = train(tiny_models, tmp_path, key, "--no-qlora", steps=4)
    assert again.exit_code != 0
    assert "holds a finished run" in again.stderr and "--overwrite" in again.stderr
    assert tree_digest(tmp_path) == before
    # The replacing run writes no checkpoint of its own (3 steps, one every 15): none of the first run's is left.
    replaced = train(tiny_models, tmp_path, key, "--no-qlora", "--overwrite", steps=3)
    assert replaced.exit_code == 0, replaced.output
    assert json.loads((tmp_path / key / "finished.json").read_text())["steps"] == 3
    assert not (tmp_path / key / "checkpoints").exists()


def test_bad_model_id_leaves_no_output(tiny_models, tmp_path):
    result = train(tiny_models, tmp_path, "opus_mt_en_fr", "--model-id", str(tiny_models["m2m100_418m"]))
    assert result.exit_code != 0
    assert "m2m_100" in result.stderr and "marian" in result.stderr
    assert not (tmp_path / "opus_mt_en_fr").exists()


def test_finetune_all_trains_every_model_and_skips_finished_ones(tiny_models, tmp_path):
    root = Path(tiny_models["opus_mt_en_fr"]).parent
    args = ["finetune-all", "--data", SAMPLE, "--output-dir", tmp_path, "--model-root", root, "--max-steps", "3"]
    first = invoke(*args)
    assert first.exit_code == 0, first.output
    for key in tiny_models:
        finished = json.loads((tmp_path / key / "finished.json").read_text())
        assert finished["steps"] == 3
        plan = json.loads((tmp_path / key / "run.json").read_text())["plan"]
        assert plan["bf16"] and plan["qlora"] is False and plan["model_id"] == str(root / key)
    second = invoke(*args)
    assert second.exit_code == 0
    assert second.stderr.count("skipped") >= 5


def test_finetune_all_goes_on_after_a_failure(tiny_models, tmp_path):
    root = tmp_path / "models"
    root.mkdir()
    for key, path in tiny_models.items():
        (root / key).symlink_to(path)
    (root / "mbart50_mmt_fr").unlink()
    (root / "mbart50_mmt_fr").symlink_to(tiny_models["opus_mt_en_fr"])  # the wrong family: this one must fail
    result = invoke("finetune-all", "--data", SAMPLE, "--output-dir", tmp_path / "out", "--model-root", root,
                    "--max-steps", "2")  # fmt: skip
    assert result.exit_code == 1
    assert not (tmp_path / "out" / "mbart50_mmt_fr" / "finished.json").exists()
    for key in ("m2m100_418m", "mbart50_mmt_en", "opus_mt_en_fr", "opus_mt_fr_en"):
        assert (tmp_path / "out" / key / "finished.json").is_file()
    assert "failed" in result.stderr


def test_console_script_runs_offline_without_traceback(tiny_models, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "csas_cli", "finetune", "--which", "mbart50_mmt_en", "--model_id",
           str(tiny_models["mbart50_mmt_en"]), "--data", str(SAMPLE), "--output_dir", str(tmp_path), "--max_steps", "4",
           "--batch_size", "4", "--no_qlora", "--disable_tqdm"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert (tmp_path / "mbart50_mmt_en" / "lora" / "adapter_model.safetensors").is_file()


# --- evaluation during training --------------------------------------------------------------------------------


def adapter_weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def test_eval_chrf_is_logged_with_the_loss_and_the_best_adapter_is_kept(tiny_models, tmp_path):
    key = "m2m100_418m"  # both directions: each translated with its own forced language code
    result = invoke(
        "finetune", "--which", key, "--model-id", tiny_models[key], "--data", SAMPLE, "--output-dir", tmp_path,
        "--max-steps", "6", "--eval-steps", "2", "--save-steps", "4", "--eval-chrf", "--eval-chrf-samples", "8",
        "--no-qlora", "--lr", "3e-3", "--batch-size", "4", "--disable-tqdm",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    run = tmp_path / key
    evals = [m for m in read_metrics(run / "metrics.jsonl") if "eval_loss" in m]
    assert [(m["step"], sorted(m)) for m in evals] == [(s, ["eval_chrf", "eval_loss", "step"]) for s in (2, 4, 6)]
    scores = [m["eval_chrf"] for m in evals]
    assert all(0 <= c <= 100 for c in scores) and max(scores) > 0

    finished = json.loads((run / "finished.json").read_text())
    best_step = evals[scores.index(max(scores))]["step"]  # the first of equal scores stays the best
    assert finished["eval_chrf"] == scores[-1] and finished["eval_loss"] == evals[-1]["eval_loss"]
    assert (finished["best"], finished["best_step"], finished["best_metric"], finished["best_value"]) == (
        "best", best_step, "eval_chrf", max(scores)
    )
    assert finished["stopped_early"] is False and finished["steps"] == 6
    best = json.loads((run / "best" / "best.json").read_text())
    assert (best["step"], best["metric"], best["value"]) == (best_step, "eval_chrf", max(scores))
    assert best["eval_loss"] == evals[scores.index(max(scores))]["eval_loss"]
    assert (run / "best" / "adapter_config.json").is_file()
    assert not list(run.glob("best.*")), "no temporary folder is left behind"
    same = all((adapter_weights(run / "best")[n] == w).all() for n, w in adapter_weights(run / "lora").items())
    assert same == (best_step == 6), "lora/ is the last step's adapter, best/ the best evaluation's"
    # The checkpoint carries best/ as it was then, so that a resumed run starts from the same best.
    saved = json.loads((run / "checkpoints" / "step-000004" / "best" / "best.json").read_text())
    assert saved["step"] == evals[scores[:2].index(max(scores[:2]))]["step"]
    last_line = (run / "train.log").read_text().splitlines()[-1]
    assert "adapter saved to" in last_line and f"at step {best_step}" in last_line and "best" in last_line

    # The value is what csas's inference path computes for the final adapter on the same rows, scored as
    # `csas evaluate` scores: the same forced language codes, batches and sacrebleu defaults.
    from csas_cli.inference.generation import GenerationSettings, load_for_inference, translate_texts
    from csas_cli.inference.scoring import score
    from csas_cli.inference.source import resolve_source
    from csas_cli.languages import Direction
    from csas_cli.training.evaluation import chrf_sample
    from csas_cli.training.run import prepare_run

    split = prepare_run(FinetuneSettings.create(which=key, data=SAMPLE), environ={}).split
    examples = [split.eval[i] for i in chrf_sample(len(split.eval), 8, seed=42)]
    assert {e.source_lang for e in examples} == {"en", "fr"}
    loaded = load_for_inference(resolve_source(run, None, None))
    hypotheses = {}
    for source, target in (("en", "fr"), ("fr", "en")):
        rows = [e for e in examples if e.source_lang == source]
        settings = GenerationSettings(num_beams=1, max_new_tokens=512, batch_size=4)
        lines = translate_texts(loaded, [e.source for e in rows], Direction(source, target), settings).lines
        hypotheses.update(zip([e.line for e in rows], lines))
    recomputed = score([hypotheses[e.line] for e in examples], [e.target for e in examples])[1]
    assert scores[-1] == pytest.approx(recomputed, abs=1e-9)


def test_qlora_training_goes_on_after_generating(tiny_models, tmp_path):
    """bitsandbytes 4-bit layers in eval mode (generation) must leave the next training steps working."""
    key = "mbart50_mmt_fr"
    result = invoke(
        "finetune", "--which", key, "--model-id", tiny_models[key], "--data", SAMPLE, "--output-dir", tmp_path,
        "--max-steps", "4", "--eval-steps", "2", "--logging-steps", "1", "--eval-chrf", "--eval-chrf-samples", "4",
        "--eval-num-beams", "2", "--lr", "3e-3", "--batch-size", "4", "--disable-tqdm",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    run = tmp_path / key
    assert json.loads((run / "run.json").read_text())["plan"]["qlora"] is True
    metrics = read_metrics(run / "metrics.jsonl")
    assert [m["step"] for m in metrics if "loss" in m] == [1, 2, 3, 4]
    assert all(m["loss"] > 0 and m["grad_norm"] > 0 for m in metrics if "loss" in m and m["step"] > 2)
    assert [m["step"] for m in metrics if "eval_chrf" in m] == [2, 4]
    assert json.loads((run / "finished.json").read_text())["best_metric"] == "eval_chrf"


def test_patience_stops_the_run_early_and_finishes_it_normally(tiny_models, tmp_path, monkeypatch):
    from csas_cli.training.evaluation import Evaluator

    # A validation loss that only gets worse after step 2: with --patience 2 the run must stop after step 6.
    # `loss_sum` is the recipe's bound method: its recipe knows the step.
    monkeypatch.setattr(Evaluator, "loss", lambda self, loss_sum, device: 1.0 + loss_sum.__self__.steps_done / 100)
    key = "opus_mt_en_fr"
    result = invoke(
        "finetune", "--which", key, "--model-id", tiny_models[key], "--data", SAMPLE, "--output-dir", tmp_path,
        "--max-steps", "20", "--eval-steps", "2", "--logging-steps", "5", "--save-steps", "4", "--patience", "2",
        "--no-qlora", "--batch-size", "4", "--disable-tqdm",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    run = tmp_path / key
    finished = json.loads((run / "finished.json").read_text())
    assert finished["status"] == "ok" and finished["stopped_early"] is True and finished["steps"] == 6
    assert (finished["best_step"], finished["best_metric"], finished["best_value"]) == (2, "eval_loss", 1.02)
    assert "eval_chrf" not in finished
    metrics = read_metrics(run / "metrics.jsonl")
    assert [m["step"] for m in metrics if "eval_loss" in m] == [2, 4, 6]
    # The loss since the last log (step 5) is logged at the stop, as at a last step.
    assert [m["step"] for m in metrics if "loss" in m] == [1, 5, 6]
    assert finished["train_loss"] == [m for m in metrics if "loss" in m][-1]["loss"]
    assert (run / "lora" / "adapter_model.safetensors").is_file()
    assert json.loads((run / "best" / "best.json").read_text())["step"] == 2
    assert "early stop after step 6 of 20: eval_loss has not improved for 2 evaluations" in result.stderr
    assert "use " in result.stderr.splitlines()[-1] and "lora/ holds the last step's" in result.stderr.splitlines()[-1]
    assert result.stdout.strip().endswith(str(run / "lora"))


def test_max_tokens_trains_on_token_budget_batches(tiny_models, tmp_path):
    """--max-tokens: micro-batches of as many pairs as fit in the budget, for training and the validation loss."""
    key = "opus_mt_en_fr"
    result = invoke(
        "finetune", "--which", key, "--model-id", tiny_models[key], "--data", SAMPLE, "--output-dir", tmp_path,
        "--max-tokens", "1024", "--max-source-len", "64", "--max-target-len", "64", "--max-steps", "8",
        "--lr", "3e-3", "--logging-steps", "4", "--eval-steps", "8", "--no-qlora", "--disable-tqdm",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    run = tmp_path / key
    assert "8 steps of 2 micro-batches of up to 1024 tokens" in result.stderr
    plan = json.loads((run / "run.json").read_text())["plan"]
    assert plan["max_tokens"] == 1024 and plan["global_batch"] is None
    metrics = read_metrics(run / "metrics.jsonl")
    losses = [m["loss"] for m in metrics if "loss" in m]
    assert [m["step"] for m in metrics if "loss" in m] == [1, 4, 8] and losses[-1] < losses[0]
    assert [m["step"] for m in metrics if "eval_loss" in m] == [8]
    # The sample's pairs are 10-60 tokens long: a budget of 1024 holds more of them than --batch-size's 8, so an epoch
    # takes fewer steps than fixed batches of 8 would.
    record = json.loads((run / "run.json").read_text())
    assert record["steps_per_epoch"] < math.ceil(math.ceil(plan["train_rows"] / 8) / 2)
