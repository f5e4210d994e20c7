"""Training data: read and validate a file of translation pairs, keep a model's rows, split them into train and eval.

Four formats, chosen by the path (`read_pairs`, `PAIR_FORMATS`):

- JSON Lines (`.jsonl`, and any other extension): one object per line, `{"source": str, "target": str,
  "source_lang": "en"|"fr", "pub_number": str}` (`pub_number` optional, extra fields ignored); `example_record`
  writes that object back.
- TMX translation memories (`.tmx`, `tmx.read_tmx`): each `<tu>` with an English and a French `<tuv>`.
- Tab-separated values (`.tsv`, `tsv.read_tsv`): a header row naming `source`, `target`, `source_lang` and optional
  `pub_number` (or an English and a French column), then one pair per line.
- Line-aligned text files (`SOURCE,TARGET`, `aligned.read_aligned`), their languages from their names.

How a file is read beyond its format (`ReadOptions`: --locales, --publication-from) is one value every command
that reads pairs passes on; what a reader skipped or chose between is counted in a `ReadCounts`.

Every problem a user can fix is a `DataError` whose message is one line, `"<path>:<line>: <what is wrong>"` or
`"<path>: <what is wrong>"`. Standard library only here (the TMX reader adds defusedxml).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from ..errors import SettingsError
from ..progress import counted
from ..files import check_output_file, file_sha256, write_text_atomic
from ..registry import LANGUAGES, other_language
from .rows import (
    BOM,
    REQUIRED_FIELDS,
    UTF16_WITHOUT_MARK,
    Example,
    ReadCounts,
    ReadOptions,
    error_at,
    looks_utf16,
    one_line,
    open_binary,
    parse_language,
    read_error,
)

PAIR_FORMATS = (".jsonl", ".tmx", ".tsv")
"""The extensions `read_pairs` tells apart (case-insensitive): TMX, TSV, and JSON Lines for any other name."""
_JSON_TYPE_NAMES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}


@dataclass(frozen=True)
class LoadedData:
    """The rows one model trains on, and what happened to the others."""

    examples: list[Example]
    rows_read: int
    """Every row in the file (blank lines are not rows; a TMX `srclang="*all*"` unit is two rows)."""
    rows_other_language: int
    """Rows whose source_lang the model does not train on (none with both_directions: each serves reversed)."""
    rows_empty: int
    """Rows in a wanted language whose stripped source or target is empty."""
    read: ReadCounts = field(default_factory=lambda: ReadCounts())
    """What the reader left out or chose (TMX units, one-sided lines)."""
    rows_reversed: int = 0
    """With both_directions: the rows kept that are a file row reversed."""


@dataclass(frozen=True)
class Split:
    """Train and eval rows; a publication is wholly on one side."""

    train: list[Example]
    eval: list[Example]
    train_publications: int
    """Distinct pub_numbers in train (rows without one are not counted)."""
    eval_publications: int
    """Distinct pub_numbers in eval (rows without one are not counted)."""


def _json_type(value: Any) -> str:
    return "null" if value is None else _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _string_field(path: Path, number: int, row: dict[str, Any], name: str) -> str:
    value = row[name]
    if not isinstance(value, str):
        raise error_at(path, f"field {name!r} must be a string, got {_json_type(value)}", number)
    try:
        # A lone surrogate escape ("\ud800") parses but is not text; tokenizers fail on it much later.
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise error_at(path, f"field {name!r} contains an unpaired surrogate escape (\\ud800-\\udfff)",
                       number) from None
    return value


def _parse_row(path: Path, number: int, text: str) -> Example:
    try:
        row = json.loads(text)
    except json.JSONDecodeError as exc:
        raise error_at(path, f"invalid JSON at column {exc.colno}: {exc.msg} (expected one JSON object per line)",
                       number) from None
    except ValueError as exc:  # e.g. an integer longer than Python's 4300-digit limit
        raise error_at(path, f"invalid JSON: {one_line(str(exc))} (expected one JSON object per line)",
                       number) from None
    except RecursionError:
        raise error_at(path, "invalid JSON: nested too deeply (expected one JSON object per line)", number) from None
    if not isinstance(row, dict):
        raise error_at(path, f"expected a JSON object, got {_json_type(row)}", number)
    for name in REQUIRED_FIELDS:
        if name not in row:
            raise error_at(path, f"missing field {name!r} (each row needs {', '.join(REQUIRED_FIELDS)})", number)
    source = _string_field(path, number, row, "source")
    target = _string_field(path, number, row, "target")
    lang = parse_language(path, number, _string_field(path, number, row, "source_lang"))
    pub_number = None
    if row.get("pub_number") is not None:
        pub_number = _string_field(path, number, row, "pub_number").strip() or None
    return Example(source.strip(), target.strip(), lang, other_language(lang), pub_number, number)


def read_jsonl(path: Path) -> Iterator[Example]:
    """Yield every row of `path`, validated, streaming line by line.

    A generator: file errors (missing, directory, unreadable) are raised on the first `next()`, and an empty file
    is reported after the last line.
    """
    path = Path(path)
    handle = open_binary(path, "a JSON Lines file")
    rows = 0
    with handle:
        number = 0
        try:
            for number, raw in enumerate(handle, start=1):
                if number == 1 and raw.startswith((b"\xff\xfe", b"\xfe\xff")):
                    raise error_at(path, "is UTF-16; csas reads JSON Lines as UTF-8: save it as UTF-8", number)
                if number == 1 and looks_utf16(raw[:200]):
                    raise error_at(path, UTF16_WITHOUT_MARK, number)
                if number == 1 and raw.startswith(BOM):
                    raw = raw[len(BOM):]
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise error_at(path, f"invalid UTF-8 at byte {exc.start + 1} of the line (csas reads UTF-8 text)",
                                   number) from None
                stripped = text.strip()
                if not stripped:
                    continue
                if rows == 0 and stripped.startswith("["):
                    raise error_at(path, "looks like a JSON array; csas expects JSON Lines, one object per line",
                                   number)
                rows += 1
                yield _parse_row(path, number, text)
        except OSError as exc:
            raise read_error(path, exc, number + 1) from None
    if rows == 0:
        raise error_at(path, "is empty; expected JSON Lines, one object per line")


def read_pairs(path: Path, options: ReadOptions = ReadOptions(), counts: ReadCounts | None = None) -> Iterator[Example]:
    """Yield every row of `path`, validated and streaming: `SOURCE,TARGET` line-aligned files
    (`aligned.read_aligned`); else as the extension says (case-insensitive): `.tmx` a TMX translation memory
    (`tmx.read_tmx`, which takes `options`), `.tsv` tab-separated values (`tsv.read_tsv`), anything else JSON Lines
    (`read_jsonl`). `counts` receives what the reader skipped or chose between.

    Like `read_jsonl`, a generator: rows with an empty source or target are yielded (`load_examples` drops them),
    and errors surface on the `next()` that reaches them.
    """
    from .aligned import aligned_paths, read_aligned

    files = aligned_paths(path)
    if files is not None:
        return read_aligned(*files, counts)
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".tmx":
        from .tmx import read_tmx

        return read_tmx(path, options, counts)
    if suffix == ".tsv":
        from .tsv import read_tsv

        return read_tsv(path)
    return read_jsonl(path)


def pairs_sha256(path: Path) -> str:
    """The sha256 of a pairs file (what run.json records and a resume checks); of both, for line-aligned files."""
    from .aligned import aligned_paths

    files = aligned_paths(path)
    if files is None:
        return file_sha256(Path(path))
    return hashlib.sha256("\n".join(file_sha256(f) for f in files).encode()).hexdigest()


def example_record(example: Example) -> dict[str, str]:
    """The JSON Lines object that `read_jsonl` reads back as `example` (its line aside): source, target,
    source_lang and, unless None, pub_number."""
    record = {"source": example.source, "target": example.target, "source_lang": example.source_lang}
    if example.pub_number is not None:
        record["pub_number"] = example.pub_number
    return record


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


def reversed_example(example: Example) -> Example:
    """The pair the other way round: its target as the source (same line and publication)."""
    return Example(example.target, example.source, example.target_lang, example.source_lang, example.pub_number,
                   example.line)  # fmt: skip


def with_reverses(examples: Iterable[Example]) -> Iterator[tuple[Example, bool]]:
    """Each row, then its reverse unless the data already hold it (a TMX `*all*` unit, a memory with both
    directions: each row the other way round stands for one reverse): (row, whether it is a reverse)."""
    rows = list(examples)
    held = Counter((e.source_lang, e.source, e.target) for e in rows)
    for example in rows:
        yield example, False
        reverse = reversed_example(example)
        key = (reverse.source_lang, reverse.source, reverse.target)
        if held[key] > 0:
            held[key] -= 1
        else:
            yield reverse, True


def load_examples(
    path: Path, source_langs: Sequence[str], options: ReadOptions = ReadOptions(), both_directions: bool = False
) -> LoadedData:
    """Read all of `path` with `read_pairs` (every row is validated; `options` as read_pairs takes them) and keep the
    non-empty rows whose source_lang is wanted; with `both_directions` every row also serves reversed.

    Raises `DataError` when no row is left. `source_langs` comes from the registry; an unknown code is a bug
    (`ValueError`).
    """
    wanted = tuple(dict.fromkeys(lang.strip().lower() for lang in source_langs))
    unknown = [lang for lang in wanted if lang not in LANGUAGES]
    if not wanted or unknown:
        raise ValueError(f"source_langs must be a non-empty subset of {LANGUAGES}, got {tuple(source_langs)}")
    examples: list[Example] = []
    rows_read = rows_other = rows_empty = rows_reversed = 0
    read = ReadCounts()
    rows = read_pairs(path, options, read)
    for example, reverse in with_reverses(rows) if both_directions else ((row, False) for row in rows):
        rows_read += not reverse
        if example.source_lang not in wanted:
            rows_other += not both_directions  # with both directions every row serves, as it is or reversed
        elif not example.source or not example.target:
            rows_empty += not reverse
        else:
            examples.append(example)
            rows_reversed += reverse
    if not examples:
        hint = "; --both-directions trains on them reversed" if rows_other and not both_directions else ""
        read_count = counted(rows_read, "row")
        raise error_at(Path(path), f"no rows with source_lang {' or '.join(wanted)} ({read_count} read, 0 kept; "
                            f"{rows_other} with another source_lang, {rows_empty} with empty source or "
                            f"target{hint})")  # fmt: skip
    return LoadedData(examples, rows_read, rows_other, rows_empty, read, rows_reversed)


def split_examples(
    examples: Sequence[Example],
    val_ratio: float,
    seed: int,
    *,
    max_train: int | None = None,
    max_eval: int | None = None,
) -> Split:
    """Split `examples` into train and eval, keeping each publication wholly on one side, then cap each side.

    Rows sharing a pub_number form one group; a row without one is a group with the rows of the same line that hold
    the same two sentences (a pair and its reverse: a TMX `*all*` unit, --both-directions). Groups are sorted by key and
    shuffled with `random.Random(seed)`; in that order, each group that still fits goes to eval, until eval holds
    `max(1, ceil(val_ratio * len(examples)))` rows, so one large publication cannot swallow the data. When no group
    fits, eval gets the first smallest one. The last shuffled group always stays in train: with val_ratio > 0 and at
    least two groups, eval gets at least one group and train keeps at least one; with a single group, or val_ratio
    0, eval is empty. Both sides keep input order.

    `max_train`/`max_eval` (None: no cap) are applied after the split, by `subsample`, so the caps never move a
    publication across the split: they only thin each side out.
    """
    if not (0.0 <= val_ratio < 1.0):
        raise ValueError(f"val_ratio must be in [0, 1), got {val_ratio}")
    groups: dict[tuple[int, str, int, str, str], list[int]] = {}
    for index, example in enumerate(examples):
        # Publications sort before single rows; a single row is keyed by its line and its two sentences, which tell
        # rows of the same line in different files apart and keep a pair with its reverse.
        sides = sorted((example.source, example.target))
        key = (0, example.pub_number, 0, "", "") if example.pub_number is not None else (1, "", example.line, *sides)
        groups.setdefault(key, []).append(index)
    order = [groups[key] for key in sorted(groups)]
    random.Random(seed).shuffle(order)
    # round() first so that float noise (0.1 * 30 = 3.0000000000000004) does not add a row.
    eval_rows = max(1, math.ceil(round(val_ratio * len(examples), 9))) if val_ratio > 0 else 0
    in_eval: set[int] = set()
    candidates = order[:-1]
    for group in candidates:
        if len(in_eval) >= eval_rows:
            break
        if len(in_eval) + len(group) <= eval_rows:
            in_eval.update(group)
    if eval_rows and not in_eval and candidates:
        in_eval.update(min(candidates, key=len))
    train = subsample([ex for i, ex in enumerate(examples) if i not in in_eval], max_train, seed)
    evaluation = subsample([ex for i, ex in enumerate(examples) if i in in_eval], max_eval, seed)
    return Split(
        train=train,
        eval=evaluation,
        train_publications=len({ex.pub_number for ex in train if ex.pub_number is not None}),
        eval_publications=len({ex.pub_number for ex in evaluation if ex.pub_number is not None}),
    )


def subsample(examples: Sequence[Example], limit: int | None, seed: int) -> list[Example]:
    """At most `limit` rows: the first `limit` of a `random.Random(seed)` shuffle, returned in input order.

    Drawn at random rather than from the file's head, which is often sorted by publication or date; a smaller limit
    gives a subset of a larger one (the same shuffle, a shorter prefix). None, or a limit not below the row count,
    keeps every row.
    """
    if limit is None or limit >= len(examples):
        return list(examples)
    return [examples[i] for i in seeded_sample(len(examples), limit, seed)]


def seeded_sample(n: int, size: int, seed: int | str) -> list[int]:
    """Indices of `size` of range(n): the first `size` of a `random.Random(seed)` shuffle, in ascending order (all of
    them when size >= n). A smaller size gives a subset of a larger one."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return sorted(order[:size])


__all__ = [
    "PAIR_FORMATS", "STDOUT", "Example", "LoadedData", "ReadCounts", "ReadOptions", "Split", "check_jsonl_output",
    "example_record", "load_examples", "pairs_sha256", "read_jsonl", "read_pairs", "seeded_sample", "split_examples",
    "subsample", "write_jsonl",
]  # fmt: skip
