"""Tiny finished runs for the inference, translate, evaluate and merge tests, trained once per session on demand.

A pytest fixture is cached per module when several test files import it, so the runs are memoised here instead:
the first test that asks for (key, qlora) trains it with the real CLI (3 steps, a high learning rate so that the
adapter visibly changes the translations), later tests reuse the folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from csas_cli.cli import app
from csas_cli.tiny import SAMPLE_PAIRS

ROWS_PER_LANGUAGE = 24


def invoke(*args: object):
    """The real CLI in-process; a bug (not a CsasError) re-raises with its traceback."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def write_pairs(path: Path, per_language: int = ROWS_PER_LANGUAGE) -> Path:
    """The first `per_language` English-source and French-source rows of the shipped sample."""
    rows = [json.loads(line) for line in SAMPLE_PAIRS.read_text(encoding="utf-8").splitlines() if line.strip()]
    kept = [r for r in rows if r["source_lang"] == "en"][:per_language]
    kept += [r for r in rows if r["source_lang"] == "fr"][:per_language]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept), encoding="utf-8")
    return path


class TinyRuns:
    _cache: dict[tuple[str, bool], Path] = {}

    def __init__(self, root: Path, models: dict[str, Path]) -> None:
        self.root = root
        self.models = models
        self.data = write_pairs(root / "pairs.jsonl")

    def __call__(self, key: str, qlora: bool = False) -> Path:
        """A finished run of `key` (plain LoRA unless `qlora`), trained on first use."""
        cached = self._cache.get((key, qlora))
        if cached is not None and (cached / "finished.json").is_file():
            return cached
        out = self.root / ("qlora" if qlora else "lora")
        result = invoke(
            "finetune", "--which", key, "--model-id", self.models[key], "--data", self.data, "--output-dir", out,
            "--max-steps", 3, "--lr", "1e-2", "--batch-size", 4, "--grad-accum", 1, "--disable-tqdm",
            *([] if qlora else ["--no-qlora"]),
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        self._cache[(key, qlora)] = out / key
        return out / key


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path]) -> TinyRuns:
    """tiny_runs(key, qlora=False) -> a finished run directory."""
    root = getattr(TinyRuns, "_root", None)
    if root is None:
        root = tmp_path_factory.mktemp("tiny-runs")
        TinyRuns._root = root  # type: ignore[attr-defined]
    return TinyRuns(root, tiny_models)


def one_error_line(result) -> str:
    """A user error: non-zero exit, exactly one stderr line `csas: error: ...`, no traceback, nothing on stdout."""
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("csas: error: "), lines[0]
    assert result.stdout == ""
    return lines[0]
