"""Tests for csas_cli.options: Typer options made from settings fields, and the defaults the commands' help shows."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import typer
from helpers import invoke

from csas_cli.cli import app
from csas_cli.training.batch import all_settings
from csas_cli.training.sweep import sweep_settings
from csas_cli.options import describe_default
from csas_cli.registry import MODEL_KEYS
from csas_cli.settings import FIELDS

DEFAULT_IN_HELP = re.compile(r"\(default: ([^)]+?)(?:, greedy)?\)")


def command(name: str):
    return typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]


def flag_field(param) -> str | None:
    """The settings field an option of a command is made from (None for the command's own options)."""
    for name, f in FIELDS.items():
        spelled = (f.metadata.get("flag") or name).replace("_", "-")
        if f"--{spelled}" in param.opts or f"--{name.replace('_', '-')}" in param.opts:
            return name
    return None


@pytest.mark.parametrize("value,want", [(True, "on"), (False, "off"), (2e-4, "0.0002"), (1.5e-4, "0.00015"),
                                        (200000, "200000"), (("q_proj", "v_proj"), "q_proj,v_proj")])
def test_describe_default(value: object, want: str) -> None:
    assert describe_default(value) == want


@pytest.mark.parametrize("name", ["sweep", "finetune-all"])
def test_every_default_the_help_shows_is_what_every_model_gets(name: str, tmp_path: Path) -> None:
    """A `(default: X)` in sweep's or finetune-all's help is the value each model's runs get when the flag is left
    out: it is read from the same settings, not written a second time."""
    if name == "sweep":
        runs = [sweep_settings(key, data=tmp_path / "d.jsonl", output_dir=tmp_path)[0] for key in MODEL_KEYS]
    else:
        runs = all_settings(data=tmp_path / "d.jsonl", output_dir=tmp_path)
    checked = 0
    for param in command(name).params:
        match = DEFAULT_IN_HELP.search(param.help or "")
        field = flag_field(param)
        if match is None or field is None or match[1].startswith("the ") or field == "lora_alpha":
            continue  # a default described in words (the registry's, the table's), or sweep's alpha of 2 x r
        for run in runs:
            assert describe_default(run.flat()[field]) == match[1], (param.opts, run.which)
        checked += 1
    assert checked >= (12 if name == "sweep" else 1)


def test_a_flag_left_out_is_not_passed_on(tmp_path: Path) -> None:
    """sweep's given-only options stay out of the overrides: a trial then has the table's value, and a flag given
    replaces it (the toggles in both spellings)."""
    data = tmp_path / "d.jsonl"
    data.write_text('{"source": "a", "target": "b", "source_lang": "en", "pub_number": "1"}\n'
                    '{"source": "c", "target": "d", "source_lang": "en", "pub_number": "2"}\n', encoding="utf-8")
    args = ["sweep", "--which", "opus_mt_en_fr", "--data", data, "--output-dir", tmp_path, "--lrs", "1e-4", "--ranks",
            "8", "--dry-run"]  # fmt: skip
    plain = json.loads(invoke(*args).stdout)[0]
    assert (plain["bf16"], plain["qlora"], plain["batch_size"], plain["seed"]) == (True, False, 16, 42)
    given = json.loads(invoke(*args, "--no-bf16", "--qlora", "--batch-size", 3, "--seed", 5).stdout)[0]
    assert (given["bf16"], given["qlora"], given["batch_size"], given["seed"]) == (False, True, 3, 5)


def test_finetune_spells_two_settings_as_finetune_py_did() -> None:
    opts = {tuple(p.opts) for p in command("finetune").params}
    assert ("--lr",) in opts and ("--no-qlora", "--no_qlora") in opts
    assert not any("--learning-rate" in o or "--qlora" in o for o in opts)


def test_a_default_shown_for_every_run_must_be_shared_by_every_run() -> None:
    """sweep's help may not show `(default: X)` for a setting whose value differs between models."""
    from csas_cli.options import Flag, settings_options
    from csas_cli.settings import GROUPS

    def command(values: dict) -> None:
        pass

    with pytest.raises(TypeError, match="batch_size"):
        settings_options([Flag("batch_size", "Pairs (default: {default}).", given_only=True)], tuple(GROUPS.values()),
                         {"seed": 42})(command)  # fmt: skip


COMMANDS = ("finetune", "finetune-all", "sweep", "bench", "translate", "evaluate", "check-data", "convert", "split",
            "check-glossary", "merge", "export", "merge-all", "tiny-models", "models", "report")  # fmt: skip
CUT_FLAG = re.compile(r"│ *\*? *-[-a-z_,]*…")


@pytest.mark.parametrize("name", COMMANDS)
def test_help_shows_every_flag_whole_at_80_columns(name: str) -> None:
    """A narrow terminal lists the dashed spellings only (and says the underscore ones are accepted); no flag is
    cut to `--max-source-len,--max_sou…`."""
    from typer.testing import CliRunner

    shown = CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "80", "TERMINAL_WIDTH": ""}).output
    assert CUT_FLAG.search(shown) is None, shown
    underscored = [o for p in command(name).params for o in getattr(p, "opts", ()) if o.startswith("--") and "_" in o]
    listed = all(o in shown for o in underscored)
    assert listed != ("also accepted with underscores" in " ".join(shown.split()))  # listed, or said once


def test_help_lists_the_underscore_spellings_where_they_fit() -> None:
    from typer.testing import CliRunner

    wide = CliRunner().invoke(app, ["finetune", "--help"], env={"COLUMNS": "250", "TERMINAL_WIDTH": ""}).output
    assert "--grad-accum,--grad_accum" in wide and "also accepted with underscores" not in wide
    narrow = CliRunner().invoke(app, ["finetune", "--help"], env={"COLUMNS": "80", "TERMINAL_WIDTH": ""}).output
    assert "--grad_accum" not in narrow.replace("(--grad_accum for", "")
    assert "--grad_accum" in command("finetune").params[[p.name for p in command("finetune").params].index(
        "grad_accum")].opts  # the spelling is still accepted, only not listed
