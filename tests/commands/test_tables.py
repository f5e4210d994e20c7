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
