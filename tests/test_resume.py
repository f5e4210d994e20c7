"""Exact, safe resume: a run stopped by a signal or killed outright continues to the same adapter."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from csas_cli.checkpoints import step_dir_name
from csas_cli.cli import bare_resume_means_auto
from csas_cli.errors import SettingsError
from csas_cli.preemption import PREEMPTED_EXIT_CODE
from csas_cli.resume import choose_checkpoint, plan_differences
from csas_cli.settings import FinetuneSettings, build_plan

SAMPLE = Path(__file__).resolve().parents[1] / "csas_cli" / "assets" / "sample_pairs.jsonl"
KEY = "opus_mt_en_fr"


def command(tiny_models, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "csas_cli", "finetune", "--which", KEY, "--model-id", str(tiny_models[KEY]),
        "--data", str(SAMPLE), "--output-dir", str(out), "--max-steps", "16", "--lr", "3e-3", "--batch-size", "4",
        "--save-steps", "4", "--eval-steps", "8", "--logging-steps", "4", "--disable-tqdm", *extra,
    ]  # fmt: skip


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


def start(cmd: list[str]) -> subprocess.Popen:
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def kill_after_checkpoint(tiny_models, out: Path, step: int) -> None:
    """Start a LoRA run and SIGKILL it as soon as checkpoint `step` exists, before it can finish."""
    proc = start(command(tiny_models, out, "--no-qlora"))
    wait_for(out / KEY / "checkpoints" / step_dir_name(step), proc)
    proc.kill()
    proc.communicate(timeout=60)
    assert not (out / KEY / "finished.json").exists()


def adapter(run_dir: Path) -> dict:
    return load_file(str(run_dir / "lora" / "adapter_model.safetensors"))


def curve(run_dir: Path) -> list[tuple[int, float]]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [(r["step"], r.get("loss", r.get("eval_loss"))) for r in map(json.loads, lines)]


@pytest.fixture(scope="module")
def uninterrupted(tiny_models, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    for extra in ([], ["--no-qlora"]):
        done = run(command(tiny_models, out / ("lora" if extra else "qlora"), *extra))
        assert done.returncode == 0, done.stderr
    return {"qlora": out / "qlora" / KEY, "lora": out / "lora" / KEY}


def assert_same_run(resumed: Path, reference: Path) -> None:
    a, b = adapter(resumed), adapter(reference)
    assert a.keys() == b.keys()
    for name in a:
        assert (a[name] - b[name]).abs().max().item() <= 1e-5, name
    assert json.loads((resumed / "finished.json").read_text())["steps"] == 16
    got, want = curve(resumed), curve(reference)
    assert [step for step, _ in got] == [step for step, _ in want]
    assert [value for _, value in got] == pytest.approx([value for _, value in want], rel=1e-5)


@pytest.mark.parametrize("variant", ["qlora", "lora"])
def test_sigterm_checkpoints_then_resume_matches_uninterrupted(tiny_models, tmp_path, uninterrupted, variant):
    extra = [] if variant == "qlora" else ["--no-qlora"]
    proc = start(command(tiny_models, tmp_path, *extra))
    wait_for(tmp_path / KEY / "checkpoints" / step_dir_name(8), proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == PREEMPTED_EXIT_CODE, stderr
    assert "csas: stopped: stopped by SIGTERM" in stderr and "--resume auto" in stderr and "Traceback" not in stderr
    assert not (tmp_path / KEY / "finished.json").exists()

    resumed = run(command(tiny_models, tmp_path, *extra, "--resume", "auto"))
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stderr
    assert_same_run(tmp_path / KEY, uninterrupted[variant])
    assert json.loads((tmp_path / KEY / "run.json").read_text())["resumed"][0]["from_step"] >= 8


def test_sigkill_between_checkpoints_then_resume_matches_uninterrupted(tiny_models, tmp_path, uninterrupted):
    kill_after_checkpoint(tiny_models, tmp_path, 8)
    # A checkpoint interrupted half-way through its save is left as a .tmp folder and must be ignored.
    (tmp_path / KEY / "checkpoints" / (step_dir_name(12) + ".tmp")).mkdir(exist_ok=True)
    resumed = run(command(tiny_models, tmp_path, "--no-qlora", "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(tmp_path / KEY, uninterrupted["lora"])


def test_damaged_newest_checkpoint_is_skipped_with_a_warning(tiny_models, tmp_path, uninterrupted):
    kill_after_checkpoint(tiny_models, tmp_path, 8)
    newest = sorted((tmp_path / KEY / "checkpoints").glob("step-*"))[-1]
    (newest / "optimizer.pt").unlink()
    resumed = run(command(tiny_models, tmp_path, "--no-qlora", "--resume", "auto"))
    assert resumed.returncode == 0, resumed.stderr
    assert "skipping damaged checkpoint" in resumed.stderr
    assert_same_run(tmp_path / KEY, uninterrupted["lora"])


def test_resume_refuses_other_hyperparameters(tiny_models, tmp_path):
    kill_after_checkpoint(tiny_models, tmp_path, 4)
    changed = command(tiny_models, tmp_path, "--no-qlora", "--resume", "auto")
    changed[changed.index("--lr") + 1] = "1e-3"
    done = run(changed)
    assert done.returncode == 2
    assert "--resume" in done.stderr and "learning_rate 0.003 -> 0.001" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    unchanged = run(command(tiny_models, tmp_path, "--no-qlora", "--resume", "auto", "--save-steps", "5"))
    assert unchanged.returncode == 0, unchanged.stderr  # intervals may change


def test_resume_of_a_finished_run_is_a_no_op(uninterrupted, tiny_models):
    before = (uninterrupted["lora"] / "finished.json").read_text()
    done = run(command(tiny_models, uninterrupted["lora"].parent, "--no-qlora", "--resume", "auto"))
    assert done.returncode == 0 and "nothing to resume" in done.stderr
    assert (uninterrupted["lora"] / "finished.json").read_text() == before


def test_plan_differences_are_named():
    plan = build_plan(FinetuneSettings(which=KEY))
    recorded = {"plan": plan.to_dict(), "data_sha256": "abc"}
    assert plan_differences(recorded, plan, "abc") == []
    other = build_plan(FinetuneSettings(which=KEY, lora_r=8, eval_steps=7))
    assert plan_differences(recorded, other, "abd") == ["lora_r 32 -> 8", f"data file content changed ({plan.data})"]


def test_other_sample_caps_refuse_a_resume():
    plan = build_plan(FinetuneSettings(which=KEY, max_train_samples=100))
    recorded = {"plan": plan.to_dict(), "data_sha256": "abc"}
    other = build_plan(FinetuneSettings(which=KEY, max_train_samples=50, max_eval_samples=5))
    assert plan_differences(recorded, other, "abc") == ["max_train_samples 100 -> 50", "max_eval_samples None -> 5"]
    # A run.json written before the caps existed has neither key: resuming it without caps is fine.
    before_caps = build_plan(FinetuneSettings(which=KEY)).to_dict()
    del before_caps["max_train_samples"], before_caps["max_eval_samples"]
    old = {"plan": before_caps, "data_sha256": "abc"}
    assert plan_differences(old, build_plan(FinetuneSettings(which=KEY)), "abc") == []


def test_choose_checkpoint(tmp_path):
    assert choose_checkpoint(tmp_path, "auto", warn=print) is None
    with pytest.raises(SettingsError, match="incomplete checkpoint"):
        choose_checkpoint(tmp_path, str(tmp_path / "checkpoints" / "step-000004"), warn=print)


def test_bare_resume_means_auto():
    assert bare_resume_means_auto(["finetune", "--resume"]) == ["finetune", "--resume", "auto"]
    assert bare_resume_means_auto(["--resume", "--which", "x"]) == ["--resume", "auto", "--which", "x"]
    assert bare_resume_means_auto(["--resume", "auto"]) == ["--resume", "auto"]
    assert bare_resume_means_auto(["--resume", "runs/x/checkpoints/step-000004"])[-1].endswith("step-000004")


def test_resume_and_overwrite_exclude_each_other():
    with pytest.raises(SettingsError, match="--resume and --overwrite"):
        FinetuneSettings(which=KEY, resume="auto", overwrite=True)
