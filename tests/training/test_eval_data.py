"""--eval-data (a validation file instead of the split) and what training reports of its data: pairs cut at the max
lengths, rows skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import SAMPLE, invoke, make_recipe

from csas_cli.settings import FinetuneSettings
from csas_cli.training.resume import plan_differences
from csas_cli.training.run import prepare_run, shared_rows

ROWS = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
EN = [r for r in ROWS if r["source_lang"] == "en"]


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    train = write(tmp_path / "train.jsonl", EN[:300] + [{**EN[0], "source": "  "}])
    # 40 new rows of later publications, plus 2 rows copied from the training file (one publication of it).
    held = write(tmp_path / "held.jsonl", EN[1000:1040] + EN[:2] + [r for r in ROWS if r["source_lang"] == "fr"][:5])
    return train, held


def test_the_validation_file_replaces_the_split(files):
    train, held = files
    settings = FinetuneSettings.create(which="opus_mt_en_fr", data=train, eval_data=held, val_ratio=0.5)
    prepared = prepare_run(settings, environ={})
    resolved = prepared.plan.resolved
    assert (resolved.train_rows, resolved.eval_rows) == (300, 42)
    assert resolved.train_publications == len({r["pub_number"] for r in EN[:300]})
    assert resolved.eval_publications == len({r["pub_number"] for r in EN[1000:1040] + EN[:2]})
    assert (resolved.rows_read, resolved.rows_other_language, resolved.rows_skipped) == (301 + 47, 5, 1)
    assert [ex.line for ex in prepared.split.eval][-2:] == [41, 42]
    shared_pubs = len({r["pub_number"] for r in EN[:300]} & {r["pub_number"] for r in EN[1000:1040] + EN[:2]})
    # The two copied rows, and rows of later publications that repeat a training pair word for word (boilerplate).
    repeats = sum((r["source"], r["target"]) in {(t["source"], t["target"]) for t in EN[:300]} for r in EN[1000:1040])
    assert repeats > 0
    assert prepared.notes == (
        f"warning: --eval-data {held} shares {2 + repeats} of its 42 pairs and {shared_pubs} "
        f"publication{'' if shared_pubs == 1 else 's'} with --data "
        f"{train}; its scores then overstate how the model does on new text",
    )
    assert prepared.plan.to_dict()["eval_data"] == str(held)


def test_caps_apply_to_each_file(files):
    train, held = files
    settings = FinetuneSettings.create(which="opus_mt_en_fr", data=train, eval_data=held, max_train_samples=50,
                                       max_eval_samples=7)  # fmt: skip
    split = prepare_run(settings, environ={}).split
    assert (len(split.train), len(split.eval)) == (50, 7)


def test_shared_rows_count_pairs_and_publications():
    from csas_cli.data.pairs import Example

    a = [Example("s1", "t1", "en", "fr", "P1", 1), Example("s2", "t2", "en", "fr", None, 2)]
    b = [Example("s1", "t1", "en", "fr", "P9", 1), Example("s1", "t1", "fr", "en", "P1", 2),
         Example("s2", "other", "en", "fr", None, 3)]  # fmt: skip
    assert shared_rows(a, b) == (1, 1)


def test_dry_run_shows_the_validation_file(files):
    train, held = files
    result = invoke("finetune", "--which", "opus_mt_en_fr", "--data", train, "--eval-data", held, "--dry-run")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert (plan["train_rows"], plan["eval_rows"], plan["eval_data"]) == (300, 42, str(held))
    assert "warning: --eval-data" in result.stderr


def test_a_broken_validation_file_is_named(files, tmp_path):
    train, _ = files
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"source": "x"}\n')
    result = invoke("finetune", "--which", "opus_mt_en_fr", "--data", train, "--eval-data", bad, "--dry-run")
    assert result.exit_code != 0
    assert result.stderr.strip() == f"csas: error: {bad}:1: missing field 'target' (each row needs source, target, source_lang)"


def test_a_changed_validation_file_blocks_resume(files):
    train, held = files
    plan = prepare_run(FinetuneSettings.create(which="opus_mt_en_fr", data=train, eval_data=held), environ={}).plan
    recorded = {"plan": plan.to_dict(), "data_sha256": "abc", "eval_data_sha256": "e1"}
    assert plan_differences(recorded, plan, "abc", "e1") == []
    assert plan_differences(recorded, plan, "abc", "e2") == [f"validation file content changed ({held})"]
    split_plan = prepare_run(FinetuneSettings.create(which="opus_mt_en_fr", data=train), environ={}).plan
    assert plan_differences({"plan": split_plan.to_dict(), "data_sha256": "abc"}, plan, "abc", "e1")[-1] == (
        f"eval_data None -> '{held}'"
    )


@pytest.mark.slow
def test_training_says_what_it_cut(tiny_models, tmp_path):
    recipe = make_recipe(tiny_models, tmp_path, "opus_mt_en_fr", max_source_len=12, max_target_len=400)
    try:
        cut = recipe.data.cut_counts()
        assert cut["sources"] > 0 and cut["targets"] == 0
        assert all(len(p.input_ids) <= 12 for p in recipe.data.train)
        record = recipe.run_record()
        assert record["cut"] == cut
        assert record["base_weights"] == {"format": "safetensors", "files": ["model.safetensors"]}
        first = (tmp_path / "opus_mt_en_fr" / "train.log").read_text().splitlines()[0]
        assert f"({cut['sources']} sources cut at --max-source-len 12, 0 targets at --max-target-len 400; 0 empty " \
               "rows skipped; 1551 rows of the other direction (fr->en) left out)" in first
    finally:
        recipe.cleanup()


def test_finetune_all_and_sweep_pass_the_validation_file_on(files):
    train, held = files
    plans = json.loads(invoke("finetune-all", "--data", train, "--eval-data", held, "--only", "opus_mt_en_fr,m2m100_418m",
                              "--dry-run").stdout)  # fmt: skip
    assert [(p["which"], p["eval_data"], p["eval_rows"]) for p in plans] == [
        ("m2m100_418m", str(held), 47), ("opus_mt_en_fr", str(held), 42)
    ]
    trials = json.loads(invoke("sweep", "--which", "opus_mt_en_fr", "--data", train, "--eval-data", held,
                               "--dry-run").stdout)  # fmt: skip
    assert {(t["eval_data"], t["eval_rows"], t["train_rows"]) for t in trials} == {(str(held), 42, 300)}


def test_a_moved_branch_blocks_resume_unless_the_commit_is_named(tmp_path):
    from csas_cli.plan import build_plan
    from csas_cli.training.run import check_same_base

    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"base_commit": "a" * 40}))
    check_same_base(run, "a" * 40)
    check_same_base(run, None)  # a local snapshot, or a cache that cannot tell
    with pytest.raises(Exception, match=f"trained on commit {'a' * 40} of its base, which now resolves to {'b' * 40}; "
                                        f"pass --revision {'a' * 40}"):  # fmt: skip
        check_same_base(run, "b" * 40)
    before = build_plan(FinetuneSettings.create(which="opus_mt_en_fr", model_id="org/base", revision="main"))
    recorded = {"plan": before.to_dict(), "data_sha256": "x", "base_commit": "a" * 40}
    at_commit = build_plan(FinetuneSettings.create(which="opus_mt_en_fr", model_id="org/base", revision="a" * 40))
    assert plan_differences(recorded, at_commit, "x") == []
    other = build_plan(FinetuneSettings.create(which="opus_mt_en_fr", model_id="org/base", revision="v2"))
    assert plan_differences(recorded, other, "x") == ["revision 'main' -> 'v2'"]


def test_val_ratio_is_not_compared_on_resume_when_a_validation_file_is_used(files):
    train, held = files
    one = prepare_run(FinetuneSettings.create(which="opus_mt_en_fr", data=train, eval_data=held), environ={}).plan
    other = prepare_run(FinetuneSettings.create(which="opus_mt_en_fr", data=train, eval_data=held, val_ratio=0.2),
                        environ={}).plan  # fmt: skip
    assert plan_differences({"plan": one.to_dict(), "data_sha256": "x"}, other, "x") == []


@pytest.mark.slow
def test_an_empty_validation_split_and_qlora_on_the_cpu_are_said_up_front(tiny_models, tmp_path):
    rows = [{**r, "pub_number": "2020/001"} for r in EN[:10]]  # one publication: nothing can be held out
    data = write(tmp_path / "ten.jsonl", rows)
    result = invoke("finetune", "--which", "opus_mt_en_fr", "--model-id", tiny_models["opus_mt_en_fr"], "--data", data,
                    "--output-dir", tmp_path / "runs", "--max-steps", "1", "--disable-tqdm")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "warning: the validation split is empty (too few rows or publications for --val-ratio 0.05)" in result.stderr
    assert "note: QLoRA on the CPU" in result.stderr
    plain = invoke("finetune", "--which", "opus_mt_en_fr", "--model-id", tiny_models["opus_mt_en_fr"], "--data", data,
                   "--output-dir", tmp_path / "runs", "--max-steps", "1", "--disable-tqdm", "--no-qlora", "--val-ratio",
                   "0", "--overwrite")  # fmt: skip
    assert plain.exit_code == 0, plain.output
    assert "QLoRA on the CPU" not in plain.stderr and "validation split is empty" not in plain.stderr
