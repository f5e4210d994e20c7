"""`csas translate`: read sentences, translate them (inference/generation.py), write one line per input line.

Inputs: a text file (one sentence per line), `-` for stdin, a `.jsonl` file whose rows have a `source` field
(pairs, as `csas finetune` reads them), or a `.tmx` / `.tsv` file of pairs, whose rows in the model's source language
are translated. Empty lines give empty output lines; a line of text of several sentences is translated sentence by
sentence and joined back with its own spacing (data/sentences.py; --no-split translates each line whole), while the
rows of a pairs file, segments already, are translated whole.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from ..data.aligned import aligned_paths
from ..data.fit import GlossaryOptions
from ..data.pairs import PAIR_FORMATS
from ..data.rows import ReadOptions, open_binary, read_error
from ..data.sentences import Piece
from ..data.sentences import join as join_sentences
from ..data.sentences import split as split_sentences
from ..errors import DataError, SettingsError
from ..files import check_output_file, write_lines
from ..inference.generation import GenerationSettings, Runtime
from ..languages import Direction
from ..inference.source import ModelChoice
from ..progress import counted, counting_bar
from ..progress import say as say_line
from ..registry import primary_language

STDIN = "-"
_BOM = "\ufeff"


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
    """The whole file; a missing, unreadable or directory path is a one-line DataError, as for every pairs file."""
    with open_binary(path, "a text or JSON Lines file") as handle:
        try:
            return handle.read()
        except OSError as exc:
            raise read_error(path, exc) from None


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
        if isinstance(lang, str) and primary_language(lang) != direction.source:
            raise DataError(
                f"{path_label}:{number}: source_lang {lang.strip()!r}, but the model translates {direction}; keep "
                f"only {direction.source} rows (csas evaluate picks them itself)"
            )
        sources.append(row["source"])
    if not sources:
        raise DataError(f"{path_label}: no rows; expected JSON Lines with a 'source' field")
    return sources


def pair_sources(path: Path, direction: Direction, reading: ReadOptions = ReadOptions()) -> list[str]:
    """The sources of a translation memory's or TSV file's rows in the model's source language, in file order."""
    from ..data.pairs import read_pairs

    sources = [ex.source for ex in read_pairs(path, reading) if ex.source_lang == direction.source]
    if not sources:
        raise DataError(f"{path}: no rows with source language {direction.source} (the model translates {direction})")
    return sources


def is_pairs_file(input_path: str) -> bool:
    """A pairs file (JSON Lines, a memory, TSV, line-aligned files): rows, not paragraphs of text."""
    if input_path == STDIN:
        return False
    path = Path(input_path)
    return path.suffix.lower() in PAIR_FORMATS or aligned_paths(path) is not None


def read_sources(
    input_path: str, direction: Direction, stdin: Any = None, reading: ReadOptions = ReadOptions()
) -> list[str]:
    """The sentences to translate from a text file, `-` (stdin), a .jsonl file of pairs, or pairs in another format
    (a memory, a TSV file, line-aligned files)."""
    if input_path == STDIN:
        stream = stdin if stdin is not None else sys.stdin
        data = stream.buffer.read() if hasattr(stream, "buffer") else stream.read()
        data = data.encode("utf-8") if isinstance(data, str) else data
        return decode_text("<stdin>", data)
    path = Path(input_path)
    if path.suffix.lower() in PAIR_FORMATS and path.suffix.lower() != ".jsonl" or aligned_paths(path) is not None:
        return pair_sources(path, direction, reading)
    lines = decode_text(str(path), read_bytes(path))
    if path.suffix.lower() == ".jsonl":
        return jsonl_sources(str(path), lines, direction)
    return lines


def run_translate(
    input_path: str, choice: ModelChoice, settings: GenerationSettings, *, output: Path | None = None,
    overwrite: bool = False, runtime: Runtime = Runtime(), terms: GlossaryOptions = GlossaryOptions(),
    reading: ReadOptions = ReadOptions(), bar: bool = False, say: Callable[[str], None] = say_line,
    split: bool = True,
) -> list[str]:
    """Everything `csas translate` does; returns the translated lines (also written to --output or stdout). Each
    line's sentences are translated one by one (`split`; False: each line whole). With a glossary, sources are
    annotated with its terms (`terms.apply_glossary`; None: when the model was trained with --term-annotation)
    and/or its terms constrain decoding (those `terms` chooses: data/fit.py)."""
    from ..inference.constraints import term_constraints_for
    from ..inference.generation import load_for_inference, translate_texts
    from ..inference.source import resolve_direction

    if output is not None and input_path != STDIN and Path(input_path).absolute() == output.absolute():
        raise SettingsError(f"--output {output}: the same file as the input")
    apply_glossary = terms.apply_glossary
    if terms.glossary is not None and apply_glossary is False and not terms.term_constraints:
        raise SettingsError("--glossary with --no-apply-glossary does nothing: add --term-constraints or drop both")
    if apply_glossary and terms.glossary is None:
        raise SettingsError("--apply-glossary needs --glossary FILE")
    source = choice.source()
    direction = resolve_direction(source.spec, choice.source_lang)
    glossary = terms.read()
    constraints = None
    if glossary is not None:
        if terms.term_constraints:
            term_constraints_for(glossary, source, direction)  # an exported model is refused before any work
        say(glossary.describe())
        if terms.term_constraints:
            forced = terms.forced(glossary, direction.source, direction.target, reading=reading)
            say(f"term constraints: {forced.describe()}")
            constraints = term_constraints_for(glossary, source, direction, forced.entries)
    check_output_file(output, overwrite)
    lines = read_sources(input_path, direction, reading=reading)
    # Each line's sentences (data/sentences.py), translated one by one and joined back with the line's spacing; the
    # rows of a pairs file are segments already (as evaluate and training take them) and are translated whole.
    split = split and not is_pairs_file(input_path)
    pieces = [split_sentences(line, direction.source) if split else [Piece("", line, "")] for line in lines]
    texts = [p.text for line_pieces in pieces for p in line_pieces if p.text.strip()]
    if terms.annotates(source.term_annotation, say):
        from ..data.terms import Annotator

        annotator = Annotator(glossary, direction.source, direction.target)
        texts = [annotator.source(text) for text in texts]
    loaded = load_for_inference(source, say=say, runtime=runtime)
    lines_with_text = sum(1 for line in lines if line.strip())
    in_lines = f" in {counted(lines_with_text, 'line')}" if len(texts) != lines_with_text else ""
    say(f"translating {counted(len(texts), 'sentence')}{in_lines} ({direction}) with {source.label}")
    with counting_bar(len(texts), bar, "translating", say=say) as advance:
        result = translate_texts(loaded, texts, direction, settings, advance, constraints)
    if result.truncated:
        say(f"warning: {counted(result.truncated, 'sentence' if split else 'input line')} longer than "
            f"{loaded.max_source_tokens} tokens {'was' if result.truncated == 1 else 'were'} cut")  # fmt: skip
    translated = iter(result.lines)
    out = []
    for line, line_pieces in zip(lines, pieces):
        texts_here = [next(translated) for p in line_pieces if p.text.strip()]
        out.append(join_sentences(line_pieces, texts_here) if texts_here else "")
    write_lines(out, output)
    return out


__all__ = ["decode_text", "read_sources", "run_translate"]
