"""Tests for csas_cli.cards: a card written from the records reads back with huggingface_hub, results become
model-index entries (one per test file and direction), someone else's README.md is never replaced, and the
reproducing command trains the recorded plan again."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from helpers import SAMPLE, invoke

from csas_cli.cards import CardResult, build_card, check_card, finetune_command, record_results, write_card
from csas_cli.errors import OutputError
from csas_cli.languages import Direction

BLEU_SIG = "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"
CHRF_SIG = "nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0"


def fake_run(root: Path, *, best: bool = True) -> Path:
    """A finished run's records (no weights): run.json, finished.json, metrics.jsonl and best/best.json."""
    run = root / "runs" / "mbart50_mmt_fr"
    (run / "lora").mkdir(parents=True)
    plan = {"which": "mbart50_mmt_fr", "model_id": "facebook/mbart-large-50-many-to-many-mmt", "data": "train.jsonl",
            "eval_data": None, "output_dir": str(run), "learning_rate": 1.5e-4, "lora_r": 16, "qlora": True,
            "family": "mbart50", "rows_read": 120, "train_rows": 57, "eval_rows": 3, "rows_other_language": 60,
            "rows_skipped": 0}  # fmt: skip
    (run / "run.json").write_text(json.dumps({"plan": plan, "data_sha256": "ab" * 32, "total_steps": 40,
                                              "versions": {"torch": "2.13.0"}, "cut": {"sources": 1, "targets": 2}}))
    metrics = [{"step": 10, "eval_loss": 2.5, "eval_chrf": 15.31}, {"step": 40, "eval_loss": 2.4, "eval_chrf": 12.7}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    finished = {"status": "ok", "steps": 40, "train_loss": 2.1, "eval_loss": 2.4, "eval_chrf": 12.7,
                "best": "best" if best else None, "best_step": 10 if best else None, "seconds_total": 61.0}
    (run / "finished.json").write_text(json.dumps(finished))
    if best:
        (run / "best").mkdir()
        (run / "best" / "best.json").write_text(json.dumps({"step": 10, "metric": "eval_chrf", "value": 15.31,
                                                            "eval_loss": 2.5, "eval_chrf": 15.31}))  # fmt: skip
    return run


def fake_merged(root: Path, run: Path, name: str = "merged") -> Path:
    out = root / name
    out.mkdir()
    record = {"which": "mbart50_mmt_fr", "base_model_id": "facebook/mbart-large-50-many-to-many-mmt",
              "base_revision": "e30b6cb", "run_dir": str(run), "adapter": str(run / "best"),
              "adapter_sha256": "cd" * 32, "adapter_choice": "best", "adapter_step": 10, "dtype": "float32",
              "directions": ["en->fr"], "merged": "2026-01-01T00:00:00+0000"}  # fmt: skip
    (out / "csas_merge.json").write_text(json.dumps(record))
    return out


def result(data: Path, sha: str, bleu: float, chrf: float, n: int = 10, source: str = "en") -> CardResult:
    target = "fr" if source == "en" else "en"
    return CardResult(data, sha, Direction(source, target), n, bleu, chrf, BLEU_SIG, CHRF_SIG)


def load(path: Path):
    from huggingface_hub import ModelCard

    return ModelCard.load(path)


def scores(card) -> dict[tuple, float]:
    return {(e.dataset_name, e.dataset_revision, e.dataset_config, e.metric_type): e.metric_value
            for e in card.data.eval_results or []}  # fmt: skip


def test_a_card_from_the_records_reads_back(tmp_path: Path) -> None:
    run = fake_run(tmp_path)
    out = fake_merged(tmp_path, run)
    path = write_card(out, tmp_path / "final" / "mbart-fr")
    card = load(path)
    data = card.data.to_dict()
    assert (data["base_model"], data["base_model_revision"]) == ("facebook/mbart-large-50-many-to-many-mmt", "e30b6cb")
    assert (data["language"], data["pipeline_tag"], data["library_name"]) == (["en", "fr"], "translation",
                                                                              "transformers")  # fmt: skip
    assert {"csas", "qlora", "mbart50"} <= set(data["tags"]) and "lora" not in data["tags"]
    csas = data["csas"]
    assert (csas["adapter"], csas["adapter_step"], csas["kind"]) == ("best", 10, "merged")
    assert csas["data"] == [{"file": "train.jsonl", "role": "training and validation", "sha256": "ab" * 32,
                             "rows_read": 120, "train_rows": 57, "eval_rows": 3}]  # fmt: skip
    text = card.text
    assert "# mbart-fr" in text and "eval_chrf 15.31 @ 10 (eval_loss 2.5000)" in text  # the best evaluation
    assert "| 10 | 2.5 | 15.31 |" in text and "| 40 | 2.4 | 12.7 |" in text  # chrF during training, by step
    assert "csas merge" in text and "--adapter best" in text and "Not evaluated yet" in text
    assert card.data.eval_results is None


def test_results_become_model_index_entries_replaced_per_test_set_and_direction(tmp_path: Path) -> None:
    out = fake_merged(tmp_path, fake_run(tmp_path))
    write_card(out)
    test, other = tmp_path / "test.jsonl", tmp_path / "other.jsonl"
    path = record_results(out, [result(test, "11" * 32, 20.5, 50.25)])
    assert path == out / "README.md"
    record_results(out, [result(other, "22" * 32, 30.0, 60.0), result(other, "22" * 32, 31.0, 61.0, source="fr")])
    record_results(out, [result(test, "11" * 32, 21.75, 52.5, n=4)])  # the same test set again: replaced
    card = load(path)
    assert scores(card) == {
        ("other.jsonl", "22" * 32, "en-fr", "bleu"): 30.0, ("other.jsonl", "22" * 32, "en-fr", "chrf"): 60.0,
        ("other.jsonl", "22" * 32, "fr-en", "bleu"): 31.0, ("other.jsonl", "22" * 32, "fr-en", "chrf"): 61.0,
        ("test.jsonl", "11" * 32, "en-fr", "bleu"): 21.75, ("test.jsonl", "11" * 32, "en-fr", "chrf"): 52.5,
    }  # fmt: skip
    entry = next(e for e in card.data.eval_results if e.dataset_name == "test.jsonl" and e.metric_type == "chrf")
    assert (entry.task_type, entry.metric_config, entry.dataset_args) == ("translation", CHRF_SIG, {"rows": 4})
    assert "| `test.jsonl` | 111111111111 | en-fr | 4 | 21.75 | 52.50 |" in card.text
    assert "20.50" not in card.text and "Not evaluated yet" not in card.text
    assert card.text.count("## Evaluation") == 1 and card.data.to_dict()["csas"]["data"][0]["sha256"] == "ab" * 32


def test_a_merged_model_without_a_card_gets_one_at_its_first_result(tmp_path: Path) -> None:
    out = fake_merged(tmp_path, fake_run(tmp_path, best=False))
    assert not (out / "README.md").exists()
    record_results(out, [result(tmp_path / "t.jsonl", "33" * 32, 1.0, 2.0)])
    card = load(out / "README.md")
    assert "csas" in card.data.tags and len(card.data.eval_results) == 2


def test_no_card_for_a_run_or_a_plain_model_directory(tmp_path: Path) -> None:
    run = fake_run(tmp_path)
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "config.json").write_text("{}")
    for directory in (run, plain):
        assert record_results(directory, [result(tmp_path / "t.jsonl", "33" * 32, 1.0, 2.0)]) is None
        assert not (directory / "README.md").exists()
        check_card(directory)  # nothing to refuse


@pytest.mark.parametrize("text", ["---\nlicense: mit\ntags:\n- translation\n---\n# Our model\n", "# No metadata\n",
                                  "---\n: [unclosed\n---\nbody\n"])  # fmt: skip
def test_a_card_csas_did_not_write_is_refused_and_kept(tmp_path: Path, text: str) -> None:
    out = fake_merged(tmp_path, fake_run(tmp_path))
    (out / "README.md").write_text(text)
    with pytest.raises(OutputError, match=r"README\.md: a model card csas did not write"):
        check_card(out)
    with pytest.raises(OutputError, match=str(out / "README.md")):
        record_results(out, [result(tmp_path / "t.jsonl", "33" * 32, 1.0, 2.0)])
    assert (out / "README.md").read_text() == text


def test_an_export_of_a_model_csas_did_not_train_says_so(tmp_path: Path) -> None:
    out = tmp_path / "exported"
    out.mkdir()
    (out / "csas_export.json").write_text(json.dumps({"which": "opus_mt_en_fr", "quantization": "int8",
                                                      "merged_model": "/models/opus", "directions": ["en->fr"]}))
    card = build_card(out)
    assert card.data.library_name == "ctranslate2" and "lora" not in card.data.tags
    assert "csas did not train it" in card.text and "csas finetune" not in card.text


def test_the_reproducing_command_plans_the_same_run(tiny_models, tmp_path: Path) -> None:
    args = ["finetune", "--which", "opus_mt_en_fr", "--model-id", tiny_models["opus_mt_en_fr"], "--data", SAMPLE,
            "--output-dir", tmp_path / "out dir", "--lr", "0.00123", "--lora-r", "8", "--lora-targets",
            "q_proj,v_proj", "--no-qlora", "--eval-chrf", "--max-steps", "7", "--eval-steps", "2", "--seed", "7",
            "--dry-run"]  # fmt: skip
    first = invoke(*args)
    assert first.exit_code == 0, first.output
    plan = json.loads(first.stdout)
    command = finetune_command(plan)
    words = shlex.split(command)
    assert words[:2] == ["csas", "finetune"] and "--dry-run" not in words
    assert {"--lr", "--lora-r", "--no-qlora", "--eval-chrf", "--seed"} <= set(words) and "--val-ratio" not in words
    again = invoke(*words[1:], "--dry-run")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout) == plan
