"""Tests for csas_cli.settings: finetune.py's defaults, validation, the finetune-all table, and the plan."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
from helpers import FINETUNE_ALL_SPEC

from csas_cli import registry
from csas_cli.errors import CsasError, SettingsError
from csas_cli.plan import Resolved, build_plan
from csas_cli.values import parse_lora_targets
from csas_cli.settings import (
    FIXED,
    GROUPS,
    LABEL_SMOOTHING,
    MAX_GRAD_NORM,
    WEIGHT_DECAY,
    FinetuneSettings,
    flag,
    settings_fields,
    settings_from_table,
    shared_values,
)

# finetune.py's defaults (the signature its users agreed on), written out independently of settings.py, by the
# settings names (`learning_rate` is --lr, `qlora` is the opposite of --no-qlora).
SPEC_DEFAULTS = {
    "data": Path("training_data.jsonl"),
    "output_dir": Path("outputs"),
    "epochs": 1.0,
    "learning_rate": 2e-4,
    "batch_size": 8,
    "grad_accum": 2,
    "val_ratio": 0.05,
    "max_source_len": 512,
    "max_target_len": 512,
    "seed": 42,
    "fp16": False,
    "bf16": False,
    "qlora": True,
    "save_steps": 1000,
    "eval_steps": 1000,
    "logging_steps": 50,
    "warmup_ratio": 0.03,
    "device_map": "auto",
    "disable_tqdm": False,
    "lora_r": 32,
    "lora_alpha": 64,
    "lora_dropout": 0.05,
    "max_steps": None,
}

SPEC_TABLE = FINETUNE_ALL_SPEC
SPEC_CONSTANTS = {
    "grad_accum": 2,
    "epochs": 1.0,
    "logging_steps": 50,
    "seed": 42,
    "warmup_ratio": 0.03,
    "val_ratio": 0.05,
    "max_source_len": 512,
    "max_target_len": 512,
    "bf16": True,
    "fp16": False,
    "qlora": False,
    "device_map": "auto",
    "disable_tqdm": True,
}


def settings(**kwargs) -> FinetuneSettings:
    kwargs.setdefault("which", "m2m100_418m")
    return FinetuneSettings.create(**kwargs)


# --- defaults --------------------------------------------------------------------------------------------------


def test_defaults_equal_finetune_py() -> None:
    values = settings().flat()
    for name, value in SPEC_DEFAULTS.items():
        assert values[name] == value, name
    assert values["lora_targets"] == registry.DEFAULT_LORA_TARGETS == ("q_proj", "k_proj", "v_proj")
    assert values["overwrite"] is False
    assert values["model_id"] is None
    assert settings().training.precision == "fp32"


def test_fixed_settings_equal_finetune_py() -> None:
    assert LABEL_SMOOTHING == 0.1
    assert WEIGHT_DECAY == 0.01
    assert MAX_GRAD_NORM == 1.0
    assert settings().output.save_total_limit == 3  # finetune.py kept the newest 3 checkpoints


def test_every_setting_has_a_help_text_and_one_flat_name() -> None:
    names = [f.name for f in settings_fields()]
    assert len(names) == len(set(names))
    assert set(names) == set(settings().flat())
    undocumented = [f.name for f in settings_fields() if not f.metadata["help"] and f.name != "run_name"]
    assert undocumented == []  # run_name is set by csas sweep, not a flag


def test_which_is_required() -> None:
    with pytest.raises(TypeError):
        FinetuneSettings.create()


def test_an_unknown_setting_is_a_bug_not_a_user_error() -> None:
    with pytest.raises(TypeError, match="lr"):
        settings(lr=1e-3)  # the flag is --lr; the setting is learning_rate


def test_groups_hold_their_fields() -> None:
    s = settings(learning_rate=1e-3, lora_r=8, eval_steps=50, save_steps=70, data=Path("d.jsonl"))
    assert s.training.learning_rate == 1e-3 and s.lora.lora_r == 8 and s.evaluation.eval_steps == 50
    assert s.output.save_steps == 70 and s.corpus.data == Path("d.jsonl") and s.model.which == "m2m100_418m"
    assert set(GROUPS) == {"model", "corpus", "training", "lora", "evaluation", "output"}


def test_updated_replaces_and_checks_again() -> None:
    s = settings()
    t = s.updated(learning_rate=5e-4, resume="auto")
    assert (t.training.learning_rate, t.output.resume) == (5e-4, "auto")
    assert s.training.learning_rate == 2e-4  # frozen: the original is unchanged
    with pytest.raises(SettingsError, match="^--resume and --overwrite"):
        t.updated(overwrite=True)


def test_lora_targets_take_the_cli_string() -> None:
    assert settings(lora_targets="q_proj, v_proj").lora.lora_targets == ("q_proj", "v_proj")
    assert settings(lora_targets="all-linear").lora.lora_targets == registry.ALL_LINEAR_TARGETS
    with pytest.raises(SettingsError, match="^--lora-targets"):
        settings(lora_targets="q proj")


# --- validation ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field,value,flag_name",
    [
        ("which", "opus_mt_de_fr", "--which"),
        ("which", "", "--which"),
        ("batch_size", 0, "--batch-size"),
        ("batch_size", -4, "--batch-size"),
        ("grad_accum", 0, "--grad-accum"),
        ("max_source_len", 0, "--max-source-len"),
        ("max_target_len", 0, "--max-target-len"),
        ("save_steps", 0, "--save-steps"),
        ("eval_steps", 0, "--eval-steps"),
        ("logging_steps", 0, "--logging-steps"),
        ("lora_r", 0, "--lora-r"),
        ("lora_alpha", 0, "--lora-alpha"),
        ("max_steps", 0, "--max-steps"),
        ("max_steps", -1, "--max-steps"),
        ("max_train_samples", 0, "--max-train-samples"),
        ("max_eval_samples", -1, "--max-eval-samples"),
        ("max_tokens", 0, "--max-tokens"),
        ("max_tokens", 511, "--max-tokens"),  # below --max-source-len/--max-target-len 512: a pair might not fit
        ("epochs", 0.0, "--epochs"),
        ("epochs", -1.0, "--epochs"),
        ("epochs", math.nan, "--epochs"),
        ("epochs", math.inf, "--epochs"),
        ("learning_rate", 0.0, "--lr"),
        ("learning_rate", -1e-4, "--lr"),
        ("learning_rate", math.nan, "--lr"),
        ("learning_rate", math.inf, "--lr"),
        ("val_ratio", 1.0, "--val-ratio"),
        ("val_ratio", -0.1, "--val-ratio"),
        ("val_ratio", math.nan, "--val-ratio"),
        ("warmup_ratio", 1.0, "--warmup-ratio"),
        ("warmup_ratio", -0.01, "--warmup-ratio"),
        ("lora_dropout", 1.0, "--lora-dropout"),
        ("lora_dropout", -0.5, "--lora-dropout"),
        ("device_map", "", "--device-map"),
        ("device_map", "   ", "--device-map"),
        ("lora_targets", (), "--lora-targets"),
        ("patience", 0, "--patience"),
        ("patience", -2, "--patience"),
        ("eval_chrf_samples", 0, "--eval-chrf-samples"),
        ("eval_num_beams", 0, "--eval-num-beams"),
    ],
)
def test_validation_errors_name_their_flag(field: str, value: object, flag_name: str) -> None:
    with pytest.raises(SettingsError) as info:
        settings(**{field: value})
    message = str(info.value)
    assert isinstance(info.value, CsasError)
    assert message.startswith(flag_name), message
    assert len(message.splitlines()) == 1
    if field != "which" and field != "device_map" and field != "lora_targets":
        assert repr(value) in message or str(value) in message


@pytest.mark.parametrize("field,value,flag_name", [("patience", 3, "--patience"), ("eval_chrf", True, "--eval-chrf")])
def test_evaluation_flags_need_a_validation_split(field: str, value: object, flag_name: str) -> None:
    with pytest.raises(SettingsError) as info:
        settings(val_ratio=0.0, **{field: value})
    message = str(info.value)
    assert message.startswith(f"{flag_name} needs evaluations") and "--val-ratio 0" in message
    assert len(message.splitlines()) == 1
    assert settings(val_ratio=0.0).evaluation.patience is None  # the defaults need no validation split


def test_evaluation_during_training_defaults_and_plan() -> None:
    e = settings().evaluation
    assert (e.eval_chrf, e.eval_chrf_samples, e.eval_num_beams, e.patience) == (False, 200, 1, None)
    assert e.best_metric == "eval_loss"
    chrf = build_plan(settings(eval_chrf=True, eval_chrf_samples=50, eval_num_beams=4, patience=3))
    assert chrf.evaluation.best_metric == "eval_chrf"
    assert {k: chrf.to_dict()[k] for k in ("eval_chrf", "eval_chrf_samples", "eval_num_beams", "patience")} == {
        "eval_chrf": True, "eval_chrf_samples": 50, "eval_num_beams": 4, "patience": 3,
    }


def test_unknown_which_lists_the_choices() -> None:
    with pytest.raises(SettingsError) as info:
        settings(which="nllb")
    for key in registry.MODEL_KEYS:
        assert key in str(info.value)


@pytest.mark.parametrize(
    "field,value",
    [("val_ratio", 0.0), ("warmup_ratio", 0.0), ("lora_dropout", 0.0), ("val_ratio", 0.99), ("max_steps", 1),
     ("epochs", 0.25), ("batch_size", 1), ("seed", 0), ("seed", 2**32 - 1), ("max_train_samples", 1),
     ("max_eval_samples", 1), ("patience", 1), ("eval_chrf_samples", 1), ("eval_num_beams", 1)],
)
def test_boundary_values_are_accepted(field: str, value: object) -> None:
    assert settings(**{field: value}).flat()[field] == value


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_seed_outside_numpy_range_is_a_flag_error(seed: int) -> None:
    with pytest.raises(SettingsError, match="^--seed"):
        settings(seed=seed)


def test_sample_caps_default_to_none_and_reach_the_plan() -> None:
    c = settings().corpus
    assert (c.max_train_samples, c.max_eval_samples) == (None, None)
    plan = build_plan(settings(max_train_samples=200, max_eval_samples=10))
    record = plan.to_dict()
    assert (record["max_train_samples"], record["max_eval_samples"]) == (200, 10)
    assert plan.resolved.train_rows is None  # counted by prepare_run, after the caps


def test_run_name_replaces_which_in_the_run_dir() -> None:
    assert settings().run_dir == Path("outputs/m2m100_418m")
    s = settings(output_dir=Path("sweeps/m2m100_418m"), run_name="trial-00-lr1e-4-r8-a16-d0.05")
    assert s.run_dir == Path("sweeps/m2m100_418m/trial-00-lr1e-4-r8-a16-d0.05")
    assert build_plan(s).resolved.output_dir == str(s.run_dir)


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../x", "/abs"])
def test_run_name_must_be_one_folder(name: str) -> None:
    with pytest.raises(SettingsError, match="^run name must be one folder name"):
        settings(run_name=name)


def test_flag_spelling() -> None:
    assert flag("batch_size") == "--batch-size"
    assert flag("learning_rate") == "--lr"
    assert flag("qlora") == "--no-qlora"
    assert flag("max_source_len") == "--max-source-len"


# --- precision -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fp16,bf16,want", [(False, False, "fp32"), (True, False, "fp16"), (False, True, "bf16"), (True, True, "bf16")]
)
def test_precision_bf16_wins(fp16: bool, bf16: bool, want: str) -> None:
    s = settings(fp16=fp16, bf16=bf16)
    assert s.training.precision == want
    plan = build_plan(s)
    assert plan.resolved.precision == want
    record = plan.to_dict()
    assert (record["fp16"], record["bf16"], record["precision"]) == (fp16, bf16, want)


# --- settings_from_table ---------------------------------------------------------------------------------------


def test_registry_table_matches_spec() -> None:
    assert list(registry.FINETUNE_ALL_TABLE) == list(SPEC_TABLE) == list(registry.MODEL_KEYS)
    assert dict(registry.FINETUNE_ALL_CONSTANTS) == SPEC_CONSTANTS


@pytest.mark.parametrize("key", list(SPEC_TABLE))
def test_settings_from_table(key: str) -> None:
    s = settings_from_table(key)
    values = s.flat()
    batch, lr = SPEC_TABLE[key]
    assert s.which == key
    assert values["batch_size"] == batch
    assert values["learning_rate"] == lr
    assert (values["lora_r"], values["lora_alpha"], values["lora_dropout"]) == (32, 64, 0.05)
    assert (values["save_steps"], values["eval_steps"]) == (1000, 1000)
    for name, value in SPEC_CONSTANTS.items():
        assert values[name] == value, name
    assert s.training.precision == "bf16"
    assert values["max_steps"] is None
    assert values["output_dir"] == Path("outputs")
    assert s.run_dir == Path("outputs") / key
    assert values["lora_targets"] == registry.DEFAULT_LORA_TARGETS


def test_settings_from_table_overrides_win() -> None:
    s = settings_from_table("opus_mt_fr_en", max_steps=7, batch_size=3, output_dir=Path("x"), overwrite=True)
    assert (s.training.max_steps, s.training.batch_size, s.output.overwrite) == (7, 3, True)
    assert s.run_dir == Path("x/opus_mt_fr_en")
    assert s.training.learning_rate == 3e-4  # untouched table value


def test_settings_from_table_validates_overrides() -> None:
    with pytest.raises(SettingsError, match="--max-steps"):
        settings_from_table("m2m100_418m", max_steps=0)


def test_settings_from_table_unknown_key() -> None:
    with pytest.raises(KeyError):
        settings_from_table("nope")


def test_shared_values_keep_what_every_model_has_alike() -> None:
    shared = shared_values(settings_from_table)
    assert shared["grad_accum"] == 2 and shared["bf16"] is True and shared["qlora"] is False
    assert shared["save_steps"] == 1000  # a table column with one value for every model
    assert "batch_size" not in shared and "learning_rate" not in shared and "which" not in shared  # they differ


# --- build_plan ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", list(registry.MODEL_KEYS))
def test_build_plan_defaults(key: str) -> None:
    plan = build_plan(settings(which=key))
    r = plan.resolved
    spec = registry.REGISTRY[key]
    assert plan.which == key
    assert plan.model_id == r.model_id == spec.hub_id
    assert r.family == spec.family.name
    assert r.source_langs == spec.source_langs
    assert r.output_dir == str(Path("outputs") / key)
    assert plan.run_dir == Path("outputs") / key
    assert r.global_batch == 16
    assert r.world_size == 1 and r.local_rank == 0
    assert plan.lora.qlora is True
    assert r.device_map == ("auto" if spec.family.shardable else None)
    assert r.device_map_requested == "auto"
    assert r.train_rows is None and r.eval_rows is None
    record = plan.to_dict()
    assert record["learning_rate"] == 2e-4 and record["qlora"] is True
    assert record["lora_targets"] == ["q_proj", "k_proj", "v_proj"]


@pytest.mark.parametrize("batch,accum,world", [(8, 2, 1), (3, 5, 2), (16, 1, 4), (1, 1, 1)])
def test_build_plan_global_batch(batch: int, accum: int, world: int) -> None:
    plan = build_plan(settings(batch_size=batch, grad_accum=accum), world_size=world, local_rank=world - 1)
    assert plan.resolved.global_batch == batch * accum * world
    assert plan.resolved.world_size == world
    assert plan.resolved.local_rank == world - 1


def test_max_tokens_replaces_the_pair_count_of_a_step() -> None:
    plan = build_plan(settings(max_tokens=4096, max_source_len=256, max_target_len=300), world_size=2)
    assert plan.training.max_tokens == 4096 and plan.resolved.global_batch is None  # the pairs per step vary
    assert build_plan(settings(max_tokens=512)).training.max_tokens == 512  # the longest allowed pair still fits
    assert build_plan(settings()).training.max_tokens is None


def test_build_plan_model_id_and_run_dir() -> None:
    s = settings(which="mbart50_mmt_en", model_id="/models/mbart", output_dir=Path("/runs"))
    plan = build_plan(s)
    assert plan.model_id == "/models/mbart"
    assert plan.resolved.output_dir == "/runs/mbart50_mmt_en"
    assert plan.resolved.source_langs == ("fr",)


def test_build_plan_resolves_device_map_from_env_values() -> None:
    plan = build_plan(settings(which="m2m100_418m"), world_size=2, local_rank=1)
    assert plan.resolved.device_map == {"": 1}
    plan = build_plan(settings(which="m2m100_418m", qlora=False), world_size=2, local_rank=1)
    assert plan.resolved.device_map is None
    plan = build_plan(settings(which="m2m100_418m", qlora=False, device_map=" cpu "))
    assert plan.resolved.device_map == "cpu"
    assert plan.resolved.device_map_requested == "cpu"
    plan = build_plan(settings(which="m2m100_418m", device_map="none"))
    assert plan.resolved.device_map is None


def test_plan_record_is_json_serialisable_and_complete() -> None:
    plan = build_plan(settings(lora_targets=registry.ALL_LINEAR_TARGETS), world_size=2, local_rank=1)
    record = json.loads(json.dumps(plan.to_dict()))
    recorded = {f.name for f in settings_fields() if f.metadata["record"]}
    resolved = {f.name for f in dataclasses.fields(Resolved)}
    assert set(record) == recorded | resolved | set(FIXED)
    # What concerns one invocation only is not recorded; the run directory is output_dir.
    assert not {"overwrite", "resume", "run_name", "no_qlora"} & set(record)
    assert record["output_dir"] == str(Path("outputs") / "m2m100_418m")
    assert record["device_map"] == {"": 1}
    assert record["lora_targets"] == list(registry.ALL_LINEAR_TARGETS)
    assert record["label_smoothing"] == LABEL_SMOOTHING


# --- parse_lora_targets ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value,want",
    [
        ("q_proj,v_proj", ("q_proj", "v_proj")),
        (" q_proj , k_proj ,v_proj ", ("q_proj", "k_proj", "v_proj")),
        ("q_proj,,v_proj,", ("q_proj", "v_proj")),
        ("fc1", ("fc1",)),
        ("self_attn.q_proj", ("self_attn.q_proj",)),
        ("all-linear", registry.ALL_LINEAR_TARGETS),
        ("ALL-LINEAR", registry.ALL_LINEAR_TARGETS),
        ("all_linear", registry.ALL_LINEAR_TARGETS),
        (" all-linear ", registry.ALL_LINEAR_TARGETS),
    ],
)
def test_parse_lora_targets(value: str, want: tuple[str, ...]) -> None:
    assert parse_lora_targets(value) == want


def test_all_linear_covers_attention_and_feed_forward() -> None:
    assert set(registry.DEFAULT_LORA_TARGETS) < set(registry.ALL_LINEAR_TARGETS)
    assert {"out_proj", "fc1", "fc2"} <= set(registry.ALL_LINEAR_TARGETS)


@pytest.mark.parametrize("value", ["", "  ", ",", " , ,", "q_proj;v_proj", "q proj", "q-proj", "*", "q_proj,v/proj"])
def test_parse_lora_targets_refuses(value: str) -> None:
    with pytest.raises(SettingsError) as info:
        parse_lora_targets(value)
    assert str(info.value).startswith("--lora-targets")
