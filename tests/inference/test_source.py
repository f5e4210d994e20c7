"""Tests for csas_cli.inference.source: resolving a model source from the flags, and the direction a model
translates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from csas_cli.errors import ModelError, SettingsError
from csas_cli.inference.source import (
    BASE,
    MERGE_RECORD,
    MERGED,
    RUN,
    Direction,
    resolve_direction,
    resolve_source,
)
from csas_cli.registry import REGISTRY


def fake_run(root: Path, which: str = "opus_mt_en_fr", *, finished: bool = True, lora: bool = True,
             model_id: str = "/models/base", tokenizer: bool = True) -> Path:  # fmt: skip
    """A run directory's files, without weights (resolve_source reads only these)."""
    root.mkdir(parents=True)
    (root / "run.json").write_text(json.dumps({"plan": {"which": which, "model_id": model_id}}))
    if lora:
        (root / "lora").mkdir()
        (root / "lora" / "adapter_config.json").write_text("{}")
    if tokenizer:
        (root / "tokenizer_config.json").write_text("{}")
    if finished:
        (root / "finished.json").write_text('{"status": "ok"}')
    return root


def fake_model_dir(root: Path, record: dict | None = None) -> Path:
    root.mkdir(parents=True)
    (root / "config.json").write_text("{}")
    (root / "tokenizer_config.json").write_text("{}")
    if record is not None:
        (root / MERGE_RECORD).write_text(json.dumps(record))
    return root


# --- resolve_source -----------------------------------------------------------------------------------------------


def test_a_finished_run_means_its_base_plus_adapter_and_its_own_tokenizer(tmp_path):
    run = fake_run(tmp_path / "run")
    source = resolve_source(run, None, None)
    assert source.kind == RUN and source.which == "opus_mt_en_fr"
    assert source.model_id == "/models/base" and source.base_model_id == "/models/base"
    assert source.adapter == run / "lora"
    assert source.tokenizer_id == str(run)
    assert source.base_from_record


def test_model_id_overrides_a_runs_base(tmp_path):
    run = fake_run(tmp_path / "run")
    source = resolve_source(run, "opus_mt_en_fr", "/cluster/models/opus")
    assert source.model_id == "/cluster/models/opus" and not source.base_from_record


def test_a_run_without_tokenizer_files_uses_the_bases(tmp_path):
    source = resolve_source(fake_run(tmp_path / "run", tokenizer=False), None, None)
    assert source.tokenizer_id == "/models/base"


def test_which_alone_means_the_registry_base_or_model_id():
    hub = resolve_source(None, "mbart50_mmt_en", None)
    assert hub.kind == BASE and hub.model_id == REGISTRY["mbart50_mmt_en"].hub_id and hub.adapter is None
    local = resolve_source(None, "mbart50_mmt_en", "/models/mbart")
    assert local.model_id == local.tokenizer_id == "/models/mbart"


def test_a_merged_directory_names_its_model_in_csas_merge_json(tmp_path):
    merged = fake_model_dir(tmp_path / "merged", {"which": "m2m100_418m", "base_model_id": "/models/m2m"})
    source = resolve_source(merged, None, None)
    assert source.kind == MERGED and source.which == "m2m100_418m"
    assert source.model_id == source.tokenizer_id == str(merged)
    assert source.base().model_id == "/models/m2m"
    assert resolve_source(merged, None, "/other/m2m").base().model_id == "/other/m2m"


def test_a_plain_model_directory_needs_which(tmp_path):
    plain = fake_model_dir(tmp_path / "plain")
    with pytest.raises(SettingsError, match="--which KEY"):
        resolve_source(plain, None, None)
    assert resolve_source(plain, "opus_mt_fr_en", None).which == "opus_mt_fr_en"


def make_file(path: Path) -> None:
    path.write_text("not a directory")


BAD_SOURCES = {
    "nothing": (None, (None, None), SettingsError, "pass --model RUN_OR_MERGED_DIR, or --which KEY"),
    "unknown-which": (None, ("nope", None), SettingsError, "--which: unknown model 'nope'"),
    "missing": (lambda p: None, (None, None), ModelError, "--model {m}: no such directory"),
    "a-file": (make_file, (None, None), ModelError, "--model {m}: not a directory"),
    "unfinished": (lambda p: fake_run(p, finished=False), (None, None), ModelError, "an unfinished run (no finished"),
    "no-lora": (lambda p: fake_run(p, lora=False), (None, None), ModelError, "no adapter (lora/adapter_config.json"),
    "which-mismatch": (fake_run, ("m2m100_418m", None), SettingsError, "--which m2m100_418m: {m} is a run of opus_mt_en_fr"),
    "empty-dir": (Path.mkdir, (None, None), ModelError, "--model {m}: neither a csas run"),
    "merged-which-mismatch": (lambda p: fake_model_dir(p, {"which": "m2m100_418m"}), ("opus_mt_en_fr", None),
                              SettingsError, "is a merged model of m2m100_418m"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_SOURCES))
def test_bad_sources_are_refused_in_one_line_naming_the_flag(tmp_path, case):
    make, args, error, message = BAD_SOURCES[case]
    model = None
    if make is not None:
        model = tmp_path / "m"
        make(model)
    with pytest.raises(error) as info:
        resolve_source(model, *args)
    assert message.format(m=model) in str(info.value)
    assert "\n" not in str(info.value)


def test_compare_base_of_a_base_model_is_refused():
    with pytest.raises(SettingsError, match="--compare-base"):
        resolve_source(None, "opus_mt_en_fr", "/m").base()


# --- directions ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key, lang, want",
    [
        ("opus_mt_en_fr", None, ("en", "fr")),
        ("opus_mt_fr_en", None, ("fr", "en")),
        ("mbart50_mmt_fr", "EN", ("en", "fr")),
        ("mbart50_mmt_en", None, ("fr", "en")),
        ("m2m100_418m", "en", ("en", "fr")),
        ("m2m100_418m", " fr ", ("fr", "en")),
    ],
)
def test_direction_follows_the_model(key, lang, want):
    assert resolve_direction(REGISTRY[key], lang) == Direction(*want)


def test_m2m100_needs_source_lang():
    with pytest.raises(SettingsError, match=r"--source-lang: m2m100_418m translates both ways"):
        resolve_direction(REGISTRY["m2m100_418m"], None)


@pytest.mark.parametrize("key, lang, message", [
    ("opus_mt_en_fr", "fr", "translates en->fr only"),
    ("mbart50_mmt_en", "en", "translates fr->en only"),
    ("m2m100_418m", "de", "expected en or fr"),
])  # fmt: skip
def test_a_source_lang_the_model_does_not_translate_is_refused(key, lang, message):
    with pytest.raises(SettingsError, match=message):
        resolve_direction(REGISTRY[key], lang)


def test_direction_reads_as_an_arrow():
    assert str(Direction("fr", "en")) == "fr->en"


# --- a run's adapter folders and its records ---------------------------------------------------------------------


def test_a_runs_best_folder_means_the_run_with_that_adapter(tmp_path):
    run = fake_run(tmp_path / "run")
    (run / "best").mkdir()
    (run / "best" / "adapter_config.json").write_text("{}")
    best = resolve_source(run / "best", None, None)
    assert best.kind == RUN and best.which == "opus_mt_en_fr"
    assert best.adapter == run / "best" and best.label == str(run / "best")
    assert best.tokenizer_id == str(run) and best.model_id == "/models/base"
    last = resolve_source(run / "lora", None, None)
    assert last.adapter == run / "lora" and last.label == str(run / "lora")


def test_a_runs_best_folder_of_an_unfinished_run_is_refused(tmp_path):
    run = fake_run(tmp_path / "run", finished=False)
    (run / "best").mkdir()
    (run / "best" / "adapter_config.json").write_text("{}")
    with pytest.raises(ModelError, match="an unfinished run"):
        resolve_source(run / "best", None, None)


@pytest.mark.parametrize("content, message", [
    ("{broken", "cannot read the run record"),
    ("[1, 2]", "the run record is not a JSON object"),
    ('{"plan": {"which": "nope", "model_id": "/m"}}', "has no plan with a registry key and a model id"),
])  # fmt: skip
def test_an_unreadable_run_json_is_a_model_error(tmp_path, content, message):
    run = fake_run(tmp_path / "run")
    (run / "run.json").write_text(content)
    with pytest.raises(ModelError, match=message) as info:
        resolve_source(run, None, None)
    assert "\n" not in str(info.value)


def test_a_merge_record_with_an_unknown_key_is_refused(tmp_path):
    merged = fake_model_dir(tmp_path / "merged", {"which": "nope"})
    with pytest.raises(ModelError, match="unknown registry key 'nope'"):
        resolve_source(merged, None, None)


# --- revisions ----------------------------------------------------------------------------------------------------


def test_a_runs_recorded_revision_goes_with_its_recorded_base(tmp_path):
    run = fake_run(tmp_path / "run", model_id="Helsinki-NLP/opus-mt-tc-big-en-fr")
    record = json.loads((run / "run.json").read_text())
    record["plan"]["revision"] = "v2"
    (run / "run.json").write_text(json.dumps(record))
    source = resolve_source(run, None, None)
    assert source.base_revision == "v2"
    assert source.revision_of("Helsinki-NLP/opus-mt-tc-big-en-fr") == "v2"
    assert source.revision_of(str(run)) is None  # the run's own tokenizer files
    assert source.base().base_revision == "v2"
    # Another base named on this machine takes --revision, not the recorded one.
    assert resolve_source(run, None, "/models/copy").base_revision is None
    assert resolve_source(run, None, "org/other", revision="main").base_revision == "main"


def test_revision_of_a_base_alone_and_of_a_merged_models_base(tmp_path):
    assert resolve_source(None, "opus_mt_en_fr", None, revision="abc123").revision_of(
        REGISTRY["opus_mt_en_fr"].hub_id
    ) == "abc123"
    merged = fake_model_dir(tmp_path / "merged", {"which": "opus_mt_en_fr", "base_model_id": "org/base",
                                                  "base_revision": "v3"})  # fmt: skip
    source = resolve_source(merged, None, None)
    assert source.revision_of(source.model_id) is None  # the merged weights are a local folder
    assert source.base().revision_of("org/base") == "v3"


def test_revision_without_model_id_for_a_run_is_refused(tmp_path):
    run = fake_run(tmp_path / "run")
    with pytest.raises(SettingsError, match="--revision applies to --model-id"):
        resolve_source(run, None, None, revision="v2")


def test_a_runs_base_loads_at_the_commit_its_revision_resolved_to(tmp_path):
    run = fake_run(tmp_path / "run", model_id="org/base")
    record = json.loads((run / "run.json").read_text())
    record["plan"]["revision"] = "main"
    record["base_commit"] = "a" * 40
    (run / "run.json").write_text(json.dumps(record))
    assert resolve_source(run, None, None).base_revision == "a" * 40
    # The same hub id named again keeps it; another base, or --revision, does not.
    assert resolve_source(run, None, "org/base").base_revision == "a" * 40
    assert resolve_source(run, None, "/models/copy").base_revision is None
    assert resolve_source(run, None, "org/base", revision="v2").base_revision == "v2"
