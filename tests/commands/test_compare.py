"""csas compare: the significance of each difference (against sacrebleu's own PairedTest), forgetting on general
test sets, the translations kept and reused, and the tables and JSON through the real CLI on tiny runs."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from helpers import invoke

from csas_cli.commands.compare import is_general
from csas_cli.inference.systems import system_names
from csas_cli.inference import stored
from csas_cli.inference.significance import paired_bootstrap
from csas_cli.inference.source import resolve_source
from csas_cli.registry import REGISTRY

ASSETS = Path(__file__).resolve().parents[2] / "csas_cli" / "assets"
HELDOUT = ASSETS / "heldout_pairs.jsonl"


def sacrebleu_paired(baseline, systems, references, resamples=1000):
    """sacrebleu's PairedTest on the same hypotheses, read here independently of csas."""
    from sacrebleu.metrics import BLEU, CHRF
    from sacrebleu.significance import PairedTest

    named = [("b", baseline), *((f"s{i}", h) for i, h in enumerate(systems))]
    _, scores = PairedTest(named, {"BLEU": BLEU(), "chrF": CHRF()}, [references], test_type="bs",
                           n_samples=resamples)()  # fmt: skip
    return scores["BLEU"], scores["chrF2"]


def noisy(lines, rate, seed):
    """`lines` with a share of their words dropped: a worse system."""
    rng = random.Random(seed)
    return [" ".join(w for w in line.split() if rng.random() > rate) for line in lines]


REFERENCES = [json.loads(line)["target"] for line in HELDOUT.read_text(encoding="utf-8").splitlines()[:120]]


def test_p_values_and_intervals_are_sacrebleus_own():
    good, worse = noisy(REFERENCES, 0.1, 1), noisy(REFERENCES, 0.3, 2)
    base, (other,), signatures = paired_bootstrap(good, [worse], REFERENCES, resamples=300)
    bleu, chrf = sacrebleu_paired(good, [worse], REFERENCES, resamples=300)
    assert (base.bleu, base.chrf, base.bleu_ci, base.chrf_ci) == pytest.approx(
        (bleu[0].score, chrf[0].score, bleu[0].ci, chrf[0].ci))  # fmt: skip
    assert (other.p_bleu, other.p_chrf) == (bleu[1].p_value, chrf[1].p_value)
    assert other.delta_chrf == pytest.approx(chrf[1].score - chrf[0].score) and other.delta_chrf < 0
    assert other.significant and other.verdict("good") == f"worse than good (p = {other.p_chrf:.3f})"
    assert base.p_chrf is None and base.verdict("good") == "baseline"
    assert "bs:300" in signatures["chrF"] and "seed:12345" in signatures["BLEU"]


def test_a_system_against_itself_has_no_difference():
    same = noisy(REFERENCES, 0.2, 3)
    _, (itself,), _ = paired_bootstrap(same, [list(same)], REFERENCES, resamples=200)
    assert itself.delta_chrf == 0 and itself.delta_bleu == 0
    assert not itself.significant and itself.verdict("x") == "the same chrF as x"


def test_a_small_difference_on_few_rows_is_not_significant():
    few = REFERENCES[:15]
    a, b = noisy(few, 0.2, 4), noisy(few, 0.2, 5)
    _, (other,), _ = paired_bootstrap(a, [b], few, resamples=300)
    assert other.delta_chrf != 0 and not other.significant
    assert other.verdict("a").startswith("no significant difference from a (p = ")


def test_the_hypotheses_must_match_the_references():
    with pytest.raises(ValueError, match="2 hypotheses for 3 references"):
        paired_bootstrap(["a", "b", "c"], [["a", "b"]], ["a", "b", "c"])


@pytest.mark.parametrize("name,general", [("general.jsonl", True), ("news-general.tsv", True),
                                          ("General_2024.jsonl", True), ("heldout.jsonl", False),
                                          ("generalisation.jsonl", False)])  # fmt: skip
def test_general_test_sets_by_name_or_flag(tmp_path, name, general):
    assert is_general(tmp_path / name) is general
    assert is_general(tmp_path / name, [tmp_path / name])


def test_stored_translations_come_back_only_for_what_produced_them(tmp_path):
    produced = stored.Produced({"kind": "run", "adapter_sha256": "a"}, "d", "en->fr", 2, {"num_beams": 4})
    text, record = stored.paths_for(tmp_path, "base opus/x", "test.jsonl", "en->fr")
    assert text.parent.name == "base_opus_x" and text.name == "test.jsonl.en-fr.txt" and record.suffix == ".json"
    assert stored.paths_for(tmp_path, "x", "test.jsonl", "en->fr", "b4-t256")[0].name == "test.jsonl.en-fr.b4-t256.txt"
    assert stored.load(text, record, produced) is None
    stored.store(text, record, produced, ["un", "deux"], {"system": "x"})
    assert stored.load(text, record, produced) == ["un", "deux"]
    for changed in ({"model": {"kind": "run", "adapter_sha256": "b"}}, {"sources_sha256": "e"}, {"rows": 3},
                    {"decoding": {"num_beams": 1}}, {"direction": "fr->en"}):  # fmt: skip
        other = stored.Produced(**{**produced.__dict__, **changed})
        assert stored.load(text, record, other) is None, changed
    text.write_text("un\n", encoding="utf-8")  # cut short: not used
    assert stored.load(text, record, produced) is None


def test_names_are_the_paths_under_what_the_models_share(tmp_path):
    runs = [tmp_path / "a" / "opus_mt_en_fr", tmp_path / "b" / "opus_mt_en_fr"]
    assert system_names(runs) == ["a/opus_mt_en_fr", "b/opus_mt_en_fr"]
    assert system_names([tmp_path / "a" / "opus_mt_en_fr" / "best"]) == ["opus_mt_en_fr/best"]
    assert system_names([runs[0], runs[0]]) == ["opus_mt_en_fr", "opus_mt_en_fr (2)"]


def test_bad_input_is_one_line(tmp_path):
    missing = invoke("compare", tmp_path / "nowhere", "--data", HELDOUT)
    assert missing.exit_code == 2 and missing.stderr.count("\n") == 1 and "MODEL" in missing.stderr
    nothing = invoke("compare", "--data", HELDOUT)
    assert nothing.exit_code == 2 and "nothing to compare" in nothing.stderr
    no_data = invoke("compare", "--which", "opus_mt_en_fr")
    assert no_data.exit_code == 2 and "--data" in no_data.stderr
    general = invoke("compare", "--which", "opus_mt_en_fr", "--data", HELDOUT, "--general", tmp_path / "g.jsonl")
    assert general.exit_code == 2 and "not one of the --data test sets" in general.stderr


# --- through the CLI, on tiny runs --------------------------------------------------------------------------------


def general_set(path: Path, rows: int = 60) -> Path:
    """Rows of the general text the tiny bases were pretrained on."""
    lines = (ASSETS / "pretrain_pairs.jsonl").read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(lines[1000 : 1000 + rows]) + "\n", encoding="utf-8")
    return path


def heldout_set(path: Path, rows: int = 80) -> Path:
    lines = HELDOUT.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(lines[:rows]) + "\n", encoding="utf-8")
    return path


@pytest.mark.slow
def test_compare_a_root_on_two_test_sets_then_again_with_one_more_model(tiny_runs, tmp_path, monkeypatch):
    from csas_cli.inference import generation

    opus, m2m = tiny_runs("opus_mt_en_fr"), tiny_runs("m2m100_418m")
    root = tmp_path / "outputs"  # a finetune-all root: the runs side by side, one unfinished
    root.mkdir()
    for run in (opus, m2m):
        (root / run.name).symlink_to(run, target_is_directory=True)
    (root / "opus_mt_fr_en").mkdir()
    (root / "opus_mt_fr_en" / "run.json").write_text(json.dumps({"plan": {"which": "opus_mt_fr_en"}}))
    test, general = heldout_set(tmp_path / "heldout.jsonl"), general_set(tmp_path / "general.jsonl")
    calls: list[str] = []
    real = generation.translate_texts

    def counting(loaded, texts, direction, *args, **kwargs):
        calls.append(str(direction))
        return real(loaded, texts, direction, *args, **kwargs)

    monkeypatch.setattr(generation, "translate_texts", counting)
    args = ["--data", test, "--data", general, "--output-dir", tmp_path / "translations", "--num-beams", 1,
            "--max-new-tokens", 48, "--resamples", 200]  # fmt: skip
    first = invoke("compare", root, *args, "--json")
    assert first.exit_code == 0, first.output
    result = json.loads(first.stdout)
    assert result["resamples"] == 200 and result["seed"] == 12345 and result["alpha"] == 0.05
    assert any("opus_mt_fr_en" in what and "unfinished" in what for what in result["left_out"])
    tables = {(Path(t["data"]).name, t["direction"]): t for t in result["test_sets"]}
    assert set(tables) == {("heldout.jsonl", "en->fr"), ("heldout.jsonl", "fr->en"), ("general.jsonl", "en->fr"),
                           ("general.jsonl", "fr->en")}  # fmt: skip
    keys = {"name", "model", "bleu", "chrf", "chrf_ci", "delta_chrf", "p_chrf", "delta_bleu", "p_bleu", "terms",
            "significant", "worse_than_base"}  # fmt: skip
    for table in tables.values():
        assert keys <= set(table["systems"][0]) and table["general"] == (table["data"].endswith("general.jsonl"))
        chrfs = [s["chrf"] for s in table["systems"]]
        assert chrfs == sorted(chrfs, reverse=True)  # best first
    # The domain set compares with the first model; the general set with each model's base, which it scores too.
    domain = tables[("heldout.jsonl", "en->fr")]
    assert domain["baseline"] == "m2m100_418m" and {s["name"] for s in domain["systems"]} == {"m2m100_418m",
                                                                                              "opus_mt_en_fr"}
    names = {s["name"] for s in tables[("general.jsonl", "en->fr")]["systems"]}
    assert names == {"m2m100_418m", "opus_mt_en_fr", "base m2m100_418m", "base opus_mt_en_fr"}
    # Every p-value is sacrebleu's own on the translations csas kept, as the test reads them back.
    translations = tmp_path / "translations"
    refs = {d: [json.loads(line)["target"] for line in general.read_text().splitlines()
                if json.loads(line)["source_lang"] == d[:2]] for d in ("en->fr", "fr->en")}  # fmt: skip
    compared = 0
    for direction in ("en->fr", "fr->en"):
        table = tables[("general.jsonl", direction)]
        for system in table["systems"]:
            if system["baseline"] is None:
                assert system["p_chrf"] is None and not system["worse_than_base"]
                continue
            read = [(translations / stored.slug(n) / f"general.jsonl.{direction.replace('->', '-')}.b1-t48.txt")
                    .read_text(encoding="utf-8").splitlines() for n in (system["baseline"], system["name"])]
            bleu, chrf = sacrebleu_paired(read[0], [read[1]], refs[direction], resamples=200)
            # sacrebleu's p-values, or none where the scores are the same (its p-value then means nothing)
            want = [None if system[f"delta_{m}"] == 0 else r[1].p_value for m, r in (("bleu", bleu), ("chrf", chrf))]
            assert [system["p_bleu"], system["p_chrf"]] == want
            compared += want != [None, None]
            assert system["chrf"] == pytest.approx(chrf[1].score)
            worse = system["delta_chrf"] < 0 and system["p_chrf"] < 0.05
            assert system["worse_than_base"] is worse and system["baseline"] == f"base {system['name']}"
    assert compared >= 2  # p-values checked, not only rows without a difference
    first_calls = len(calls)
    assert first_calls == len(result["translated"]) == 2 + 4 + 3 and not result["reused"]

    # A model compared with itself, and a third model added: only the new one translates.
    calls.clear()
    mbart = tiny_runs("mbart50_mmt_fr")
    (root / mbart.name).symlink_to(mbart, target_is_directory=True)
    second = invoke("compare", opus, root, *args)
    assert second.exit_code == 0, second.output
    # mbart50_mmt_fr on both sets and its base on the general one; opus_mt_en_fr, now given twice, is not renamed
    # into a new translation
    assert calls == ["en->fr", "en->fr", "en->fr"], second.stderr
    text = second.stdout
    for title in ("heldout.jsonl en->fr", "heldout.jsonl fr->en", "general.jsonl en->fr", "general.jsonl fr->en"):
        assert title in text
    assert "the same chrF as opus_mt_en_fr" in text
    again = json.loads(invoke("compare", opus, root, *args, "--json").stdout)
    domain = next(t for t in again["test_sets"] if t["data"].endswith("heldout.jsonl") and t["direction"] == "en->fr")
    assert domain["baseline"] == "opus_mt_en_fr"
    itself = next(s for s in domain["systems"] if s["name"] == "opus_mt_en_fr (2)")
    assert itself["delta_chrf"] == 0 and itself["delta_bleu"] == 0 and itself["significant"] is False
    assert itself["p_chrf"] is None and itself["p_bleu"] is None  # no difference: no p-value to misread
    # opus twice, m2m100 both ways on two sets, mbart50, and the three bases on the general set
    assert not again["translated"] and len(again["reused"]) == 2 + 2 + 4 + 2 + 2 + 1 + 1


def test_a_local_base_is_known_by_its_files_and_a_hub_base_by_its_revision(tiny_models):
    local = stored.model_fingerprint(resolve_source(None, "opus_mt_en_fr", str(tiny_models["opus_mt_en_fr"])))
    assert "model.safetensors" in {name for name, _, _ in local["files"]}
    hub = stored.model_fingerprint(resolve_source(None, "opus_mt_en_fr", None, revision="abc"))
    assert (hub["model_id"], hub["revision"]) == (REGISTRY["opus_mt_en_fr"].hub_id, "abc")


@pytest.mark.slow
def test_card_adds_the_scores_to_a_merged_models_card(tiny_runs, tmp_path):
    from huggingface_hub import ModelCard

    run = tiny_runs("opus_mt_en_fr")
    merged = tmp_path / "merged"
    assert invoke("merge", run, merged).exit_code == 0
    test = heldout_set(tmp_path / "heldout.jsonl", rows=40)
    result = invoke("compare", merged, run, "--data", test, "--output-dir", tmp_path / "t", "--num-beams", 1,
                    "--max-new-tokens", 32, "--resamples", 100, "--card", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "is not a merged or exported model" in result.stderr  # the run has no card
    row = next(s for s in json.loads(result.stdout)["test_sets"][0]["systems"] if s["kind"] == "merged")
    card = ModelCard.load(merged / "README.md")
    scores = {e.metric_type: e.metric_value for e in card.data.eval_results if e.dataset_name == "heldout.jsonl"}
    assert scores["chrf"] == pytest.approx(row["chrf"]) and scores["bleu"] == pytest.approx(row["bleu"])


def fake_run(root: Path, key: str = "opus_mt_en_fr", base: str = "/models/opus", finished: bool = True) -> Path:
    """A run directory as far as resolving it goes: run.json's plan, lora/'s config, finished.json."""
    run = root / key
    (run / "lora").mkdir(parents=True)
    (run / "lora" / "adapter_config.json").write_text("{}")
    (run / "run.json").write_text(json.dumps({"plan": {"which": key, "model_id": base}}))
    if finished:
        (run / "finished.json").write_text(json.dumps({"status": "ok", "steps": 3}))
    return run


def test_a_base_given_with_which_is_the_runs_base_and_model_root_relocates_bases(tmp_path):
    from csas_cli.inference.systems import gather_systems

    run = fake_run(tmp_path / "outputs")
    systems = gather_systems([run], "opus_mt_en_fr", "/models/opus")
    assert [m.name for m in systems.models] == ["opus_mt_en_fr", "base opus_mt_en_fr"] and not systems.bases
    assert systems.models[0].base == "base opus_mt_en_fr"  # the one given, not a second copy of it
    (tmp_path / "cluster" / "opus_mt_en_fr").mkdir(parents=True)
    moved = gather_systems([run], model_root=tmp_path / "cluster")
    assert moved.models[0].source.model_id == str(tmp_path / "cluster" / "opus_mt_en_fr")
    assert moved.bases["base opus_mt_en_fr"].source.model_id == str(tmp_path / "cluster" / "opus_mt_en_fr")


def test_roots_of_merged_models_and_roots_with_nothing_finished(tmp_path):
    from csas_cli.inference.systems import model_dirs

    merged = tmp_path / "merged"
    for key in ("m2m100_418m", "opus_mt_en_fr"):
        (merged / key).mkdir(parents=True)
        (merged / key / "config.json").write_text("{}")
        (merged / key / "csas_merge.json").write_text(json.dumps({"which": key}))
    assert model_dirs([merged], []) == [merged / "m2m100_418m", merged / "opus_mt_en_fr"]
    fake_run(tmp_path / "unfinished", finished=False)
    result = invoke("compare", tmp_path / "unfinished", "--data", HELDOUT)
    assert result.exit_code == 2 and "left out:" in result.stderr and "(unfinished)" in result.stderr


@pytest.mark.parametrize("seed,message", [("abc", "expected a whole number"), ("0", "takes 0 (or less) as no seed")])
def test_a_seed_sacrebleu_cannot_use_is_refused_before_anything_translates(tmp_path, monkeypatch, seed, message):
    monkeypatch.setenv("SACREBLEU_SEED", seed)
    result = invoke("compare", fake_run(tmp_path), "--data", HELDOUT, "--output-dir", tmp_path / "t")
    assert result.exit_code == 2 and message in result.stderr and not (tmp_path / "t").exists()
    file = tmp_path / "afile"
    file.write_text("")
    monkeypatch.delenv("SACREBLEU_SEED")
    assert "is not a directory" in invoke("compare", fake_run(tmp_path / "b"), "--data", HELDOUT, "--output-dir",
                                          file).stderr  # fmt: skip
