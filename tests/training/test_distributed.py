"""Data-parallel training: `torchrun --nproc_per_node 2 -m csas_cli finetune` on the CPU (gloo) with tiny models.

Two processes with micro-batches of 2 must train exactly what one process does with grad_accum 2 (same samples per
optimizer step); rank 0 alone writes the run; a stop signal that reaches one rank stops both after the same step,
and the run resumes to the adapter of an uninterrupted one. Two torchrun "nodes" on this machine (`--nnodes 2`, a c10d
rendezvous on 127.0.0.1) must train what one node with two processes trains, and stop and resume together. The
torchrun tests are slow; the single-process group's tests are not.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import SAMPLE
from safetensors.torch import load_file

from csas_cli.errors import CsasError, SettingsError
from csas_cli.plan import build_plan
from csas_cli.settings import FinetuneSettings
from csas_cli.training import batch
from csas_cli.training.distributed import ProcessGroup
from csas_cli.training.resume import check_resumable

TORCHRUN = Path(sys.executable).with_name("torchrun")
KEY = "opus_mt_en_fr"
STEPS = 40


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> Path:
    """13 English rows, one publication each: 3 held out, 10 train in 5 micro-batches of 2, so with 2 processes
    every epoch ends with a step of one micro-batch, where rank 1 has nothing and must still join the all-reduce."""
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    english = [r for r in rows if r["source_lang"] == "en"][:13]
    path = tmp_path_factory.mktemp("data") / "small.jsonl"
    path.write_text("".join(json.dumps({**r, "pub_number": f"p{i}"}) + "\n" for i, r in enumerate(english)))
    return path


def finetune_args(tiny_models, data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "-m", "csas_cli", "finetune", "--which", KEY, "--model-id", str(tiny_models[KEY]), "--data", str(data),
        "--output-dir", str(out), "--max-steps", str(STEPS), "--batch-size", "2", "--lr", "3e-3", "--val-ratio", "0.2",
        "--max-source-len", "32", "--max-target-len", "32", "--logging-steps", "1", "--eval-steps", "10",
        "--save-steps", "15", "--disable-tqdm", *extra,
    ]  # fmt: skip


LAUNCH_VARIABLES = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR",
                    "MASTER_PORT", "TORCHELASTIC_RUN_ID")  # fmt: skip


def env() -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARIABLES}
    return {**clean, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def torchrun(args: list[str]) -> list[str]:
    # --standalone: a private rendezvous on a free port, so tests never collide on 29500.
    return [str(TORCHRUN), "--standalone", "--nproc-per-node", "2", *args]


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, env=env(), timeout=600)


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def adapter(run_dir: Path) -> dict:
    return load_file(str(run_dir / "lora" / "adapter_model.safetensors"))


def assert_written_once(run_dir: Path, steps: int, launches: int = 1) -> None:
    """Rank 0 alone wrote the run: one metrics line per logged step and evaluation, one log line per event."""
    records = metrics(run_dir)
    train_steps = [r["step"] for r in records if "loss" in r]
    eval_steps = [r["step"] for r in records if "eval_loss" in r]
    assert train_steps == list(range(1, steps + 1))
    assert eval_steps == [s for s in range(1, steps + 1) if s % 10 == 0]
    log = (run_dir / "train.log").read_text().splitlines()
    assert sum(f" step 1/{STEPS} " in line for line in log) == 1
    assert sum("on cpu" in line and "2 processes x 2 x 1" in line for line in log) == launches
    assert all(line[:2].isdigit() and line[2] == ":" for line in log)  # no interleaved half-lines


# --- two processes against one --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ddp_and_single(tiny_models, small_data, tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("ddp-vs-single")
    # chrF too: each process translates its share of the validation rows, rank 0 scores them all.
    chrf = ["--eval-chrf", "--eval-chrf-samples", "3"]
    ddp = run(torchrun(finetune_args(tiny_models, small_data, out / "ddp", "--no-qlora", "--lora-dropout", "0",
                                     "--grad-accum", "1", *chrf)))  # fmt: skip
    assert ddp.returncode == 0, ddp.stderr
    single = run([sys.executable, *finetune_args(tiny_models, small_data, out / "single", "--no-qlora",
                                                 "--lora-dropout", "0", "--grad-accum", "2", *chrf)])  # fmt: skip
    assert single.returncode == 0, single.stderr
    return out / "ddp" / KEY, out / "single" / KEY, ddp


@pytest.mark.slow
def test_two_processes_train_what_one_process_trains_with_the_same_global_batch(ddp_and_single):
    ddp, single, _ = ddp_and_single
    got, want = metrics(ddp), metrics(single)
    assert [(r["step"], sorted(r)) for r in got] == [(r["step"], sorted(r)) for r in want]
    for a, b in zip(got, want):
        # Only the order of a few float additions differs (the all-reduce sums the two halves of each step).
        for name in ("loss", "eval_loss", "eval_chrf", "grad_norm", "learning_rate"):
            if name in b:
                assert a[name] == pytest.approx(b[name], rel=1e-5, abs=1e-7), (a["step"], name)
    assert [r["step"] for r in got if "eval_chrf" in r] == [10, 20, 30, 40]
    # The gradient, not only the loss, must match: Adam would hide a gradient off by a constant factor in the loss
    # curve, but not in the norm that clipping and the log see.
    grad_norms = [r["grad_norm"] for r in got if "loss" in r]
    assert len(grad_norms) == STEPS and all(g > 0 for g in grad_norms)
    a, b = adapter(ddp), adapter(single)
    assert a.keys() == b.keys() and a
    for name in a:
        assert (a[name] - b[name]).abs().max().item() <= 1e-5, name


@pytest.mark.slow
def test_rank_zero_alone_writes_the_run_and_records_the_world(ddp_and_single):
    ddp, single, done = ddp_and_single
    assert_written_once(ddp, STEPS)
    record = json.loads((ddp / "run.json").read_text())
    assert record["plan"]["world_size"] == 2 and record["plan"]["global_batch"] == 4
    assert json.loads((single / "run.json").read_text())["plan"]["global_batch"] == 4
    # 5 micro-batches per epoch, 2 per step (one per rank): 3 steps per epoch, as for one process accumulating 2.
    assert record["steps_per_epoch"] == json.loads((single / "run.json").read_text())["steps_per_epoch"] == 3
    assert sorted(p.name for p in (ddp / "checkpoints").iterdir()) == ["step-000015", "step-000030"]
    finished = json.loads((ddp / "finished.json").read_text())
    assert finished["steps"] == STEPS
    # Every process took rank 0's numbers: one best evaluation, written once, the one one process finds.
    alone = json.loads((single / "finished.json").read_text())
    assert (finished["best_step"], finished["best_metric"]) == (alone["best_step"], "eval_chrf")
    assert json.loads((ddp / "best" / "best.json").read_text())["step"] == finished["best_step"]
    assert not list(ddp.rglob("*.tmp")) and not list(ddp.glob("best.*"))
    assert "Traceback" not in done.stderr
    assert done.stderr.count("adapter saved to") == 1  # one console, not one per process


@pytest.mark.slow
def test_an_output_refusal_is_agreed_by_every_rank_and_nothing_is_written(tiny_models, small_data, ddp_and_single):
    ddp, _, _ = ddp_and_single
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(ddp.rglob("*")) if p.is_file()}
    again = run(torchrun(finetune_args(tiny_models, small_data, ddp.parent, "--no-qlora", "--lora-dropout", "0",
                                       "--grad-accum", "1")))  # fmt: skip
    assert again.returncode != 0
    refusals = [line for line in again.stderr.splitlines() if line.startswith("csas: error:")]
    assert len(refusals) == 2 and len(set(refusals)) == 1 and "holds a finished run" in refusals[0]
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(ddp.rglob("*")) if p.is_file()} == before


# --- preemption and resume ------------------------------------------------------------------------------------


def worker_pids(launcher: subprocess.Popen, timeout: float = 120) -> dict[int, int]:
    """rank -> pid of torchrun's worker processes (its children, told apart by their RANK variable)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert launcher.poll() is None, launcher.communicate()
        children = Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children").read_text().split()
        ranks = {}
        for pid in map(int, children):
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            rank = [v.split(b"=", 1)[1] for v in environ if v.startswith(b"RANK=")]
            if rank:
                ranks[int(rank[0])] = pid
        if len(ranks) == 2:
            return ranks
        time.sleep(0.05)
    raise AssertionError("torchrun's workers never appeared")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds torchrun's workers through /proc")
def test_a_signal_to_one_rank_stops_both_after_the_same_step_and_resume_matches(tiny_models, small_data, tmp_path):
    # QLoRA (each rank's 4-bit model pinned to its own device: the CPU here) and dropout on: the resumed run must
    # draw the same dropout masks on every rank as the uninterrupted one.
    args = finetune_args(tiny_models, small_data, tmp_path / "stopped", "--grad-accum", "1")
    reference = run(torchrun(finetune_args(tiny_models, small_data, tmp_path / "reference", "--grad-accum", "1")))
    assert reference.returncode == 0, reference.stderr
    reference_dir = tmp_path / "reference" / KEY
    assert json.loads((reference_dir / "run.json").read_text())["plan"]["qlora"] is True

    launcher = subprocess.Popen(torchrun(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    ranks = worker_pids(launcher)
    run_dir = tmp_path / "stopped" / KEY
    deadline = time.monotonic() + 300
    while not (run_dir / "metrics.jsonl").exists() or len(metrics(run_dir)) < 3:
        assert launcher.poll() is None, launcher.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(ranks[1], signal.SIGUSR1)  # as if only one node got the scheduler's warning
    _, stderr = launcher.communicate(timeout=300)
    assert launcher.returncode != 0  # torchrun reports its workers' exit code 75 as a failure
    stops = [line for line in stderr.splitlines() if line.startswith("csas: stopped:")]
    assert len(stops) == 2, stderr
    assert any("stopped: SIGUSR1 after step" in s for s in stops) and any("a signal to another process" in s for s in stops)
    step = {int(s.split(" after step ")[1].split()[0]) for s in stops}
    assert len(step) == 1, stops
    stopped_at = step.pop()
    assert stopped_at < STEPS
    assert (run_dir / "checkpoints" / f"step-{stopped_at:06d}").is_dir()
    assert not (run_dir / "finished.json").exists()

    resumed = run(torchrun([*args, "--resume", "auto"]))
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr.count("resuming from") == 1
    assert_written_once(run_dir, STEPS, launches=2)
    got, want = metrics(run_dir), metrics(reference_dir)
    assert [r["step"] for r in got] == [r["step"] for r in want]
    assert [r.get("loss", r.get("eval_loss")) for r in got] == pytest.approx(
        [r.get("loss", r.get("eval_loss")) for r in want], rel=1e-5
    )
    a, b = adapter(run_dir), adapter(reference_dir)
    assert a.keys() == b.keys() and a
    for name in a:
        assert (a[name] - b[name]).abs().max().item() <= 1e-5, name
    assert json.loads((run_dir / "run.json").read_text())["resumed"][0]["from_step"] == stopped_at


# --- two nodes ------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def node_commands(args: list[str], nodes: int = 2) -> list[list[str]]:
    """One torchrun per "node", each with one process, meeting at a c10d rendezvous on this machine: what
    `srun torchrun --nnodes N --rdzv-backend c10d --rdzv-endpoint HEAD:PORT` starts on N nodes."""
    endpoint, run_id = f"127.0.0.1:{free_port()}", f"csas-test-{os.getpid()}-{time.monotonic_ns()}"
    return [[str(TORCHRUN), "--nnodes", str(nodes), "--node-rank", str(rank), "--nproc-per-node", "1",
             "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint, "--rdzv-id", run_id, *args]
            for rank in range(nodes)]  # fmt: skip


def start_nodes(args: list[str]) -> list[subprocess.Popen]:
    return [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
            for cmd in node_commands(args)]  # fmt: skip


def finish_nodes(nodes: list[subprocess.Popen]) -> tuple[list[int], str]:
    """Every node's exit code, and their stderr together."""
    outputs = [node.communicate(timeout=600)[1] for node in nodes]
    return [node.returncode for node in nodes], "".join(outputs)


def run_nodes(args: list[str]) -> tuple[list[int], str]:
    return finish_nodes(start_nodes(args))


def assert_same_adapter(got: Path, want: Path, tolerance: float = 1e-6) -> None:
    a, b = adapter(got), adapter(want)
    assert a.keys() == b.keys() and a
    for name in a:
        assert (a[name] - b[name]).abs().max().item() <= tolerance, name


def assert_same_metrics(got: Path, want: Path) -> None:
    got_records, want_records = metrics(got), metrics(want)
    assert [(r["step"], sorted(r)) for r in got_records] == [(r["step"], sorted(r)) for r in want_records]
    for a, b in zip(got_records, want_records):
        for name in ("loss", "eval_loss", "eval_chrf", "grad_norm", "learning_rate"):
            if name in b:
                assert a[name] == pytest.approx(b[name], rel=1e-6, abs=1e-7), (a["step"], name)


# QLoRA (each process's 4-bit model placed by its LOCAL_RANK: 0 on both nodes), dropout on (masks drawn from each
# process's global rank) and chrF (each process translates the validation rows of its global rank): everything that
# reads a rank, with the global ranks of one node's two processes spread over two nodes.
NODE_ARGS = ("--grad-accum", "1", "--eval-chrf", "--eval-chrf-samples", "3")


@pytest.fixture(scope="module")
def one_node_and_two_nodes(tiny_models, small_data, tmp_path_factory) -> tuple[Path, Path, str]:
    out = tmp_path_factory.mktemp("nodes")
    one = run(torchrun(finetune_args(tiny_models, small_data, out / "one", *NODE_ARGS)))
    assert one.returncode == 0, one.stderr
    codes, stderr = run_nodes(finetune_args(tiny_models, small_data, out / "two", *NODE_ARGS))
    assert codes == [0, 0], stderr
    return out / "one" / KEY, out / "two" / KEY, stderr


@pytest.mark.slow
def test_two_nodes_train_what_one_node_with_two_processes_trains(one_node_and_two_nodes):
    one, two, stderr = one_node_and_two_nodes
    assert_same_adapter(two, one)
    assert_same_metrics(two, one)
    record = json.loads((two / "run.json").read_text())
    assert record["plan"]["world_size"] == 2 and record["plan"]["global_batch"] == 4 and record["plan"]["qlora"]
    assert "resumed" not in record
    # Global rank 0 alone wrote the run, once, though each node has its own LOCAL_RANK 0 and sees the same folder.
    assert_written_once(two, STEPS)
    assert sorted(p.name for p in (two / "checkpoints").iterdir()) == ["step-000015", "step-000030"]
    assert json.loads((two / "finished.json").read_text())["steps"] == STEPS
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    assert not (two / ".csas.lock").exists() and not list(two.rglob("*.tmp"))
    assert stderr.count("adapter saved to") == 1 and stderr.count("adapter: ") == 0  # the result goes to stdout
    assert "Traceback" not in stderr and "csas: error" not in stderr


def exit_code_script(directory: Path) -> Path:
    """`python -m csas_cli` that also leaves its exit code in directory/RANK, for torchrun to start: torchrun reports
    its workers' code 75 as its own failure (1), and none of it when it was signalled itself."""
    script = directory / "csas_exit_code.py"
    script.write_text(
        "import os, runpy, sys\n"
        "from pathlib import Path\n"
        "try:\n"
        "    runpy.run_module('csas_cli', run_name='__main__', alter_sys=True)\n"
        "    code = 0\n"
        "except SystemExit as exc:\n"
        "    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)\n"
        "Path(sys.argv[0]).parent.joinpath('exit', os.environ['RANK']).write_text(str(code))\n"
        "sys.exit(code)\n"
    )  # fmt: skip
    (directory / "exit").mkdir()
    return script


@pytest.mark.slow
def test_sigterm_to_both_nodes_stops_them_after_one_step_and_a_resume_on_two_nodes_matches(
    tiny_models, small_data, one_node_and_two_nodes, tmp_path
):
    _, reference, _ = one_node_and_two_nodes
    args = finetune_args(tiny_models, small_data, tmp_path / "stopped", *NODE_ARGS)
    run_dir = tmp_path / "stopped" / KEY
    script = exit_code_script(tmp_path)
    nodes = start_nodes([str(script), *args[2:]])
    deadline = time.monotonic() + 300
    while not (run_dir / "checkpoints" / "step-000015").is_dir():  # renamed into place once complete
        assert all(node.poll() is None for node in nodes), finish_nodes(nodes)
        assert time.monotonic() < deadline, "no checkpoint"
        time.sleep(0.01)
    for node in nodes:  # as SLURM does at preemption: every task of the job at once
        node.send_signal(signal.SIGTERM)
    codes, stderr = finish_nodes(nodes)
    assert all(code != 0 for code in codes), stderr  # torchrun's own report of a stop
    assert sorted(p.name for p in (tmp_path / "exit").iterdir()) == ["0", "1"], stderr
    assert [(tmp_path / "exit" / rank).read_text() for rank in ("0", "1")] == ["75", "75"]
    stops = [line for line in stderr.splitlines() if line.startswith("csas: stopped: SIGTERM after step ")]
    assert len(stops) == 2 and len(set(stops)) == 1, stderr
    stopped_at = int(stops[0].split(" after step ")[1].split()[0])
    assert 15 <= stopped_at < STEPS
    assert (run_dir / "checkpoints" / f"step-{stopped_at:06d}").is_dir()
    assert not (run_dir / "finished.json").exists() and not list(run_dir.rglob("*.tmp"))

    # One process cannot continue what two trained: refused in one line naming both, with nothing written.
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")}
    alone = run([sys.executable, *args, "--resume", "auto"])
    assert alone.returncode == 2
    assert alone.stderr.startswith(f"csas: error: --resume: {run_dir} was trained by 2 processes (WORLD_SIZE) and "
                                   "this launch has 1;")  # fmt: skip
    assert len(alone.stderr.splitlines()) == 1
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")} == before

    codes, stderr = run_nodes([*args, "--resume", "auto"])
    assert codes == [0, 0], stderr
    assert stderr.count(f"resuming from {run_dir / 'checkpoints' / f'step-{stopped_at:06d}'}") == 1
    assert_written_once(run_dir, STEPS, launches=2)
    assert_same_metrics(run_dir, reference)
    assert_same_adapter(run_dir, reference)
    record = json.loads((run_dir / "run.json").read_text())
    assert record["plan"]["world_size"] == 2 and [r["from_step"] for r in record["resumed"]] == [stopped_at]


# --- resuming on another world size, agreeing on the runs of a batch --------------------------------------------


def test_a_resume_on_another_world_size_is_refused_naming_both_sizes(tmp_path):
    settings = FinetuneSettings.create(which=KEY, data=tmp_path / "pairs.jsonl", output_dir=tmp_path)
    two = build_plan(settings, world_size=2)
    two.run_dir.mkdir(parents=True)
    (two.run_dir / "run.json").write_text(json.dumps({"plan": two.to_dict(), "data_sha256": "abc"}))
    check_resumable(two.run_dir, two, "abc")  # the same world size (on one node or two): fine
    with pytest.raises(SettingsError) as refused:
        check_resumable(two.run_dir, build_plan(settings, world_size=4), "abc")
    message = str(refused.value)
    assert message.startswith(f"--resume: {two.run_dir} was trained by 2 processes (WORLD_SIZE) and this launch has "
                              "4; a run resumes only on as many processes as it started with: launch it with 2 ")
    assert "global_batch" not in message and message.endswith("or pass --overwrite to start over")
    # The same global batch through --grad-accum is still another run: named with the sizes.
    with pytest.raises(SettingsError, match=r"trained by 2 processes .* has 1; .*original settings \(grad_accum "):
        check_resumable(two.run_dir, build_plan(settings.updated(grad_accum=settings.training.grad_accum * 2)), "abc")
    # A finished run is not resumed: the usual refusal, naming the sizes among the settings.
    with pytest.raises(SettingsError, match=r"holds a finished run trained with other settings \(world_size 2 -> 1"):
        check_resumable(two.run_dir, build_plan(settings), "abc", finished=True)


class OtherRank(ProcessGroup):
    """A process other than rank 0: it reads nothing itself, and takes rank 0's answers in order."""

    def __init__(self, answers: list) -> None:
        super().__init__(world_size=2, rank=1)
        self.answers = answers

    def from_main(self, fn):
        return self.answers.pop(0)


def test_every_rank_of_a_batch_takes_rank_0s_view_of_the_run_directories(tmp_path, monkeypatch):
    # A node that does not see the shared folder (or sees it late) must still skip what rank 0 skips, or it would
    # train one run while the others train the next.
    settings = [FinetuneSettings.create(which=key, data=tmp_path / "d.jsonl", output_dir=tmp_path / "runs")
                for key in ("opus_mt_en_fr", "opus_mt_fr_en")]  # fmt: skip
    group = OtherRank(["finished", None, "unfinished"])
    monkeypatch.setattr(batch.ProcessGroup, "join", classmethod(lambda cls, *a: group))
    trained = []

    def run_one(s: FinetuneSettings):
        trained.append((s.which, s.output.resume))
        return None

    outcomes = batch.run_all(settings, run_one=run_one, check_finished=lambda s: pytest.fail("rank 0 checks"),
                             say=lambda message: None)  # fmt: skip
    assert [o.status for o in outcomes] == ["skipped", "ok"]
    assert trained == [("opus_mt_fr_en", "auto")] and group.answers == []
    assert not (tmp_path / "runs").exists()


# --- the single-process group ---------------------------------------------------------------------------------


def test_a_single_process_group_is_the_identity():
    import torch

    group = ProcessGroup()
    assert not group.distributed and group.is_main and group.world_size == 1
    tensor = torch.tensor([1.5, 2.0])
    assert group.sum_(tensor) is tensor and tensor.tolist() == [1.5, 2.0]
    assert group.any(True) is True and group.any(False) is False
    model = torch.nn.Linear(2, 2)
    assert group.data_parallel(model) is model
    with group.accumulating(model, sync=False):
        pass
    group.barrier()
    assert group.from_main(lambda: 7) == 7
    with pytest.raises(CsasError, match="refused"):
        group.from_main(lambda: (_ for _ in ()).throw(CsasError("refused")))
    assert ProcessGroup.current().world_size == 1
