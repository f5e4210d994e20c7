"""Tests for csas_cli.training.sweep: the grid tables, trial settings and names, results rows and CSV, the runner,
the CLI.

The last tests run a real 2 x 2 sweep on a tiny checkpoint (CPU, offline) and run it again to see it skipped.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from pathlib import Path

import pytest
from helpers import SAMPLE, invoke, one_error_line

from csas_cli.training.batch import Outcome
from csas_cli.training.sweep import (
    RESULT_COLUMNS,
    RESULTS_CSV,
    TrialResult,
    check_metric,
    parse_dropouts,
    parse_lrs,
    parse_ranks,
    rank_results,
    recorded_numbers,
    run_sweep,
    short_number,
    sweep_settings,
    trial_name,
    trial_results,
    write_results_csv,
)
from csas_cli.errors import Preempted, SettingsError
from csas_cli.registry import FINETUNE_ALL_TABLE, MODEL_KEYS, SWEEP_CONSTANTS, SWEEP_TABLE
from csas_cli.settings import FinetuneSettings
from csas_cli.training.run import RunResult

# The sweep launcher's grids (original-finetune.md, "Neighbours"), written out independently of registry.py.
SPEC_GRIDS = {
    "m2m100_418m": ((7e-5, 1e-4, 2e-4), (8, 16, 32)),
    "mbart50_mmt_fr": ((7e-5, 1e-4, 1.5e-4), (16, 32)),
    "mbart50_mmt_en": ((7e-5, 1e-4, 1.5e-4), (16, 32)),
    "opus_mt_en_fr": ((1e-4, 2e-4, 3e-4), (8, 16, 32)),
    "opus_mt_fr_en": ((1e-4, 2e-4, 3e-4), (8, 16, 32)),
}
SAFE_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


@pytest.fixture(autouse=True)
def no_launcher_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WORLD_SIZE", "LOCAL_RANK", "RANK"):
        monkeypatch.delenv(name, raising=False)


def trials_under(root: Path, which: str = "opus_mt_en_fr", **kwargs) -> list[FinetuneSettings]:
    return sweep_settings(which, data=root / "d.jsonl", output_dir=root / "sweeps", **kwargs)


# --- the tables ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", list(SPEC_GRIDS))
def test_sweep_table_entry(key: str) -> None:
    lrs, ranks = SPEC_GRIDS[key]
    grid = SWEEP_TABLE[key]
    assert (grid.lrs, grid.ranks, grid.dropouts) == (lrs, ranks, (0.05,))


def test_sweep_table_covers_the_registry_and_constants() -> None:
    assert tuple(SWEEP_TABLE) == MODEL_KEYS
    assert dict(SWEEP_CONSTANTS) == {"max_steps": 4000, "max_train_samples": 200_000, "max_eval_samples": 10_000}


# --- trial settings --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", list(SPEC_GRIDS))
def test_default_grid_expands_in_grid_order(tmp_path: Path, key: str) -> None:
    lrs, ranks = SPEC_GRIDS[key]
    trials = trials_under(tmp_path, key)
    assert [(t.training.learning_rate, t.lora.lora_r) for t in trials] == [(lr, r) for lr in lrs for r in ranks]
    row = FINETUNE_ALL_TABLE[key]
    for t in trials:
        assert t.which == key
        assert t.lora.lora_alpha == 2 * t.lora.lora_r and t.lora.lora_dropout == 0.05
        assert t.training.batch_size == row.batch_size  # batch as in the finetune-all table
        assert (t.training.max_steps, t.corpus.max_train_samples, t.corpus.max_eval_samples) == (4000, 200_000, 10_000)
        assert t.training.bf16 and t.lora.qlora is False and t.training.grad_accum == 2  # finetune-all's constants
        assert t.run_dir == tmp_path / "sweeps" / key / t.output.run_name
        assert SAFE_NAME.match(t.output.run_name)
    names = [t.output.run_name for t in trials]
    assert names == sorted(names) and len(set(names)) == len(names)


def test_given_grid_and_fixed_alpha(tmp_path: Path) -> None:
    trials = trials_under(tmp_path, lrs=(1e-4, 2e-4), ranks=(8, 16), dropouts=(0.0, 0.1), lora_alpha=16)
    assert [(t.training.learning_rate, t.lora.lora_r, t.lora.lora_dropout) for t in trials] == [
        (lr, r, d) for lr in (1e-4, 2e-4) for r in (8, 16) for d in (0.0, 0.1)
    ]
    assert {t.lora.lora_alpha for t in trials} == {16}
    assert trials[0].output.run_name == "trial-00-lr1e-4-r8-a16-d0"
    assert trials[-1].output.run_name == "trial-07-lr2e-4-r16-a16-d0.1"


def test_overrides_replace_the_table_but_not_the_grid(tmp_path: Path) -> None:
    overrides = {"max_steps": 2, "max_train_samples": 5, "batch_size": 3, "seed": 7, "learning_rate": 9.0,
                 "overwrite": True}  # fmt: skip
    trials = trials_under(tmp_path, lrs=(1e-4,), ranks=(4,), overrides=overrides)
    (t,) = trials
    assert (t.training.max_steps, t.corpus.max_train_samples, t.corpus.max_eval_samples) == (2, 5, 10_000)
    assert (t.training.batch_size, t.training.seed, t.output.overwrite) == (3, 7, True)
    assert (t.training.learning_rate, t.lora.lora_r, t.lora.lora_alpha) == (1e-4, 4, 8)


@pytest.mark.parametrize(
    "kwargs,flag",
    [({"lora_alpha": 0}, "--lora-alpha"), ({"overrides": {"max_eval_samples": 0}}, "--max-eval-samples"),
     ({"overrides": {"batch_size": 0}}, "--batch-size")],
)  # fmt: skip
def test_invalid_settings_name_their_flag(tmp_path: Path, kwargs: dict, flag: str) -> None:
    with pytest.raises(SettingsError, match=f"^{flag}"):
        trials_under(tmp_path, **kwargs)


def test_unknown_model(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="^--which: unknown model 'nllb'.*m2m100_418m"):
        trials_under(tmp_path, "nllb")


# --- names and parsing -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value,text",
    [(2e-4, "2e-4"), (1.5e-4, "1.5e-4"), (7e-5, "7e-5"), (1e-3, "1e-3"), (0.1, "1e-1"), (3.25e-4, "3.25e-4")],
)
def test_short_number(value: float, text: str) -> None:
    assert short_number(value) == text
    assert float(text) == value


def test_trial_name_pads_the_index_to_sort() -> None:
    assert trial_name(0, 4, 2e-4, 16, 32, 0.05) == "trial-00-lr2e-4-r16-a32-d0.05"
    assert trial_name(7, 100, 1e-4, 8, 16, 0.1) == "trial-07-lr1e-4-r8-a16-d0.1"  # indexes 00..99
    assert trial_name(7, 101, 1e-4, 8, 16, 0.1) == "trial-007-lr1e-4-r8-a16-d0.1"
    names = [trial_name(i, 12, 1e-4, 8, 16, 0.05) for i in range(12)]
    assert names == sorted(names)


@pytest.mark.parametrize(
    "text,want", [("1e-4,2e-4", (1e-4, 2e-4)), (" 3e-4 , 1e-4 ,", (3e-4, 1e-4)), ("1e-4,1e-4,0.0001", (1e-4,))]
)
def test_parse_lrs(text: str, want: tuple) -> None:
    assert parse_lrs(text) == want


def test_parse_ranks_and_dropouts() -> None:
    assert parse_ranks("8, 16,32") == (8, 16, 32)
    assert parse_dropouts("0,0.05") == (0.0, 0.05)


@pytest.mark.parametrize(
    "parse,text,flag",
    [
        (parse_lrs, "abc", "--lrs"), (parse_lrs, "", "--lrs"), (parse_lrs, "1e-4,x", "--lrs"),
        (parse_lrs, "0", "--lrs"), (parse_lrs, "-1e-4", "--lrs"), (parse_lrs, "nan", "--lrs"),
        (parse_ranks, "0", "--ranks"), (parse_ranks, "8,0", "--ranks"), (parse_ranks, "8.5", "--ranks"),
        (parse_ranks, ",", "--ranks"), (parse_dropouts, "1", "--dropouts"), (parse_dropouts, "-0.1", "--dropouts"),
    ],
)  # fmt: skip
def test_bad_grid_values_name_their_flag(parse, text: str, flag: str) -> None:
    with pytest.raises(SettingsError) as info:
        parse(text)
    assert str(info.value).startswith(flag + ": ")


def test_check_metric() -> None:
    assert [check_metric(m) for m in ("eval_loss", "train_loss", "chrf")] == ["eval_loss", "train_loss", "chrf"]
    with pytest.raises(SettingsError, match="^--metric"):
        check_metric("bleu")
    with pytest.raises(SettingsError, match="which trials score only with --eval-chrf"):
        check_metric("chrf", eval_chrf=False)


def test_metric_chrf_without_eval_chrf_is_refused_before_any_trial(tmp_path) -> None:
    result = invoke("sweep", "--which", "opus_mt_en_fr", "--data", SAMPLE, "--output-dir", tmp_path, "--metric", "chrf")
    assert "--metric chrf ranks by the validation chrF" in one_error_line(result)
    assert not any(tmp_path.iterdir())


# --- results ---------------------------------------------------------------------------------------------------


def result(name: str, **kwargs) -> TrialResult:
    return TrialResult(trial=name, lr=1e-4, r=8, alpha=16, dropout=0.05, **kwargs)


def test_rank_results_best_first_missing_last() -> None:
    rows = [
        result("a", eval_loss=2.0, train_loss=1.0, chrf=40.0, status="ok"),
        result("b", status="failed"),
        result("c", eval_loss=1.5, train_loss=1.2, chrf=55.5, status="ok"),
        result("d", eval_loss=1.5, train_loss=0.9, status="skipped"),
    ]
    assert [r.trial for r in rank_results(rows, "eval_loss")] == ["c", "d", "a", "b"]  # ties keep trial order
    assert [r.trial for r in rank_results(rows, "train_loss")] == ["d", "a", "c", "b"]
    assert [r.trial for r in rank_results(rows, "chrf")] == ["c", "a", "b", "d"]  # higher chrF is better


def test_results_csv(tmp_path: Path) -> None:
    rows = [
        result("trial-00", train_samples=32, eval_samples=8, train_loss=1.25, eval_loss=1.5, steps=2, seconds=3.5,
               status="ok"),
        result("trial-01", train_samples=32, status="failed", note="step 1: the training loss is nan"),
    ]  # fmt: skip
    path = tmp_path / RESULTS_CSV
    write_results_csv(path, rows)
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == RESULT_COLUMNS
        got = list(reader)
    assert RESULT_COLUMNS[:13] == (
        "trial", "lr", "r", "alpha", "dropout", "train_samples", "eval_samples", "train_loss", "eval_loss", "chrf",
        "steps", "seconds", "status",
    )  # fmt: skip
    assert got[0] == {
        "trial": "trial-00", "lr": "0.0001", "r": "8", "alpha": "16", "dropout": "0.05", "train_samples": "32",
        "eval_samples": "8", "train_loss": "1.25", "eval_loss": "1.5", "chrf": "", "steps": "2", "seconds": "3.5",
        "status": "ok", "note": "", "best_step": "", "best_eval_loss": "", "best_chrf": "",
    }  # fmt: skip
    assert (got[1]["status"], got[1]["eval_loss"], got[1]["note"]) == ("failed", "", "step 1: the training loss is nan")
    assert not path.with_name(RESULTS_CSV + ".tmp").exists()


def write_run(run_dir: Path, finished: dict | None = None, metrics: list[dict] = (), rows: tuple = (32, 8)) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "run.json").write_text(json.dumps({"plan": {"train_rows": rows[0], "eval_rows": rows[1]}}))
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    if finished is not None:
        (run_dir / "finished.json").write_text(json.dumps({"status": "ok", **finished}))


def test_recorded_numbers(tmp_path: Path) -> None:
    write_run(tmp_path / "a", {"steps": 4, "train_loss": 1.0, "eval_loss": 2.0, "seconds": 9.5, "eval_chrf": 51.0})
    assert recorded_numbers(tmp_path / "a", finished=True) == {
        "train_samples": 32, "eval_samples": 8, "train_loss": 1.0, "eval_loss": 2.0, "steps": 4, "seconds": 9.5,
        "chrf": 51.0, "best_step": None, "best_eval_loss": None, "best_chrf": None,
    }  # fmt: skip
    # chrF from metrics.jsonl when finished.json has none: the last evaluation's.
    metrics = [{"step": 2, "eval_loss": 2.5, "eval_chrf": 47.0}, {"step": 4, "eval_loss": 2.0, "eval_chrf": 45.0}]
    write_run(tmp_path / "b", {"steps": 4, "eval_loss": 2.0}, metrics)
    assert recorded_numbers(tmp_path / "b", finished=True)["chrf"] == 45.0
    # The best evaluation from best/best.json, beside the last.
    (tmp_path / "b" / "best").mkdir()
    (tmp_path / "b" / "best" / "best.json").write_text(json.dumps({"step": 2, "metric": "eval_chrf", "value": 47.0,
                                                                   "eval_loss": 2.5, "eval_chrf": 47.0}))  # fmt: skip
    numbers = recorded_numbers(tmp_path / "b", finished=True)
    assert (numbers["best_step"], numbers["best_eval_loss"], numbers["best_chrf"]) == (2, 2.5, 47.0)
    assert (numbers["eval_loss"], numbers["chrf"]) == (2.0, 45.0)
    # No chrF anywhere: empty.
    write_run(tmp_path / "c", {"steps": 4}, [{"step": 4, "eval_loss": 2.0}])
    assert recorded_numbers(tmp_path / "c", finished=True)["chrf"] is None
    # A failed trial: an older finished.json left behind is not this trial's result.
    assert recorded_numbers(tmp_path / "a", finished=False) == {"train_samples": 32, "eval_samples": 8}
    assert recorded_numbers(tmp_path / "absent", finished=False) == {"train_samples": None, "eval_samples": None}


def test_trial_results_follow_the_trials(tmp_path: Path) -> None:
    trials = trials_under(tmp_path, lrs=(1e-4, 2e-4), ranks=(8,))
    write_run(trials[0].run_dir, {"steps": 4, "train_loss": 1.0, "eval_loss": 2.0, "seconds": 1.0})
    outcomes = [Outcome(trials[0].output.run_name, "skipped", "already finished")]  # then Ctrl-C: the second never ran
    rows = trial_results(trials, outcomes)
    assert [(r.trial, r.status, r.eval_loss, r.note) for r in rows] == [
        (trials[0].output.run_name, "skipped", 2.0, ""),
        (trials[1].output.run_name, "not run", None, ""),
    ]
    assert (rows[1].lr, rows[1].r, rows[1].alpha, rows[1].dropout) == (2e-4, 8, 16, 0.05)


# --- the runner (run_finetune replaced by a fake that writes a run) --------------------------------------------


class FakeRunner:
    """Stands in for run_finetune: writes run.json and finished.json with a loss that falls with the rank."""

    def __init__(self, fail: set[str] = frozenset()) -> None:
        self.fail = fail
        self.calls: list[FinetuneSettings] = []

    def __call__(self, settings: FinetuneSettings) -> RunResult:
        self.calls.append(settings)
        if settings.output.run_name in self.fail:
            write_run(settings.run_dir)
            raise SettingsError("--resume: trained with other settings")
        loss = 3.0 - settings.lora.lora_r / 10 + settings.training.learning_rate * 1000
        write_run(settings.run_dir, {"steps": 2, "train_loss": loss - 0.5, "eval_loss": loss, "seconds": 1.5})
        return RunResult(str(settings.run_dir), 2, loss - 0.5, loss, 1.5)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_run_sweep_writes_every_trial_and_the_csv(tmp_path: Path) -> None:
    trials = trials_under(tmp_path, lrs=(1e-4, 2e-4), ranks=(8, 16))
    runner = FakeRunner(fail={trials[1].output.run_name})
    messages: list[str] = []
    results, path = run_sweep(trials, run_one=runner, say=messages.append)
    names = [t.output.run_name for t in trials]
    assert [s.output.run_name for s in runner.calls] == names  # the failure stopped nothing
    assert path == tmp_path / "sweeps" / "opus_mt_en_fr" / RESULTS_CSV
    rows = read_csv(path)
    assert [r["trial"] for r in rows] == names
    assert [r["status"] for r in rows] == ["ok", "failed", "ok", "ok"]
    assert rows[1]["eval_loss"] == "" and "other settings" in rows[1]["note"]
    assert rows[1]["train_samples"] == "32"  # it got as far as run.json
    assert float(rows[3]["eval_loss"]) == pytest.approx(3.0 - 1.6 + 0.2)
    assert [r.status for r in results] == ["ok", "failed", "ok", "ok"]
    assert any(trials[1].output.run_name in m and "failed" in m for m in messages)


def test_rerun_skips_finished_trials_and_resumes_unfinished_ones(tmp_path: Path) -> None:
    trials = trials_under(tmp_path, lrs=(1e-4, 2e-4), ranks=(8, 16))
    run_sweep(trials, run_one=FakeRunner(fail={trials[2].output.run_name}), say=lambda m: None)
    again = FakeRunner()
    results, path = run_sweep(trials, run_one=again, say=lambda m: None)
    # Only the failed trial (its folder holds run.json: unfinished) trains again, and it resumes.
    assert [(s.output.run_name, s.output.resume) for s in again.calls] == [(trials[2].output.run_name, "auto")]
    assert [r.status for r in results] == ["skipped", "skipped", "ok", "skipped"]
    rows = read_csv(path)
    assert [r["trial"] for r in rows] == [t.output.run_name for t in trials]
    assert all(r["eval_loss"] and r["steps"] == "2" for r in rows)  # skipped trials keep their numbers


def test_a_stop_signal_ends_the_sweep_and_the_csv_says_so(tmp_path: Path) -> None:
    trials = trials_under(tmp_path, lrs=(1e-4, 2e-4), ranks=(8,))

    def runner(settings: FinetuneSettings) -> RunResult:
        write_run(settings.run_dir)
        raise Preempted("SIGUSR1 at step 1: checkpoint written")

    results, path = run_sweep(trials, run_one=runner, say=lambda m: None)
    assert [r.status for r in results] == ["stopped", "not run"]
    assert [r["status"] for r in read_csv(path)] == ["stopped", "not run"]


def test_overwrite_retrains_finished_trials(tmp_path: Path) -> None:
    trials = trials_under(tmp_path, lrs=(1e-4,), ranks=(8, 16), overrides={"overwrite": True})
    run_sweep(trials, run_one=FakeRunner(), say=lambda m: None)
    again = FakeRunner()
    results, _ = run_sweep(trials, run_one=again, say=lambda m: None)
    assert len(again.calls) == 2 and [r.status for r in results] == ["ok", "ok"]


# --- the CLI ---------------------------------------------------------------------------------------------------


def usage_error_line(result) -> str:
    """A usage error (exit code 2) in one line (helpers.one_error_line)."""
    assert result.exit_code == 2, result.output
    return one_error_line(result)


def test_dry_run_prints_the_trial_plans(tmp_path: Path) -> None:
    out = tmp_path / "sweeps"
    result = invoke("sweep", "--which", "mbart50_mmt_fr", "--data", SAMPLE, "--output-dir", out, "--dry-run",
                    "--lrs", "1e-4,2e-4", "--ranks", "8,16", "--max-train-samples", "100", "--seed", "3")  # fmt: skip
    assert result.exit_code == 0, result.output
    plans = json.loads(result.stdout)
    assert [p["trial"] for p in plans] == [
        "trial-00-lr1e-4-r8-a16-d0.05", "trial-01-lr1e-4-r16-a32-d0.05",
        "trial-02-lr2e-4-r8-a16-d0.05", "trial-03-lr2e-4-r16-a32-d0.05",
    ]  # fmt: skip
    for p in plans:
        assert p["output_dir"] == str(out / "mbart50_mmt_fr" / p["trial"])
        assert p["lora_alpha"] == 2 * p["lora_r"]
        assert (p["max_steps"], p["max_train_samples"], p["max_eval_samples"]) == (4000, 100, 10_000)
        assert p["train_rows"] == 100 and p["seed"] == 3 and p["batch_size"] == 8
        assert p["output_state"] == "absent"
    assert [(p["learning_rate"], p["lora_r"]) for p in plans] == [(1e-4, 8), (1e-4, 16), (2e-4, 8), (2e-4, 16)]
    assert not out.exists(), "--dry-run writes nothing"


def test_max_tokens_reaches_every_trial(tmp_path: Path) -> None:
    result = invoke("sweep", "--which", "opus_mt_en_fr", "--data", SAMPLE, "--dry-run", "--ranks", "8,16",
                    "--lrs", "1e-4", "--max-tokens", "3000", "--output-dir", tmp_path)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [p["max_tokens"] for p in json.loads(result.stdout)] == [3000, 3000]


def test_evaluation_flags_reach_every_trial(tmp_path: Path) -> None:
    result = invoke("sweep", "--which", "opus_mt_en_fr", "--data", SAMPLE, "--dry-run", "--ranks", "8,16",
                    "--lrs", "1e-4", "--eval-chrf", "--eval-chrf-samples", "50", "--eval_num_beams", "2",
                    "--patience", "3")  # fmt: skip
    assert result.exit_code == 0, result.output
    plans = json.loads(result.stdout)
    assert len(plans) == 2
    for p in plans:
        assert (p["eval_chrf"], p["eval_chrf_samples"], p["eval_num_beams"], p["patience"]) == (True, 50, 2, 3)
    plain = json.loads(invoke("sweep", "--which", "opus_mt_en_fr", "--data", SAMPLE, "--dry-run").stdout)
    assert {(p["eval_chrf"], p["eval_chrf_samples"], p["eval_num_beams"], p["patience"]) for p in plain} == {
        (False, 200, 1, None)
    }


def test_dry_run_default_grid_and_flags(tmp_path: Path) -> None:
    result = invoke("sweep", "--which", "m2m100_418m", "--data", SAMPLE, "--dry-run", "--lora-alpha", "16",
                    "--qlora", "--no-bf16", "--grad-accum", "4")  # fmt: skip
    plans = json.loads(result.stdout)
    assert len(plans) == 9
    assert {(p["lora_alpha"], p["qlora"], p["precision"], p["grad_accum"]) for p in plans} == {(16, True, "fp32", 4)}
    assert plans[0]["output_dir"] == str(Path("sweeps") / "m2m100_418m" / "trial-00-lr7e-5-r8-a16-d0.05")


@pytest.mark.parametrize(
    "args,flag",
    [(["--lrs", "abc"], "--lrs"), (["--ranks", "0"], "--ranks"), (["--ranks", "8,x"], "--ranks"),
     (["--dropouts", "1.5"], "--dropouts"), (["--metric", "bleu"], "--metric"), (["--lora-alpha", "0"], "--lora-alpha"),
     (["--max-eval-samples", "0"], "--max-eval-samples"), (["--which", "nope"], "--which"),
     (["--patience", "0"], "--patience"), (["--eval-chrf-samples", "0"], "--eval-chrf-samples")],
)  # fmt: skip
def test_bad_flags_are_one_line_naming_the_flag(tmp_path: Path, args: list[str], flag: str) -> None:
    result = invoke("sweep", "--which", "opus_mt_en_fr", "--data", SAMPLE, "--output-dir", tmp_path, *args)
    assert usage_error_line(result).startswith(f"csas: error: {flag}")
    assert not any(tmp_path.iterdir())


def test_missing_data_is_one_line(tmp_path: Path) -> None:
    result = invoke("sweep", "--which", "opus_mt_en_fr", "--data", tmp_path / "absent.jsonl", "--dry-run")
    assert "absent.jsonl" in usage_error_line(result)


# --- end to end on a tiny checkpoint ---------------------------------------------------------------------------


def tree_digest(root: Path) -> dict[str, str]:
    files = (p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.mark.slow
def test_two_by_two_sweep_on_a_tiny_model(tiny_models, tmp_path: Path) -> None:
    key = "opus_mt_en_fr"
    args = ["sweep", "--which", key, "--model-id", tiny_models[key], "--data", SAMPLE, "--output-dir", tmp_path,
            "--lrs", "1e-3,3e-3", "--ranks", "4,8", "--max-steps", "2", "--no-qlora", "--max-train-samples", "24",
            "--max-eval-samples", "8", "--batch-size", "4", "--grad-accum", "1"]  # fmt: skip
    first = invoke(*args, env={"COLUMNS": "200"})
    assert first.exit_code == 0, first.output
    root = tmp_path / key
    names = ["trial-00-lr1e-3-r4-a8-d0.05", "trial-01-lr1e-3-r8-a16-d0.05", "trial-02-lr3e-3-r4-a8-d0.05",
             "trial-03-lr3e-3-r8-a16-d0.05"]  # fmt: skip
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == names
    for name, (lr, r) in zip(names, [(1e-3, 4), (1e-3, 8), (3e-3, 4), (3e-3, 8)]):
        assert json.loads((root / name / "finished.json").read_text())["steps"] == 2
        plan = json.loads((root / name / "run.json").read_text())["plan"]
        assert (plan["learning_rate"], plan["lora_r"], plan["lora_alpha"]) == (lr, r, 2 * r)
        assert (plan["train_rows"], plan["eval_rows"], plan["max_train_samples"]) == (24, 8, 24)
        assert json.loads((root / name / "lora" / "adapter_config.json").read_text())["r"] == r
    rows = read_csv(root / RESULTS_CSV)
    assert [r["trial"] for r in rows] == names
    for row in rows:
        assert (row["status"], row["steps"], row["train_samples"], row["eval_samples"], row["chrf"]) == (
            "ok", "2", "24", "8", ""
        )
        assert float(row["train_loss"]) > 0 and float(row["eval_loss"]) > 0
    assert first.stdout == f"results: {root / RESULTS_CSV}\n"
    assert "best eval_loss first" in first.stderr

    before = tree_digest(root)
    second = invoke(*args, "--metric", "train_loss", env={"COLUMNS": "200"})
    assert second.exit_code == 0, second.output
    assert second.stderr.count("skipped (--overwrite retrains it)") == 4
    again = read_csv(root / RESULTS_CSV)
    assert [r["status"] for r in again] == ["skipped"] * 4
    assert [(r["train_loss"], r["eval_loss"]) for r in again] == [(r["train_loss"], r["eval_loss"]) for r in rows]
    after = tree_digest(root)
    del before[RESULTS_CSV], after[RESULTS_CSV]
    assert after == before, "a rerun leaves finished trials untouched"


@pytest.mark.slow
def test_a_trial_with_eval_chrf_fills_the_chrf_column(tiny_models, tmp_path: Path) -> None:
    key = "opus_mt_en_fr"
    result = invoke("sweep", "--which", key, "--model-id", tiny_models[key], "--data", SAMPLE, "--output-dir", tmp_path,
                    "--lrs", "3e-3", "--ranks", "4", "--max-steps", "2", "--no-qlora", "--max-train-samples", "16",
                    "--max-eval-samples", "8", "--batch-size", "4", "--grad-accum", "1", "--eval-chrf",
                    "--eval-chrf-samples", "4", "--metric", "chrf", env={"COLUMNS": "200"})  # fmt: skip
    assert result.exit_code == 0, result.output
    trial = tmp_path / key / "trial-00-lr3e-3-r4-a8-d0.05"
    finished = json.loads((trial / "finished.json").read_text())
    assert finished["best_metric"] == "eval_chrf" and (trial / "best" / "adapter_model.safetensors").is_file()
    [row] = read_csv(tmp_path / key / RESULTS_CSV)
    assert row["chrf"] != "" and float(row["chrf"]) == finished["eval_chrf"]
    assert "best chrf first" in result.stderr
