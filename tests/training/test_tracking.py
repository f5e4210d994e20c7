"""--report-to: TensorBoard, W&B (offline) and MLflow (local store) receive exactly what metrics.jsonl records, read
back from their own files; a resumed run continues them; a missing or unknown tracker is one line before anything
loads; reporting is in the plan and is not a setting a resume must keep."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import SAMPLE, invoke

from csas_cli.errors import SettingsError
from csas_cli.layout import read_metrics
from csas_cli.plan import build_plan
from csas_cli.settings import FinetuneSettings
from csas_cli.values import parse_report_to
from csas_cli.training.checkpoints import step_dir_name
from csas_cli.training.tracking import SCALARS

KEY = "opus_mt_en_fr"


def command(tiny_models, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "csas_cli", "finetune", "--which", KEY, "--model-id", str(tiny_models[KEY]),
        "--data", str(SAMPLE), "--output-dir", str(out), "--max-steps", "8", "--batch-size", "4", "--save-steps",
        "2", "--eval-steps", "4", "--logging-steps", "1", "--no-qlora", "--disable-tqdm", "--max-train-samples", "64",
        "--max-eval-samples", "8", *extra,
    ]  # fmt: skip


def run(cmd: list[str], **env: str) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **env})  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done


def recorded(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """metrics.jsonl as (step, value) per tracked scalar."""
    found: dict[str, list[tuple[int, float]]] = {}
    for record in read_metrics(run_dir / "metrics.jsonl"):
        for key, name in SCALARS.items():
            if record.get(key) is not None:
                found.setdefault(name, []).append((record["step"], float(record[key])))
    return found


def tensorboard_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the event files in `folder` (TFRecord framing, tensorboardX's Event protos)."""
    from tensorboardX.proto.event_pb2 import Event

    found: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data, at = path.read_bytes(), 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at:at + 8])
            event = Event.FromString(data[at + 12:at + 12 + length])
            at += 12 + length + 4
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    found.setdefault(value.tag, []).append((event.step, value.simple_value))
    return found


def wandb_history(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """The history rows of the run's offline W&B files (LevelDB log framing, W&B's Record protos)."""
    from wandb.proto import wandb_internal_pb2

    def records(data: bytes):
        at, block, pending = 7, 32768, b""
        while at + 7 <= len(data):
            if block - at % block < 7:
                at += block - at % block
                continue
            _, length, kind = struct.unpack("<IHB", data[at:at + 7])
            chunk, at = data[at + 7:at + 7 + length], at + 7 + length
            if kind in (1, 2):
                pending = chunk
            elif kind in (3, 4):
                pending += chunk
            if kind in (1, 4):
                yield pending

    found: dict[str, list[tuple[int, float]]] = {}
    for path in sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb")):
        for data in records(path.read_bytes()):
            record = wandb_internal_pb2.Record.FromString(data)
            if record.WhichOneof("record_type") == "history":
                items = record.history.item
                row = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items}
                for name in SCALARS.values():
                    if name in row:
                        found.setdefault(name, []).append((row["step"], float(row[name])))
    return found


def close(got: dict, want: dict, rel: float = 1e-6) -> bool:
    return got.keys() == want.keys() and all(
        [s for s, _ in got[k]] == [s for s, _ in want[k]]
        and all(abs(a - b) <= rel * max(1.0, abs(b)) for (_, a), (_, b) in zip(got[k], want[k]))
        for k in want
    )


@pytest.mark.slow
def test_each_tracker_holds_exactly_what_metrics_jsonl_records(tiny_models, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    run(command(tiny_models, out, "--report-to", "tensorboard,wandb,mlflow", "--eval-chrf", "--eval-chrf-samples",
                "4"), MLFLOW_TRACKING_URI="")  # fmt: skip
    run_dir = out / KEY
    want = recorded(run_dir)
    assert {"train/loss", "train/learning_rate", "train/grad_norm", "eval/loss", "eval/chrf"} <= want.keys()
    assert close(tensorboard_scalars(run_dir / "tensorboard"), want, rel=1e-6)
    assert close(wandb_history(run_dir), want, rel=0)

    from mlflow.tracking import MlflowClient

    ids = json.loads((run_dir / "trackers.json").read_text(encoding="utf-8"))
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=(out / "mlruns").resolve().as_uri())
    logged = {name: [(m.step, m.value) for m in client.get_metric_history(ids["mlflow"], name)] for name in want}
    assert close(logged, want, rel=0)
    run_info = client.get_run(ids["mlflow"])
    assert run_info.info.run_name == KEY and run_info.info.status == "FINISHED"
    assert json.loads(run_info.data.params["which"]) == KEY  # the plan, as the run's parameters


@pytest.mark.slow
def test_a_resumed_run_continues_its_tensorboard_directory_without_repeating_a_step(tiny_models, tmp_path: Path):
    out = tmp_path / "runs"
    first = subprocess.Popen(command(tiny_models, out, "--report-to", "tensorboard,wandb"), text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    target = out / KEY / "checkpoints" / step_dir_name(4)
    deadline = time.monotonic() + 300
    while not target.exists():
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    first.kill()
    first.communicate(timeout=60)
    wandb_id = json.loads((out / KEY / "trackers.json").read_text(encoding="utf-8"))["wandb"]
    # The resume adds a tracker and drops none of the training settings: not refused.
    resumed = run(command(tiny_models, out, "--report-to", "tensorboard,wandb", "--resume", "auto"))
    assert "resuming from" in resumed.stderr
    run_dir = out / KEY
    scalars = tensorboard_scalars(run_dir / "tensorboard")
    for name, points in scalars.items():
        steps = [s for s, _ in points]
        assert steps == sorted(set(steps)), name  # one value a step
    assert close(scalars, recorded(run_dir))
    assert json.loads((run_dir / "trackers.json").read_text(encoding="utf-8"))["wandb"] == wandb_id


def test_report_to_is_parsed_in_order_and_checked_before_anything_loads(monkeypatch) -> None:
    assert parse_report_to("none") == "none"
    assert parse_report_to(" WandB , tensorboard,none") == "tensorboard,wandb"
    assert parse_report_to(["mlflow", "tensorboard"]) == "tensorboard,mlflow"
    with pytest.raises(SettingsError, match="unknown tracker comet; choose from tensorboard, wandb, mlflow or none"):
        parse_report_to("comet")
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(SettingsError, match=r"--report-to wandb needs wandb: pip install 'csas\[wandb\]'"):
        parse_report_to("wandb")


def test_report_to_is_in_the_plan_and_a_resume_may_change_it(tmp_path: Path) -> None:
    from csas_cli.training.resume import CHRF_MUST_MATCH, GLOSSARY_MUST_MATCH, MUST_MATCH

    plan = build_plan(FinetuneSettings.create(which=KEY, report_to="tensorboard")).to_dict()
    assert plan["report_to"] == "tensorboard"
    assert "report_to" not in (*MUST_MATCH, *CHRF_MUST_MATCH, *GLOSSARY_MUST_MATCH)
    result = invoke("finetune", "--which", KEY, "--report-to", "comet", "--dry-run")
    assert result.exit_code == 2 and "--report-to: unknown tracker comet" in result.output
