"""A new setting is its field in settings.py and nothing else: in a copy of the package with one field added (and no
other file edited), the setting is an option of every training command, a keyword argument of the Python API, a key
of the settings file, a value of the plan run.json records, and a setting a resumed run must keep."""

from __future__ import annotations

import pytest
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from helpers import ROOT

NEW_FIELD = '''    label_noise: float = setting(
        0.0, "Share of the target tokens replaced at random (a test of a new setting).", fraction=True, resume=MATCH
    )
    """A setting added by tests/test_new_setting.py to a copy of the package."""

'''

PROBE = r'''
import inspect, json, sys, tempfile
from pathlib import Path

from typer.testing import CliRunner

from csas_cli import finetune_model
from csas_cli.cli import app
from csas_cli.config import read_config, render_toml
from csas_cli.plan import build_plan
from csas_cli.settings import FinetuneSettings
from csas_cli.training.batch import all_settings
from csas_cli.training.resume import MUST_MATCH, RECORDED_BEFORE

runner = CliRunner()
found = {"package": str(Path(inspect.getfile(FinetuneSettings)).parent)}
for command in ("finetune", "finetune-all", "sweep"):
    found[command] = "--label-noise" in runner.invoke(app, [command, "--help"], env={"COLUMNS": "250"}).output
parameter = inspect.signature(finetune_model).parameters.get("label_noise")
found["api"] = None if parameter is None else [str(parameter.kind), repr(parameter.default)]
folder = Path(tempfile.mkdtemp())
(folder / "settings.toml").write_text("[training]\nlabel_noise = 0.25\n", encoding="utf-8")
chosen = all_settings(data=Path("data.jsonl"), output_dir=folder, only=["opus_mt_en_fr"],
                      config=read_config(folder / "settings.toml"))
found["file"] = chosen[0].training.label_noise
found["rendered"] = "label_noise = 0.25" in render_toml(chosen)
bad = runner.invoke(app, ["finetune", "--which", "opus_mt_en_fr", "--label-noise", "2", "--dry-run"])
found["bounds"] = [bad.exit_code, bad.output.strip().splitlines()[-1] if bad.output.strip() else ""]
found["recorded"] = build_plan(FinetuneSettings.create(which="opus_mt_en_fr", label_noise=0.5)).to_dict()["label_noise"]
found["resume"] = ["label_noise" in MUST_MATCH, RECORDED_BEFORE.get("label_noise")]
print(json.dumps(found))
'''


def with_new_field(tmp_path: Path) -> Path:
    """A copy of csas_cli whose TrainingSettings has one more field: settings.py is the only file edited."""
    copy = tmp_path / "csas_cli"
    shutil.copytree(ROOT / "csas_cli", copy, ignore=shutil.ignore_patterns("__pycache__"))
    settings = copy / "settings.py"
    text = settings.read_text(encoding="utf-8")
    start = text.index("class TrainingSettings")
    at = text.index("    def __post_init__", start)
    settings.write_text(text[:at] + NEW_FIELD + text[at:], encoding="utf-8")
    return tmp_path


def probe(root: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, cwd=root, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_new_field_reaches_every_consumer(tmp_path: Path) -> None:
    found = probe(with_new_field(tmp_path))
    assert found["package"] == str(tmp_path / "csas_cli")  # the copy, not the installed package
    assert found["finetune"] and found["finetune-all"] and found["sweep"]
    assert found["api"] == ["KEYWORD_ONLY", "None"]  # None: the setting's default, as for every keyword option
    assert found["file"] == 0.25 and found["rendered"]
    assert found["bounds"][0] == 2 and "--label-noise must be in [0, 1), got 2.0" in found["bounds"][1]
    assert found["recorded"] == 0.5
    assert found["resume"] == [True, 0.0]


def test_the_unedited_package_has_no_such_setting(tmp_path: Path) -> None:
    """The probe itself: without the field, nothing of it shows (so the test above sees the field, not the probe)."""
    copy = tmp_path / "csas_cli"
    shutil.copytree(ROOT / "csas_cli", copy, ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    script = ("import inspect; from csas_cli import finetune_model; "
              "print('label_noise' in inspect.signature(finetune_model).parameters)")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr
