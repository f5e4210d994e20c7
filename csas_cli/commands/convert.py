"""`csas convert IN OUT.jsonl`: any pairs file csas reads (JSON Lines, TMX, TSV), written as csas's JSON Lines, so a
user sees exactly what training would read: one row per pair and direction, the text as normalised on reading."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Iterable

from ..data.pairs import PAIR_FORMATS, Example, ReadCounts, ReadOptions, example_record, read_pairs
from ..errors import SettingsError
from ..files import check_output_file, write_text_atomic


STDOUT = "-"


def check_jsonl_output(path: Path, inputs: tuple[Path, ...], flag: str, overwrite: bool) -> None:
    """An output of JSON Lines pairs: not named like another format, not one of the inputs, not replaced unasked (its
    folder is created if missing: the writer must `mkdir` it)."""
    if path.suffix.lower() in PAIR_FORMATS and path.suffix.lower() != ".jsonl":
        raise SettingsError(f"{flag} {path}: csas writes JSON Lines; name it .jsonl")
    if any(path.absolute() == Path(i).absolute() for i in inputs):
        raise SettingsError(f"{flag} {path}: the same file as an input")
    check_output_file(path, overwrite, flag=flag, create_parents=True)


def write_jsonl(path: Path, rows: Iterable[Example]) -> int:
    """Write `rows` to `path` as csas's JSON Lines (atomically, creating its folder); the number written, `-` for
    standard output."""
    lines = [json.dumps(example_record(ex), ensure_ascii=False) + "\n" for ex in rows]
    if str(path) == STDOUT:
        sys.stdout.write("".join(lines))
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, "".join(lines))
    return len(lines)


def convert(
    source: Path, out: Path, *, overwrite: bool = False, reading: ReadOptions = ReadOptions()
) -> tuple[int, ReadCounts]:
    """Write every row of `source` to `out` as JSON Lines (atomically, creating its folder; `-`: standard output):
    the number of rows written, and what the reader skipped or chose between (`reading`: --locales,
    --publication-from)."""
    if str(out) != STDOUT:
        check_jsonl_output(out, (source,), "OUT", overwrite)
    read = ReadCounts()
    return write_jsonl(out, read_pairs(source, reading, read)), read


__all__ = ["check_jsonl_output", "convert", "write_jsonl"]
