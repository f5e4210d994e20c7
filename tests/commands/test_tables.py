"""Tables read whole where there is no terminal (a SLURM log, a pipe): every key, model id and figure in full."""

from __future__ import annotations

import pytest
import io
import os
import subprocess
import sys

from csas_cli.training.batch import Outcome
from csas_cli.commands.finetune_all import print_summary
from csas_cli.commands.sweep import print_sweep_table
from csas_cli.training.sweep import TrialResult
from csas_cli.progress import table_console
from csas_cli.registry import REGISTRY
from csas_cli.training.recipe import RunResult


def test_csas_models_through_a_pipe_at_80_columns_shows_every_key_and_model_id():
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    out = subprocess.run([sys.executable, "-m", "csas_cli", "models"], env={**env, "COLUMNS": "80"},
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    for key, spec in REGISTRY.items():
        assert key in out and spec.hub_id in out
    assert "…" not in out


def test_the_finetune_all_summary_and_the_sweep_ranking_are_whole_in_a_log(capsys):
    note = "failed: --model-id /project/shared/models/mbart-large-50-many-to-many-mmt: no config.json"
    outcomes = [Outcome(key, "ok", "", RunResult(f"/project/outputs/{key}", 1234, 0.123456, 4.321987, 3601.0))
                for key in REGISTRY] + [Outcome("mbart50_mmt_en", "failed", note)]  # fmt: skip
    print_summary(outcomes)
    trials = [TrialResult(trial=f"trial-{i:02d}-lr{lr:g}-r{r}", lr=lr, r=r, alpha=2 * r, dropout=0.05,
                          train_loss=4.31234 + i, eval_loss=4.35678 + i, steps=4000, seconds=1234.0, status="ok")
              for i, (lr, r) in enumerate([(7e-05, 8), (0.0001, 16), (0.0002, 32)])]  # fmt: skip
    print_sweep_table(trials, "eval_loss")
    err = capsys.readouterr().err
    assert "…" not in err
    for key in REGISTRY:
        assert key in err
    assert note in err and "4.3220" in err and "1234" in err
    for t in trials:
        assert t.trial in err and f"{t.eval_loss:.4f}" in err


def test_a_terminal_keeps_its_own_width():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert table_console(io.StringIO()).width == 1000
    assert table_console(Terminal()).width != 1000


@pytest.mark.slow
def test_a_mistyped_key_and_a_flag_named_as_transformers_names_it_get_a_suggestion(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}

    def csas(*args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "csas_cli", *args], env=env, capture_output=True, text=True,
                                check=False)  # fmt: skip
        assert result.returncode == 2 and "Traceback" not in result.stderr
        (line,) = result.stderr.splitlines()
        return line

    assert "unknown model 'opus_mt_en_frr' (did you mean opus_mt_en_fr?)" in csas(
        "finetune", "--which", "opus_mt_en_frr", "--dry-run"
    )
    assert "No such option: --learning-rate (csas calls it --lr)" in csas("finetune", "--which", "x", "--learning-rate", "1")
    assert "(csas calls it" not in csas("translate", "x.txt", "--learning-rate", "1")  # translate has no --lr
    assert "unknown model opus_mt_fr (did you mean opus_mt_fr_en?)" in csas("finetune-all", "--only", "opus_mt_fr",
                                                                           "--dry-run")  # fmt: skip


@pytest.mark.slow
def test_saved_weights_follow_the_umask(tiny_models, tmp_path):
    """The safetensors library creates files 0600; csas's models and adapters are as readable as the rest."""
    import stat

    from helpers import invoke, write_pairs

    old = os.umask(0o022)
    try:
        data = write_pairs(tmp_path / "pairs.jsonl", 6)
        result = invoke("finetune", "--which", "opus_mt_en_fr", "--model-id", tiny_models["opus_mt_en_fr"], "--data",
                        data, "--output-dir", tmp_path / "runs", "--max-steps", "1", "--no-qlora", "--disable-tqdm")  # fmt: skip
        assert result.exit_code == 0, result.output
        files = list((tmp_path / "runs").rglob("*.safetensors"))
        assert files  # lora/adapter_model.safetensors
        assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o644}
        merged = invoke("merge", tmp_path / "runs" / "opus_mt_en_fr", tmp_path / "merged")
        assert merged.exit_code == 0, merged.output
        assert stat.S_IMODE((tmp_path / "merged" / "model.safetensors").stat().st_mode) == 0o644
    finally:
        os.umask(old)


def finished_run(path, best_chrf, last_chrf, best_step=10, steps=40):
    """A finished run's records with --eval-chrf: its best evaluation in best/best.json, the last in finished.json."""
    import json

    (path / "best").mkdir(parents=True)
    (path / "finished.json").write_text(json.dumps({"status": "ok", "steps": steps, "train_loss": 2.0,
                                                    "eval_loss": 3.25, "eval_chrf": last_chrf, "best": "best",
                                                    "seconds_total": 42.0}))  # fmt: skip
    (path / "best" / "best.json").write_text(json.dumps({"step": best_step, "metric": "eval_chrf", "value": best_chrf,
                                                         "eval_loss": 3.5, "eval_chrf": best_chrf}))  # fmt: skip
    return path


def test_the_finetune_all_summary_shows_the_best_evaluation_and_ranks_by_chrf(tmp_path, capsys):
    from csas_cli.commands.finetune_all import ranked_rows

    runs = {"m2m100_418m": (12.0, 11.0), "opus_mt_en_fr": (15.31, 12.7), "mbart50_mmt_fr": (14.0, 14.0)}
    outcomes = [Outcome(key, "skipped" if key == "m2m100_418m" else "ok", "",
                        None if key == "m2m100_418m" else RunResult(str(tmp_path / key), 40, 2.0, 3.25, 10.0),
                        finished_run(tmp_path / key, *chrf)) for key, chrf in runs.items()]  # fmt: skip
    outcomes.append(Outcome("mbart50_mmt_en", "failed", "no config.json", run_dir=tmp_path / "mbart50_mmt_en"))
    rows, by_chrf = ranked_rows(outcomes)
    assert by_chrf and [r.outcome.key for r in rows] == ["opus_mt_en_fr", "mbart50_mmt_fr", "m2m100_418m",
                                                          "mbart50_mmt_en"]  # fmt: skip
    skipped = rows[2]
    assert (skipped.steps, skipped.eval_chrf, skipped.seconds) == (40, 11.0, 42.0)  # its record's numbers
    print_summary(outcomes)
    err = capsys.readouterr().err
    assert "finetune-all: best chrF first" in err and "last chrF" in err
    assert "eval_chrf 15.31 @ 10 (eval_loss 3.5000)" in err and "12.70" in err
    # A finished run without chrF: the runs' order.
    (tmp_path / "opus_mt_en_fr" / "best" / "best.json").unlink()
    (tmp_path / "opus_mt_en_fr" / "finished.json").write_text('{"status": "ok", "steps": 40}')
    rows, by_chrf = ranked_rows(outcomes)
    assert not by_chrf and [r.outcome.key for r in rows] == [o.key for o in outcomes]


def test_the_sweep_table_ranks_by_the_best_chrf_where_every_trial_has_one(capsys):
    from csas_cli.training.sweep import default_metric, rank_results

    trials = [TrialResult(trial="trial-00", lr=1e-4, r=8, alpha=16, dropout=0.05, eval_loss=3.0, chrf=20.0,
                          status="ok", best_step=100, best_eval_loss=2.9, best_chrf=21.0),
              TrialResult(trial="trial-01", lr=2e-4, r=8, alpha=16, dropout=0.05, eval_loss=2.8, chrf=20.5,
                          status="skipped", best_step=200, best_eval_loss=2.8, best_chrf=20.5),
              TrialResult(trial="trial-02", lr=3e-4, r=8, alpha=16, dropout=0.05, status="failed")]  # fmt: skip
    assert default_metric(trials) == "chrf"
    assert [t.trial for t in rank_results(trials, "chrf")] == ["trial-00", "trial-01", "trial-02"]  # best 21.0 first
    assert [t.trial for t in rank_results(trials, "eval_loss")] == ["trial-01", "trial-00", "trial-02"]
    print_sweep_table(trials, "chrf")
    err = capsys.readouterr().err
    assert "best chrf first" in err and "eval_chrf 21.00 @ 100 (eval_loss 2.9000)" in err
    assert default_metric([trials[0], TrialResult(trial="t", lr=1e-4, r=8, alpha=16, dropout=0.05, eval_loss=2.0,
                                                  status="ok")]) == "eval_loss"  # fmt: skip
