"""csas report: the curves and the table of one run or of a finetune-all or sweep root, as HTML or PNG, from what
the run directories hold (finished, stopped early, unfinished)."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from helpers import invoke

from csas_cli.commands.report import default_metric, read_run, smoothed
from csas_cli.layout import find_runs

PNG = b"\x89PNG\r\n\x1a\n"


def fake_run(run_dir: Path, steps: int = 6, chrf: bool = False, finished: bool = True, seed: float = 0.0) -> Path:
    """A run directory as csas writes one: run.json, metrics.jsonl, best/best.json, finished.json when finished."""
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"plan": {"which": run_dir.name}, "total_steps": steps,
                                                  "peak_memory": {"bytes": 2**30}}))  # fmt: skip
    rows = []
    for step in range(1, steps + 1):
        rows.append({"step": step, "loss": 4.0 - 0.3 * step + seed, "learning_rate": 2e-4 * (1 - step / steps),
                     "grad_norm": 1.0, "samples_per_second": 100.0 + step})  # fmt: skip
        if step % 3 == 0:
            rows.append({"step": step, "eval_loss": 4.5 - 0.2 * step + seed,
                         **({"eval_chrf": 20.0 + step} if chrf else {})})  # fmt: skip
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run_dir / "best").mkdir()
    metric = "eval_chrf" if chrf else "eval_loss"
    value = 20.0 + steps if chrf else 4.5 - 0.2 * steps + seed
    (run_dir / "best" / "best.json").write_text(json.dumps({"step": steps, "metric": metric, "value": value}))
    if finished:
        (run_dir / "finished.json").write_text(json.dumps({"status": "ok", "steps": steps, "seconds": 12.5}))
    return run_dir


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[bytes] = []
        self.cells: list[str] = []
        self.in_cell = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            assert attrs["src"].startswith("data:image/png;base64,")  # embedded: no file, no script beside it
            self.images.append(base64.b64decode(attrs["src"].split(",", 1)[1]))
        self.in_cell = tag == "td"

    def handle_data(self, data):
        if self.in_cell:
            self.cells.append(data)


def test_a_finetune_all_root_gives_one_page_naming_every_run(tmp_path: Path) -> None:
    root = tmp_path / "outputs"
    for i, key in enumerate(("m2m100_418m", "mbart50_mmt_fr", "opus_mt_en_fr")):
        fake_run(root / key, chrf=key == "opus_mt_en_fr", seed=i * 0.1)
    fake_run(root / "opus_mt_fr_en", finished=False)
    result = invoke("report", root)
    assert result.exit_code == 0, result.output
    page = Page()
    page.feed((root / "report.html").read_text(encoding="utf-8"))
    assert len(page.images) == 4 and all(image.startswith(PNG) for image in page.images)  # loss, eval, chrF, lr
    for key in ("m2m100_418m", "mbart50_mmt_fr", "opus_mt_en_fr", "opus_mt_fr_en"):
        assert key in page.cells
    assert "unfinished" in page.cells and "finished" in page.cells
    assert "report of 4 runs" in result.stderr


def test_a_sweep_root_and_a_png(tmp_path: Path) -> None:
    root = tmp_path / "sweeps"
    for i in range(3):
        fake_run(root / "opus_mt_en_fr" / f"trial-0{i}-lr1e-4-r8-a16-d0.05", seed=i * 0.1)
    out = tmp_path / "figures.png"
    result = invoke("report", root, "--output", out, "--metric", "eval_loss")
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(PNG)
    runs = find_runs([root])
    assert [r.name for r in runs] == [f"trial-0{i}-lr1e-4-r8-a16-d0.05" for i in range(3)]


def test_the_table_orders_by_the_metric_and_reads_what_is_on_disk(tmp_path: Path) -> None:
    run = read_run(fake_run(tmp_path / "a", chrf=True), "a")
    assert run.status == "finished" and run.steps == 6 and run.total_steps == 6
    assert run.best_of("eval_chrf") == 26.0 and run.best_of("eval_loss") == pytest.approx(3.3)
    assert run.peak_memory_gib == 1.0 and run.seconds == 12.5
    assert smoothed([1.0, 0.0], weight=0.5) == [1.0, 0.5]
    by_loss = read_run(fake_run(tmp_path / "b"), "b")
    assert default_metric([run]) == "eval_chrf" and default_metric([run, by_loss]) == "eval_loss"
    (tmp_path / "b" / "best" / "best.json").unlink()  # no evaluation yet
    assert default_metric([read_run(tmp_path / "b", "b")]) == "eval_loss"


def test_bad_paths_and_options_are_one_line(tmp_path: Path) -> None:
    missing = invoke("report", tmp_path / "nowhere")
    assert missing.exit_code == 2 and missing.stderr.count("\n") == 1 and "no such file" in missing.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    none = invoke("report", empty)
    assert none.exit_code == 2 and "no csas run here" in none.stderr
    fake_run(tmp_path / "r")
    assert "--output" in invoke("report", tmp_path / "r", "--output", tmp_path / "x.pdf").stderr
    assert "--metric" in invoke("report", tmp_path / "r", "--metric", "bleu").stderr


def test_without_matplotlib_the_report_is_refused_in_one_line(tmp_path: Path, monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    fake_run(tmp_path / "r")
    result = invoke("report", tmp_path / "r")
    assert result.exit_code == 2
    assert result.stderr == "csas: error: csas report draws with matplotlib: pip install 'csas[report]'\n"


@pytest.mark.slow
def test_the_report_of_trained_finetune_all_and_sweep_roots(tiny_models, tmp_path: Path) -> None:
    """The tiny models trained for real, one of them stopped half-way: every run is named with what its files say,
    one embedded image per metric recorded, and the PNG is a PNG."""
    from helpers import SAMPLE

    models = Path(tiny_models["opus_mt_en_fr"]).parent
    root = tmp_path / "outputs"
    keys = ("m2m100_418m", "mbart50_mmt_fr", "opus_mt_en_fr")
    common = ("--data", SAMPLE, "--max-steps", 4, "--eval-steps", 2, "--logging-steps", 1, "--max-eval-samples", 12)
    trained = invoke("finetune-all", *common, "--output-dir", root, "--model-root", models, "--only", ",".join(keys),
                     "--eval-chrf", "--eval-chrf-samples", 6)  # fmt: skip
    assert trained.exit_code == 0, trained.output
    (root / "opus_mt_en_fr" / "finished.json").unlink()  # as if it were still training
    result = invoke("report", root)
    assert result.exit_code == 0, result.output
    page = Page()
    page.feed((root / "report.html").read_text(encoding="utf-8"))
    assert len(page.images) == 4 and all(image.startswith(PNG) for image in page.images)  # loss, eval, chrF, lr
    rows = {page.cells[i]: page.cells[i : i + 10] for i in range(0, len(page.cells), 10)}
    assert set(rows) == set(keys)
    for key in keys:
        finished = key != "opus_mt_en_fr"
        assert rows[key][1:3] == ["finished" if finished else "unfinished", "4 of 4"]
        best = json.loads((root / key / "best" / "best.json").read_text())
        assert rows[key][6] == f"eval_chrf {best['value']:.4g} at step {best['step']}"

    sweeps = tmp_path / "sweeps"
    swept = invoke("sweep", "--which", "opus_mt_en_fr", "--model-id", tiny_models["opus_mt_en_fr"], *common,
                   "--output-dir", sweeps, "--lrs", "1e-3,3e-3", "--ranks", 4)  # fmt: skip
    assert swept.exit_code == 0, swept.output
    png = tmp_path / "sweep.png"
    result = invoke("report", sweeps, "--output", png)
    assert result.exit_code == 0, result.output
    assert png.read_bytes().startswith(PNG)
    trials = sorted(p.name for p in (sweeps / "opus_mt_en_fr").glob("trial-*"))
    assert len(trials) == 2 and [r.name for r in find_runs([sweeps])] == trials
    page = Page()
    result = invoke("report", sweeps)
    page.feed((sweeps / "report.html").read_text(encoding="utf-8"))
    assert len(page.images) == 3  # no chrF recorded: loss, eval loss, learning rate
    assert set(trials) <= set(page.cells)
