"""Reporting a run's metrics to TensorBoard, Weights & Biases or MLflow (`--report-to`), as copies of metrics.jsonl.

metrics.jsonl stays the record; a tracker receives each of its lines as it is written (training.rundir's
`RunDirectory.write_metrics`), the same values at the same steps, under the names the HF Trainer's users know:

    loss -> train/loss, learning_rate -> train/learning_rate, grad_norm -> train/grad_norm,
    samples_per_second -> train/samples_per_second, eval_loss -> eval/loss, eval_chrf -> eval/chrf

and the resolved plan as the run's text or config. A tracker is a class with `log(step, scalars)` and `close()`;
another one is a few lines and an entry in `TRACKERS` (values.py names what may be asked for).

- tensorboard: event files in RUN/tensorboard/ (tensorboardX: needs neither TensorFlow nor tensorboard). A resumed
  run rewrites them from metrics.jsonl as the resume left it, so the directory holds each step once.
- wandb: one W&B run per csas run, named after it, its id kept in RUN/trackers.json so that a resumed run continues
  it; offline unless WANDB_MODE says otherwise (a compute node has no internet: `wandb sync` from the login node).
  The files go to RUN/wandb/.
- mlflow: one MLflow run per csas run in the experiment `csas`, resumed by its id; the store is MLFLOW_TRACKING_URI,
  else a local file store under the output root (OUTPUT_DIR/mlruns: every run of a finetune-all or sweep root in
  one; `MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri OUTPUT_DIR/mlruns` shows them).

Only the process that writes the run directory reports (rank 0 under torchrun). The libraries are imported here,
when a run opens its trackers, never by `csas --help`.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..errors import one_line
from ..layout import TENSORBOARD_DIR, TRACKER_IDS
from ..progress import say

SCALARS = {
    "loss": "train/loss", "learning_rate": "train/learning_rate", "grad_norm": "train/grad_norm",
    "samples_per_second": "train/samples_per_second", "eval_loss": "eval/loss", "eval_chrf": "eval/chrf",
}  # fmt: skip
"""metrics.jsonl's keys -> the scalars' names in every tracker."""
MLFLOW_EXPERIMENT = "csas"


def scalars(record: Mapping[str, Any]) -> dict[str, float]:
    """The tracked scalars of one metrics.jsonl record, by their tracker names."""
    return {name: float(record[key]) for key, name in SCALARS.items() if record.get(key) is not None}


class TensorBoard:
    """Event files under RUN/tensorboard/, rewritten from the kept history when the run resumes."""

    def __init__(self, run_dir: Path, name: str, plan: Mapping[str, Any], history: Iterable[Mapping[str, Any]],
                 ids: dict[str, str]) -> None:  # fmt: skip
        from tensorboardX import SummaryWriter

        folder = run_dir / TENSORBOARD_DIR
        shutil.rmtree(folder, ignore_errors=True)
        self.writer = SummaryWriter(logdir=str(folder), flush_secs=10)
        self.writer.add_text("plan", "```\n" + json.dumps(dict(plan), indent=2, default=str) + "\n```", 0)
        for record in history:
            self.log(int(record["step"]), scalars(record))

    def log(self, step: int, values: Mapping[str, float]) -> None:
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)

    def close(self) -> None:
        self.writer.close()


class Wandb:
    """One W&B run per csas run, offline unless WANDB_MODE says otherwise; a resumed run continues it by its id."""

    def __init__(self, run_dir: Path, name: str, plan: Mapping[str, Any], history: Iterable[Mapping[str, Any]],
                 ids: dict[str, str]) -> None:  # fmt: skip
        import wandb

        ids.setdefault("wandb", uuid.uuid4().hex[:16])
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "csas"), name=name, id=ids["wandb"], resume="allow",
            dir=str(run_dir), config=dict(plan), mode=os.environ.get("WANDB_MODE", "offline"),
            group=run_dir.parent.name, reinit="create_new", settings=wandb.Settings(silent=True, console="off"),
        )  # fmt: skip
        # The x axis is csas's step: a resumed run logs the steps after its checkpoint again.
        self.run.define_metric("step")
        self.run.define_metric("*", step_metric="step")

    def log(self, step: int, values: Mapping[str, float]) -> None:
        self.run.log({"step": step, **values})

    def close(self) -> None:
        self.run.finish()


class Mlflow:
    """One MLflow run per csas run in the experiment `csas`; a resumed run continues it by its id."""

    def __init__(self, run_dir: Path, name: str, plan: Mapping[str, Any], history: Iterable[Mapping[str, Any]],
                 ids: dict[str, str]) -> None:  # fmt: skip
        from mlflow.tracking import MlflowClient

        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            # MLflow 3 keeps its file store for those who ask for it: here, a store that needs no server or database.
            uri = (run_dir.parent / "mlruns").resolve().as_uri()
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=uri)
        if "mlflow" not in ids:
            found = self.client.get_experiment_by_name(MLFLOW_EXPERIMENT)
            experiment = found.experiment_id if found else self.client.create_experiment(MLFLOW_EXPERIMENT)
            run = self.client.create_run(experiment, run_name=name, tags={"csas.run_dir": str(run_dir)})
            ids["mlflow"] = run.info.run_id
            for key, value in plan.items():
                self.client.log_param(ids["mlflow"], key, json.dumps(value, default=str)[:500])
        self.run_id = ids["mlflow"]

    def log(self, step: int, values: Mapping[str, float]) -> None:
        for name, value in values.items():
            self.client.log_metric(self.run_id, name, value, step=step)

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


TRACKERS = {"tensorboard": TensorBoard, "wandb": Wandb, "mlflow": Mlflow}
"""--report-to's names -> their trackers (values.REPORT_TO says which package each needs)."""


class Trackers:
    """The trackers of one run: every metrics record goes to each of them. A tracker that fails is dropped with a
    warning: reporting never stops a run (metrics.jsonl holds every value)."""

    def __init__(self, opened: dict[str, Any] | None = None) -> None:
        self.opened = dict(opened or {})

    def log(self, record: Mapping[str, Any]) -> None:
        values = scalars(record)
        if values and "step" in record:
            for name, tracker in list(self.opened.items()):
                self.attempt(name, lambda: tracker.log(int(record["step"]), values))

    def close(self) -> None:
        for name, tracker in list(self.opened.items()):
            self.attempt(name, tracker.close)
        self.opened = {}

    def attempt(self, name: str, call: Any) -> None:
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - a tracker's failure, whatever it is, must not cost the run
            self.opened.pop(name, None)
            say(f"warning: --report-to {name}: {one_line(exc)}; it reports nothing more (metrics.jsonl has it all)")


def open_trackers(names: Iterable[str], run_dir: Path, plan: Mapping[str, Any],
                  history: list[Mapping[str, Any]]) -> tuple[Trackers, dict[str, str]]:  # fmt: skip
    """The trackers `names` asks for, opened for `run_dir` with the run's metrics so far (`history`: empty for a
    fresh run), and the tracker run ids to keep in RUN/trackers.json (those it held are reused)."""
    ids_file = run_dir / TRACKER_IDS
    ids: dict[str, str] = json.loads(ids_file.read_text(encoding="utf-8")) if ids_file.is_file() else {}
    opened = {name: TRACKERS[name](run_dir, run_dir.name, plan, history, ids) for name in names}
    return Trackers(opened), ids


__all__ = ["SCALARS", "TRACKERS", "Trackers", "open_trackers", "scalars"]
