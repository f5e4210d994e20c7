"""Tests for csas_cli.files: the output-file checks made before any model loads, and one-line-per-entry writes."""

from __future__ import annotations

import io

import pytest

from csas_cli.errors import OutputError
from csas_cli.files import check_output_file, write_lines


def test_output_checks(tmp_path):
    existing = tmp_path / "out.txt"
    existing.write_text("keep\n")
    with pytest.raises(OutputError, match="--output .*out.txt: exists; pass --overwrite"):
        check_output_file(existing, overwrite=False)
    check_output_file(existing, overwrite=True)
    check_output_file(None, overwrite=False)
    with pytest.raises(OutputError, match="is a directory"):
        check_output_file(tmp_path, overwrite=True)
    with pytest.raises(OutputError, match="no such directory"):
        check_output_file(tmp_path / "no" / "out.txt", overwrite=False)


def test_output_checks_name_the_flag_they_are_given(tmp_path):
    existing = tmp_path / "h.txt"
    existing.write_text("keep\n")
    with pytest.raises(OutputError, match=r"^--hypotheses .*h\.txt: exists; pass --overwrite"):
        check_output_file(existing, overwrite=False, flag="--hypotheses")
    assert existing.read_text() == "keep\n"


def test_write_lines_writes_one_line_per_entry(tmp_path):
    path = tmp_path / "out.txt"
    write_lines(["a", "", "c"], path)
    assert path.read_text(encoding="utf-8") == "a\n\nc\n"
    assert not list(tmp_path.glob(".*tmp*"))
    stream = io.StringIO()
    write_lines([], None, stdout=stream)
    assert stream.getvalue() == ""
    write_lines(["é", "x"], None, stdout=stream)
    assert stream.getvalue() == "é\nx\n"


def test_a_failed_write_names_the_flag_that_gave_the_path(tmp_path):
    (tmp_path / "out.txt").mkdir()  # the rename onto it fails after the text is written
    with pytest.raises(OutputError, match=r"^--hypotheses .*out\.txt: cannot be written"):
        write_lines(["one"], tmp_path / "out.txt", flag="--hypotheses")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]  # the temporary file is gone
