"""The Python API (csas_cli.finetune_model, finetuning_pipeline) and the settings file (--config, csas config show)."""

from __future__ import annotations

import copy
import inspect
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
from helpers import ROOT, SAMPLE, invoke, one_error_line

import csas_cli
from csas_cli.config import ConfigError, config_from_python, read_config
from csas_cli.errors import CsasError, DataError, SettingsError
from csas_cli.settings import FIELDS

SEED_SIGNATURE = (
    ("which", inspect.Parameter.empty), ("data_path", inspect.Parameter.empty),
    ("output_directory", inspect.Parameter.empty), ("learning_rate", 2e-4), ("batch_size", 8), ("grad_accum", 2),
    ("epochs", 1.0), ("val_ratio", 0.05), ("max_source_len", 512), ("max_target_len", 512), ("bf16", False),
    ("fp16", False), ("no_qlora", False), ("seed", 42), ("save_steps", 1000), ("eval_steps", 1000),
    ("logging_steps", 50), ("warmup_ratio", 0.03), ("device_map", "auto"), ("disable_tqdm", False), ("lora_r", 32),
    ("lora_alpha", 64), ("lora_dropout", 0.05), ("max_steps", None),
)  # fmt: skip
"""The seed's "After" signature (`which, data_path, output_directory, learning_rate=2e-4, batch_size=8, grad_accum=2,
epochs=1.0, ..., max_source_len=512, max_target_len=512, bf16=False, fp16=False, no_qlora=False, ...`), the elided
parameters being finetune.py's other flags under their names, in its order."""

SEED_TABLES = {
    "TRAINING_HYPERPARAMS": {"epochs": 1.0, "lora_r": 32, "lora_alpha": 64, "batch_size": 8,
                             "gradient_accumulation": 2, "learning_rate": 2e-4},
    "QUANTIZATION_CONFIG": {"use_quantization": False, "use_qlora": False, "use_bfloat16": True, "use_fp16": False},
    "MODEL_SPECIFIC_HYPERPARAMS": {
        "m2m100_418m": {"batch_size": 12, "learning_rate": 2e-4, "lora_r": 32, "lora_alpha": 64},
        "mbart50_mmt_fr": {"batch_size": 8, "learning_rate": 1.5e-4, "lora_r": 32, "lora_alpha": 64},
        "mbart50_mmt_en": {"batch_size": 8, "learning_rate": 1.5e-4, "lora_r": 32, "lora_alpha": 64},
        "opus_mt_en_fr": {"batch_size": 16, "learning_rate": 3e-4, "lora_r": 32, "lora_alpha": 64},
        "opus_mt_fr_en": {"batch_size": 16, "learning_rate": 3e-4, "lora_r": 32, "lora_alpha": 64},
    },
}  # fmt: skip
"""The seed document's example config.py tables, as written there."""

SEED_TOML = """\
[training]
epochs = 1.0
lora_r = 32
lora_alpha = 64
batch_size = 8
gradient_accumulation = 2
learning_rate = 2e-4

[quantization]
use_quantization = false
use_qlora = false
use_bfloat16 = true
use_fp16 = false

[models.m2m100_418m]
batch_size = 12
learning_rate = 2e-4
lora_r = 32
lora_alpha = 64

[models.mbart50_mmt_fr]
batch_size = 8
learning_rate = 1.5e-4

[models.mbart50_mmt_en]
batch_size = 8
learning_rate = 1.5e-4

[models.opus_mt_en_fr]
batch_size = 16
learning_rate = 3e-4

[models.opus_mt_fr_en]
batch_size = 16
learning_rate = 3e-4
"""

FILE_FIELDS = ("config", "config_sha256")
"""What a plan says of its settings file (a Python mapping has none)."""


def cli_plans(*args: object) -> list[dict]:
    result = invoke("finetune-all", "--data", SAMPLE, *args, "--dry-run")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def without_file(plans: list[dict]) -> list[dict]:
    return [{k: v for k, v in p.items() if k not in FILE_FIELDS} for p in plans]


def pipeline_plans(config) -> list[dict]:
    return [r.plan for r in csas_cli.finetuning_pipeline(SAMPLE, "outputs", config=config, dry_run=True)]


# -- finetune_model's signature -----------------------------------------------------------------------------------


def test_finetune_model_has_the_seeds_signature() -> None:
    parameters = list(inspect.signature(csas_cli.finetune_model).parameters.values())
    positional = [p for p in parameters if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    assert [(p.name, p.default) for p in positional] == list(SEED_SIGNATURE)
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters[len(positional):])
    assert all(p.annotation is not inspect.Parameter.empty for p in parameters)
    assert csas_cli.finetune_model.__doc__ and csas_cli.finetuning_pipeline.__doc__


def test_every_finetune_setting_is_an_argument() -> None:
    """A setting added to csas finetune must be reachable from Python too (under its seed name where it has one)."""
    names = set(inspect.signature(csas_cli.finetune_model).parameters)
    seed_names = {"data": "data_path", "output_dir": "output_directory", "qlora": "no_qlora"}
    not_arguments = {"run_name"}  # sweep's trial folders
    missing = [n for n in FIELDS if n not in not_arguments and seed_names.get(n, n) not in names]
    assert missing == []


def test_the_api_is_imported_on_first_use_only() -> None:
    code = "import sys, csas_cli; assert 'csas_cli.api' not in sys.modules; csas_cli.finetune_model; " \
           "assert 'csas_cli.api' in sys.modules and 'torch' not in sys.modules"  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True)


# -- the three tables ----------------------------------------------------------------------------------------------


def test_no_config_is_the_finetune_all_table() -> None:
    assert pipeline_plans(None) == cli_plans()


@pytest.mark.slow
def test_the_seeds_tables_give_finetune_alls_plans_as_dicts_module_and_toml(tmp_path: Path) -> None:
    want = cli_plans()
    assert pipeline_plans(SEED_TABLES) == want
    module = types.ModuleType("config")
    for name, table in SEED_TABLES.items():
        setattr(module, name, table)
    assert pipeline_plans(module) == want
    assert pipeline_plans({"training": SEED_TABLES["TRAINING_HYPERPARAMS"], "quantization":
                           SEED_TABLES["QUANTIZATION_CONFIG"], "models": SEED_TABLES["MODEL_SPECIFIC_HYPERPARAMS"]}) == want
    toml = tmp_path / "csas.toml"
    toml.write_text(SEED_TOML)
    assert without_file(pipeline_plans(toml)) == without_file(want)
    assert without_file(cli_plans("--config", toml)) == without_file(want)
    assert {p["config"] for p in cli_plans("--config", toml)} == {str(toml)}


def test_one_models_value_changes_that_plan_only() -> None:
    tables = copy.deepcopy(SEED_TABLES)
    tables["MODEL_SPECIFIC_HYPERPARAMS"]["opus_mt_en_fr"]["batch_size"] = 4
    before, after = cli_plans(), pipeline_plans(tables)
    changed = [a["which"] for a, b in zip(after, before) if a != b]
    assert changed == ["opus_mt_en_fr"]
    assert after[3]["batch_size"] == 4 and after[3]["global_batch"] == 8


def test_the_seeds_conversions() -> None:
    config = config_from_python({"QUANTIZATION_CONFIG": {"use_qlora": True, "use_bfloat16": False, "use_fp16": True},
                                 "TRAINING_HYPERPARAMS": {"gradient_accumulation": 4}})  # fmt: skip
    assert config.values_for("opus_mt_en_fr") == {"grad_accum": 4, "qlora": True, "bf16": False, "fp16": True}
    plans = pipeline_plans({"MODEL_SPECIFIC_HYPERPARAMS": {"opus_mt_fr_en": {"lora_r": 8}, "m2m100_418m": {}}})
    assert [p["which"] for p in plans] == ["opus_mt_fr_en", "m2m100_418m"]  # the table's models, in its order
    assert plans[0]["lora_r"] == 8 and plans[1]["lora_r"] == 32


def test_python_values_none_means_not_set_and_tuples_are_lists() -> None:
    plans = pipeline_plans({"TRAINING_HYPERPARAMS": {"max_steps": None, "lora_targets": ("q_proj", "v_proj")},
                            "MODEL_SPECIFIC_HYPERPARAMS": {"opus_mt_en_fr": {}}})  # fmt: skip
    assert plans[0]["max_steps"] is None and plans[0]["lora_targets"] == ["q_proj", "v_proj"]


def test_a_quantization_table_without_use_qlora_means_qlora_as_the_seed_converts() -> None:
    plans = pipeline_plans({"QUANTIZATION_CONFIG": {"use_bfloat16": True}, "MODEL_SPECIFIC_HYPERPARAMS": {
        "opus_mt_en_fr": {}, "m2m100_418m": {"use_qlora": False}}})  # fmt: skip
    assert [(p["which"], p["qlora"], p["bf16"]) for p in plans] == [("opus_mt_en_fr", True, True),
                                                                      ("m2m100_418m", False, True)]


def test_arguments_passed_at_their_default_still_win_over_the_config(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[quantization]\nuse_qlora = true\nuse_bfloat16 = true\n[training]\nlora_r = 8\n")
    plan = csas_cli.finetune_model("opus_mt_en_fr", SAMPLE, tmp_path, no_qlora=False, bf16=False, lora_r=32,
                                   config=path, dry_run=True).plan  # fmt: skip
    assert (plan["qlora"], plan["bf16"], plan["lora_r"]) == (True, False, 32)
    plan = csas_cli.finetune_model("opus_mt_en_fr", SAMPLE, tmp_path, config=path, dry_run=True).plan
    assert (plan["qlora"], plan["bf16"], plan["lora_r"]) == (True, True, 8)
    plans = [r.plan for r in csas_cli.finetuning_pipeline(SAMPLE, only="opus_mt_en_fr", no_qlora=True,
                                                          gradient_accumulation=4, dry_run=True)]  # fmt: skip
    assert [(p["which"], p["qlora"], p["grad_accum"]) for p in plans] == [("opus_mt_en_fr", False, 4)]


def test_keyword_overrides_win_over_the_config() -> None:
    plans = [r.plan for r in csas_cli.finetuning_pipeline(SAMPLE, config=SEED_TABLES, only=["opus_mt_en_fr"],
                                                          max_steps=5, learning_rate=1e-3, dry_run=True)]  # fmt: skip
    assert [(p["which"], p["max_steps"], p["learning_rate"], p["batch_size"]) for p in plans] == [
        ("opus_mt_en_fr", 5, 1e-3, 16)]


# -- csas config show and --config ----------------------------------------------------------------------------------


def test_config_show_round_trips_through_finetune_all(tmp_path: Path) -> None:
    shown = invoke("config", "show")
    assert shown.exit_code == 0, shown.output
    path = tmp_path / "c.toml"
    path.write_text(shown.stdout)
    assert without_file(cli_plans("--config", path)) == without_file(cli_plans())
    read = read_config(path)
    assert read.model_keys == tuple(p["which"] for p in cli_plans())
    assert "[models.opus_mt_en_fr]\nlearning_rate = 0.0003\nbatch_size = 16" in shown.stdout
    one = invoke("config", "show", "--which", "mbart50_mmt_fr")
    assert "[models.mbart50_mmt_fr]" in one.stdout and "[models.m2m100_418m]" not in one.stdout
    again = invoke("config", "show", "--config", path)
    assert again.stdout.split("\n", 1)[1] == shown.stdout.split("\n", 1)[1]  # the same settings, from the file


def test_finetune_reads_the_file_under_its_flags(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(SEED_TOML)
    args = ["finetune", "--which", "opus_mt_en_fr", "--data", SAMPLE, "--config", path]
    plan = json.loads(invoke(*args, "--dry-run").stdout)
    assert (plan["batch_size"], plan["learning_rate"], plan["bf16"], plan["qlora"]) == (16, 3e-4, True, False)
    assert plan["warmup_ratio"] == 0.03 and plan["config"] == str(path) and len(plan["config_sha256"]) == 64
    plan = json.loads(invoke(*args, "--lr", "1e-3", "--batch_size", "8", "--dry-run").stdout)
    assert (plan["batch_size"], plan["learning_rate"], plan["bf16"]) == (8, 1e-3, True)  # flags win
    plain = json.loads(invoke("finetune", "--which", "opus_mt_en_fr", "--data", SAMPLE, "--dry-run").stdout)
    assert (plain["batch_size"], plain["bf16"], plain["qlora"]) == (8, False, True)  # finetune.py's own defaults


def test_finetune_model_reads_a_config_under_its_arguments(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(SEED_TOML)
    result = csas_cli.finetune_model("opus_mt_en_fr", SAMPLE, tmp_path / "o", config=path, learning_rate=1e-3,
                                     dry_run=True)  # fmt: skip
    plan = result.plan
    assert result.status == "planned" and not (tmp_path / "o").exists()
    assert (plan["learning_rate"], plan["batch_size"], plan["bf16"], plan["qlora"]) == (1e-3, 16, True, False)


@pytest.mark.parametrize(
    "text,message",
    [
        ("[training]\nlearnig_rate = 1e-4\n", "c.toml line 2: [training] learnig_rate: not a setting (did you mean "
         "learning_rate?)"),
        ("[trainig]\nepochs = 2\n", "c.toml line 1: unknown table [trainig] (did you mean training?)"),
        ("[training]\nepochs = 1\nbatch_size = \"8\"\n", "c.toml line 3: [training] batch_size = \"8\": expected an "
         "integer"),
        ("[models.opus_mt_en_frr]\nbatch_size = 4\n", "c.toml line 1: [models.opus_mt_en_frr]: not a registry key "
         "(did you mean opus_mt_en_fr?)"),
        ("[quantization]\nuse_qlora = 1\n", "c.toml line 2: [quantization] use_qlora = 1: expected true or false"),
        ("[quantization]\nuse_qlor = true\n", "c.toml line 2: [quantization] use_qlor: not a quantization setting "
         "(did you mean use_qlora?)"),
        ("[training]\nbf16 = true\n", "c.toml line 2: [training] bf16: not a file key; use use_bfloat16 in "
         "[quantization]"),
        ("[training]\nlr = 1e-4\n", "c.toml line 2: [training] lr: not a file key; use learning_rate"),
        ("[training]\ngrad_accum = 2\ngradient_accumulation = 4\n", "c.toml line 3: [training] "
         "gradient_accumulation: grad_accum is given twice"),
        ("lora_r = 8\n[training]\n", "c.toml line 1: lora_r = 8 is outside any table"),
        ("[training]\nlora.r = 8\n", "c.toml line 1: [training] lora: not a setting"),
        ("[quantization]\nuse_quantization = true\nuse_qlora = false\n", "c.toml line 2: [quantization] "
         "use_quantization = true: csas quantizes the base only for QLoRA, and use_qlora is false for m2m100_418m"),
        ("[training]\ndata = \"x.jsonl\"\n", "c.toml line 2: [training] data: given by each command"),
        ("[training]\nmodel_id = \"/m\"\n", "c.toml line 2: [training] model_id: one model's setting"),
        ("[models.opus_mt_en_fr]\nlora_r = 4.5\n", "c.toml line 2: [models.opus_mt_en_fr] lora_r = 4.5: expected an "
         "integer"),
        ("[training]\nbatch_size = 0\n", "c.toml line 2: [training] batch_size = 0: must be at least 1"),
        ("[training]\nval_ratio = 1.5\n", "c.toml line 2: [training] val_ratio = 1.5: must be in [0, 1)"),
        ("[training\nepochs = 1\n", "c.toml: not valid TOML"),
    ],
)
def test_a_bad_file_is_refused_in_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    for command in (["finetune-all", "--data", SAMPLE], ["finetune", "--which", "opus_mt_en_fr", "--data", SAMPLE]):
        line = one_error_line(invoke(*command, "--config", path, "--dry-run"))
        assert line.startswith(f"csas: error: {tmp_path / message}") if message.startswith("c.toml") else False, line
    with pytest.raises(ConfigError):
        read_config(path)


def test_a_missing_file_names_the_flag(tmp_path: Path) -> None:
    line = one_error_line(invoke("finetune-all", "--data", SAMPLE, "--config", tmp_path / "none.toml", "--dry-run"))
    assert line == f"csas: error: --config {tmp_path / 'none.toml'}: no such file"


def test_bad_python_tables_raise_settings_errors() -> None:
    with pytest.raises(ConfigError, match=r"^config: TRAINING_HYPERPARAMS lr: not a file key; use learning_rate"):
        csas_cli.finetuning_pipeline(SAMPLE, config={"TRAINING_HYPERPARAMS": {"lr": 1e-4}}, dry_run=True)
    with pytest.raises(ConfigError, match=r"^config: TRAINING_HYPERPARAMS lerning_rate: not a setting \(did you"):
        csas_cli.finetuning_pipeline(SAMPLE, config={"TRAINING_HYPERPARAMS": {"lerning_rate": 1e-4}}, dry_run=True)
    with pytest.raises(SettingsError, match=r"finetuning_pipeline: unknown setting 'lerning_rate'"):
        csas_cli.finetuning_pipeline(SAMPLE, lerning_rate=1e-4, dry_run=True)
    with pytest.raises(ConfigError, match=r"MODEL_SPECIFIC_HYPERPARAMS\['opus'\]: not a registry key"):
        csas_cli.finetuning_pipeline(SAMPLE, config={"MODEL_SPECIFIC_HYPERPARAMS": {"opus": {}}}, dry_run=True)
    assert issubclass(ConfigError, SettingsError) and issubclass(SettingsError, CsasError)


def test_api_errors_are_csas_errors_not_exits(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="absent.jsonl: file not found"):
        csas_cli.finetune_model("opus_mt_en_fr", tmp_path / "absent.jsonl", tmp_path, dry_run=True)
    with pytest.raises(SettingsError, match="^which: unknown model 'opus_mt_en_frr' \\(did you mean opus_mt_en_fr"):
        csas_cli.finetune_model("opus_mt_en_frr", SAMPLE, tmp_path, dry_run=True)
    # One message, the API's spelling of the settings it names: the argument, not the flag.
    with pytest.raises(SettingsError, match="^learning_rate must be a positive number, got -1"):
        csas_cli.finetune_model("opus_mt_en_fr", SAMPLE, tmp_path, learning_rate=-1, dry_run=True)
    with pytest.raises(SettingsError, match="^term_annotation needs glossary FILE"):
        csas_cli.finetune_model("opus_mt_en_fr", SAMPLE, tmp_path, term_annotation=0.5, dry_run=True)


# -- a pipeline script, and the file through a resumed run ----------------------------------------------------------


@pytest.mark.slow
def test_the_pipelines_own_script_trains_loads_and_fails_cleanly(tiny_models, tmp_path: Path) -> None:
    script = ROOT / "tests" / "pipeline_example.py"
    proc = subprocess.run([sys.executable, str(script), str(tiny_models["opus_mt_en_fr"]), str(tmp_path)],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                          cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""  # a library writes nothing to stdout


@pytest.mark.slow
def test_a_changed_file_is_a_changed_setting_on_resume(tiny_models, tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[models.opus_mt_en_fr]\nlearning_rate = 3e-3\nbatch_size = 4\n")
    args = ["finetune", "--which", "opus_mt_en_fr", "--model-id", tiny_models["opus_mt_en_fr"], "--data", SAMPLE,
            "--output-dir", tmp_path / "o", "--no-qlora", "--max-steps", "2", "--config", path, "--disable-tqdm"]
    assert invoke(*args).exit_code == 0
    record = json.loads((tmp_path / "o" / "opus_mt_en_fr" / "run.json").read_text())
    assert record["plan"]["config"] == str(path) and record["plan"]["learning_rate"] == 3e-3
    assert record["plan"]["config_sha256"] == read_config(path).sha256
    path.write_text(path.read_text() + "# a comment changes the file, not the settings\n")
    assert invoke(*args, "--resume", "auto").exit_code == 0
    path.write_text("[models.opus_mt_en_fr]\nlearning_rate = 1e-3\nbatch_size = 4\n")
    line = one_error_line(invoke(*args, "--resume", "auto"))
    assert "learning_rate 0.003 -> 0.001" in line and f"the settings file {path} changed since" in line
