"""What is checked before anything trains, through the real CLI: --device-map against the GPUs, --dry-run's hardware
checks and step counts, a batch larger than the split, a finished run resumed with other settings, an unreachable
hub, and the plain progress lines of translate and evaluate in a log."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import SAMPLE, invoke, one_error_line, write_pairs
from layouts import hub_cache

from csas_cli.device_map import check_device_map, check_device_map_form, gpu_index
from csas_cli.errors import HardwareError, SettingsError
from csas_cli.progress import LineCounter, counting_bar

KEY = "opus_mt_en_fr"
no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks what a machine without a GPU refuses")


# -- --device-map ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["auto", "balanced", "balanced_low_0", "sequential", "cpu", "none", "cuda", "cuda:3",
                                   "CUDA:0", " Auto "])  # fmt: skip
def test_device_map_forms_accepted(value: str) -> None:
    check_device_map_form(value)


def test_the_device_map_reaches_transformers_in_its_own_spelling() -> None:
    result = invoke("finetune", "--which", "m2m100_418m", "--data", SAMPLE, "--no-qlora", "--device-map", " Auto ",
                    "--dry-run")  # fmt: skip
    plan = json.loads(result.stdout)
    assert (plan["device_map_requested"], plan["device_map"]) == ("auto", "auto")


@pytest.mark.parametrize("value", ["gpu", "cuda:", "cuda:x", "0", "mps", "auto,cpu"])
def test_device_map_forms_refused(value: str) -> None:
    with pytest.raises(SettingsError, match=f"--device-map {value}: not a placement"):
        check_device_map_form(value)


def test_device_map_against_the_gpus() -> None:
    assert [gpu_index(v) for v in ("cuda", "cuda:0", "cuda:7", "auto", "cpu")] == [0, 0, 7, None, None]
    for value in ("auto", "cpu", "none", "balanced"):
        check_device_map(value, 0)
    check_device_map("cuda:1", 2)
    with pytest.raises(HardwareError, match=r"^--device-map cuda:0: torch sees no CUDA GPU on this machine"):
        check_device_map("cuda:0", 0)
    with pytest.raises(HardwareError, match=r"^--device-map cuda:2: torch sees 2 CUDA GPUs here \(cuda:0 to cuda:1\)"):
        check_device_map("cuda:2", 2)


@pytest.mark.slow
@no_gpu
@pytest.mark.parametrize("dry_run", [True, False])
def test_a_cuda_device_map_on_a_cpu_machine_blames_the_flag(tiny_models, tmp_path: Path, dry_run: bool) -> None:
    result = invoke("finetune", "--which", KEY, "--model-id", tiny_models[KEY], "--data", SAMPLE, "--output-dir",
                    tmp_path, "--device-map", "cuda:0", "--no-qlora", *(["--dry-run"] if dry_run else []))  # fmt: skip
    line = one_error_line(result)
    assert line.startswith("csas: error: --device-map cuda:0: torch sees no CUDA GPU") and "--model-id" not in line
    assert ("--dry-run checks this machine" in line) is dry_run
    assert result.exit_code == 2 and not (tmp_path / KEY).exists()


def test_an_unknown_device_map_is_refused_in_one_line(tmp_path: Path) -> None:
    line = one_error_line(invoke("finetune", "--which", KEY, "--data", SAMPLE, "--device-map", "gpu", "--dry-run"))
    assert "--device-map gpu: not a placement csas knows" in line


# -- --dry-run: the hardware and the step counts -----------------------------------------------------------------


@no_gpu
def test_dry_run_refuses_fp16_without_cuda() -> None:
    line = one_error_line(invoke("finetune", "--which", KEY, "--data", SAMPLE, "--fp16", "--dry-run"))
    assert "--fp16: float16 training needs a CUDA GPU" in line and "--dry-run checks this machine" in line


def dry_plan(*args: object, env: dict | None = None) -> tuple[dict, str]:
    result = invoke("finetune", "--which", KEY, "--data", SAMPLE, *args, "--dry-run", env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr


@pytest.mark.parametrize(
    "args,world",
    [((), 1), (("--epochs", "2.5", "--batch-size", "5", "--grad-accum", "3"), 1), (("--max-steps", "7"), 1),
     (("--warmup-ratio", "0.5", "--batch-size", "4"), 4)],
)  # fmt: skip
def test_dry_run_counts_the_steps_as_hf_does(args: tuple, world: int) -> None:
    env = {"WORLD_SIZE": str(world), "LOCAL_RANK": "0"}
    plan, _ = dry_plan("--no-qlora", *args, env=env)
    rows, batch, accum = plan["train_rows"], plan["batch_size"], plan["grad_accum"]
    per_epoch = math.ceil(math.ceil(rows / batch) / (accum * world))
    total = plan["max_steps"] or math.ceil(plan["epochs"] * per_epoch)
    assert (plan["steps_per_epoch"], plan["total_steps"]) == (per_epoch, total)
    assert plan["warmup_steps"] == math.ceil(plan["warmup_ratio"] * total)


def test_dry_run_leaves_token_budget_steps_to_the_run() -> None:
    plan, _ = dry_plan("--max-tokens", "4096")
    assert (plan["total_steps"], plan["steps_per_epoch"], plan["warmup_steps"]) == (None, None, None)
    plan, _ = dry_plan("--max-tokens", "4096", "--max-steps", "100", "--warmup-ratio", "0.1")
    assert (plan["total_steps"], plan["steps_per_epoch"], plan["warmup_steps"]) == (100, None, 10)


def test_dry_run_warns_about_a_hub_id_an_offline_machine_does_not_hold(tmp_path: Path, monkeypatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))  # read at import: patched here
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    plan, stderr = dry_plan()
    assert plan["model_id"] == "Helsinki-NLP/opus-mt-tc-big-en-fr"
    assert ("warning: --model-id Helsinki-NLP/opus-mt-tc-big-en-fr is not in this machine's hub cache and "
            "HF_HUB_OFFLINE is set, so a run here would fail") in stderr  # fmt: skip


# -- a batch larger than the training split: clamped, with a note ------------------------------------------------


def test_a_batch_larger_than_the_split_is_clamped_with_a_note() -> None:
    plan, stderr = dry_plan("--batch-size", "100000")
    rows = plan["train_rows"]
    assert plan["batch_size"] == 100000 and plan["global_batch"] == rows
    assert (plan["steps_per_epoch"], plan["total_steps"]) == (1, 1)
    assert (f"note: a step of --batch-size 100000 x --grad-accum 2 = 200000 pairs is more than the {rows} training "
            f"pairs: each step holds all {rows} (one step per epoch)") in stderr  # fmt: skip
    plan, stderr = dry_plan("--batch-size", "8", "--grad-accum", "1")
    assert plan["global_batch"] == 8 and "note: a step of" not in stderr


@pytest.mark.slow
def test_a_clamped_batch_trains_one_step_of_the_whole_split(tiny_models, tmp_path: Path) -> None:
    data = write_pairs(tmp_path / "pairs.jsonl", 12)
    result = invoke("finetune", "--which", KEY, "--model-id", tiny_models[KEY], "--data", data, "--output-dir",
                    tmp_path / "runs", "--no-qlora", "--batch-size", "100000", "--disable-tqdm")  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "runs" / KEY / "run.json").read_text())
    rows = record["plan"]["train_rows"]
    assert (record["total_steps"], record["plan"]["global_batch"]) == (1, rows)
    assert f"1 step of {rows} samples" in result.stderr and "note: a step of --batch-size 100000" in result.stderr


# -- --dry-run's steps are the run's -----------------------------------------------------------------------------


@pytest.mark.slow
def test_dry_run_steps_equal_the_runs(tiny_models, tmp_path: Path) -> None:
    data = write_pairs(tmp_path / "pairs.jsonl", 16)
    args = ["finetune", "--which", KEY, "--model-id", tiny_models[KEY], "--data", data, "--output-dir",
            tmp_path / "runs", "--no-qlora", "--epochs", "1.5", "--batch-size", "3", "--grad-accum", "2",
            "--warmup-ratio", "0.2", "--disable-tqdm"]  # fmt: skip
    planned = json.loads(invoke(*args, "--dry-run").stdout)
    assert invoke(*args).exit_code == 0
    record = json.loads((tmp_path / "runs" / KEY / "run.json").read_text())
    for name in ("total_steps", "steps_per_epoch", "warmup_steps"):
        assert planned[name] == record[name], name


# -- --resume auto on a finished run -----------------------------------------------------------------------------


@pytest.mark.slow
def test_resume_on_a_finished_run_is_a_no_op_only_with_the_same_settings(tiny_models, tmp_path: Path) -> None:
    data = write_pairs(tmp_path / "pairs.jsonl", 8)
    args = ["finetune", "--which", KEY, "--model-id", tiny_models[KEY], "--data", data, "--output-dir", tmp_path,
            "--no-qlora", "--max-steps", "2", "--disable-tqdm"]  # fmt: skip
    assert invoke(*args).exit_code == 0
    run = tmp_path / KEY
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    same = invoke(*args, "--resume", "auto")
    assert same.exit_code == 0 and "holds a finished run; nothing to resume" in same.stderr
    changed = one_error_line(invoke(*args, "--lr", "1e-3", "--resume", "auto"))
    assert changed == (
        f"csas: error: {run} holds a finished run trained with other settings (learning_rate 0.0002 -> 0.001); pass "
        "--overwrite to train it again with these, or another --output-dir to keep it"
    )
    data.write_text(data.read_text().replace("stock", "STOCK", 1))
    assert "data file content changed" in one_error_line(invoke(*args, "--resume", "auto"))
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before  # nothing was touched


# -- the hub, unreachable ----------------------------------------------------------------------------------------


def csas_without_hub(*args: object, cache: Path) -> tuple[subprocess.CompletedProcess, float]:
    """The console script on a machine where the hub refuses connections and HF_HUB_OFFLINE is not set."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_ENDPOINT="http://127.0.0.1:9", HF_HUB_CACHE=str(cache))
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "csas_cli", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip
    return proc, time.monotonic() - started


@pytest.mark.slow
def test_an_unreachable_hub_fails_fast_naming_model_id_and_offline_mode(tmp_path: Path) -> None:
    proc, seconds = csas_without_hub("finetune", "--which", KEY, "--data", SAMPLE, "--output-dir", tmp_path / "o",
                                     "--no-qlora", cache=tmp_path / "cache")  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "csas: error: --model-id Helsinki-NLP/opus-mt-tc-big-en-fr: the hub (http://127.0.0.1:9) cannot be reached "
        f"from this machine ({proc.stderr.split('reached from this machine (')[1].split(')')[0]}) and the model is "
        "not in its hub cache; download it where there is internet (`hf download Helsinki-NLP/opus-mt-tc-big-en-fr`) "
        "and set HF_HUB_OFFLINE=1 on machines without it, or pass --model-id a local snapshot"
    ]
    assert seconds < 20  # not the hub client's half-minute of retries
    assert not any(p.name != ".csas.lock" for p in (tmp_path / "o").rglob("*") if p.is_file())


@pytest.mark.slow
def test_an_unreachable_hub_loads_a_cached_model_from_the_cache(tiny_models, tmp_path: Path) -> None:
    repo = "csas-test/opus-mt-en-fr"
    cache = hub_cache(tmp_path / "cache", repo, {"main": tiny_models[KEY]})
    sentences = tmp_path / "in.txt"
    sentences.write_text("The stock is in the Cautious Zone.\n")
    proc, _ = csas_without_hub("translate", sentences, "--which", KEY, "--model-id", repo, "--max-new-tokens", "8",
                               cache=cache)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "note: the hub (http://127.0.0.1:9) cannot be reached" in proc.stderr
    assert f"--model-id {repo} loads from this machine's hub cache (set HF_HUB_OFFLINE=1" in proc.stderr
    assert len(proc.stdout.splitlines()) == 1


# -- translate and evaluate in a log -----------------------------------------------------------------------------


def test_plain_progress_lines_give_count_rate_and_time_left(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([0.0, 10.0, 40.0, 41.0, 75.0, 80.0])
    monkeypatch.setattr(time, "monotonic", lambda: next(clock))
    lines: list[str] = []
    counter = LineCounter(100, "translating", lines.append, every_s=30.0, unit="sentences")
    for n in (10, 30, 10, 50):  # at 10 s, 40 s (a line), 41 s, 75 s (done: no line until finish)
        counter.advance(n)
    counter.finish()
    assert lines == [
        "translating: 40/100 sentences (40%), 1.0/s, about 60 s left",
        "translating: 100/100 sentences (100%), 1.2/s, 80 s in all",
    ]


def test_no_lines_at_a_terminal_without_a_channel_or_a_count(monkeypatch: pytest.MonkeyPatch) -> None:
    lines: list[str] = []
    with counting_bar(3, enabled=False, label="x") as advance:  # no terminal and no say: silent
        advance(3)
    with counting_bar(0, enabled=False, label="x", say=lines.append) as advance:
        pass
    drawn: list[int] = []

    class Bar:  # what rich draws at a terminal
        def __init__(self, *args, **kwargs) -> None: ...
        def add_task(self, *args, **kwargs) -> int: return 0  # noqa: E704
        def advance(self, task: int, n: int) -> None: drawn.append(n)  # noqa: E704
        def __enter__(self): return self  # noqa: E704
        def __exit__(self, *exc) -> None: ...  # noqa: E704

    import csas_cli.progress as progress

    monkeypatch.setattr(progress, "progress_bar", lambda *args, **kwargs: Bar())
    with counting_bar(3, enabled=True, label="x", say=lines.append) as advance:
        advance(2)
        advance(1)
    assert lines == [] and drawn == [2, 1]


@pytest.mark.slow
def test_translate_and_evaluate_say_which_model_and_how_far(tiny_models, tmp_path: Path) -> None:
    sentences = tmp_path / "in.txt"
    sentences.write_text("The stock is in the Cautious Zone.\n\nCatches fell in 2023.\n")
    model = tiny_models[KEY]
    translated = invoke("translate", sentences, "--which", KEY, "--model-id", model, "--max-new-tokens", "4")
    assert translated.exit_code == 0, translated.output
    lines = translated.stderr.splitlines()
    assert f"translating 2 sentences (en->fr) with {model}" in lines
    assert lines[-1].startswith("translating: 2/2 sentences (100%), ") and lines[-1].endswith(" s in all")
    data = write_pairs(tmp_path / "pairs.jsonl", 3)
    evaluated = invoke("evaluate", "--which", KEY, "--model-id", model, "--data", data, "--max-new-tokens", "4")
    assert evaluated.exit_code == 0, evaluated.output
    assert f"translating: scoring {model} on 3 rows (en->fr) of {data}" in evaluated.stderr
    assert "translating: 3/3 sentences (100%)" in evaluated.stderr
