"""Training pairs from two line-aligned text files, as OPUS (its Moses format) and every MT test set distribute them:
line N of the source file translates line N of the target file.

Named `SOURCE_FILE,TARGET_FILE` wherever pairs are read (`--data corpus.en-fr.en,corpus.en-fr.fr`, `csas convert
flores.eng,flores.fra OUT`): two paths joined by a comma, where no file of that whole name exists. Each file's
language comes from its name (registry.file_language: `corpus.en-fr.en`, `newstest2014.fr`, `.eng`, `.fra`,
FLORES's `eng_Latn.devtest`, regional forms such as `.en_CA`); a name that does not say is refused, asking for one
that does, and so are two files of one language. The first file is the source.

The files are UTF-8 (a byte order mark allowed) or UTF-16 with its mark, read line by line together (a corpus of
any size in constant space); a line ends at a line feed only (a carriage return before it is dropped), so a U+2028
inside a sentence cannot shift the alignment. Files of different line counts are refused in one line naming both
counts (blank lines at the end of one file aside). A line empty on one side is skipped and counted (`ReadCounts.lines_one_sided`); a line empty on both is
skipped. Each row's line is its line number in both files. Standard library only.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

from ..registry import LANGUAGES, file_language, other_language
from .rows import Example, ReadCounts, error_at, open_binary, read_error
from .tsv import text_lines

SEPARATOR = ","
"""Between the two paths of line-aligned files."""
NAMES_HELP = ("name each file by its language, as OPUS and test sets do (corpus.en, corpus.fr; .eng, .fra; "
              "eng_Latn.devtest)")


def aligned_paths(path: Path | str) -> tuple[Path, Path] | None:
    """`SOURCE,TARGET` as two paths, when `path` is two paths joined by a comma and not itself a file; else None."""
    text = str(path)
    if SEPARATOR not in text or Path(text).exists():
        return None
    parts = text.split(SEPARATOR)
    if len(parts) != 2 or not all(p.strip() for p in parts):
        return None
    return Path(parts[0].strip()), Path(parts[1].strip())


def languages_of(source: Path, target: Path) -> tuple[str, str]:
    """The two files' languages, from their names (see the module docstring)."""
    langs = []
    for path in (source, target):
        lang = file_language(path.name)
        if lang is None:
            raise error_at(path, f"its name does not say its language; {NAMES_HELP}")
        langs.append(lang)
    if langs[0] == langs[1]:
        language = "English" if langs[0] == "en" else "French"
        raise error_at(target, f"both line-aligned files are {language} by their names ({source.name}, {target.name}); "
                        "expected one English and one French file")  # fmt: skip
    assert all(lang in LANGUAGES for lang in langs)
    return langs[0], langs[1]


def one_line(text: str) -> str:
    """A line's text: stripped, a carriage return inside it (an old Mac line end) read as a space."""
    return text.replace("\r", " ").strip()


def read_aligned(source: Path, target: Path, counts: ReadCounts | None = None) -> Iterator[Example]:
    """Yield the pairs of two line-aligned files, validated, streaming (see the module docstring); `counts` receives
    the lines empty on one side."""
    source_lang, target_lang = languages_of(source, target)
    assert target_lang == other_language(source_lang)
    counts = ReadCounts() if counts is None else counts
    rows = 0
    with open_binary(source, "a text file") as left, open_binary(target, "a text file") as right:
        lines = itertools.zip_longest(text_lines(source, left), text_lines(target, right))
        number = 0
        try:
            ended: int | None = None
            """The line count of the file that ended first."""
            for number, (a, b) in enumerate(lines, start=1):
                if a is None or b is None:
                    ended = number - 1 if ended is None else ended
                    if not (a or b)[1].strip():  # blank lines at the end of the longer file
                        continue
                    short = a is None
                    longer = number + sum(1 for _ in lines)
                    raise error_at(source, f"{ended if short else longer} lines, but {target} has "
                                    f"{longer if short else ended}; line-aligned files must have as many "
                                    "lines")  # fmt: skip
                text_a, text_b = one_line(a[1]), one_line(b[1])
                if not text_a and not text_b:
                    continue
                if not text_a or not text_b:
                    counts.lines_one_sided += 1
                    continue
                rows += 1
                yield Example(text_a, text_b, source_lang, target_lang, None, number)
        except OSError as exc:
            raise read_error(source, exc, number + 1) from None
    if rows == 0:
        raise error_at(source, f"no line holds text on both sides (with {target})")


__all__ = ["SEPARATOR", "aligned_paths", "languages_of", "read_aligned"]
