"""Model cards through the real CLI on the shared tiny runs: `csas merge`, `merge-all` and `export` write a README.md
that huggingface_hub reads, naming the base, the languages and the training data as run.json records them, and the
adapter taken (best/ by default); `csas evaluate --card` adds its scores to it as model-index entries."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import invoke, one_error_line, write_pairs

from csas_cli.files import file_sha256
from csas_cli.inference.source import EXPORT_RECORD, MERGE_RECORD

WEIGHTS = "adapter_model.safetensors"


def load(model_dir: Path):
    from huggingface_hub import ModelCard

    return ModelCard.load(model_dir / "README.md")


def run_with_best(tiny_run: Path, dest: Path) -> Path:
    """A copy of a finished tiny run with a best/ adapter of its own (other weights than lora/'s, as an earlier
    evaluation's are), recorded as training records it: best/best.json and finished.json's best fields."""
    from safetensors.torch import load_file, save_file

    run = dest / tiny_run.name
    shutil.copytree(tiny_run, run)
    shutil.copytree(run / "lora", run / "best")
    weights = load_file(str(run / "lora" / WEIGHTS))
    save_file({name: tensor * 0.5 for name, tensor in weights.items()}, str(run / "best" / WEIGHTS))
    (run / "best" / "best.json").write_text(json.dumps({"step": 2, "metric": "eval_chrf", "value": 15.31,
                                                        "eval_loss": 4.25, "eval_chrf": 15.31}))  # fmt: skip
    finished = json.loads((run / "finished.json").read_text())
    finished.update(best="best", best_step=2, best_metric="eval_chrf", best_value=15.31)
    (run / "finished.json").write_text(json.dumps(finished))
    return run


def check_card_matches_the_run(card, run: Path, library: str) -> None:
    record = json.loads((run / "run.json").read_text())
    data = card.data.to_dict()
    assert data["base_model"] == record["plan"]["model_id"]
    assert data["language"] == ["en", "fr"] and data["pipeline_tag"] == "translation"
    assert data["library_name"] == library and {"csas", "lora"} <= set(data["tags"])
    assert [d["sha256"] for d in data["csas"]["data"]] == [record["data_sha256"]]
    assert data["csas"]["data"][0]["train_rows"] == record["plan"]["train_rows"]
    assert record["data_sha256"] in card.text and "csas finetune --which opus_mt_en_fr" in card.text


def evaluate_card(model: Path, data: Path, *args: object) -> dict:
    result = invoke("evaluate", "--model", model, "--data", data, "--card", "--json", "--num-beams", "1",
                    "--max-new-tokens", "24", *args)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"added to {model / 'README.md'}" in result.stderr
    return json.loads(result.stdout)


def index_scores(card) -> dict[tuple, tuple]:
    return {(e.dataset_name, e.dataset_revision, e.dataset_config, e.metric_type): (e.metric_value, e.metric_config)
            for e in card.data.eval_results}  # fmt: skip


@pytest.mark.slow
def test_a_merged_model_carries_a_card_and_evaluate_adds_its_scores(tiny_runs, tmp_path):
    run = run_with_best(tiny_runs("opus_mt_en_fr"), tmp_path / "runs")
    out = tmp_path / "merged"
    result = invoke("merge", run, out)
    assert result.exit_code == 0, result.output
    assert "merging best/ (step 2: eval_chrf 15.31, eval_loss 4.2500); lora/ is step 3" in result.stderr
    record = json.loads((out / MERGE_RECORD).read_text())
    assert (record["adapter_choice"], record["adapter_step"]) == ("best", 2)
    assert record["adapter_sha256"] == file_sha256(run / "best" / WEIGHTS) != file_sha256(run / "lora" / WEIGHTS)
    card = load(out)
    check_card_matches_the_run(card, run, "transformers")
    assert card.data.to_dict()["csas"]["adapter"] == "best" and card.data.eval_results is None

    test = write_pairs(tmp_path / "test.jsonl", 8)
    first = evaluate_card(out, test, "--limit", "6")
    sha = file_sha256(test)
    want = {("test.jsonl", sha, "en-fr", "bleu"): (first["bleu"], first["bleu_signature"]),
            ("test.jsonl", sha, "en-fr", "chrf"): (first["chrf"], first["chrf_signature"])}  # fmt: skip
    assert index_scores(load(out)) == want
    second = evaluate_card(out, test, "--limit", "3")  # the same test set again: its entry is replaced
    assert (second["n"], first["n"]) == (3, 6)
    assert index_scores(load(out)) == {
        ("test.jsonl", sha, "en-fr", "bleu"): (second["bleu"], second["bleu_signature"]),
        ("test.jsonl", sha, "en-fr", "chrf"): (second["chrf"], second["chrf_signature"])}  # fmt: skip
    assert load(out).data.to_dict()["csas"]["data"][0]["sha256"] == json.loads((run / "run.json").read_text())[
        "data_sha256"]  # fmt: skip

    on_run = invoke("evaluate", "--model", run, "--data", test, "--card", "--limit", "2", "--num-beams", "1")
    assert on_run.exit_code == 0 and f"--card: {run} is a run directory: it has no model card" in on_run.stderr
    assert not (run / "README.md").exists()

    last = tmp_path / "merged-last"
    assert invoke("merge", run, last, "--adapter", "last").exit_code == 0
    record = json.loads((last / MERGE_RECORD).read_text())
    assert (record["adapter_choice"], record["adapter_sha256"]) == ("last", file_sha256(run / "lora" / WEIGHTS))
    assert load(last).data.to_dict()["csas"]["adapter"] == "last"


@pytest.mark.slow
def test_an_exported_model_carries_a_card_and_evaluate_adds_its_scores(tiny_runs, tmp_path):
    pytest.importorskip("ctranslate2")
    run = tiny_runs("opus_mt_en_fr")  # no evaluation, so no best/: lora/ is exported, and the card says so
    out = tmp_path / "exported"
    result = invoke("export", run, out, "--quantization", "float32")
    assert result.exit_code == 0, result.output
    assert "lora/ (step 3; the run has no best/" in result.stderr
    record = json.loads((out / EXPORT_RECORD).read_text())
    assert (record["adapter_choice"], record["adapter_step"]) == ("last", 3)
    card = load(out)
    check_card_matches_the_run(card, run, "ctranslate2")
    assert "ctranslate2" in card.data.tags and "--quantization float32" in card.text
    scores = evaluate_card(out, write_pairs(tmp_path / "test.jsonl", 5))
    [bleu] = [e for e in load(out).data.eval_results if e.metric_type == "bleu"]
    [chrf] = [e for e in load(out).data.eval_results if e.metric_type == "chrf"]
    assert (bleu.metric_value, chrf.metric_value, chrf.dataset_args) == (scores["bleu"], scores["chrf"], {"rows": 5})


@pytest.mark.slow
def test_merge_all_takes_each_runs_best_adapter_and_says_so(tiny_runs, tmp_path):
    runs = tmp_path / "runs"
    run = run_with_best(tiny_runs("opus_mt_en_fr"), runs)
    out = tmp_path / "merged"
    first = invoke("merge-all", runs, out)
    assert first.exit_code == 0, first.output
    assert f"opus_mt_en_fr: merging into {out / 'opus_mt_en_fr'}: best/ (step 2: eval_chrf 15.31" in first.stderr
    assert json.loads((out / "opus_mt_en_fr" / MERGE_RECORD).read_text())["adapter_choice"] == "best"
    assert load(out / "opus_mt_en_fr").data.to_dict()["csas"]["adapter_step"] == 2
    again = invoke("merge-all", runs, out)
    assert again.exit_code == 0 and "already holds this adapter merged (best/)" in again.stderr
    last = invoke("merge-all", runs, out, "--adapter", "last", "--overwrite")
    assert last.exit_code == 0, last.output
    record = json.loads((out / "opus_mt_en_fr" / MERGE_RECORD).read_text())
    assert (record["adapter_choice"], record["adapter_sha256"]) == ("last", file_sha256(run / "lora" / WEIGHTS))


def test_evaluate_card_refuses_a_card_csas_did_not_write_before_translating(tmp_path):
    merged = tmp_path / "theirs"
    merged.mkdir()
    (merged / MERGE_RECORD).write_text(json.dumps({"which": "opus_mt_en_fr", "run_dir": str(tmp_path / "run")}))
    (merged / "config.json").write_text("{}")  # no weights: the refusal comes before anything loads
    (merged / "README.md").write_text("---\nlicense: mit\n---\n# Our own card\n")
    line = one_error_line(invoke("evaluate", "--model", merged, "--data", write_pairs(tmp_path / "t.jsonl", 2),
                                 "--card"))  # fmt: skip
    assert f"{merged / 'README.md'}: a model card csas did not write" in line
    assert (merged / "README.md").read_text() == "---\nlicense: mit\n---\n# Our own card\n"


def test_evaluate_card_of_a_translations_file_is_refused(tmp_path):
    data = write_pairs(tmp_path / "t.jsonl", 2)
    (tmp_path / "hyp.txt").write_text("a\nb\n")
    line = one_error_line(invoke("evaluate", "--data", data, "--translations", tmp_path / "hyp.txt", "--source-lang",
                                 "en", "--card"))  # fmt: skip
    assert "drop --card" in line
