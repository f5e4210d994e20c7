"""`csas convert IN OUT.jsonl`: any pairs file csas reads (JSON Lines, TMX, TSV), written as csas's JSON Lines, so a
user sees exactly what training would read: one row per pair and direction, the text as normalised on reading."""

from __future__ import annotations

from pathlib import Path

from ..data.pairs import STDOUT, check_jsonl_output, read_pairs, write_jsonl
from ..data.rows import ReadCounts, ReadOptions
from ..progress import counted, say


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


def run(source: Path, out: Path, *, overwrite: bool = False, reading: ReadOptions = ReadOptions()) -> None:
    """`csas convert`: convert, then say how many rows went where."""
    rows, read = convert(source, out, overwrite=overwrite, reading=reading)
    units = read.describe(reading)
    say(f"{counted(rows, 'row')} written to {out}" + (f" ({units})" if units else ""))


__all__ = ["convert", "run"]
