"""One csas process per run directory: an OS lock the kernel releases with its process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import invoke, one_error_line, write_pairs

from csas_cli.errors import OutputError
from csas_cli.layout import LOCK_FILE
from csas_cli.training.rundir import RunLock, lock_holder


def test_a_second_lock_on_a_run_is_refused_naming_the_holder(tmp_path):
    run = tmp_path / "out" / "run"
    with RunLock(run):
        assert (run / LOCK_FILE).read_text().startswith(f"pid {os.getpid()} on ")
        assert lock_holder(run).startswith(f"pid {os.getpid()} on ")
        with pytest.raises(OutputError, match=rf"{run} is in use by another csas \(pid {os.getpid()} on .+ since "):
            RunLock(run).acquire()
    assert lock_holder(run) is None
    assert not run.exists()  # created by the lock, and nothing else was written: removed again
    run.mkdir(parents=True)
    (run / "keep.txt").write_text("x")
    with RunLock(run):
        pass
    assert sorted(p.name for p in run.iterdir()) == ["keep.txt"]


def test_a_shared_file_system_without_locks_gets_a_warning_and_no_traceback(tmp_path, monkeypatch, capsys):
    """Lustre mounted without flock (or NFS with nolock) answers flock with an error: csas warns and trains."""
    import errno
    import fcntl

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    run = tmp_path / "out" / "run"
    with RunLock(run):
        assert run.is_dir() and not (run / LOCK_FILE).exists()
        assert lock_holder(run) is None
    err = capsys.readouterr().err
    assert err.startswith(f"warning: --output-dir {run}: its file system does not lock files (")
    assert len(err.splitlines()) == 1


@pytest.mark.slow
def test_a_locked_run_is_not_trained_or_merged_by_another_process(tiny_models, tmp_runs_lock):
    run, holder = tmp_runs_lock
    data = write_pairs(run.parent / "pairs.jsonl", 6)
    result = invoke("finetune", "--which", "opus_mt_en_fr", "--model-id", tiny_models["opus_mt_en_fr"], "--data", data,
                    "--output-dir", run.parent, "--overwrite", "--max-steps", "1", "--no-qlora")  # fmt: skip
    assert one_error_line(result) == (
        f"csas: error: --output-dir: {run} is in use by another csas ({holder}); wait for it to end, or choose "
        "another --output-dir"
    )
    assert sorted(p.name for p in run.iterdir()) == sorted([LOCK_FILE, *BEFORE])  # untouched
    merged = invoke("merge", run, run.parent / "merged")
    assert "a csas process is training into it" in one_error_line(merged)
    plan = invoke("finetune", "--which", "opus_mt_en_fr", "--model-id", tiny_models["opus_mt_en_fr"], "--data", data,
                  "--output-dir", run.parent, "--dry-run")  # fmt: skip
    assert '"output_locked_by": "' + holder + '"' in plan.stdout


BEFORE = ("run.json", "finished.json", "lora")


@pytest.fixture
def tmp_runs_lock(tiny_runs, tmp_path):
    """A finished run's copy, locked by another process (a child that holds the lock until the test ends)."""
    import shutil

    run = tmp_path / "out" / "opus_mt_en_fr"
    shutil.copytree(tiny_runs("opus_mt_en_fr"), run)
    for name in list(run.iterdir()):
        if name.name not in BEFORE:
            shutil.rmtree(name) if name.is_dir() else name.unlink()
    code = ("import sys, time; from csas_cli.training.rundir import RunLock; RunLock(sys.argv[1]).acquire(); "
            "print('locked', flush=True); time.sleep(600)")  # fmt: skip
    child = subprocess.Popen([sys.executable, "-c", code, str(run)], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "locked"
    try:
        yield run, (run / LOCK_FILE).read_text().strip()
    finally:
        child.kill()
        child.wait()


def finetune_process(tiny_models, data: Path, out: Path, *extra: str) -> subprocess.Popen:
    args = ["finetune", "--which", "opus_mt_en_fr", "--model-id", str(tiny_models["opus_mt_en_fr"]), "--data", str(data),
            "--output-dir", str(out), "--no-qlora", "--disable-tqdm", "--batch-size", "4", "--logging-steps", "5",
            "--eval-steps", "10", "--save-steps", "5", *extra]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-m", "csas_cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.slow
def test_two_runs_started_together_on_one_directory_one_trains_and_the_other_is_refused(tiny_models, tmp_path):
    data = write_pairs(tmp_path / "pairs.jsonl", 40)
    first = finetune_process(tiny_models, data, tmp_path / "out", "--max-steps", "20")
    wait_for(tmp_path / "out" / "opus_mt_en_fr" / LOCK_FILE, first)
    started = time.monotonic()
    second = finetune_process(tiny_models, data, tmp_path / "out", "--max-steps", "20", "--overwrite")
    _, err = second.communicate(timeout=120)
    assert second.returncode == 2 and time.monotonic() - started < 30
    (line,) = err.splitlines()
    assert line.startswith(f"csas: error: --output-dir: {tmp_path / 'out' / 'opus_mt_en_fr'} is in use by another csas "
                           f"(pid {first.pid} on ")  # fmt: skip
    assert first.wait(timeout=300) == 0, first.communicate()
    alone = finetune_process(tiny_models, data, tmp_path / "alone", "--max-steps", "20")
    assert alone.wait(timeout=300) == 0
    run, reference = tmp_path / "out" / "opus_mt_en_fr", tmp_path / "alone" / "opus_mt_en_fr"
    names = sorted(str(p.relative_to(run)) for p in run.rglob("*"))
    assert names == sorted(str(p.relative_to(reference)) for p in reference.rglob("*"))
    assert LOCK_FILE not in names  # released with the run
    for weights in ("lora/adapter_model.safetensors", "best/adapter_model.safetensors"):
        assert (run / weights).read_bytes() == (reference / weights).read_bytes()


@pytest.mark.slow
def test_a_killed_runs_lock_goes_with_it_and_the_run_resumes_at_once(tiny_models, tmp_path):
    data = write_pairs(tmp_path / "pairs.jsonl", 40)
    run = tmp_path / "out" / "opus_mt_en_fr"
    first = finetune_process(tiny_models, data, tmp_path / "out", "--max-steps", "40")
    wait_for(run / "checkpoints" / "step-000005" / "trainer_state.json", first)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=60)
    assert (run / LOCK_FILE).exists() and lock_holder(run) is None  # the file stays; the kernel dropped the lock
    resumed = finetune_process(tiny_models, data, tmp_path / "out", "--max-steps", "40", "--resume", "auto")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert "resuming from" in err and (run / "finished.json").exists()
