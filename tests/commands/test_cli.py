"""Tests for csas_cli.cli: every finetune.py flag in both spellings, --dry-run plans, finetune-all, errors.

Most go through typer's CliRunner; a few run the installed `csas` console script to prove that what reaches a
user's terminal is one `csas: error:` line and never a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import FINETUNE_ALL_SPEC, invoke, one_error_line

from csas_cli import __version__
from csas_cli.registry import MODEL_KEYS, REGISTRY

TABLE_ORDER = ["m2m100_418m", "mbart50_mmt_fr", "mbart50_mmt_en", "opus_mt_en_fr", "opus_mt_fr_en"]
TABLE = FINETUNE_ALL_SPEC
PLAN_KEYS = [
    "which", "model_id", "data", "output_dir", "learning_rate", "batch_size", "grad_accum", "epochs", "max_steps",
    "lora_r", "lora_alpha", "lora_dropout", "max_source_len", "max_target_len", "bf16", "fp16", "qlora",
    "device_map", "seed", "warmup_ratio", "val_ratio", "eval_steps", "save_steps", "logging_steps", "train_rows",
    "eval_rows",
]  # fmt: skip
CSAS = Path(sys.executable).with_name("csas")


@pytest.fixture(autouse=True)
def no_launcher_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests run as a single process, whatever the shell that started pytest exported."""
    for name in ("WORLD_SIZE", "LOCAL_RANK", "RANK"):
        monkeypatch.delenv(name, raising=False)


def write_data(path: Path, n_en: int = 5, n_fr: int = 5) -> Path:
    """n_en English-source and n_fr French-source rows, each from its own publication."""
    rows = []
    for i in range(n_en):
        rows.append({"source": f"Stock assessment {i}", "target": f"Evaluation du stock {i}", "source_lang": "en",
                     "pub_number": f"2024/{i:03d}"})
    for i in range(n_fr):
        rows.append({"source": f"Avis scientifique {i}", "target": f"Science advice {i}", "source_lang": "fr",
                     "pub_number": f"2023/{i:03d}"})
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_data(tmp_path / "pairs.jsonl")


def ok_json(result) -> object:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert "Traceback" not in result.output
    return json.loads(result.stdout)


# --- finetune: all 24 flags in both spellings ------------------------------------------------------------------


def nondefault_args(data: Path, out: Path, underscore: bool) -> list[str]:
    def f(name: str) -> str:
        return "--" + (name if underscore else name.replace("_", "-"))

    return [
        "finetune",
        f("which"), "m2m100_418m",
        f("data"), str(data),
        f("output_dir"), str(out),
        f("epochs"), "2.5",
        f("lr"), "1e-4",
        f("batch_size"), "2",
        f("grad_accum"), "3",
        f("val_ratio"), "0.2",
        f("max_source_len"), "128",
        f("max_target_len"), "64",
        f("seed"), "7",
        f("fp16"),
        f("bf16"),
        f("no_qlora"),
        f("save_steps"), "200",
        f("eval_steps"), "100",
        f("logging_steps"), "10",
        f("warmup_ratio"), "0.1",
        f("device_map"), "cpu",
        f("disable_tqdm"),
        f("lora_r"), "8",
        f("lora_alpha"), "16",
        f("lora_dropout"), "0.1",
        f("max_steps"), "30",
        f("dry_run"),
    ]  # fmt: skip


def expected_nondefault(data: Path, out: Path) -> dict:
    return {
        "which": "m2m100_418m",
        "model_id": "facebook/m2m100_418M",
        "data": str(data),
        "output_dir": str(out / "m2m100_418m"),
        "learning_rate": 1e-4,
        "batch_size": 2,
        "grad_accum": 3,
        "epochs": 2.5,
        "max_steps": 30,
        "lora_r": 8,
        "lora_alpha": 16,
        "lora_dropout": 0.1,
        "max_source_len": 128,
        "max_target_len": 64,
        "bf16": True,
        "fp16": True,
        "qlora": False,
        "device_map": "cpu",
        "seed": 7,
        "warmup_ratio": 0.1,
        "val_ratio": 0.2,
        "eval_steps": 100,
        "save_steps": 200,
        "logging_steps": 10,
        "train_rows": 8,
        "eval_rows": 2,
    }


@pytest.mark.parametrize("underscore", [True, False], ids=["underscore", "dashed"])
def test_every_finetune_flag_reaches_the_plan(data: Path, tmp_path: Path, underscore: bool) -> None:
    out = tmp_path / "runs"
    args = nondefault_args(data, out, underscore)
    assert sum(a.startswith("--") for a in args) == 25  # 24 finetune.py flags + --dry-run
    plan = ok_json(invoke(*args))
    want = expected_nondefault(data, out)
    assert set(PLAN_KEYS) <= set(plan)
    assert {k: plan[k] for k in PLAN_KEYS} == want
    assert plan["disable_tqdm"] is True
    assert plan["precision"] == "bf16"
    assert plan["qlora"] is False
    assert plan["global_batch"] == 6
    assert plan["output_state"] == "absent"
    assert not out.exists(), "--dry-run writes nothing"


def test_every_flag_value_differs_from_its_default(data: Path, tmp_path: Path) -> None:
    defaults = ok_json(invoke(*["finetune", "--which", "m2m100_418m", "--data", str(data), "--dry-run"]))
    want = expected_nondefault(data, tmp_path / "runs")
    for key in PLAN_KEYS:
        if key in ("which", "model_id", "data", "train_rows", "eval_rows"):
            continue
        assert defaults[key] != want[key], key


def test_finetune_defaults_in_the_plan(data: Path) -> None:
    plan = ok_json(invoke(*["finetune", "--which", "mbart50_mmt_fr", "--data", str(data), "--dry-run"]))
    assert {k: plan[k] for k in PLAN_KEYS} == {
        "which": "mbart50_mmt_fr",
        "model_id": "facebook/mbart-large-50-many-to-many-mmt",
        "data": str(data),
        "output_dir": str(Path("outputs") / "mbart50_mmt_fr"),
        "learning_rate": 2e-4,
        "batch_size": 8,
        "grad_accum": 2,
        "epochs": 1.0,
        "max_steps": None,
        "lora_r": 32,
        "lora_alpha": 64,
        "lora_dropout": 0.05,
        "max_source_len": 512,
        "max_target_len": 512,
        "bf16": False,
        "fp16": False,
        "qlora": True,
        "device_map": "auto",
        "seed": 42,
        "warmup_ratio": 0.03,
        "val_ratio": 0.05,
        "eval_steps": 1000,
        "save_steps": 1000,
        "logging_steps": 50,
        "train_rows": 4,  # 5 English rows; ceil(0.05 * 5) = 1 publication held out
        "eval_rows": 1,
    }
    assert plan["disable_tqdm"] is False
    assert plan["lora_targets"] == ["q_proj", "k_proj", "v_proj"]
    assert plan["source_langs"] == ["en"]


@pytest.mark.parametrize(
    "which,train,evaluation", [("m2m100_418m", 9, 1), ("mbart50_mmt_en", 4, 1), ("opus_mt_en_fr", 4, 1)]
)
def test_rows_follow_the_model_direction(data: Path, which: str, train: int, evaluation: int) -> None:
    plan = ok_json(invoke(*["finetune", "--which", which, "--data", str(data), "--dry-run"]))
    assert (plan["train_rows"], plan["eval_rows"]) == (train, evaluation)


@pytest.mark.parametrize("spelling", ["--model-id", "--model_id"])
def test_model_id_in_plan(data: Path, tiny_models, spelling: str) -> None:
    snapshot = str(tiny_models["opus_mt_fr_en"])
    plan = ok_json(invoke(*["finetune", "--which", "opus_mt_fr_en", "--data", str(data), spelling, snapshot, "--dry-run"]))
    assert plan["model_id"] == snapshot


def test_dry_run_checks_a_local_snapshots_files(data: Path, tiny_models, tmp_path: Path) -> None:
    import shutil

    snapshot = Path(shutil.copytree(tiny_models["opus_mt_fr_en"], tmp_path / "snap"))
    args = ["finetune", "--which", "opus_mt_fr_en", "--data", str(data), "--model-id", str(snapshot), "--dry-run"]
    (snapshot / "target.spm").unlink()
    assert one_error_line(invoke(*args)) == (
        f"csas: error: --model-id {snapshot}: no MarianTokenizer files (source.spm + target.spm + vocab.json); it "
        "holds source.spm, vocab.json only"
    )
    (snapshot / "model.safetensors").unlink()
    assert "no PyTorch weights" in one_error_line(invoke(*args))
    assert "no such directory" in one_error_line(invoke(*args[:-2], str(tmp_path / "absent"), "--dry-run"))


@pytest.mark.parametrize(
    "value,want",
    [
        ("q_proj,v_proj", ["q_proj", "v_proj"]),
        (" fc1 , fc2 ", ["fc1", "fc2"]),
        ("all-linear", ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]),
    ],
)
@pytest.mark.parametrize("spelling", ["--lora-targets", "--lora_targets"])
def test_lora_targets_in_plan(data: Path, spelling: str, value: str, want: list[str]) -> None:
    plan = ok_json(invoke(*["finetune", "--which", "m2m100_418m", "--data", str(data), spelling, value,
                                   "--dry-run"]))
    assert plan["lora_targets"] == want


def test_a_local_model_id_is_recorded_absolute_and_a_hub_id_as_given(
    data: Path, tiny_models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "opus").symlink_to(tiny_models["opus_mt_en_fr"])
    monkeypatch.chdir(tmp_path)
    args = ["finetune", "--which", "opus_mt_en_fr", "--data", str(data), "--dry-run", "--model-id"]
    assert ok_json(invoke(*[*args, "models/opus"]))["model_id"] == str(tmp_path / "models" / "opus")
    assert ok_json(invoke(*[*args, "Helsinki-NLP/opus-mt-en-fr"]))["model_id"] == "Helsinki-NLP/opus-mt-en-fr"


def test_dry_run_reports_a_finished_output_without_refusing(data: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "o" / "opus_mt_en_fr"
    run_dir.mkdir(parents=True)
    (run_dir / "finished.json").write_text('{"status": "ok"}\n')
    plan = ok_json(invoke(*["finetune", "--which", "opus_mt_en_fr", "--data", str(data),
                                   "--output-dir", str(tmp_path / "o"), "--dry-run"]))
    assert plan["output_state"] == "finished"
    assert (run_dir / "finished.json").read_text() == '{"status": "ok"}\n'


# --- the device-map table through --dry-run ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "which,extra,env,want",
    [
        # QLoRA on, one process: the request, except None for OPUS.
        ("m2m100_418m", [], {}, "auto"),
        ("mbart50_mmt_en", ["--device-map", "cpu"], {}, "cpu"),
        ("m2m100_418m", ["--device-map", "none"], {}, None),
        ("opus_mt_en_fr", [], {}, None),
        ("opus_mt_fr_en", ["--device-map", "cpu"], {}, None),
        # QLoRA on, distributed: pinned to the process's own GPU.
        ("m2m100_418m", [], {"WORLD_SIZE": "2", "LOCAL_RANK": "0"}, {"": 0}),
        ("mbart50_mmt_fr", [], {"WORLD_SIZE": "2", "LOCAL_RANK": "1"}, {"": 1}),
        ("mbart50_mmt_fr", ["--device-map", "cpu"], {"WORLD_SIZE": "4", "LOCAL_RANK": "3"}, {"": 3}),
        ("opus_mt_en_fr", [], {"WORLD_SIZE": "4", "LOCAL_RANK": "2"}, {"": 2}),
        # QLoRA off: None when distributed, None for OPUS, else the request.
        ("m2m100_418m", ["--no-qlora"], {}, "auto"),
        ("m2m100_418m", ["--no_qlora", "--device_map", "cuda:0"], {}, "cuda:0"),
        ("m2m100_418m", ["--no-qlora", "--device-map", "none"], {}, None),
        ("opus_mt_en_fr", ["--no-qlora"], {}, None),
        ("opus_mt_fr_en", ["--no-qlora", "--device-map", "cpu"], {}, None),
        ("m2m100_418m", ["--no-qlora"], {"WORLD_SIZE": "2", "LOCAL_RANK": "1"}, None),
        ("mbart50_mmt_en", ["--no-qlora", "--device-map", "cpu"], {"WORLD_SIZE": "4", "LOCAL_RANK": "0"}, None),
        ("opus_mt_fr_en", ["--no-qlora"], {"WORLD_SIZE": "2", "LOCAL_RANK": "1"}, None),
        # WORLD_SIZE=1 is not distributed.
        ("m2m100_418m", [], {"WORLD_SIZE": "1", "LOCAL_RANK": "0"}, "auto"),
        ("m2m100_418m", ["--no-qlora"], {"WORLD_SIZE": "1", "LOCAL_RANK": "0"}, "auto"),
    ],
)
def test_device_map_table_through_dry_run(
    data: Path, which: str, extra: list[str], env: dict, want: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    if "cuda:0" in extra:  # --dry-run checks the map against the GPUs: make this machine one with a GPU
        import torch

        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    plan = ok_json(invoke(*["finetune", "--which", which, "--data", str(data), *extra, "--dry-run"], env=env))
    assert plan["device_map"] == want
    assert plan["world_size"] == int(env.get("WORLD_SIZE", "1"))
    assert plan["local_rank"] == int(env.get("LOCAL_RANK", "0"))


def test_distributed_global_batch(tmp_path: Path) -> None:
    data = write_data(tmp_path / "pairs.jsonl", n_en=40, n_fr=40)
    plan = ok_json(invoke(*["finetune", "--which", "m2m100_418m", "--data", str(data), "--batch-size", "4",
                                   "--dry-run"], env={"WORLD_SIZE": "4", "LOCAL_RANK": "0"}))
    assert plan["global_batch"] == 4 * 2 * 4


@pytest.mark.parametrize("spelling", ["--max-tokens", "--max_tokens"])
def test_max_tokens_in_the_plan(data: Path, spelling: str) -> None:
    plan = ok_json(invoke(*["finetune", "--which", "m2m100_418m", "--data", str(data), spelling, "4096",
                                   "--dry-run"]))
    assert plan["max_tokens"] == 4096 and plan["global_batch"] is None
    line = one_error_line(invoke(*["finetune", "--which", "m2m100_418m", "--data", str(data), spelling, "300",
                                          "--dry-run"]))
    assert "--max-tokens 300" in line and "--max-source-len 512" in line


@pytest.mark.parametrize("env,name", [({"WORLD_SIZE": "two"}, "WORLD_SIZE"), ({"LOCAL_RANK": "-1"}, "LOCAL_RANK")])
def test_bad_launcher_env_is_one_line(data: Path, env: dict, name: str) -> None:
    line = one_error_line(invoke(*["finetune", "--which", "m2m100_418m", "--data", str(data), "--dry-run"],
                                 env=env))
    assert name in line


# --- finetune-all --dry-run -------------------------------------------------------------------------------------


def all_plans(data: Path, *extra: str, env: dict | None = None) -> list[dict]:
    plans = ok_json(invoke(*["finetune-all", "--data", str(data), *extra, "--dry-run"], env=env))
    assert isinstance(plans, list)
    return plans


def test_finetune_all_dry_run_is_the_table(data: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    plans = all_plans(data, "--output-dir", str(root))
    assert [p["which"] for p in plans] == TABLE_ORDER == list(MODEL_KEYS)
    for plan in plans:
        key = plan["which"]
        batch, lr = TABLE[key]
        assert plan["batch_size"] == batch, key
        assert plan["learning_rate"] == lr, key
        assert (plan["lora_r"], plan["lora_alpha"], plan["lora_dropout"]) == (32, 64, 0.05), key
        assert (plan["save_steps"], plan["eval_steps"]) == (1000, 1000), key
        assert plan["bf16"] is True and plan["fp16"] is False and plan["precision"] == "bf16"
        assert plan["qlora"] is False
        assert plan["epochs"] == 1.0 and plan["max_steps"] is None
        assert plan["grad_accum"] == 2
        assert plan["logging_steps"] == 50
        assert plan["seed"] == 42
        assert plan["warmup_ratio"] == 0.03
        assert plan["val_ratio"] == 0.05
        assert (plan["max_source_len"], plan["max_target_len"]) == (512, 512)
        assert plan["disable_tqdm"] is True
        assert plan["device_map_requested"] == "auto"
        assert plan["device_map"] == ("auto" if REGISTRY[key].family.shardable else None), key
        assert plan["output_dir"] == str(root / key)
        assert plan["model_id"] == REGISTRY[key].hub_id
        assert plan["data"] == str(data)
        assert plan["train_rows"] + plan["eval_rows"] == (10 if key == "m2m100_418m" else 5)
    assert not root.exists()


def test_finetune_all_default_output_root(data: Path) -> None:
    plans = all_plans(data)
    assert [p["output_dir"] for p in plans] == [str(Path("outputs") / k) for k in TABLE_ORDER]


def test_finetune_all_distributed_device_map(data: Path) -> None:
    # Plain LoRA (finetune_all's constant) under torchrun: every rank holds a whole copy, no map.
    plans = all_plans(data, env={"WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    assert [p["device_map"] for p in plans] == [None] * 5


def test_finetune_all_max_steps(data: Path) -> None:
    plans = all_plans(data, "--max_steps", "25")
    assert [p["max_steps"] for p in plans] == [25] * 5


def test_finetune_all_max_tokens(data: Path) -> None:
    plans = all_plans(data, "--max-tokens", "2048")
    assert [(p["max_tokens"], p["global_batch"]) for p in plans] == [(2048, None)] * 5


def test_finetune_all_evaluation_flags(tmp_path: Path) -> None:
    data = write_data(tmp_path / "pairs.jsonl", n_en=40, n_fr=40)  # enough publications for a validation split
    plans = all_plans(data, "--eval-chrf", "--eval_chrf_samples", "50", "--patience", "3")
    assert [(p["eval_chrf"], p["eval_chrf_samples"], p["patience"]) for p in plans] == [(True, 50, 3)] * 5
    defaults = all_plans(data)
    assert [(p["eval_chrf"], p["eval_chrf_samples"], p["patience"]) for p in defaults] == [(False, 200, None)] * 5


@pytest.mark.parametrize(
    "args,want",
    [
        (["--only", "opus_mt_fr_en"], ["opus_mt_fr_en"]),
        (["--only", "opus_mt_fr_en", "--only", "m2m100_418m"], ["m2m100_418m", "opus_mt_fr_en"]),
        (["--only", "opus_mt_fr_en,m2m100_418m"], ["m2m100_418m", "opus_mt_fr_en"]),
        (["--only", " opus_mt_fr_en , mbart50_mmt_en ,"], ["mbart50_mmt_en", "opus_mt_fr_en"]),
        (["--skip", "m2m100_418m"], TABLE_ORDER[1:]),
        (["--skip", "m2m100_418m", "--skip", "opus_mt_fr_en"], TABLE_ORDER[1:4]),
        (["--skip", "m2m100_418m,opus_mt_fr_en"], TABLE_ORDER[1:4]),
        (["--only", "mbart50_mmt_fr,mbart50_mmt_en", "--skip", "mbart50_mmt_en"], ["mbart50_mmt_fr"]),
    ],
)
def test_finetune_all_only_skip(data: Path, args: list[str], want: list[str]) -> None:
    assert [p["which"] for p in all_plans(data, *args)] == want


@pytest.mark.parametrize(
    "args,flag",
    [
        (["--only", "nllb"], "--only"),
        (["--only", "m2m100_418m,opus_mt_de_en"], "--only"),
        (["--skip", "m2m100"], "--skip"),
        (["--only", "m2m100_418m", "--skip", "m2m100_418m"], "--only/--skip"),
    ],
)
def test_finetune_all_unknown_keys_refused(data: Path, args: list[str], flag: str) -> None:
    line = one_error_line(invoke(*["finetune-all", "--data", str(data), *args, "--dry-run"]))
    assert flag in line


def test_finetune_all_unknown_key_is_named(data: Path) -> None:
    line = one_error_line(invoke(*["finetune-all", "--data", str(data), "--only", "m2m100_418m,bogus_key",
                                          "--dry-run"]))
    assert "bogus_key" in line


@pytest.mark.parametrize("spelling", ["--model-root", "--model_root"])
def test_finetune_all_model_root(data: Path, tiny_models, tmp_path: Path, spelling: str) -> None:
    root = tmp_path / "models"
    root.mkdir()
    (root / "opus_mt_en_fr").symlink_to(tiny_models["opus_mt_en_fr"])
    (root / "mbart50_mmt_en").symlink_to(tiny_models["mbart50_mmt_en"])
    (root / "m2m100_418m").write_text("not a directory")
    plans = {p["which"]: p for p in all_plans(data, spelling, str(root))}
    assert plans["opus_mt_en_fr"]["model_id"] == str(root / "opus_mt_en_fr")
    assert plans["mbart50_mmt_en"]["model_id"] == str(root / "mbart50_mmt_en")
    assert plans["m2m100_418m"]["model_id"] == "facebook/m2m100_418M"
    assert plans["mbart50_mmt_fr"]["model_id"] == "facebook/mbart-large-50-many-to-many-mmt"
    assert plans["opus_mt_fr_en"]["model_id"] == "Helsinki-NLP/opus-mt-tc-big-fr-en"


def test_finetune_all_model_root_must_exist(data: Path, tmp_path: Path) -> None:
    line = one_error_line(invoke(*["finetune-all", "--data", str(data), "--model-root", str(tmp_path / "nope"),
                                          "--dry-run"]))
    assert "--model-root" in line and str(tmp_path / "nope") in line


def test_finetune_all_missing_data(tmp_path: Path) -> None:
    missing = tmp_path / "missing.jsonl"
    line = one_error_line(invoke(*["finetune-all", "--data", str(missing), "--dry-run"]))
    assert f"{missing}: file not found" in line


def test_finetune_all_needs_rows_for_every_model(tmp_path: Path) -> None:
    only_en = write_data(tmp_path / "en.jsonl", n_en=4, n_fr=0)
    result = invoke(*["finetune-all", "--data", str(only_en), "--dry-run"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("csas: error: ")]
    assert [line.split(":")[2].strip() for line in lines] == ["mbart50_mmt_en", "opus_mt_fr_en"]
    assert all(line.startswith("csas: error: ") and str(only_en) in line and "source_lang fr" in line for line in lines)
    records = json.loads(result.stdout)  # the plans that could be made are still printed, in the table's order
    assert [r["which"] for r in records] == list(MODEL_KEYS) and [("error" in r) for r in records] == [False, False, True, False, True]
    plans = all_plans(only_en, "--only", "m2m100_418m,mbart50_mmt_fr,opus_mt_en_fr")
    assert [p["train_rows"] + p["eval_rows"] for p in plans] == [4, 4, 4]


# --- user errors: one line, no traceback -----------------------------------------------------------------------


def test_missing_data_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    line = one_error_line(invoke(*["finetune", "--which", "opus_mt_en_fr", "--data", str(missing), "--dry-run"]))
    assert line == f"csas: error: {missing}: file not found"


def test_broken_json_line(tmp_path: Path) -> None:
    path = write_data(tmp_path / "d.jsonl", 2, 0)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"source": "a", "target": \n')
    line = one_error_line(invoke(*["finetune", "--which", "opus_mt_en_fr", "--data", str(path), "--dry-run"]))
    assert line.startswith(f"csas: error: {path}:3: invalid JSON")


@pytest.mark.slow
def test_broken_json_line_without_dry_run(tmp_path: Path) -> None:
    # The data is validated before anything is loaded, so a real run fails the same way (and writes nothing).
    path = tmp_path / "d.jsonl"
    path.write_text('{"source": "a", "target": "b", "source_lang": "en"}\nnot json\n', encoding="utf-8")
    out = tmp_path / "out"
    line = one_error_line(invoke(*["finetune", "--which", "opus_mt_en_fr", "--data", str(path),
                                          "--output-dir", str(out)]))
    assert line.startswith(f"csas: error: {path}:2: invalid JSON")
    assert not (out / "opus_mt_en_fr" / "run.json").exists()


def test_unknown_which(data: Path) -> None:
    line = one_error_line(invoke(*["finetune", "--which", "opus_mt_de_en", "--data", str(data), "--dry-run"]))
    assert line.startswith("csas: error: --which: unknown model 'opus_mt_de_en'")
    for key in MODEL_KEYS:
        assert key in line


@pytest.mark.parametrize(
    "args,flag",
    [
        (["--batch-size", "0"], "--batch-size"),
        (["--batch_size", "0"], "--batch-size"),
        (["--grad-accum", "0"], "--grad-accum"),
        (["--epochs", "0"], "--epochs"),
        (["--epochs", "nan"], "--epochs"),
        (["--lr", "-1"], "--lr"),
        (["--val-ratio", "1"], "--val-ratio"),
        (["--warmup-ratio", "1.5"], "--warmup-ratio"),
        (["--lora-r", "0"], "--lora-r"),
        (["--lora-alpha", "0"], "--lora-alpha"),
        (["--lora-dropout", "1"], "--lora-dropout"),
        (["--max-steps", "0"], "--max-steps"),
        (["--save-steps", "0"], "--save-steps"),
        (["--eval-steps", "0"], "--eval-steps"),
        (["--logging-steps", "0"], "--logging-steps"),
        (["--max-source-len", "0"], "--max-source-len"),
        (["--max-target-len", "0"], "--max-target-len"),
        (["--device-map", " "], "--device-map"),
        (["--lora-targets", "q proj"], "--lora-targets"),
        (["--lora-targets", ","], "--lora-targets"),
        (["--lora_targets", "q_proj;v_proj"], "--lora-targets"),
    ],
)
def test_bad_flag_values(data: Path, args: list[str], flag: str) -> None:
    line = one_error_line(invoke(*["finetune", "--which", "m2m100_418m", "--data", str(data), *args,
                                          "--dry-run"]))
    assert line.startswith(f"csas: error: {flag}"), line


def test_bad_flag_refused_before_data_is_read(tmp_path: Path) -> None:
    line = one_error_line(invoke(*["finetune", "--which", "m2m100_418m", "--data", str(tmp_path / "x.jsonl"),
                                          "--batch-size", "0", "--dry-run"]))
    assert "--batch-size" in line


@pytest.mark.slow
def test_refuses_finished_run_before_loading(data: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "o" / "opus_mt_en_fr"
    run_dir.mkdir(parents=True)
    (run_dir / "finished.json").write_text('{"status": "ok"}\n')
    line = one_error_line(invoke(*["finetune", "--which", "opus_mt_en_fr", "--data", str(data),
                                          "--output_dir", str(tmp_path / "o")]))
    assert "--output-dir" in line and str(run_dir) in line and "--overwrite" in line


def test_missing_which_is_a_usage_error_without_traceback(data: Path) -> None:
    result = invoke(*["finetune", "--data", str(data), "--dry-run"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "--which" in result.stderr


# --- models, version ---------------------------------------------------------------------------------------------


def test_models_json() -> None:
    rows = ok_json(invoke(*["models", "--json"]))
    assert [r["key"] for r in rows] == TABLE_ORDER
    assert [r["index"] for r in rows] == list(range(5))
    for r in rows:
        spec = REGISTRY[r["key"]]
        assert r["hub_id"] == spec.hub_id
        assert r["family"] == spec.family.name
        assert r["source_langs"] == list(spec.source_langs)
        assert (r["batch_size"], r["lr"]) == TABLE[r["key"]]
    assert rows[0]["source_langs"] == ["en", "fr"]
    assert rows[3]["hub_id"] == "Helsinki-NLP/opus-mt-tc-big-en-fr"


def test_models_table() -> None:
    result = invoke(*["models"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for key in TABLE_ORDER:
        assert key in result.stdout


def test_version() -> None:
    result = invoke(*["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"csas {__version__}\n"


def test_no_args_shows_help() -> None:
    result = invoke(*[])
    assert "finetune-all" in result.output and "Traceback" not in result.output


# --- the installed console script -------------------------------------------------------------------------------


def run_csas(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    assert CSAS.exists(), f"console script not installed at {CSAS}"
    full_env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "LOCAL_RANK", "RANK")}
    full_env.update(env or {})
    return subprocess.run([str(CSAS), *args], capture_output=True, text=True, env=full_env, timeout=60)


def assert_one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("csas: error: ")
    return lines[0]


def test_console_script_version() -> None:
    proc = run_csas("--version")
    assert proc.returncode == 0
    assert proc.stdout == f"csas {__version__}\n"
    assert proc.stderr == ""


def test_console_script_broken_json(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"source": "a", "target": "b", "source_lang": "en"}\n{"source": \n', encoding="utf-8")
    line = assert_one_line_error(run_csas("finetune", "--which", "opus_mt_en_fr", "--data", str(path), "--dry_run"))
    assert line.startswith(f"csas: error: {path}:2: invalid JSON")


@pytest.mark.slow
def test_console_script_missing_file_and_bad_flag(tmp_path: Path) -> None:
    missing = tmp_path / "none.jsonl"
    line = assert_one_line_error(run_csas("finetune", "--which", "m2m100_418m", "--data", str(missing), "--dry-run"))
    assert line == f"csas: error: {missing}: file not found"
    line = assert_one_line_error(run_csas("finetune", "--which", "m2m100_418m", "--data", str(missing),
                                          "--batch_size", "0", "--dry-run"))
    assert line.startswith("csas: error: --batch-size")
    line = assert_one_line_error(run_csas("finetune", "--which", "m2m100", "--data", str(missing)))
    assert line.startswith("csas: error: --which")
    line = assert_one_line_error(run_csas("finetune", "--which", "m2m100_418m", "--data", str(missing),
                                          "--lora-targets", "q proj"))
    assert line.startswith("csas: error: --lora-targets")


@pytest.mark.slow
def test_console_script_dry_run_with_torchrun_env(tmp_path: Path) -> None:
    data = write_data(tmp_path / "d.jsonl")
    proc = run_csas("finetune", "--which", "mbart50_mmt_fr", "--data", str(data), "--dry-run",
                    env={"WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    plan = json.loads(proc.stdout)
    assert plan["device_map"] == {"": 1}
    proc = run_csas("finetune-all", "--data", str(data), "--only", "opus_mt_en_fr", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert [p["which"] for p in json.loads(proc.stdout)] == ["opus_mt_en_fr"]


@pytest.mark.parametrize("seed", ["-1", "4294967296"])
def test_seed_out_of_range_is_a_flag_error(data: Path, seed: str) -> None:
    line = one_error_line(invoke(*["finetune", "--which", "m2m100_418m", "--data", str(data), "--seed", seed,
                                          "--dry-run"]))
    assert line.startswith("csas: error: --seed")


@pytest.mark.parametrize("dashed", [True, False], ids=["dashed", "underscore"])
def test_finetune_sample_caps_reach_the_plan(tmp_path: Path, dashed: bool) -> None:
    data = write_data(tmp_path / "d.jsonl", n_en=20, n_fr=0)
    names = ("--max-train-samples", "--max-eval-samples") if dashed else ("--max_train_samples", "--max_eval_samples")
    plan = ok_json(invoke(*["finetune", "--which", "opus_mt_en_fr", "--data", str(data), "--val-ratio", "0.25",
                                   names[0], "6", names[1], "2", "--dry-run"]))  # fmt: skip
    assert (plan["max_train_samples"], plan["max_eval_samples"]) == (6, 2)
    assert (plan["train_rows"], plan["eval_rows"]) == (6, 2)
    plan = ok_json(invoke(*["finetune", "--which", "opus_mt_en_fr", "--data", str(data), "--dry-run"]))
    assert (plan["max_train_samples"], plan["max_eval_samples"]) == (None, None)
    assert plan["train_rows"] + plan["eval_rows"] == 20


def test_finetune_sample_cap_zero_is_a_flag_error(data: Path) -> None:
    line = one_error_line(invoke(*["finetune", "--which", "m2m100_418m", "--data", str(data),
                                          "--max-train-samples", "0", "--dry-run"]))  # fmt: skip
    assert line.startswith("csas: error: --max-train-samples must be at least 1, got 0")


# --- evaluation during training --------------------------------------------------------------------------------


@pytest.mark.parametrize("underscore", [True, False], ids=["underscore", "dashed"])
def test_evaluation_flags_reach_the_plan(data: Path, underscore: bool) -> None:
    names = ["--eval_chrf", "--eval_chrf_samples", "--eval_num_beams"] if underscore else \
        ["--eval-chrf", "--eval-chrf-samples", "--eval-num-beams"]  # fmt: skip
    plan = ok_json(invoke(*["finetune", "--which", "m2m100_418m", "--data", str(data), names[0], names[1], "50",
                                   names[2], "3", "--patience", "4", "--dry-run"]))  # fmt: skip
    assert (plan["eval_chrf"], plan["eval_chrf_samples"], plan["eval_num_beams"], plan["patience"]) == (True, 50, 3, 4)
    plan = ok_json(invoke(*["finetune", "--which", "m2m100_418m", "--data", str(data), "--dry-run"]))
    assert (plan["eval_chrf"], plan["eval_chrf_samples"], plan["eval_num_beams"], plan["patience"]) == (
        False, 200, 1, None
    )


@pytest.mark.parametrize(
    "args,message",
    [
        (["--patience", "0"], "--patience must be at least 1, got 0"),
        (["--eval-chrf-samples", "0"], "--eval-chrf-samples must be at least 1, got 0"),
        (["--eval-num-beams", "0"], "--eval-num-beams must be at least 1, got 0"),
        (["--patience", "3", "--val-ratio", "0"], "--patience needs evaluations, but --val-ratio 0"),
        (["--eval-chrf", "--val-ratio", "0"], "--eval-chrf needs evaluations, but --val-ratio 0"),
    ],
)
def test_bad_evaluation_flags_are_one_line(data: Path, args: list[str], message: str) -> None:
    line = one_error_line(invoke(*["finetune", "--which", "m2m100_418m", "--data", str(data), *args,
                                          "--dry-run"]))  # fmt: skip
    assert line.startswith(f"csas: error: {message}"), line


def test_patience_with_an_empty_validation_split_is_one_line(tmp_path: Path) -> None:
    rows = [{"source": f"Stock {i}", "target": f"Stock {i}", "source_lang": "en", "pub_number": "one"} for i in range(6)]
    data = tmp_path / "one-publication.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    line = one_error_line(invoke(*["finetune", "--which", "opus_mt_en_fr", "--data", str(data), "--patience",
                                          "2", "--dry-run"]))  # fmt: skip
    assert line.startswith("csas: error: --patience needs evaluations, but the validation split is empty"), line
