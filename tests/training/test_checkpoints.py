"""Tests for csas_cli.training.checkpoints: step folder names, listing, atomic saves and rotation."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
import torch

from csas_cli.errors import CsasError, OutputError
from csas_cli.training.checkpoints import (
    BEST_RECORD,
    STATE_FILE,
    latest_checkpoint,
    list_checkpoints,
    restore_best,
    save_best,
    save_checkpoint,
    step_dir_name,
)


class FakeAdapterModel(torch.nn.Module):
    """A tiny module with peft's `save_pretrained(path)`: writes one file with its weights."""

    def __init__(self) -> None:
        super().__init__()
        self.lora = torch.nn.Linear(3, 2)

    def save_pretrained(self, path: str, **kwargs: object) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        torch.save(self.lora.state_dict(), Path(path) / "adapter_model.bin")
        (Path(path) / "adapter_config.json").write_text('{"r": 4}')


def trained_parts():
    torch.manual_seed(0)
    model = FakeAdapterModel()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (step + 1))
    for _ in range(2):
        loss = model.lora(torch.ones(4, 3)).pow(2).sum()
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    return model, optimizer, scheduler


def save(root: Path, step: int, parts, keep: int = 3, scaler=None) -> Path:
    model, optimizer, scheduler = parts
    return save_checkpoint(
        root, step, model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
        state={"epoch": 0, "total_steps": 100}, keep=keep,
    )  # fmt: skip


# --- names and listing -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "step,name", [(0, "step-000000"), (1, "step-000001"), (200, "step-000200"), (999999, "step-999999"),
                  (1234567, "step-1234567")],
)
def test_step_dir_name(step: int, name: str) -> None:
    assert step_dir_name(step) == name


def test_list_checkpoints_absent_root(tmp_path: Path) -> None:
    assert list_checkpoints(tmp_path / "nope") == []
    assert latest_checkpoint(tmp_path / "nope") is None


def test_list_checkpoints_filters_and_orders_numerically(tmp_path: Path) -> None:
    for name in ("step-000200", "step-1000000", "step-000010", "step-999999", "step-000300.tmp", "step-12",
                 "step-00001a", "checkpoint-500", "step-000400-old", "xstep-000500"):
        (tmp_path / name).mkdir()
    (tmp_path / "step-000600").write_text("a file, not a checkpoint")
    names = [p.name for p in list_checkpoints(tmp_path)]
    assert names == ["step-000010", "step-000200", "step-999999", "step-1000000"]
    assert latest_checkpoint(tmp_path) == tmp_path / "step-1000000"


def test_step_names_sort_numerically_past_six_digits(tmp_path: Path) -> None:
    for step in (5, 1_000_000, 999_999, 10):
        (tmp_path / step_dir_name(step)).mkdir()
    assert [p.name for p in list_checkpoints(tmp_path)] == [step_dir_name(s) for s in (5, 10, 999_999, 1_000_000)]


# --- save_checkpoint -------------------------------------------------------------------------------------------


def test_save_checkpoint_writes_everything(tmp_path: Path) -> None:
    parts = trained_parts()
    model, optimizer, scheduler = parts
    root = tmp_path / "checkpoints"
    path = save(root, 7, parts)
    assert path == root / "step-000007"
    assert sorted(p.name for p in path.iterdir()) == sorted(
        ["adapter", "optimizer.pt", "scheduler.pt", "rng.pt", STATE_FILE]
    )
    assert (path / "adapter" / "adapter_model.bin").exists()
    assert json.loads((path / STATE_FILE).read_text()) == {"step": 7, "epoch": 0, "total_steps": 100}
    # The saved states load back into fresh objects and match.
    opt_state = torch.load(path / "optimizer.pt", weights_only=False)
    assert opt_state["state"][0]["step"] == optimizer.state_dict()["state"][0]["step"]
    assert torch.equal(opt_state["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])
    sched_state = torch.load(path / "scheduler.pt", weights_only=False)
    assert sched_state["last_epoch"] == scheduler.last_epoch == 2
    fresh_model, fresh_opt, fresh_sched = trained_parts()
    fresh_sched.load_state_dict(sched_state)
    assert fresh_sched.get_last_lr() == scheduler.get_last_lr()
    rng = torch.load(path / "rng.pt", weights_only=False)
    assert {"python", "numpy", "torch"} <= set(rng)
    assert not (root / "step-000007.tmp").exists()
    assert list_checkpoints(root) == [path]


def test_save_checkpoint_writes_the_scaler(tmp_path: Path) -> None:
    class Scaler:
        def state_dict(self) -> dict:
            return {"scale": 1024.0}

    path = save(tmp_path, 1, trained_parts(), scaler=Scaler())
    assert torch.load(path / "scaler.pt", weights_only=False) == {"scale": 1024.0}


def test_save_checkpoint_keeps_the_newest(tmp_path: Path) -> None:
    parts = trained_parts()
    for step in (100, 200, 300, 400, 500):
        save(tmp_path, step, parts, keep=3)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-000300", "step-000400", "step-000500"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000300", "step-000400", "step-000500"]


@pytest.mark.parametrize("keep", [1, 2])
def test_save_checkpoint_keep_small(tmp_path: Path, keep: int) -> None:
    parts = trained_parts()
    for step in (1, 2, 3):
        save(tmp_path, step, parts, keep=keep)
    assert [p.name for p in list_checkpoints(tmp_path)] == [step_dir_name(s) for s in (1, 2, 3)[-keep:]]


def test_interrupted_save_is_not_listed_and_does_not_count(tmp_path: Path) -> None:
    parts = trained_parts()
    save(tmp_path, 100, parts)
    save(tmp_path, 200, parts)
    # A save of step 300 died half-way: its temporary folder is there, half written.
    leftover = tmp_path / "step-000300.tmp"
    leftover.mkdir()
    (leftover / "optimizer.pt").write_bytes(b"truncated")
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-000100", "step-000200"]
    assert latest_checkpoint(tmp_path) == tmp_path / "step-000200"
    # Saving the same step again replaces the leftover with a complete checkpoint.
    path = save(tmp_path, 300, parts)
    assert not leftover.exists()
    assert (path / STATE_FILE).exists()
    assert sorted(p.name for p in path.iterdir()) == sorted(
        ["adapter", "optimizer.pt", "scheduler.pt", "rng.pt", STATE_FILE]
    )
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-000100", "step-000200", "step-000300"]


def test_leftover_of_another_step_survives_rotation_unlisted(tmp_path: Path) -> None:
    parts = trained_parts()
    (tmp_path / "step-000150.tmp").mkdir()
    for step in (100, 200, 300, 400):
        save(tmp_path, step, parts, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-000300", "step-000400"]


def test_failed_save_keeps_older_checkpoints(tmp_path: Path) -> None:
    parts = trained_parts()
    save(tmp_path, 100, parts)

    class Broken(FakeAdapterModel):
        def save_pretrained(self, path: str, **kwargs: object) -> None:
            Path(path).mkdir(parents=True)
            raise OSError("disk full")

    _, optimizer, scheduler = parts
    with pytest.raises(CsasError, match="disk full"):
        save_checkpoint(tmp_path, 200, model=Broken(), optimizer=optimizer, scheduler=scheduler, scaler=None,
                        state={}, keep=1)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-000100"]
    assert (tmp_path / "step-000100" / STATE_FILE).exists()
    assert not (tmp_path / "step-000200.tmp").exists()


@pytest.mark.parametrize("failing_file", ["optimizer.pt", "rng.pt"])
def test_full_disk_mid_save_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch, failing_file: str) -> None:
    parts = trained_parts()
    previous = save(tmp_path, 100, parts, keep=1)
    before = {p.name: p.read_bytes() for p in previous.rglob("*") if p.is_file()}
    real_save = torch.save

    def save_until_the_disk_fills(obj, path, *args, **kwargs):
        if Path(path).name == failing_file:
            Path(path).write_bytes(b"half")  # part of the file made it to disk
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_until_the_disk_fills)
    with pytest.raises(CsasError) as caught:
        save(tmp_path, 200, parts, keep=1)
    message = str(caught.value)
    assert "\n" not in message
    assert "step-000200" in message and "No space left on device" in message
    assert "step-000100 is intact" in message and "--resume auto" in message
    # The half-written folder is gone, rotation did not run, and the previous checkpoint is byte for byte intact.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000100"]
    assert {p.name: p.read_bytes() for p in previous.rglob("*") if p.is_file()} == before
    assert latest_checkpoint(tmp_path) == previous


def test_a_programming_error_mid_save_is_not_disguised(tmp_path: Path, monkeypatch) -> None:
    parts = trained_parts()
    monkeypatch.setattr(torch, "save", lambda *a, **k: (_ for _ in ()).throw(TypeError("a bug")))
    with pytest.raises(TypeError, match="a bug"):
        save(tmp_path, 100, parts)
    assert list(tmp_path.iterdir()) == []


def test_resaving_a_step_replaces_it(tmp_path: Path) -> None:
    parts = trained_parts()
    path = save(tmp_path, 100, parts)
    (path / "stale.txt").write_text("old")
    path = save(tmp_path, 100, parts)
    assert not (path / "stale.txt").exists()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-000100"]


# --- the best adapter ------------------------------------------------------------------------------------------


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_save_best_replaces_the_folder_whole(tmp_path: Path) -> None:
    model = trained_parts()[0]
    best = tmp_path / "best"
    save_best(best, model, {"step": 10, "metric": "eval_loss", "value": 2.5})
    assert sorted(p.name for p in best.iterdir()) == ["adapter_config.json", "adapter_model.bin", BEST_RECORD]
    (best / "stale.txt").write_text("from the previous best")
    save_best(best, model, {"step": 20, "metric": "eval_loss", "value": 2.0})
    assert json.loads((best / BEST_RECORD).read_text()) == {"step": 20, "metric": "eval_loss", "value": 2.0}
    assert not (best / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]  # no best.tmp, no best.old


def test_a_full_disk_keeps_the_previous_best(tmp_path: Path, monkeypatch) -> None:
    model = trained_parts()[0]
    best = tmp_path / "best"
    save_best(best, model, {"step": 10, "metric": "eval_chrf", "value": 40.0})
    before = folder_bytes(best)
    monkeypatch.setattr(torch, "save", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left")))
    with pytest.raises(OutputError) as caught:
        save_best(best, model, {"step": 20, "metric": "eval_chrf", "value": 45.0})
    message = str(caught.value)
    assert "\n" not in message and "No space left" in message and "--resume auto" in message
    assert folder_bytes(best) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]


def test_a_checkpoint_carries_best_and_resuming_puts_it_back(tmp_path: Path) -> None:
    parts = trained_parts()
    run = tmp_path / "run"
    root = run / "checkpoints"
    save_best(run / "best", parts[0], {"step": 4, "metric": "eval_loss", "value": 2.5})
    model, optimizer, scheduler = parts
    with_best = save_checkpoint(root, 6, model=model, optimizer=optimizer, scheduler=scheduler, scaler=None,
                                state={}, keep=3, best=run / "best")  # fmt: skip
    assert folder_bytes(with_best / "best") == folder_bytes(run / "best")
    # An evaluation after the checkpoint replaced best/ before the run was killed: resuming restores step 4's.
    before = folder_bytes(run / "best")
    save_best(run / "best", parts[0], {"step": 8, "metric": "eval_loss", "value": 1.0})
    restore_best(with_best, run / "best")
    assert folder_bytes(run / "best") == before
    # A checkpoint written before any evaluation: the resumed run has no best yet.
    without = save(root, 2, parts)
    assert not (without / "best").exists()
    restore_best(without, run / "best")
    assert not (run / "best").exists()
    restore_best(without, run / "best")  # and nothing to remove is fine
