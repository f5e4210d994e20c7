"""`csas translate`: read sentences, translate them in length-sorted batches, write one line per input line.

Inputs: a text file (one sentence per line), `-` for stdin, or a `.jsonl` file whose rows have a `source` field
(pairs, as `csas finetune` reads them). Empty lines give empty output lines; a translation that contains a line break
has it replaced by a space, so output line N always belongs to input line N. Batches are sorted by token length to
cut padding (longest first, so running out of memory shows at once) and the output is put back in input order.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from .errors import DataError, OutputError, SettingsError
from .inference import Direction, GenerationSettings, LoadedModel

STDIN = "-"
_BOM = "\ufeff"
# Everything str.splitlines() breaks on: none of it may survive inside one output line.
_LINE_BREAKS = "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_ONE_LINE = str.maketrans({c: " " for c in _LINE_BREAKS})


def single_line(text: str) -> str:
    """`text` on one line: line breaks become spaces, ends stripped."""
    return text.translate(_ONE_LINE).strip()


def decode_text(path_label: str, data: bytes) -> list[str]:
    """Lines of UTF-8 text (BOM dropped, LF or CRLF ends); a final line end does not add an empty line."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = []
    for number, raw in enumerate(lines, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{path_label}:{number}: invalid UTF-8 at byte {exc.start + 1} of the line "
                            "(csas reads UTF-8 text)") from None  # fmt: skip
        if number == 1 and text.startswith(_BOM):
            text = text[1:]
        out.append(text.rstrip("\r"))
    return out


def read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a text or JSON Lines file") from None
    except PermissionError:
        raise DataError(f"{path}: cannot be read (permission denied)") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def jsonl_sources(path_label: str, lines: Sequence[str], direction: Direction) -> list[str]:
    """The `source` of every row (blank lines skipped); a row in the other language is an error, not a guess."""
    sources = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError, ValueError) as exc:
            raise DataError(f"{path_label}:{number}: invalid JSON ({' '.join(str(exc).split())}); "
                            "expected one object per line") from None  # fmt: skip
        if not isinstance(row, dict) or not isinstance(row.get("source"), str):
            raise DataError(f"{path_label}:{number}: expected an object with a string field 'source'")
        lang = row.get("source_lang")
        if isinstance(lang, str) and lang.strip().lower() != direction.source:
            raise DataError(
                f"{path_label}:{number}: source_lang {lang.strip()!r}, but the model translates {direction}; keep "
                f"only {direction.source} rows (csas evaluate picks them itself)"
            )
        sources.append(row["source"])
    if not sources:
        raise DataError(f"{path_label}: no rows; expected JSON Lines with a 'source' field")
    return sources


def read_sources(input_path: str, direction: Direction, stdin: Any = None) -> list[str]:
    """The sentences to translate from a text file, `-` (stdin) or a .jsonl file of pairs."""
    if input_path == STDIN:
        stream = stdin if stdin is not None else sys.stdin
        data = stream.buffer.read() if hasattr(stream, "buffer") else stream.read()
        data = data.encode("utf-8") if isinstance(data, str) else data
        return decode_text("<stdin>", data)
    path = Path(input_path)
    lines = decode_text(str(path), read_bytes(path))
    if path.suffix.lower() == ".jsonl":
        return jsonl_sources(str(path), lines, direction)
    return lines


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first (ties keep input order)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def fit_length(ids: Sequence[int], limit: int) -> list[int]:
    """Cut a tokenized source to `limit` tokens, keeping its closing token (</s>) so the encoder sees an end."""
    ids = list(ids)
    return ids if len(ids) <= limit else ids[: limit - 1] + ids[-1:]


@dataclass(frozen=True)
class Translation:
    lines: list[str]
    """One translation per input sentence, in input order; "" for an empty input line."""
    truncated: int
    """Inputs longer than the model takes, cut to fit."""


def translate_texts(
    loaded: LoadedModel,
    texts: Sequence[str],
    direction: Direction,
    settings: GenerationSettings,
    advance: Callable[[int], None] = lambda n: None,
) -> Translation:
    """Translate `texts` with `loaded`; `advance(n)` is called after each batch of n sentences."""
    loaded.use_direction(direction)
    wanted = [i for i, text in enumerate(texts) if text.strip()]
    out = [""] * len(texts)
    if not wanted:
        return Translation(out, 0)
    limit = loaded.max_source_tokens
    encoded = loaded.tokenizer([texts[i].strip() for i in wanted])["input_ids"]
    truncated = sum(len(ids) > limit for ids in encoded)
    lines = translate_encoded(loaded, [fit_length(ids, limit) for ids in encoded], settings, advance)
    for i, line in zip(wanted, lines):
        out[i] = line
    return Translation(out, truncated)


def translate_encoded(
    loaded: LoadedModel,
    encoded: Sequence[Sequence[int]],
    settings: GenerationSettings,
    advance: Callable[[int], None] = lambda n: None,
) -> list[str]:
    """Translate tokenized sources (in the direction `loaded.use_direction` set) in length-sorted batches; one line
    per source, in input order. Evaluation during training calls it with the validation pairs' token ids."""
    out = [""] * len(encoded)
    for batch in length_sorted_batches([len(ids) for ids in encoded], settings.batch_size):
        generated = loaded.generate_ids([encoded[j] for j in batch], settings)
        for j, text in zip(batch, loaded.decode(generated)):
            out[j] = single_line(text)
        advance(len(batch))
    return out


@contextmanager
def progress(total: int, enabled: bool, label: str = "translating") -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr when `enabled` (a terminal), else a silent counter."""
    if not enabled or total == 0:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=Console(file=sys.stderr), transient=True,
    )  # fmt: skip
    task = bar.add_task(label, total=total)
    with bar:
        yield lambda n: bar.advance(task, n)


def check_output_file(path: Path | None, overwrite: bool, flag: str = "--output") -> None:
    """Refuse, before any model loads, to replace a file the user did not ask to replace."""
    if path is None:
        return
    if path.is_dir():
        raise OutputError(f"{flag} {path}: is a directory")
    if path.exists() and not overwrite:
        raise OutputError(f"{flag} {path}: exists; pass --overwrite to replace it")
    parent = path.absolute().parent
    if not parent.is_dir():
        raise OutputError(f"{flag} {path}: no such directory {parent}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{flag} {path}: {parent} is not writable")


def write_lines(lines: Sequence[str], path: Path | None, stdout: Any = None, flag: str = "--output") -> None:
    """Exactly one line per entry, to `path` (written under a temporary name, then renamed) or stdout."""
    text = "".join(line + "\n" for line in lines)
    if path is None:
        (stdout or sys.stdout).write(text)
        return
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{flag} {path}: cannot be written ({exc.strerror or exc})") from None


def run_translate(
    *,
    input_path: str,
    model: Path | None,
    which: str | None,
    model_id: str | None,
    source_lang: str | None,
    output: Path | None,
    overwrite: bool,
    settings: GenerationSettings,
    say: Callable[[str], None],
    bar: bool,
) -> list[str]:
    """Everything `csas translate` does; returns the translated lines (also written to --output or stdout)."""
    from .inference import load_for_inference, resolve_direction, resolve_source

    if output is not None and input_path != STDIN and Path(input_path).absolute() == output.absolute():
        raise SettingsError(f"--output {output}: the same file as the input")
    source = resolve_source(model, which, model_id)
    direction = resolve_direction(source.spec, source_lang)
    check_output_file(output, overwrite)
    texts = read_sources(input_path, direction)
    loaded = load_for_inference(source)
    with progress(sum(1 for t in texts if t.strip()), bar) as advance:
        result = translate_texts(loaded, texts, direction, settings, advance)
    if result.truncated:
        say(f"warning: {result.truncated} input lines were longer than {loaded.max_source_tokens} tokens and were cut")
    write_lines(result.lines, output)
    return result.lines


__all__ = [
    "Translation",
    "check_output_file",
    "fit_length",
    "length_sorted_batches",
    "read_sources",
    "run_translate",
    "single_line",
    "translate_encoded",
    "translate_texts",
    "write_lines",
]
