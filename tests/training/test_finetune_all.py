"""Tests for csas_cli.training.batch: key selection, per-model settings, and run_all's failure isolation."""

from __future__ import annotations

from pathlib import Path

import pytest

from csas_cli.training.batch import Outcome, all_settings, run_all
from csas_cli.errors import EXIT_CODES, CsasError, DataError, Preempted, SettingsError, TrainingError
from csas_cli.registry import FINETUNE_ALL_TABLE, MODEL_KEYS, model_id_under, select_keys
from csas_cli.settings import FinetuneSettings
from csas_cli.training.run import RunResult

KEYS = list(MODEL_KEYS)


def settings_under(root: Path, **overrides) -> list[FinetuneSettings]:
    return all_settings(data=root / "d.jsonl", output_dir=root / "runs", overrides=overrides)


class FakeRunner:
    """Stands in for run_finetune: records calls, fails for chosen keys with chosen exceptions."""

    def __init__(self, failures: dict[str, BaseException] | None = None) -> None:
        self.failures = failures or {}
        self.calls: list[str] = []

    def __call__(self, settings: FinetuneSettings) -> RunResult:
        self.calls.append(settings.which)
        if settings.which in self.failures:
            raise self.failures[settings.which]
        return RunResult(str(settings.run_dir), steps=10, train_loss=1.5, eval_loss=1.7, seconds=0.0)


def finish(run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "finished.json").write_text('{"status": "ok"}\n')


# --- select_keys / all_settings --------------------------------------------------------------------------------


def test_select_keys_default_is_the_table_order() -> None:
    assert select_keys() == KEYS == list(FINETUNE_ALL_TABLE)


def test_select_keys_keeps_table_order() -> None:
    assert select_keys(["opus_mt_fr_en", "m2m100_418m"]) == ["m2m100_418m", "opus_mt_fr_en"]
    assert select_keys(skip=["mbart50_mmt_fr"]) == [k for k in KEYS if k != "mbart50_mmt_fr"]
    assert select_keys(["m2m100_418m", "m2m100_418m"]) == ["m2m100_418m"]


@pytest.mark.parametrize(
    "only,skip,flag",
    [(["x"], [], "--only"), ([], ["m2m"], "--skip"), (KEYS[:1], KEYS[:1], "--only/--skip"),
     ([], KEYS, "--only/--skip")],
)  # fmt: skip
def test_select_keys_errors(only: list[str], skip: list[str], flag: str) -> None:
    with pytest.raises(SettingsError) as info:
        select_keys(only, skip)
    assert str(info.value).startswith(flag)


def test_model_id_under(tmp_path: Path) -> None:
    (tmp_path / "opus_mt_en_fr").mkdir()
    (tmp_path / "m2m100_418m").write_text("a file")
    assert model_id_under(None, "opus_mt_en_fr") is None
    assert model_id_under(tmp_path, "opus_mt_en_fr") == str(tmp_path / "opus_mt_en_fr")
    assert model_id_under(tmp_path, "m2m100_418m") is None
    assert model_id_under(tmp_path, "opus_mt_fr_en") is None


def test_all_settings(tmp_path: Path) -> None:
    result = settings_under(tmp_path, max_steps=5, overwrite=True)
    assert [s.which for s in result] == KEYS
    for s in result:
        row = FINETUNE_ALL_TABLE[s.which]
        assert (s.training.batch_size, s.training.learning_rate) == (row.batch_size, row.learning_rate)
        assert s.run_dir == tmp_path / "runs" / s.which
        assert s.training.max_steps == 5 and s.output.overwrite is True
        assert s.training.bf16 and s.lora.qlora is False and s.output.disable_tqdm
        assert s.model.model_id is None


def test_all_settings_model_root_must_be_a_directory(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="^--model-root"):
        all_settings(data=tmp_path / "d", output_dir=tmp_path, model_root=tmp_path / "absent")


# --- run_all ---------------------------------------------------------------------------------------------------


def test_run_all_runs_every_model_in_order(tmp_path: Path) -> None:
    runner = FakeRunner()
    messages: list[str] = []
    outcomes = run_all(settings_under(tmp_path), run_one=runner, say=messages.append)
    assert runner.calls == KEYS
    assert [o.key for o in outcomes] == KEYS
    assert [o.status for o in outcomes] == ["ok"] * 5
    assert all(isinstance(o.result, RunResult) and o.result.steps == 10 for o in outcomes)
    assert all(any(key in m for m in messages) for key in KEYS)


@pytest.mark.parametrize(
    "error",
    [
        DataError("d.jsonl:3: invalid JSON"),
        SettingsError("--bf16: not supported on this GPU"),
        RuntimeError("CUDA out of memory"),
        ValueError("something odd"),
        KeyError("missing"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_one_failure_does_not_stop_the_others(tmp_path: Path, error: Exception) -> None:
    runner = FakeRunner({"mbart50_mmt_fr": error})
    messages: list[str] = []
    outcomes = run_all(settings_under(tmp_path), run_one=runner, say=messages.append)
    assert runner.calls == KEYS
    assert [(o.key, o.status) for o in outcomes] == [
        ("m2m100_418m", "ok"),
        ("mbart50_mmt_fr", "failed"),
        ("mbart50_mmt_en", "ok"),
        ("opus_mt_en_fr", "ok"),
        ("opus_mt_fr_en", "ok"),
    ]
    failed = outcomes[1]
    assert failed.result is None
    if isinstance(error, CsasError):
        assert failed.message == str(error)
    else:
        assert failed.message.startswith(f"{type(error).__name__}: ")
        # The unexpected error's traceback is reported, so the bug can be found.
        assert any("Traceback" in m and type(error).__name__ in m for m in messages)
    assert any("mbart50_mmt_fr" in m and "failed" in m for m in messages)


def test_several_failures_kept_in_order(tmp_path: Path) -> None:
    runner = FakeRunner({"m2m100_418m": CsasError("first"), "opus_mt_fr_en": RuntimeError("last")})
    outcomes = run_all(settings_under(tmp_path), run_one=runner, say=lambda m: None)
    assert runner.calls == KEYS
    assert [o.status for o in outcomes] == ["failed", "ok", "ok", "ok", "failed"]
    assert outcomes[0].message == "first"
    assert outcomes[-1].message == "RuntimeError: last"


def test_keyboard_interrupt_stops_the_loop(tmp_path: Path) -> None:
    runner = FakeRunner({"mbart50_mmt_fr": KeyboardInterrupt()})
    outcomes = run_all(settings_under(tmp_path), run_one=runner, say=lambda m: None)
    assert runner.calls == KEYS[:2]
    assert [(o.key, o.status) for o in outcomes] == [("m2m100_418m", "ok"), ("mbart50_mmt_fr", "interrupted")]


def test_a_stop_signal_stops_the_loop(tmp_path: Path) -> None:
    runner = FakeRunner({"mbart50_mmt_fr": Preempted("SIGUSR1 at step 7: checkpoint written")})
    messages: list[str] = []
    outcomes = run_all(settings_under(tmp_path), run_one=runner, say=messages.append)
    assert runner.calls == KEYS[:2]  # the job is ending: the next model is not started
    assert [(o.key, o.status) for o in outcomes] == [("m2m100_418m", "ok"), ("mbart50_mmt_fr", "stopped")]
    assert any("SIGUSR1 at step 7" in m for m in messages)
    # finetune-all takes no --resume: the advice is its own command, which resumes unfinished runs by itself.
    stop = next(m for m in messages if "SIGUSR1" in m)
    assert stop == ("mbart50_mmt_fr: SIGUSR1 at step 7: checkpoint written; rerun the same command: it resumes "
                    "unfinished runs by itself")  # fmt: skip
    assert "--resume" not in stop


def test_finished_runs_are_skipped(tmp_path: Path) -> None:
    finish(tmp_path / "runs" / "mbart50_mmt_en")
    finish(tmp_path / "runs" / "opus_mt_fr_en")
    runner = FakeRunner()
    messages: list[str] = []
    outcomes = run_all(settings_under(tmp_path), run_one=runner, say=messages.append)
    assert runner.calls == ["m2m100_418m", "mbart50_mmt_fr", "opus_mt_en_fr"]
    assert [o.status for o in outcomes] == ["ok", "ok", "skipped", "ok", "skipped"]
    assert [o.key for o in outcomes] == KEYS
    assert outcomes[2].result is None
    assert any("mbart50_mmt_en" in m and "--overwrite" in m for m in messages)


def test_overwrite_retrains_finished_runs(tmp_path: Path) -> None:
    finish(tmp_path / "runs" / "mbart50_mmt_en")
    runner = FakeRunner()
    outcomes = run_all(settings_under(tmp_path, overwrite=True), run_one=runner, say=lambda m: None)
    assert runner.calls == KEYS
    assert [o.status for o in outcomes] == ["ok"] * 5


def test_unfinished_and_empty_runs_are_not_skipped(tmp_path: Path) -> None:
    (tmp_path / "runs" / "m2m100_418m").mkdir(parents=True)  # empty
    (tmp_path / "runs" / "opus_mt_en_fr").mkdir()
    (tmp_path / "runs" / "opus_mt_en_fr" / "run.json").write_text("{}")  # unfinished: run_one decides
    runner = FakeRunner()
    outcomes = run_all(settings_under(tmp_path), run_one=runner, say=lambda m: None)
    assert runner.calls == KEYS
    assert all(o.status == "ok" for o in outcomes)


def test_outcome_defaults() -> None:
    o = Outcome("k", "ok")
    assert o.message == "" and o.result is None


# --- run_all with the real run_finetune (the training recipe replaced by a fake) --------------------------------


class FakeRecipe:
    """Stands in for training.run.build_recipe and the recipe it builds (which loads the base): writes run.json in
    setup, finished.json in finish, fails on demand."""

    fail_in_train: set[str] = set()
    trained: list[str] = []

    def __init__(self, prepared, *, group=None, stop=None, resume_from=None) -> None:
        self.plan, self.split, self.group, self.stop, self.resume_from = (
            prepared.plan, prepared.split, group, stop, resume_from
        )  # fmt: skip

    def setup(self) -> None:
        import json

        from csas_cli.files import file_sha256

        self.plan.run_dir.mkdir(parents=True, exist_ok=True)
        record = {"plan": self.plan.to_dict(), "data_sha256": file_sha256(self.plan.corpus.data)}
        (self.plan.run_dir / "run.json").write_text(json.dumps(record))

    def train(self) -> None:
        FakeRecipe.trained.append(self.plan.which)
        if self.plan.which in FakeRecipe.fail_in_train:
            raise TrainingError("step 3: the training loss is nan")

    def finish(self) -> RunResult:
        (self.plan.run_dir / "finished.json").write_text('{"status": "ok"}\n')
        return RunResult(str(self.plan.run_dir), 3, 1.0, 1.1, 0.0)

    def cleanup(self) -> None:
        pass


@pytest.fixture
def fake_recipe(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    import csas_cli.training.run as run

    for name in ("WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(run, "build_recipe", FakeRecipe)
    monkeypatch.setattr(FakeRecipe, "fail_in_train", set())
    monkeypatch.setattr(FakeRecipe, "trained", [])
    rows = [{"source": f"s{i}", "target": f"t{i}", "source_lang": lang, "pub_number": f"{lang}{i}"}
            for lang in ("en", "fr") for i in range(4)]
    import json

    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return FakeRecipe


@pytest.mark.slow
def test_cli_finetune_all_runs_and_reports(fake_recipe, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from csas_cli.cli import app

    fake_recipe.fail_in_train = {"opus_mt_en_fr"}
    args = ["finetune-all", "--data", str(tmp_path / "d.jsonl"), "--output-dir", str(tmp_path / "runs")]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 1, result.output
    assert fake_recipe.trained == KEYS
    for key in KEYS:
        assert ((tmp_path / "runs" / key / "finished.json").exists()) is (key != "opus_mt_en_fr")
    assert "failed" in result.stderr and "opus_mt_en_fr" in result.stderr
    assert "Traceback" not in result.output  # a CsasError is reported in one line, not with its traceback


@pytest.mark.slow
def test_cli_finetune_all_exits_75_when_stopped(fake_recipe, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from csas_cli.cli import app

    def stopped(self) -> None:
        fake_recipe.trained.append(self.plan.which)
        if self.plan.which == "mbart50_mmt_en":
            raise Preempted("SIGTERM at step 3: checkpoint written")

    monkeypatch.setattr(fake_recipe, "train", stopped)
    args = ["finetune-all", "--data", str(tmp_path / "d.jsonl"), "--output-dir", str(tmp_path / "runs")]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == EXIT_CODES["stopped"] == 75, result.output
    assert fake_recipe.trained == KEYS[:3]
    assert "stopped" in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "runs" / "mbart50_mmt_en" / "finished.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("rank", ["0", "1"])
def test_only_rank_0_reports(fake_recipe, tmp_path: Path, rank: str) -> None:
    from typer.testing import CliRunner

    from csas_cli.cli import app

    args = ["finetune-all", "--data", str(tmp_path / "d.jsonl"), "--output-dir", str(tmp_path / "runs"), "--only",
            "opus_mt_en_fr"]  # fmt: skip
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200", "RANK": rank})
    assert result.exit_code == 0, result.output
    assert ("finetune-all" in result.stderr and "training into" in result.stderr) is (rank == "0")


@pytest.mark.slow
def test_rerun_skips_finished_models(fake_recipe, tmp_path: Path) -> None:
    settings = settings_under(tmp_path)
    first = run_all(settings, say=lambda m: None)
    assert [o.status for o in first] == ["ok"] * 5
    fake_recipe.trained.clear()
    second = run_all(settings, say=lambda m: None)
    assert [o.status for o in second] == ["skipped"] * 5
    assert fake_recipe.trained == []


@pytest.mark.slow
def test_rerun_with_other_settings_fails_the_finished_models_naming_them(fake_recipe, tmp_path: Path) -> None:
    """A finished model is skipped only if it was trained with the settings asked for now."""
    first = run_all(settings_under(tmp_path), say=lambda m: None)
    assert [o.status for o in first] == ["ok"] * 5
    fake_recipe.trained.clear()
    messages: list[str] = []
    second = run_all([s.updated(learning_rate=1e-3) for s in settings_under(tmp_path)], say=messages.append)
    assert [o.status for o in second] == ["failed"] * 5 and fake_recipe.trained == []
    assert all("holds a finished run trained with other settings (learning_rate" in o.message and "-> 0.001" in
               o.message and "--overwrite" in o.message for o in second)  # fmt: skip


@pytest.mark.slow
def test_rerun_after_a_failure_retries_the_failed_model(fake_recipe, tmp_path: Path) -> None:
    settings = settings_under(tmp_path)
    fake_recipe.fail_in_train = {"mbart50_mmt_fr"}
    first = run_all(settings, say=lambda m: None)
    assert [o.status for o in first] == ["ok", "failed", "ok", "ok", "ok"]
    fake_recipe.fail_in_train = set()
    fake_recipe.trained.clear()
    second = run_all(settings, say=lambda m: None)
    assert [o.status for o in second] == ["skipped", "ok", "skipped", "skipped", "skipped"], second[1].message
    assert fake_recipe.trained == ["mbart50_mmt_fr"]


def test_finetune_all_and_sweep_take_resume_auto_as_the_no_op_it_is(tmp_path: Path) -> None:
    from helpers import SAMPLE, invoke, one_error_line

    plans = invoke("finetune-all", "--data", SAMPLE, "--only", "opus_mt_en_fr", "--resume", "auto", "--dry-run")
    assert plans.exit_code == 0, plans.output
    sweep = invoke("sweep", "--which", "opus_mt_en_fr", "--data", SAMPLE, "--resume", "auto", "--dry-run")
    assert sweep.exit_code == 0, sweep.output
    path = invoke("finetune-all", "--data", SAMPLE, "--resume", str(tmp_path / "step-000010"), "--dry-run")
    assert "only --resume auto is accepted" in one_error_line(path)
