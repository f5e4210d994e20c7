"""The README's flag tables say what `csas finetune` declares, and a default lives in one place: changed in
settings.py, it changes `--help`, `--dry-run`'s plan and what the README is checked against, together."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, SAMPLE
from readme_flags import differences, readme_defaults, same

README = (ROOT / "README.md").read_text(encoding="utf-8")
TESTS = Path(__file__).resolve().parent


def test_the_readme_tables_agree_with_csas_finetune() -> None:
    assert differences(README) == []


def test_the_readme_tables_are_read_whole() -> None:
    documented = readme_defaults(README)
    # finetune.py's flags and csas's own, including the rows that document two or three flags at once.
    assert documented["--lr"] == "2e-4" and documented["--which"] == "required"
    assert (documented["--save-steps"], documented["--eval-steps"], documented["--logging-steps"]) == ("1000", "1000", "50")
    assert documented["--no-qlora"] == "off" and documented["--lora-targets"] == "`q_proj,k_proj,v_proj`"
    assert len(documented) >= 36


@pytest.mark.parametrize(
    "text,value,want",
    [("2e-4", 0.0002, True), ("3e-4", 0.0002, False), ("off", False, True), ("on", False, False),
     ("none", None, True), ("0", None, False), ("`outputs`", "outputs", True), ("required", "required", True),
     ("8", "required", False)],
)
def test_same_reads_the_readme_spellings(text: str, value: object, want: bool) -> None:
    assert same(text, value) is want


@pytest.mark.slow
def test_a_default_changed_in_settings_changes_help_dry_run_and_the_readme_check(tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(ROOT / "csas_cli", copy / "csas_cli", ignore=shutil.ignore_patterns("assets", "__pycache__"))
    settings = copy / "csas_cli" / "settings.py"
    source = settings.read_text(encoding="utf-8")
    assert source.count("setting(0.03, ") == 1  # warmup_ratio's default, and only it
    settings.write_text(source.replace("setting(0.03, ", "setting(0.07, "), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(copy), str(TESTS)]), "COLUMNS": "200",
           "HF_HUB_OFFLINE": "1"}  # fmt: skip

    def run(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
        assert done.returncode == 0, done.stderr
        return done

    help_line = next(line for line in run("-m", "csas_cli", "finetune", "--help").stdout.splitlines()
                     if "--warmup-ratio" in line)  # fmt: skip
    assert "[default: 0.07]" in help_line
    plan = json.loads(run("-m", "csas_cli", "finetune", "--which", "opus_mt_en_fr", "--data", str(SAMPLE),
                          "--dry-run").stdout)  # fmt: skip
    assert plan["warmup_ratio"] == 0.07
    check = run("-c", f"import readme_flags, json; print(json.dumps(readme_flags.differences(open({str(ROOT / 'README.md')!r}).read())))")
    assert json.loads(check.stdout) == ["--warmup-ratio: the README says 0.03, csas finetune says 0.07"]
    assert str(copy) in run("-c", "import csas_cli; print(csas_cli.__file__)").stdout  # the copy ran, not the tree
