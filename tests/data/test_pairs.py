"""Tests for csas_cli.data.pairs: reading, validating, filtering and splitting the training data."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from csas_cli.data.pairs import Example, LoadedData, Split, load_examples, read_jsonl, split_examples, subsample
from csas_cli.errors import DataError


def row(source: str = "Hello", target: str = "Bonjour", lang: str = "en", pub: str | None = "P1", **extra) -> dict:
    data = {"source": source, "target": target, "source_lang": lang, **extra}
    if pub is not None:
        data["pub_number"] = pub
    return data


def write_rows(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def write_bytes(tmp_path: Path, data: bytes, name: str = "data.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def refused(path: Path, line: int | None = None) -> str:
    """Read `path` fully, expecting a DataError; check the message's shape and return it."""
    with pytest.raises(DataError) as info:
        list(read_jsonl(path))
    message = str(info.value)
    assert len(message.splitlines()) == 1, message
    prefix = f"{path}:{line}: " if line is not None else f"{path}: "
    assert message.startswith(prefix), message
    return message


def ex(line: int, pub: str | None = None, lang: str = "en") -> Example:
    return Example(f"s{line}", f"t{line}", lang, "fr" if lang == "en" else "en", pub, line)


# --- accepted quirks -------------------------------------------------------------------------------------------


def test_reads_rows_and_normalises(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "d.jsonl", [
        row("  Hello ", " Bonjour\n", " EN ", " P1 "),
        row("Salut", "Hi", "Fr", None),
        row("x", "y", "en", pub=None, pub_number=None),
        row("x", "y", "en", pub="   "),
    ])
    examples = list(read_jsonl(path))
    assert examples[0] == Example("Hello", "Bonjour", "en", "fr", "P1", 1)
    assert examples[1] == Example("Salut", "Hi", "fr", "en", None, 2)
    assert examples[2].pub_number is None  # null counts as absent
    assert examples[3].pub_number is None  # blank counts as absent


def test_bom_crlf_blank_lines_and_extra_fields(tmp_path: Path) -> None:
    lines = [json.dumps(row("A", "B", extra=[1, {"k": None}], score=0.5)), "", "   \t", json.dumps(row("C", "D")), ""]
    path = write_bytes(tmp_path, b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n  \r\n")
    examples = list(read_jsonl(path))
    assert [(e.source, e.target, e.line) for e in examples] == [("A", "B", 1), ("C", "D", 4)]


def test_bom_then_blank_line_then_row(tmp_path: Path) -> None:
    path = write_bytes(tmp_path, b"\xef\xbb\xbf\n" + json.dumps(row()).encode())  # no final newline either
    assert [e.line for e in read_jsonl(path)] == [2]


def test_non_ascii_text(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "d.jsonl", [row("Où est l’été ?", "Where is summer?", "fr")])
    assert next(read_jsonl(path)).source == "Où est l’été ?"


def test_read_jsonl_streams(tmp_path: Path) -> None:
    # The second line is broken; the first row must come out before it is looked at.
    path = write_bytes(tmp_path, json.dumps(row()).encode() + b"\n{broken\n")
    rows = read_jsonl(path)
    assert next(rows).line == 1
    with pytest.raises(DataError, match=":2: "):
        next(rows)


def test_accepts_str_path(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "d.jsonl", [row()])
    assert len(list(read_jsonl(str(path)))) == 1  # type: ignore[arg-type]


# --- refusals --------------------------------------------------------------------------------------------------


def test_broken_json_names_line_and_column(tmp_path: Path) -> None:
    path = write_bytes(tmp_path, json.dumps(row()).encode() + b'\n\n{"source": "a", "target": }\n')
    message = refused(path, 3)
    assert "column 27" in message and "JSON" in message


def test_truncated_json(tmp_path: Path) -> None:
    message = refused(write_bytes(tmp_path, b'{"source": "a"\n'), 1)
    assert "column" in message


def test_two_objects_on_one_line(tmp_path: Path) -> None:
    line = json.dumps(row()).encode()
    assert "column" in refused(write_bytes(tmp_path, line + b" " + line + b"\n"), 1)


def test_bom_not_at_file_start_is_refused(tmp_path: Path) -> None:
    path = write_bytes(tmp_path, json.dumps(row()).encode() + b"\n\xef\xbb\xbf" + json.dumps(row()).encode())
    refused(path, 2)


def test_huge_integer_is_refused(tmp_path: Path) -> None:
    path = write_bytes(tmp_path, b'{"source": "a", "target": "b", "source_lang": "en", "n": ' + b"9" * 5000 + b"}\n")
    assert "invalid JSON" in refused(path, 1)


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    depth = sys.getrecursionlimit() + 100
    path = write_bytes(tmp_path, b'{"source": "a", "x": ' + b"[" * depth + b"]" * depth + b"}\n")
    assert "invalid JSON" in refused(path, 1)


@pytest.mark.parametrize(("text", "kind"), [("42", "number"), ('"text"', "string"), ("null", "null"),
                                            ("true", "boolean")])
def test_json_that_is_not_an_object(tmp_path: Path, text: str, kind: str) -> None:
    path = write_bytes(tmp_path, json.dumps(row()).encode() + b"\n" + text.encode() + b"\n")
    message = refused(path, 2)
    assert "expected a JSON object" in message and kind in message


def test_array_on_a_later_line_is_not_an_object(tmp_path: Path) -> None:
    path = write_bytes(tmp_path, json.dumps(row()).encode() + b"\n[1, 2]\n")
    assert "expected a JSON object, got array" in refused(path, 2)


@pytest.mark.parametrize("content", [
    b'[{"source": "a", "target": "b", "source_lang": "en"}]',
    b'\n  \n[\n  {"source": "a", "target": "b", "source_lang": "en"}\n]\n',
    b"\xef\xbb\xbf[]",
])
def test_json_array_file(tmp_path: Path, content: bytes) -> None:
    first = next(i for i, line in enumerate(content.split(b"\n"), 1) if line.strip(b"\xef\xbb\xbf \t\r"))
    message = refused(write_bytes(tmp_path, content), first)
    assert "JSON Lines" in message and "one object per line" in message


@pytest.mark.parametrize("field", ["source", "target", "source_lang"])
def test_missing_field(tmp_path: Path, field: str) -> None:
    data = row()
    del data[field]
    path = write_rows(tmp_path / "d.jsonl", [row(), row(), data])
    message = refused(path, 3)
    assert f"missing field '{field}'" in message and "source, target, source_lang" in message


@pytest.mark.parametrize(("field", "value", "kind"), [
    ("source", 1, "number"), ("target", None, "null"), ("target", ["a"], "array"), ("source_lang", True, "boolean"),
    ("pub_number", 1234, "number"), ("pub_number", {"id": 1}, "object"), ("source", 1.5, "number"),
])
def test_non_string_field(tmp_path: Path, field: str, value: object, kind: str) -> None:
    data = row()
    data[field] = value
    message = refused(write_rows(tmp_path / "d.jsonl", [data]), 1)
    assert f"field '{field}' must be a string, got {kind}" in message


@pytest.mark.parametrize("lang", ["de", "", "english", "en\nfr"])
def test_unknown_source_lang(tmp_path: Path, lang: str) -> None:
    message = refused(write_rows(tmp_path / "d.jsonl", [row(), row(lang=lang)]), 2)
    assert "source_lang" in message and "'en' or 'fr'" in message


def test_unpaired_surrogate_is_refused(tmp_path: Path) -> None:
    path = write_bytes(tmp_path, b'{"source": "a\\ud800", "target": "b", "source_lang": "en"}\n')
    assert "surrogate" in refused(path, 1)


@pytest.mark.parametrize("content", [b"", b"\n\n", b"  \r\n\t\r\n", b"\xef\xbb\xbf", b"\xef\xbb\xbf\r\n"])
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    assert "empty" in refused(write_bytes(tmp_path, content))


def test_invalid_utf8_names_line(tmp_path: Path) -> None:
    bad = b'{"source": "caf\xe9", "target": "b", "source_lang": "en"}\n'  # Latin-1, not UTF-8
    path = write_bytes(tmp_path, json.dumps(row()).encode() + b"\n\n" + bad)
    assert "UTF-8" in refused(path, 3)


def test_utf16_file_is_refused(tmp_path: Path) -> None:
    path = write_bytes(tmp_path, (json.dumps(row()) + "\n").encode("utf-16"))
    assert "UTF-8" in refused(path, 1)


def test_missing_file(tmp_path: Path) -> None:
    assert "not found" in refused(tmp_path / "nope.jsonl")


def test_directory(tmp_path: Path) -> None:
    assert "directory" in refused(tmp_path)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs POSIX permissions and a non-root user")
def test_unreadable_file(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "d.jsonl", [row()])
    path.chmod(0)
    try:
        assert "permission denied" in refused(path)
    finally:
        path.chmod(0o644)


def test_permission_error_without_chmod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Root ignores chmod 0, so the permission branch is also tested by making open() fail.
    path = write_rows(tmp_path / "d.jsonl", [row()])

    def denied(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", denied)
    assert "permission denied" in refused(path)


def test_read_failing_half_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_rows(tmp_path / "d.jsonl", [row(), row()])
    real_open = Path.open

    class Failing:
        def __init__(self, handle) -> None:
            self.handle = handle

        def __enter__(self) -> "Failing":
            return self

        def __exit__(self, *exc: object) -> None:
            self.handle.close()

        def __iter__(self):
            yield next(iter(self.handle))
            raise OSError(5, "Input/output error")

    monkeypatch.setattr(Path, "open", lambda self, *a, **k: Failing(real_open(self, *a, **k)))
    assert "Input/output error" in refused(path, 2)


def test_path_with_newline_stays_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "odd\nname.jsonl"
    with pytest.raises(DataError) as info:
        list(read_jsonl(path))
    assert len(str(info.value).splitlines()) == 1


def test_value_with_line_separator_stays_on_one_line(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        list(read_jsonl(write_rows(tmp_path / "d.jsonl", [row(lang="e\u2028n\x85")])))
    assert len(str(info.value).splitlines()) == 1


# --- load_examples -------------------------------------------------------------------------------------------


def test_load_filters_and_counts(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "d.jsonl", [
        row("a", "b", "en"), row("c", "d", "fr"), row("  ", "x", "en"), row("e", " ", "EN"), row("", "", "fr"),
        row("f", "g", "en"),
    ])
    loaded = load_examples(path, ["en"])
    assert isinstance(loaded, LoadedData)
    assert [e.line for e in loaded.examples] == [1, 6]
    assert (loaded.rows_read, loaded.rows_other_language, loaded.rows_empty) == (6, 2, 2)

    both = load_examples(path, ("en", "fr"))
    assert [e.line for e in both.examples] == [1, 2, 6]
    assert (both.rows_read, both.rows_other_language, both.rows_empty) == (6, 0, 3)
    assert [e.target_lang for e in both.examples] == ["fr", "en", "fr"]


def test_load_validates_rows_that_are_filtered_out(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "d.jsonl", [row(lang="en"), row(lang="fr", pub=None, source=3)])
    with pytest.raises(DataError, match=r":2: field 'source' must be a string"):
        load_examples(path, ["en"])


def test_load_no_rows_for_the_model(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "data.jsonl", [row(lang="fr"), row(lang="fr"), row(lang="fr")])
    with pytest.raises(DataError) as info:
        load_examples(path, ["en"])
    message = str(info.value)
    assert message.startswith(f"{path}: no rows with source_lang en (3 rows read, 0 kept")
    assert len(message.splitlines()) == 1


def test_load_only_empty_rows(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "data.jsonl", [row(source=" "), row(target="")])
    with pytest.raises(DataError, match=r"source_lang en or fr \(2 rows read, 0 kept; 0 with another source_lang, "
                                        r"2 with empty source or target\)"):
        load_examples(path, ["en", "fr"])


def test_load_passes_on_read_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_examples(tmp_path / "nope.jsonl", ["en"])


def test_load_rejects_bad_language_list(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "d.jsonl", [row()])
    with pytest.raises(ValueError):
        load_examples(path, ["de"])
    with pytest.raises(ValueError):
        load_examples(path, [])


# --- split_examples ------------------------------------------------------------------------------------------


def mixed(n_pubs: int = 12, per_pub: int = 4, singles: int = 10) -> list[Example]:
    """Publications interleaved with rows that have no pub_number."""
    examples = []
    line = 1
    for i in range(per_pub):
        for p in range(n_pubs):
            examples.append(ex(line, f"P{p}"))
            line += 1
        for _ in range(singles // per_pub + 1):
            examples.append(ex(line))
            line += 1
    return examples


def sides(split: Split) -> tuple[list[int], list[int]]:
    return [e.line for e in split.train], [e.line for e in split.eval]


def test_split_is_deterministic_and_seeded() -> None:
    examples = mixed()
    first = split_examples(examples, 0.2, seed=42)
    assert first == split_examples(examples, 0.2, seed=42)
    assert any(sides(split_examples(examples, 0.2, seed=s)) != sides(first) for s in (1, 2, 3))


def test_split_covers_everything_once_and_keeps_order() -> None:
    examples = mixed()
    split = split_examples(examples, 0.25, seed=7)
    train, evaluation = sides(split)
    assert train == sorted(train) and evaluation == sorted(evaluation)
    assert sorted(train + evaluation) == [e.line for e in examples]
    assert split.train and split.eval


def test_split_keeps_order_of_unsorted_input() -> None:
    examples = [ex(n, f"P{n % 3}") for n in (9, 2, 7, 4, 1, 8, 3, 6, 5)]
    for seed in range(5):
        split = split_examples(examples, 0.3, seed)
        position = {e.line: i for i, e in enumerate(examples)}
        for side in (split.train, split.eval):
            assert [position[e.line] for e in side] == sorted(position[e.line] for e in side)


@pytest.mark.parametrize("seed", range(10))
def test_split_publication_integrity(seed: int) -> None:
    split = split_examples(mixed(), 0.3, seed)
    train_pubs = {e.pub_number for e in split.train if e.pub_number}
    eval_pubs = {e.pub_number for e in split.eval if e.pub_number}
    assert not train_pubs & eval_pubs
    assert (split.train_publications, split.eval_publications) == (len(train_pubs), len(eval_pubs))


def test_split_size_rule() -> None:
    singles = [ex(n) for n in range(1, 31)]
    assert len(split_examples(singles, 0.1, 0).eval) == 3  # 0.1 * 30 is 3.0000000000000004: no float surprise
    assert len(split_examples(singles, 0.05, 0).eval) == 2  # ceil(1.5)
    assert len(split_examples(singles, 0.5, 0).eval) == 15
    assert len(split_examples(singles, 0.001, 0).eval) == 1  # val_ratio > 0 gives at least one row


def test_split_stays_within_the_target_when_groups_fit() -> None:
    examples = [ex(n, f"P{n % 5}") for n in range(1, 51)]  # five publications of ten rows
    split = split_examples(examples, 0.25, 3)  # wants 13 rows: one publication fits, two would not
    assert len(split.eval) == 10 and split.eval_publications == 1 and split.train_publications == 4


@pytest.mark.parametrize("seed", range(8))
def test_one_large_publication_cannot_swallow_the_data(seed: int) -> None:
    big = [ex(n, "BIG") for n in range(1, 901)]
    small = [ex(n, f"S{n % 10}") for n in range(901, 1001)]  # ten publications of ten rows
    split = split_examples(big + small, 0.05, seed)  # wants 50 rows
    assert 40 <= len(split.eval) <= 50
    assert all(e.pub_number != "BIG" for e in split.eval)


def test_when_no_group_fits_eval_takes_the_smallest() -> None:
    examples = [ex(n, "A") for n in range(1, 41)] + [ex(n, "B") for n in range(41, 61)]
    examples += [ex(n, "C") for n in range(61, 91)]
    split = split_examples(examples, 0.05, 0)  # wants 5 rows; every publication is larger
    assert split.eval_publications == 1 and len(split.eval) in (20, 30, 40) and split.train


def test_split_zero_ratio() -> None:
    split = split_examples(mixed(), 0.0, 1)
    assert split.eval == [] and len(split.train) == len(mixed())


def test_split_two_groups_each_side_gets_one() -> None:
    examples = [ex(1, "A"), ex(2, "B"), ex(3, "A"), ex(4, "B")]
    for seed in range(6):
        split = split_examples(examples, 0.01, seed)
        assert split.train_publications == 1 and split.eval_publications == 1


def test_split_train_keeps_a_group_with_high_ratio() -> None:
    examples = [ex(n) for n in range(1, 6)]
    split = split_examples(examples, 0.99, 0)
    assert len(split.train) == 1 and len(split.eval) == 4


def test_split_single_group_goes_to_train() -> None:
    examples = [ex(n, "ONLY") for n in range(1, 6)]
    split = split_examples(examples, 0.5, 0)
    assert split.eval == [] and split.train == examples
    one = [ex(1)]
    assert split_examples(one, 0.5, 0).train == one


def test_split_empty_input() -> None:
    assert split_examples([], 0.1, 0) == Split([], [], 0, 0)


def test_split_group_order_does_not_depend_on_input_order() -> None:
    examples = mixed()
    reordered = list(reversed(examples))
    a, b = split_examples(examples, 0.2, 5), split_examples(reordered, 0.2, 5)
    assert {e.line for e in a.eval} == {e.line for e in b.eval}


@pytest.mark.parametrize("ratio", [-0.1, 1.0, float("nan")])
def test_split_rejects_bad_ratio(ratio: float) -> None:
    with pytest.raises(ValueError):
        split_examples(mixed(), ratio, 0)


# --- sample caps (subsample) -----------------------------------------------------------------------------------


def test_subsample_is_seeded_random_in_input_order_and_nested() -> None:
    rows = [ex(n) for n in range(1, 201)]
    picked = subsample(rows, 50, seed=42)
    lines = [e.line for e in picked]
    assert len(picked) == 50 and lines == sorted(lines)
    assert picked == subsample(rows, 50, seed=42)
    assert lines != list(range(1, 51)), "a random subset, not the file's head"
    assert [e.line for e in subsample(rows, 50, seed=7)] != lines
    assert set(e.line for e in subsample(rows, 20, seed=42)) < set(lines)  # a smaller cap is a subset


@pytest.mark.parametrize("limit", [None, 200, 10_000])
def test_subsample_without_a_binding_cap_keeps_everything(limit) -> None:
    rows = [ex(n) for n in range(1, 201)]
    assert subsample(rows, limit, seed=1) == rows


def test_split_caps_each_side_after_the_split() -> None:
    examples = mixed()
    whole = split_examples(examples, 0.25, seed=3)
    capped = split_examples(examples, 0.25, seed=3, max_train=10, max_eval=2)
    assert (len(capped.train), len(capped.eval)) == (10, 2)
    assert {e.line for e in capped.train} <= {e.line for e in whole.train}
    assert {e.line for e in capped.eval} <= {e.line for e in whole.eval}  # no row crosses the split
    assert capped.train_publications == len({e.pub_number for e in capped.train if e.pub_number})
    assert capped.eval_publications == len({e.pub_number for e in capped.eval if e.pub_number})
    assert split_examples(examples, 0.25, seed=3, max_train=10_000, max_eval=10_000) == whole
