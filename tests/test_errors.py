"""Tests for csas_cli.errors: the exit-code table and how a command of several runs ends."""

from __future__ import annotations

import pytest

from csas_cli.errors import (
    EXIT_CODES,
    CsasError,
    DataError,
    Preempted,
    TrainingError,
    batch_exit_code,
    describe_failure,
)


def test_every_error_exits_with_its_code_from_the_table() -> None:
    assert EXIT_CODES == {"ok": 0, "failed": 1, "usage": 2, "training": 3, "stopped": 75, "interrupted": 130}
    assert (CsasError.exit_code, DataError.exit_code) == (2, 2)
    assert TrainingError.exit_code == 3
    assert (Preempted.exit_code, Preempted.label) == (75, "stopped")


@pytest.mark.parametrize(
    "statuses,code",
    [([], 0), (["ok", "skipped"], 0), (["ok", "failed"], 1), (["failed", "interrupted"], 130),
     (["failed", "stopped", "interrupted"], 75), (["not run", "ok"], 0)],
)  # fmt: skip
def test_a_batch_exits_with_the_first_status_that_applies(statuses: list[str], code: int) -> None:
    assert batch_exit_code(statuses) == code


def test_a_user_error_is_its_message_and_a_bug_keeps_its_traceback() -> None:
    assert describe_failure(DataError("x.jsonl:3: bad")) == ("failed: x.jsonl:3: bad", "x.jsonl:3: bad")
    try:
        raise KeyError("oops")
    except KeyError as exc:
        logged, summary = describe_failure(exc)
    assert "Traceback" in logged and summary == "KeyError: 'oops'"
