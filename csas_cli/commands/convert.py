"""`csas convert IN OUT.jsonl`: any pairs file csas reads (JSON Lines, TMX, TSV), written as csas's JSON Lines, so a
user sees exactly what training would read: one row per pair and direction, the text as normalised on reading."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Sequence

from ..data.pairs import PAIR_FORMATS, ReadCounts, example_record, read_pairs
from ..errors import SettingsError
from ..files import check_output_file, write_text_atomic


STDOUT = "-"


def check_jsonl_output(path: Path, inputs: tuple[Path, ...], flag: str, overwrite: bool) -> None:
    """An output of JSON Lines pairs: not named like another format, not one of the inputs, not replaced unasked."""
    if path.suffix.lower() in PAIR_FORMATS and path.suffix.lower() != ".jsonl":
        raise SettingsError(f"{flag} {path}: csas writes JSON Lines; name it .jsonl")
    if any(path.absolute() == Path(i).absolute() for i in inputs):
        raise SettingsError(f"{flag} {path}: the same file as an input")
    check_output_file(path, overwrite, flag=flag)


def convert(source: Path, out: Path, *, overwrite: bool = False, locales: Sequence[str] = ()) -> tuple[int, ReadCounts]:
    """Write every row of `source` to `out` as JSON Lines (atomically; `-`: standard output): the number of rows
    written, and what the reader skipped or chose between (`locales`: the preferred variants of a TMX unit)."""
    to_stdout = str(out) == STDOUT
    if not to_stdout:
        check_jsonl_output(out, (source,), "OUT", overwrite)
    read = ReadCounts()
    lines = [json.dumps(example_record(ex), ensure_ascii=False) + "\n" for ex in read_pairs(source, locales, read)]
    if to_stdout:
        sys.stdout.write("".join(lines))
    else:
        write_text_atomic(out, "".join(lines))
    return len(lines), read


__all__ = ["check_jsonl_output", "convert"]
