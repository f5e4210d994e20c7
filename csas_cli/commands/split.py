"""`csas split DATA --train-out TRAIN.jsonl --test-out TEST.jsonl`: a test set of whole publications cut from a
pairs file, on disk, for `csas evaluate`.

The rows (every direction, empty ones left out as training leaves them) are split as a run's validation split is
(data/pairs.split_examples): whole publications on one side, a row without a publication split by row (with its
reverse, where the file holds it), about `--test-ratio` of the rows in the test file, chosen with `--seed`, so one
seed gives the same files every time. Both files are JSON Lines, in the input's order; neither replaces a file
unless --overwrite. `check-data TRAIN --against TEST` then finds no shared publication.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..data.pairs import ReadCounts, ReadOptions, load_examples, split_examples
from ..errors import SettingsError
from ..progress import counted, say
from ..registry import LANGUAGES
from ..data.pairs import check_jsonl_output, write_jsonl


@dataclass(frozen=True)
class SplitResult:
    train: int
    test: int
    train_publications: int
    test_publications: int
    without_publication: int
    """Rows (of both files) without a publication: split by row."""
    read: ReadCounts


def split_file(
    data: Path, train_out: Path, test_out: Path, *, test_ratio: float = 0.05, seed: int = 42,
    overwrite: bool = False, reading: ReadOptions = ReadOptions(),
) -> SplitResult:
    """Everything `csas split` does: check the outputs, read, split, write both files."""
    if not 0.0 < test_ratio < 1.0:
        raise SettingsError(f"--test-ratio must be between 0 and 1, got {test_ratio}")
    if Path(train_out).absolute() == Path(test_out).absolute():
        raise SettingsError(f"--train-out and --test-out are the same file ({train_out})")
    for flag, out in (("--train-out", train_out), ("--test-out", test_out)):
        check_jsonl_output(Path(out), (Path(data),), flag, overwrite)
    loaded = load_examples(data, LANGUAGES, reading)
    split = split_examples(loaded.examples, test_ratio, seed)
    if not split.eval:
        rows = counted(len(loaded.examples), "row")
        raise SettingsError(f"{data}: nothing to hold out ({rows} in a single publication); a "
                            "test set needs rows from at least two publications")  # fmt: skip
    write_jsonl(Path(train_out), split.train)
    write_jsonl(Path(test_out), split.eval)
    without = sum(ex.pub_number is None for ex in loaded.examples)
    return SplitResult(len(split.train), len(split.eval), split.train_publications, split.eval_publications, without,
                       loaded.read)  # fmt: skip


def run(data: Path, train_out: Path, test_out: Path, *, test_ratio: float = 0.05, seed: int = 42,
        overwrite: bool = False, reading: ReadOptions = ReadOptions()) -> None:  # fmt: skip
    """`csas split`: split, then say what went where."""
    result = split_file(data, train_out, test_out, test_ratio=test_ratio, seed=seed, overwrite=overwrite,
                        reading=reading)  # fmt: skip
    units = result.read.describe(reading)
    say(f"train: {counted(result.train, 'row')} ({counted(result.train_publications, 'publication')}) -> "
        f"{train_out}")  # fmt: skip
    say(f"test: {counted(result.test, 'row')} ({counted(result.test_publications, 'publication')}) -> {test_out}")
    if result.without_publication:
        hint = "" if reading.publication_from else (" (a TMX memory names its documents with --publication-from "
                                                    "tuid-prefix or prop:NAME)")  # fmt: skip
        say(f"{counted(result.without_publication, 'row')} without a publication, split by row{hint}")
    if units:
        say(units)


__all__ = ["SplitResult", "run", "split_file"]
