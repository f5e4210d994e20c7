"""Tests for csas_cli.training.rundir, csas_cli.layout and csas_cli.files: guarding the run directory, its file names,
and writing its files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from csas_cli.errors import CsasError, OutputError
from csas_cli.files import file_sha256, read_json_record, write_json_atomic
from csas_cli.layout import (
    ADAPTER_DIR,
    BEST_DIR,
    CHECKPOINTS_DIR,
    FINISHED,
    LOG,
    METRICS,
    RUN_ARTIFACTS,
    RUN_JSON,
    read_metrics,
    run_state,
)
from csas_cli.training.rundir import RunDirectory, check_run_dir, clear_run_dir, nearest_existing


def make_run(run_dir: Path, finished: bool) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / RUN_JSON).write_text("{}")
    (run_dir / METRICS).write_text('{"step": 1}\n')
    (run_dir / LOG).write_text("log\n")
    (run_dir / CHECKPOINTS_DIR / "step-000010").mkdir(parents=True)
    (run_dir / CHECKPOINTS_DIR / "step-000010" / "optimizer.pt").write_bytes(b"x")
    (run_dir / ADAPTER_DIR).mkdir()
    (run_dir / ADAPTER_DIR / "adapter_model.safetensors").write_bytes(b"w")
    (run_dir / "best").mkdir()
    (run_dir / "best" / "best.json").write_text('{"step": 10}')
    (run_dir / "best.old").mkdir()  # left by an interrupted replacement of best/
    if finished:
        (run_dir / FINISHED).write_text('{"status": "ok"}\n')


# --- run_state / check_run_dir --------------------------------------------------------------------------------


def test_run_state(tmp_path: Path) -> None:
    assert run_state(tmp_path / "absent") == "absent"
    (tmp_path / "empty").mkdir()
    assert run_state(tmp_path / "empty") == "empty"
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    assert run_state(tmp_path / "other") == "empty"
    make_run(tmp_path / "unfinished", finished=False)
    assert run_state(tmp_path / "unfinished") == "unfinished"
    (tmp_path / "ckpt_only" / CHECKPOINTS_DIR).mkdir(parents=True)
    assert run_state(tmp_path / "ckpt_only") == "unfinished"
    make_run(tmp_path / "finished", finished=True)
    assert run_state(tmp_path / "finished") == "finished"


@pytest.mark.parametrize("finished,word", [(True, "finished"), (False, "unfinished")])
def test_check_run_dir_refuses_without_overwrite(tmp_path: Path, finished: bool, word: str) -> None:
    run_dir = tmp_path / "out" / "m2m100_418m"
    make_run(run_dir, finished)
    before = sorted(p.relative_to(run_dir) for p in run_dir.rglob("*"))
    with pytest.raises(OutputError) as info:
        check_run_dir(run_dir, overwrite=False)
    message = str(info.value)
    assert isinstance(info.value, CsasError)
    assert message.startswith("--output-dir")
    assert str(run_dir) in message
    assert f"holds a {word} run" in message or f"holds an {word} run" in message
    assert "--overwrite" in message
    assert len(message.splitlines()) == 1
    assert sorted(p.relative_to(run_dir) for p in run_dir.rglob("*")) == before, "check_run_dir touches nothing"


@pytest.mark.parametrize("finished,state", [(True, "finished"), (False, "unfinished")])
def test_check_run_dir_allows_with_overwrite(tmp_path: Path, finished: bool, state: str) -> None:
    run_dir = tmp_path / "run"
    make_run(run_dir, finished)
    assert check_run_dir(run_dir, overwrite=True) == state
    assert (run_dir / RUN_JSON).exists()


@pytest.mark.parametrize("overwrite", [False, True])
def test_check_run_dir_allows_empty_and_absent(tmp_path: Path, overwrite: bool) -> None:
    assert check_run_dir(tmp_path / "absent", overwrite) == "absent"
    assert not (tmp_path / "absent").exists()
    (tmp_path / "empty").mkdir()
    assert check_run_dir(tmp_path / "empty", overwrite) == "empty"
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "README").write_text("x")
    assert check_run_dir(tmp_path / "notes", overwrite) == "empty"


@pytest.mark.parametrize("overwrite", [False, True])
def test_check_run_dir_refuses_a_file(tmp_path: Path, overwrite: bool) -> None:
    path = tmp_path / "run"
    path.write_text("not a dir")
    with pytest.raises(OutputError) as info:
        check_run_dir(path, overwrite)
    assert str(info.value).startswith("--output-dir") and str(path) in str(info.value)


# --- clear_run_dir ---------------------------------------------------------------------------------------------


def test_clear_run_dir_removes_only_csas_artifacts(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    make_run(run_dir, finished=True)
    (run_dir / "notes.txt").write_text("keep me")
    (run_dir / "mine").mkdir()
    (run_dir / "mine" / "data.bin").write_bytes(b"1")
    (run_dir / "tokenizer_config.json").write_text("{}")
    clear_run_dir(run_dir)
    for name in RUN_ARTIFACTS:
        assert not (run_dir / name).exists(), name
    assert (run_dir / "notes.txt").read_text() == "keep me"
    assert (run_dir / "mine" / "data.bin").read_bytes() == b"1"
    assert (run_dir / "tokenizer_config.json").exists()
    assert run_state(run_dir) == "empty"


def test_clear_run_dir_on_partial_and_absent(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    clear_run_dir(run_dir)  # absent: nothing to do
    run_dir.mkdir()
    (run_dir / FINISHED).write_text("{}")
    clear_run_dir(run_dir)
    assert list(run_dir.iterdir()) == []


def test_run_artifacts_lists_finished_first() -> None:
    assert RUN_ARTIFACTS[0] == FINISHED
    assert set(RUN_ARTIFACTS) == {FINISHED, RUN_JSON, METRICS, LOG, ADAPTER_DIR, CHECKPOINTS_DIR, "best", "best.tmp",
                                  "best.old", "tensorboard", "wandb", "trackers.json"}


# --- write_json_atomic -----------------------------------------------------------------------------------------


def test_write_json_atomic(tmp_path: Path) -> None:
    path = tmp_path / "finished.json"
    obj = {"status": "ok", "steps": 3, "note": "évaluation"}
    write_json_atomic(path, obj)
    assert json.loads(path.read_text(encoding="utf-8")) == obj
    assert "évaluation" in path.read_text(encoding="utf-8")
    assert path.read_text(encoding="utf-8").endswith("\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["finished.json"]


def test_write_json_atomic_replaces(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text("old, not even json")
    write_json_atomic(path, [1, 2])
    assert json.loads(path.read_text()) == [1, 2]
    assert not (tmp_path / "run.json.tmp").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_write_json_atomic_failure_keeps_old_file(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text('{"old": true}')
    with pytest.raises(TypeError):
        write_json_atomic(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"old": True}


# --- metrics ---------------------------------------------------------------------------------------------------


def test_metrics_round_trip(tmp_path: Path) -> None:
    path = tmp_path / METRICS
    records = [
        {"step": 1, "loss": 2.5, "learning_rate": 1e-5},
        {"step": 2, "eval_loss": 2.25},
        {"step": 50, "loss": 1.0, "epoch": 0.5, "note": "é"},
    ]
    run = RunDirectory(tmp_path)
    for r in records[:2]:
        run.write_metrics(r)
    # Flushed at once: a reader sees lines before close (a crash keeps the curve).
    assert read_metrics(path) == records[:2]
    run.write_metrics(records[2])
    run.close()
    assert read_metrics(path) == records
    assert len(path.read_text().splitlines()) == 3


def test_metrics_log_appends(tmp_path: Path) -> None:
    path = tmp_path / METRICS
    for r in ({"step": 1}, {"step": 2}):
        run = RunDirectory(tmp_path)
        run.write_metrics(r)
        run.close()
    assert read_metrics(path) == [{"step": 1}, {"step": 2}]


def test_read_metrics_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / METRICS
    path.write_text('{"step": 1}\n\n  \n{"step": 2}\n')
    assert read_metrics(path) == [{"step": 1}, {"step": 2}]


def test_file_sha256(tmp_path: Path) -> None:
    import hashlib

    path = tmp_path / "d.jsonl"
    data = b"x" * (3 << 20) + b"tail"
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()


def test_output_dir_under_a_file_is_refused(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(OutputError, match="is not a directory"):
        check_run_dir(afile / "run", overwrite=False)


def test_unwritable_output_root_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr("csas_cli.training.rundir.os.access", lambda path, mode: False)
    with pytest.raises(OutputError, match="not writable"):
        check_run_dir(tmp_path / "new" / "run", overwrite=False)


def test_model_snapshot_is_not_an_output_dir(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(OutputError, match="holds a model"):
        check_run_dir(tmp_path, overwrite=False)


def test_a_run_directory_without_a_path_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    run = RunDirectory(None)
    assert not run.writes
    run.create({"plan": {}})
    run.rewind(tmp_path / "step-000002", 2, {"from_step": 2})
    run.write_metrics({"step": 1, "loss": 2.0})
    run.write_log("12:00:00 step 1/3")
    assert run.save_checkpoint(2, model=None, optimizer=None, scheduler=None, scaler=None, state={}, keep=2) is None
    run.save_best(None, {"step": 2})
    run.finish(None, None, {"bytes": 1}, {"status": "ok"})
    run.close()
    assert list(tmp_path.iterdir()) == []


def test_read_json_record_is_the_object_or_empty(tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    assert read_json_record(path) == {}  # missing
    write_json_atomic(path, {"plan": {"which": "opus_mt_en_fr"}})
    assert read_json_record(path) == {"plan": {"which": "opus_mt_en_fr"}}
    for text in ('{"plan": ', "[1, 2]", "\xff"):  # truncated, not an object, not UTF-8
        path.write_bytes(text.encode("latin-1"))
        assert read_json_record(path) == {}


# --- RunDirectory ----------------------------------------------------------------------------------------------


def test_create_clears_a_previous_run_and_writes_run_json(tmp_path: Path) -> None:
    run_dir = tmp_path / "out" / "opus_mt_en_fr"
    make_run(run_dir, finished=True)
    (run_dir / "notes.txt").write_text("keep me")
    RunDirectory(run_dir).create({"plan": {"which": "opus_mt_en_fr"}, "total_steps": 3})
    assert json.loads((run_dir / RUN_JSON).read_text()) == {"plan": {"which": "opus_mt_en_fr"}, "total_steps": 3}
    assert sorted(p.name for p in run_dir.iterdir()) == ["notes.txt", RUN_JSON]
    assert run_state(run_dir) == "unfinished"
    fresh = tmp_path / "new" / "deep" / "run"
    RunDirectory(fresh).create({"plan": {}})  # parents made
    assert json.loads((fresh / RUN_JSON).read_text()) == {"plan": {}}


def test_write_log_appends_lines_to_train_log(tmp_path: Path) -> None:
    run = RunDirectory(tmp_path)
    run.write_log("12:00:00 step 1/3  loss 2.0000")
    assert (tmp_path / LOG).read_text() == "12:00:00 step 1/3  loss 2.0000\n"  # flushed at once
    run.write_log("12:00:01 adapter saved")
    run.close()
    assert (tmp_path / LOG).read_text().splitlines() == ["12:00:00 step 1/3  loss 2.0000", "12:00:01 adapter saved"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOG]


@pytest.mark.parametrize("saved_best", [True, False])
def test_rewind_restores_best_drops_later_metrics_and_notes_the_resume(tmp_path: Path, saved_best: bool) -> None:
    run_dir = tmp_path / "run"
    run = RunDirectory(run_dir)
    run.create({"plan": {}})
    for record in ({"step": 2, "loss": 3.0}, {"step": 4, "eval_loss": 2.5}, {"step": 6, "loss": 2.0}):
        run.write_metrics(record)
    run.close()
    (run_dir / BEST_DIR).mkdir()
    (run_dir / BEST_DIR / "best.json").write_text('{"step": 6}')  # written after the checkpoint
    checkpoint = run_dir / CHECKPOINTS_DIR / "step-000004"
    checkpoint.mkdir(parents=True)
    if saved_best:
        (checkpoint / "best").mkdir()
        (checkpoint / "best" / "best.json").write_text('{"step": 4}')

    resumed = RunDirectory(run_dir)
    resumed.rewind(checkpoint, 4, {"from_step": 4, "device": "cpu"})
    assert read_metrics(run_dir / METRICS) == [{"step": 2, "loss": 3.0}, {"step": 4, "eval_loss": 2.5}]
    assert json.loads((run_dir / RUN_JSON).read_text()) == {"plan": {}, "resumed": [{"from_step": 4, "device": "cpu"}]}
    if saved_best:
        assert json.loads((run_dir / BEST_DIR / "best.json").read_text()) == {"step": 4}
    else:
        assert not (run_dir / BEST_DIR).exists()
    resumed.rewind(checkpoint, 4, {"from_step": 4, "device": "cuda"})  # a second resume adds to the list
    assert [n["device"] for n in json.loads((run_dir / RUN_JSON).read_text())["resumed"]] == ["cpu", "cuda"]
    resumed.write_metrics({"step": 6, "loss": 2.1})  # the metrics go on after the kept ones
    resumed.close()
    assert [r["step"] for r in read_metrics(run_dir / METRICS)] == [2, 4, 6]


def test_finish_writes_the_adapter_tokenizer_peak_memory_and_finished_json_last(tmp_path: Path) -> None:
    order: list[str] = []

    class Saves:
        def __init__(self, name: str) -> None:
            self.name = name

        def save_pretrained(self, path: str, **kwargs: object) -> None:
            order.append(self.name)
            Path(path).mkdir(parents=True, exist_ok=True)
            assert not (tmp_path / FINISHED).exists()

    run = RunDirectory(tmp_path)
    run.create({"plan": {}})
    run.finish(Saves("adapter"), Saves("tokenizer"), {"bytes": 123, "measure": "m", "device": "cpu"}, {"status": "ok"})
    assert order == ["adapter", "tokenizer"]
    assert (tmp_path / ADAPTER_DIR).is_dir()
    assert json.loads((tmp_path / RUN_JSON).read_text())["peak_memory"] == {"bytes": 123, "measure": "m",
                                                                            "device": "cpu"}  # fmt: skip
    assert json.loads((tmp_path / FINISHED).read_text()) == {"status": "ok"}
    assert run_state(tmp_path) == "finished"


def test_nearest_existing_is_the_closest_existing_parent(tmp_path: Path) -> None:
    assert nearest_existing(tmp_path / "a" / "b" / "c") == tmp_path
    (tmp_path / "a").mkdir()
    assert nearest_existing(tmp_path / "a" / "b") == tmp_path / "a"
    assert nearest_existing(tmp_path) == tmp_path
