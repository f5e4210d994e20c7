"""Progress: a bar only at a terminal and without --disable-tqdm; log lines reach the console and train.log."""

from __future__ import annotations

import io

from csas_cli.progress import Reporter, format_step, use_progress_bar


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_only_at_a_terminal_without_disable_tqdm():
    assert use_progress_bar(False, Tty())
    assert not use_progress_bar(True, Tty())
    assert not use_progress_bar(False, io.StringIO())


def test_format_step():
    line = format_step(50, 400, {"loss": 3.14159, "learning_rate": 1.5e-4, "samples_per_second": 12.34})
    assert line == "step 50/400  loss 3.1416  lr 0.00015  12.3 samples/s"
    assert format_step(100, 400, {"eval_loss": 2.5}) == "step 100/400  eval_loss 2.5000"
    assert format_step(100, 400, {"eval_loss": 2.5, "eval_chrf": 45.678}) == "step 100/400  eval_loss 2.5000  eval_chrf 45.68"


def test_plain_reporter_writes_console_and_log(tmp_path):
    console = io.StringIO()
    reporter = Reporter(tmp_path / "train.log", bar=False, console_stream=console)
    reporter.start(10)
    reporter.step(1, {"loss": 1.0, "learning_rate": 0.1, "samples_per_second": 3.0})  # bar only: no line
    reporter.metrics(1, {"step": 1, "loss": 1.0})
    reporter.line("adapter saved")
    reporter.close()
    log = (tmp_path / "train.log").read_text().splitlines()
    assert [l.split(" ", 1)[1] for l in log] == ["step 1/10  loss 1.0000", "adapter saved"]
    assert console.getvalue().count("\n") == 2


def test_bar_reporter_keeps_log_lines(tmp_path):
    console = Tty()
    reporter = Reporter(tmp_path / "train.log", bar=True, console_stream=console)
    reporter.start(4)
    reporter.step(2, {"loss": 1.0, "learning_rate": 0.1, "samples_per_second": 3.0})
    reporter.metrics(2, {"step": 2, "loss": 1.0})
    reporter.close()
    assert "step 2/4  loss 1.0000" in (tmp_path / "train.log").read_text()
    assert "training" in console.getvalue()


def test_quiet_reporter_says_nothing(tmp_path):
    console = Tty()
    reporter = Reporter(None, bar=True, console_stream=console, quiet=True)
    reporter.start(4)
    reporter.step(2, {"loss": 1.0, "learning_rate": 0.1, "samples_per_second": 3.0})
    reporter.metrics(2, {"step": 2, "loss": 1.0})
    reporter.line("adapter saved")
    reporter.close()
    assert console.getvalue() == ""
    assert list(tmp_path.iterdir()) == []
