"""`csas report PATH...`: the curves of one run or many (a finetune-all or sweep root), as a self-contained HTML page
or a PNG, and a table of each run.

A PATH is a run directory (run.json) or a folder holding runs (every run.json up to two levels down: OUTPUT_DIR/KEY
of finetune-all, OUTPUT_DIR/WHICH/trial-* of a sweep). Each run is read from what is on disk, finished or not
(metrics.jsonl, run.json, finished.json, best/best.json), and its status says which: finished, stopped early,
training (another process holds its lock), or unfinished (stopped, failed or killed; `--resume auto` continues it).

One figure per metric, the runs overlaid with a legend: the training loss (an exponential moving average over the
logged steps, the raw points faint), the evaluation loss, `eval_chrf` when recorded, the learning rate; each run's
best evaluation is marked. The table: status, steps, final training loss, final and best evaluation, wall time,
samples/s, peak memory. Plotting is matplotlib's (the Agg backend: no display), an extra: `csas[report]`.
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..errors import SettingsError
from ..files import read_json_record, write_bytes_atomic, write_text_atomic
from ..layout import BEST_DIR, METRICS, RunRecord, find_runs, read_metrics, run_names, run_state
from ..progress import say

METRICS_SHOWN = {"loss": "training loss", "eval_loss": "evaluation loss", "eval_chrf": "evaluation chrF",
                 "learning_rate": "learning rate"}  # fmt: skip
"""metrics.jsonl's keys the report draws, in order, with their titles."""
RANKING = {"loss": False, "eval_loss": False, "eval_chrf": True}
"""What --metric may order the table by, and whether higher is better."""
SMOOTHING = 0.6
"""The training loss curve's moving-average weight of the past (TensorBoard's default smoothing)."""


@dataclass
class RunCurves:
    """One run as the report shows it."""

    name: str
    path: Path
    status: str
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    total_steps: int | None = None
    best: dict[str, Any] = field(default_factory=dict)
    seconds: float | None = None
    samples_per_second: float | None = None
    peak_memory_gib: float | None = None

    def last(self, key: str) -> float | None:
        points = self.curves.get(key)
        return points[-1][1] if points else None

    def best_of(self, key: str) -> float | None:
        points = [v for _, v in self.curves.get(key, [])]
        if not points:
            return None
        return max(points) if RANKING.get(key) else min(points)

    @property
    def steps(self) -> int:
        return max((s for points in self.curves.values() for s, _ in points), default=0)


def run_status(run_dir: Path, finished: dict[str, Any]) -> str:
    if run_state(run_dir) == "finished":
        return "stopped early" if finished.get("stopped_early") else "finished"
    from ..training.rundir import lock_holder

    return "training" if lock_holder(run_dir) else "unfinished"


def read_run(run_dir: Path, name: str) -> RunCurves:
    """What `run_dir` holds so far."""
    record = RunRecord.read(run_dir)
    run = RunCurves(name, run_dir, run_status(run_dir, record.finished))
    metrics = run_dir / METRICS
    rows = read_metrics(metrics) if metrics.is_file() else []
    for row in rows:
        for key in METRICS_SHOWN:
            if row.get(key) is not None and "step" in row:
                run.curves.setdefault(key, []).append((int(row["step"]), float(row[key])))
    speeds = [float(r["samples_per_second"]) for r in rows if r.get("samples_per_second")]
    run.samples_per_second = sum(speeds) / len(speeds) if speeds else None
    run.total_steps = record.run.get("total_steps")
    memory = record.run.get("peak_memory") or {}
    run.peak_memory_gib = memory["bytes"] / 2**30 if memory.get("bytes") else None
    run.best = read_json_record(run_dir / BEST_DIR / "best.json")
    run.seconds = record.seconds_total
    return run


def smoothed(values: Sequence[float], weight: float = SMOOTHING) -> list[float]:
    out, last = [], None
    for value in values:
        last = value if last is None else weight * last + (1 - weight) * value
        out.append(last)
    return out


def pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise SettingsError("csas report draws with matplotlib: pip install 'csas[report]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw(plt: Any, axis: Any, runs: Sequence[RunCurves], key: str) -> None:
    """One metric of every run on `axis`; the training loss smoothed over its faint raw points; best marked."""
    for i, run in enumerate(runs):
        points = run.curves.get(key)
        if not points:
            continue
        color = plt.get_cmap("tab10")(i % 10)
        steps, values = [s for s, _ in points], [v for _, v in points]
        if key == "loss":
            axis.plot(steps, values, color=color, alpha=0.25, linewidth=1)
            values = smoothed(values)
        axis.plot(steps, values, color=color, linewidth=1.8, label=run.name, marker="o" if key != "loss" else None,
                  markersize=3)  # fmt: skip
        if key == run.best.get("metric") and run.best.get("step") is not None:
            axis.plot([run.best["step"]], [run.best["value"]], marker="*", markersize=14, color=color,
                      markeredgecolor="black", linestyle="none")  # fmt: skip
    axis.set_title(METRICS_SHOWN[key] + (" (smoothed; raw faint)" if key == "loss" else ""))
    axis.set_xlabel("optimizer step")
    axis.grid(alpha=0.3)
    if key == "learning_rate":
        axis.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))


def recorded_metrics(runs: Sequence[RunCurves]) -> list[str]:
    """The metrics some run recorded, in METRICS_SHOWN's order: one figure each."""
    return [key for key in METRICS_SHOWN if any(run.curves.get(key) for run in runs)]


def figures(runs: Sequence[RunCurves]) -> dict[str, bytes]:
    """One PNG per metric some run recorded."""
    plt = pyplot()
    images = {}
    for key in recorded_metrics(runs):
        fig, axis = plt.subplots(figsize=(8, 4.5), dpi=100)
        draw(plt, axis, runs, key)
        axis.legend(fontsize=8, loc="best")
        images[key] = png(fig)
        plt.close(fig)
    return images


def one_png(runs: Sequence[RunCurves]) -> bytes:
    """Every metric's figure in one image, two a row."""
    plt = pyplot()
    keys = recorded_metrics(runs)
    rows = max(1, math.ceil(len(keys) / 2))
    fig, axes = plt.subplots(rows, 2, figsize=(14, 4.5 * rows), dpi=100, squeeze=False)
    for axis, key in zip(axes.flat, keys):
        draw(plt, axis, runs, key)
        axis.legend(fontsize=8, loc="best")
    for axis in list(axes.flat)[len(keys):]:
        axis.axis("off")
    data = png(fig)
    plt.close(fig)
    return data


def png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table_rows(runs: Sequence[RunCurves], metric: str) -> list[list[str]]:
    higher = RANKING[metric]

    def key(run: RunCurves) -> tuple[bool, float]:
        value = run.best_of(metric) if metric != "loss" else run.last("loss")
        return (value is None, 0.0 if value is None else (-value if higher else value))

    rows = []
    for run in sorted(runs, key=key):
        steps = f"{run.steps}" + (f" of {run.total_steps}" if run.total_steps else "")
        best = "-"
        if run.best.get("metric"):
            best = f"{run.best['metric']} {run.best['value']:.4g} at step {run.best['step']}"
        rows.append([run.name, run.status, steps, number(run.last("loss")), number(run.last("eval_loss")),
                     number(run.best_of("eval_chrf"), 2), best,
                     "-" if run.seconds is None else f"{run.seconds:.0f} s",
                     number(run.samples_per_second, 1), number(run.peak_memory_gib, 2)])  # fmt: skip
    return rows


HEADER = ["run", "status", "steps", "train loss", "eval loss", "best chrF", "best evaluation", "time", "samples/s",
          "peak GiB"]  # fmt: skip


def html_page(runs: Sequence[RunCurves], images: dict[str, bytes], metric: str, title: str) -> str:
    """One self-contained page: the table, then the figures as embedded PNGs."""
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in HEADER)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in table_rows(runs, metric))
    pictures = "".join(
        f'<figure><img alt="{esc(METRICS_SHOWN[k])}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'
        "</figure>"  # each figure has its title
        for k, data in images.items()
    )
    style = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
             "padding:4px 8px;text-align:left}img{max-width:100%}figure{margin:1.5em 0}")  # fmt: skip
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{esc(title)}</title><style>{style}"
            f"</style></head><body><h1>{esc(title)}</h1><p>{len(runs)} run{'' if len(runs) == 1 else 's'}, best "
            f"{esc(metric)} first</p><table><tr>{head}</tr>{body}</table>{pictures}</body></html>\n")  # fmt: skip


def default_metric(runs: Sequence[RunCurves]) -> str:
    """What the table is ordered by without --metric: what the runs chose their best evaluation by, when they all
    chose by the same (eval_chrf for runs trained with --eval-chrf), else eval_loss."""
    chosen = {run.best.get("metric") for run in runs}
    return chosen.pop() if len(chosen) == 1 and chosen <= set(RANKING) else "eval_loss"


def run(paths: Sequence[Path], output: Path | None = None, metric: str | None = None) -> Path:
    """`csas report`: read the runs, write the report (HTML, or PNG by --output's extension); its path. `metric`
    orders the table (default_metric when None)."""
    if metric is not None and metric not in RANKING:
        raise SettingsError(f"--metric: expected one of {', '.join(RANKING)}, got {metric!r}")
    if output is not None and output.suffix.lower() not in (".html", ".htm", ".png"):
        raise SettingsError(f"--output {output}: name it .html (the page) or .png (the figures)")
    dirs = find_runs([Path(p) for p in paths])
    runs = [read_run(d, n) for d, n in zip(dirs, run_names(dirs))]
    metric = metric or default_metric(runs)
    if output is None:
        first = Path(paths[0])
        output = (first if first.is_dir() else first.parent) / "report.html"
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix.lower() == ".png":
        write_bytes_atomic(output, one_png(runs))
    else:
        write_text_atomic(output, html_page(runs, figures(runs), metric, f"csas report: {', '.join(map(str, paths))}"))
    statuses = ", ".join(f"{r.name} {r.status}" for r in runs)
    say(f"report of {len(runs)} run{'' if len(runs) == 1 else 's'} ({statuses}): {output}")
    return output


__all__ = ["RunCurves", "default_metric", "html_page", "read_run", "run", "smoothed"]
