"""--save-total-limit, and a checkpoint folder as a model: translate, evaluate and merge take RUN/checkpoints/step-N
(of a finished run, or of one that is still training or was stopped), through the real CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import SAMPLE, invoke, one_error_line, write_pairs

from csas_cli.inference.source import checkpoint_adapter, resolve_source

KEY = "opus_mt_en_fr"


@pytest.fixture(scope="module")
def run(tiny_models, tmp_path_factory) -> Path:
    """A finished 6-step run that saved a checkpoint every step and kept the newest 2."""
    root = tmp_path_factory.mktemp("ckpt-run")
    data = write_pairs(root / "pairs.jsonl", 8)
    result = invoke("finetune", "--which", KEY, "--model-id", tiny_models[KEY], "--data", data, "--output-dir", root,
                    "--no-qlora", "--max-steps", "6", "--save-steps", "1", "--save-total-limit", "2", "--lr", "1e-2",
                    "--disable-tqdm")  # fmt: skip
    assert result.exit_code == 0, result.output
    return root / KEY


def test_save_total_limit_is_a_setting_of_every_training_command(tmp_path: Path) -> None:
    plan = json.loads(invoke("finetune", "--which", KEY, "--data", SAMPLE, "--save-total-limit", "5",
                             "--dry-run").stdout)  # fmt: skip
    assert plan["save_total_limit"] == 5
    default = json.loads(invoke("finetune", "--which", KEY, "--data", SAMPLE, "--dry-run").stdout)
    assert default["save_total_limit"] == 3
    plans = json.loads(invoke("finetune-all", "--data", SAMPLE, "--only", KEY, "--save-total-limit", "1",
                              "--dry-run").stdout)  # fmt: skip
    assert [p["save_total_limit"] for p in plans] == [1]
    trials = json.loads(invoke("sweep", "--which", KEY, "--data", SAMPLE, "--save-total-limit", "4",
                               "--dry-run").stdout)  # fmt: skip
    assert {t["save_total_limit"] for t in trials} == {4}
    line = one_error_line(invoke("finetune", "--which", KEY, "--data", SAMPLE, "--save-total-limit", "0", "--dry-run"))
    assert "--save-total-limit" in line and "at least 1" in line


def test_checkpoint_folders_are_recognised(tmp_path: Path) -> None:
    step = tmp_path / "run" / "checkpoints" / "step-000004"
    (step / "adapter").mkdir(parents=True)
    assert checkpoint_adapter(step) is None  # no adapter_config.json yet
    (step / "adapter" / "adapter_config.json").write_text("{}")
    assert checkpoint_adapter(step) == checkpoint_adapter(step / "adapter") == (tmp_path / "run", step / "adapter")
    elsewhere = tmp_path / "run" / "step-000004"
    shutil.copytree(step, elsewhere)
    assert checkpoint_adapter(elsewhere) is None


@pytest.mark.slow
def test_only_the_newest_checkpoints_are_kept(run: Path) -> None:
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000004", "step-000005"]


@pytest.mark.slow
def test_translate_evaluate_and_merge_take_a_checkpoint(run: Path, tmp_path: Path) -> None:
    step = run / "checkpoints" / "step-000005"
    sentences = tmp_path / "in.txt"
    sentences.write_text("The stock is in the Cautious Zone.\nCatches fell in 2023.\n")

    def translate(model: Path) -> str:
        result = invoke("translate", sentences, "--model", model, "--max-new-tokens", "8")
        assert result.exit_code == 0, result.output
        return result.stdout

    from_step = translate(step)
    assert translate(step / "adapter") == from_step
    assert len(from_step.splitlines()) == 2

    source = resolve_source(step, None, None)
    assert (source.adapter, source.run_dir, source.label) == (step / "adapter", run, str(step))
    data = write_pairs(tmp_path / "held.jsonl", 3)
    scored = invoke("evaluate", "--model", step, "--data", data, "--max-new-tokens", "8", "--json")
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.stdout)["model"] == str(step)

    merged = invoke("merge", step, tmp_path / "merged")
    assert merged.exit_code == 0, merged.output
    record = json.loads((tmp_path / "merged" / "csas_merge.json").read_text())
    assert (record["adapter"], record["run_dir"]) == (str((step / "adapter").resolve()), str(run.resolve()))
    assert translate(tmp_path / "merged") == from_step  # the merged checkpoint translates as the checkpoint does


@pytest.mark.slow
def test_a_checkpoint_of_an_unfinished_run_is_a_model_the_run_is_not(run: Path, tmp_path: Path) -> None:
    stopped = tmp_path / KEY
    shutil.copytree(run, stopped)
    (stopped / "finished.json").unlink()  # as a run stopped after step 5 leaves it
    sentences = tmp_path / "in.txt"
    sentences.write_text("The stock is in the Cautious Zone.\n")
    line = one_error_line(invoke("translate", sentences, "--model", stopped))
    assert "an unfinished run" in line
    result = invoke("translate", sentences, "--model", stopped / "checkpoints" / "step-000005", "--max-new-tokens", "8")
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 1
