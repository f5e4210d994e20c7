"""Progress: a bar only at a terminal and without --disable-tqdm; log lines reach the console and train.log."""

from __future__ import annotations

import io

import pytest

from csas_cli.progress import Reporter, counting_bar, format_step, say, use_progress_bar
from csas_cli.training.rundir import RunDirectory


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
    both = format_step(100, 400, {"eval_loss": 2.5, "eval_chrf": 45.678})
    assert both == "step 100/400  eval_loss 2.5000  eval_chrf 45.68"


def test_plain_reporter_writes_console_and_log(tmp_path):
    console = io.StringIO()
    run = RunDirectory(tmp_path)
    reporter = Reporter(run.write_log, bar=False, console_stream=console)
    reporter.start(10)
    reporter.step(1, {"loss": 1.0, "learning_rate": 0.1, "samples_per_second": 3.0})  # bar only: no line
    reporter.metrics(1, {"step": 1, "loss": 1.0})
    reporter.line("adapter saved")
    reporter.close()
    run.close()
    log = (tmp_path / "train.log").read_text().splitlines()
    assert [l.split(" ", 1)[1] for l in log] == ["step 1/10  loss 1.0000", "adapter saved"]
    assert console.getvalue().count("\n") == 2


def test_bar_reporter_keeps_log_lines(tmp_path):
    console = Tty()
    run = RunDirectory(tmp_path)
    reporter = Reporter(run.write_log, bar=True, console_stream=console)
    reporter.start(4)
    reporter.step(2, {"loss": 1.0, "learning_rate": 0.1, "samples_per_second": 3.0})
    reporter.metrics(2, {"step": 2, "loss": 1.0})
    reporter.close()
    run.close()
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


def test_the_log_sink_gets_every_stamped_line_and_nothing_else():
    lines: list[str] = []
    reporter = Reporter(lines.append, bar=False, console_stream=io.StringIO())
    reporter.start(3)
    reporter.step(1, {"loss": 1.0, "learning_rate": 0.1, "samples_per_second": 3.0})
    reporter.metrics(1, {"step": 1, "loss": 1.0})
    reporter.line("done")
    reporter.close()
    assert [line.split(" ", 1)[1] for line in lines] == ["step 1/3  loss 1.0000", "done"]
    assert all(len(line.split(" ", 1)[0]) == len("12:00:00") for line in lines)


def test_a_reporter_without_a_log_sink_writes_only_the_console():
    console = io.StringIO()
    reporter = Reporter(None, bar=False, console_stream=console)
    reporter.line("adapter saved")
    reporter.close()
    assert console.getvalue().rstrip("\n").endswith(" adapter saved")


def test_say_writes_one_line_to_stderr(capsys: pytest.CaptureFixture[str]):
    say("skipping m2m100_418m: finished")
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "skipping m2m100_418m: finished\n")


@pytest.mark.parametrize("enabled,total", [(False, 5), (True, 0)])
def test_counting_bar_off_or_empty_is_a_silent_counter(capsys: pytest.CaptureFixture[str], enabled: bool, total: int):
    with counting_bar(total, enabled, "translating") as advance:
        advance(2)
        advance(3)
    assert capsys.readouterr() == ("", "")
