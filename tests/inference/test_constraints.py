"""Tests for csas_cli.inference.constraints (`--term-constraints`): each rule of a decoding step on hand-made scores,
the target forms in a real tokenizer's vocabulary, and constrained translation through the CLI on the tiny models:
the terms are there, rows without terms translate as before, and the refusals."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from helpers import SAMPLE, invoke, one_error_line

from csas_cli.data.glossary import read_glossary
from csas_cli.data.terms import TermIndex, term_success
from csas_cli.inference.constraints import (
    NEG_INF,
    PLAUSIBLE,
    BatchConstraints,
    Constraint,
    ConstraintPlan,
    Step,
    TermConstraints,
    Vocabulary,
    sentence_constraints,
    step_row,
)  # fmt: skip

GLOSSARY = SAMPLE.parent / "glossary.tsv"
HELD = SAMPLE.parent / "heldout_pairs.jsonl"

# A toy vocabulary: 0 is </s>; 2 "▁zone", 3 "▁critique" (a two-word form); 5 "▁dé", 6 "bar", 7 "quements" (a
# one-word form of three pieces). Pieces 2, 3 and 5 begin a word.
EOS = 0
WORD_START = frozenset({2, 3, 5})
ZONE = Constraint(entry=0, count=1, forms=((2, 3),))
LANDINGS = Constraint(entry=1, count=1, forms=((5, 6, 7),))


def scores(best: int, ranked: tuple[int, ...] = (), size: int = 20) -> list[float]:
    """Log-probabilities where `best` scores highest, then `ranked` in order, then everything else."""
    row = [-10.0 - i * 0.01 for i in range(size)]
    for place, token in enumerate((best, *ranked)):
        row[token] = -1.0 - place
    return row


def test_a_met_constraint_leaves_the_step_free_but_a_whole_term_is_not_glued_on() -> None:
    assert step_row(scores(9), [1, 4, 9], [ZONE], Counter({0: 1}), WORD_START, EOS) is None
    just_written = step_row(scores(9), [1, 2, 3], [ZONE], Counter({0: 1}), WORD_START, EOS)
    assert just_written == Step(unglued=True)


def test_a_term_begun_by_a_whole_word_goes_on() -> None:
    step = step_row(scores(9), [1, 2], [ZONE], Counter(), WORD_START, EOS)
    assert step is not None and step.only == {3}


def test_a_term_begun_inside_its_first_word_goes_on_only_where_the_model_finds_it_likely() -> None:
    likely = step_row(scores(9, (6,)), [1, 5], [LANDINGS], Counter(), WORD_START, EOS)
    assert likely is not None and likely.only == {6}
    unlikely_rank = [9, 10, 11, 12, 13, 14, 15][:PLAUSIBLE]
    unlikely = step_row(scores(9, tuple(unlikely_rank)), [1, 5], [LANDINGS], Counter(), WORD_START, EOS)
    assert unlikely is not None and not unlikely.only and unlikely.add[EOS] == NEG_INF


def test_a_hypothesis_with_a_missing_term_may_not_end_and_starts_the_term_instead() -> None:
    row = scores(EOS, (9, 2))
    step = step_row(row, [1, 4], [ZONE, LANDINGS], Counter(), WORD_START, EOS)
    assert step is not None and not step.only and step.add[EOS] == NEG_INF
    assert row[2] + step.add[2] == row[EOS] and row[5] + step.add[5] == row[EOS]  # what the end scored
    assert step.adding == {2: {((2, 3), 1)}, 5: {((5, 6, 7), 1)}}
    # A term started that way is written to its end, however unlikely its next piece is to the model.
    going = step_row(scores(9), [1, 4, 5], [LANDINGS], Counter(), WORD_START, EOS, frozenset({((5, 6, 7), 1)}))
    assert going == Step(only=frozenset({6}), adding={6: frozenset({((5, 6, 7), 2)})})
    last = step_row(scores(9), [1, 4, 5, 6], [LANDINGS], Counter(), WORD_START, EOS, frozenset({((5, 6, 7), 2)}))
    assert last == Step(only=frozenset({7}), adding={7: frozenset()})


def test_a_missing_term_starts_where_the_token_budget_leaves_just_room_for_it() -> None:
    roomy = step_row(scores(9), [1, 4], [LANDINGS], Counter(), WORD_START, EOS, left=10)
    assert roomy is not None and not roomy.only
    tight = step_row(scores(9), [1, 4], [LANDINGS], Counter(), WORD_START, EOS, left=4)  # 3 pieces and </s>
    assert tight == Step(only=frozenset({5}), adding={5: frozenset({((5, 6, 7), 1)})})


def test_a_term_without_the_word_start_mark_is_only_started_after_an_apostrophe() -> None:
    joined = Constraint(entry=1, count=1, forms=((8, 6, 7),))  # 8: "dé" written straight after a word
    row = scores(EOS)
    after_a_word = step_row(row, [1, 4], [joined], Counter(), WORD_START, EOS, joins=frozenset({9}))
    assert after_a_word is not None and after_a_word.adding == {} and after_a_word.add == {EOS: NEG_INF}
    after_an_apostrophe = step_row(row, [1, 9], [joined], Counter(), WORD_START, EOS, joins=frozenset({9}))
    assert after_an_apostrophe is not None and after_an_apostrophe.adding == {8: {((8, 6, 7), 1)}}


def test_a_term_twice_in_the_source_is_needed_twice_and_banned_tokens_stay_banned() -> None:
    twice = Constraint(entry=0, count=2, forms=((2, 3),))
    step = step_row(scores(EOS), [1, 2, 3, 4], [twice], Counter({0: 1}), WORD_START, EOS)
    assert step is not None and step.add[EOS] == NEG_INF and 2 in step.adding
    row = scores(9)
    row[3] = NEG_INF  # another processor took the piece away
    step = step_row(row, [1, 2], [ZONE], Counter(), WORD_START, EOS)
    assert step is not None and not step.only


@pytest.fixture(scope="module")
def opus_tokenizer(tiny_models):
    from csas_cli.modeling import load_tokenizer
    from csas_cli.registry import REGISTRY

    return load_tokenizer(str(tiny_models["opus_mt_en_fr"]), REGISTRY["opus_mt_en_fr"].family, None)


def test_the_target_forms_are_the_variants_capitalised_and_joined(opus_tokenizer) -> None:
    glossary = read_glossary(GLOSSARY)
    vocabulary = Vocabulary.build(glossary, TermIndex.build(glossary, "fr"), opus_tokenizer)
    zone = next(i for i, e in enumerate(glossary.entries) if e.fr[0] == "zone critique")
    texts = {opus_tokenizer.decode(list(form)) for form in vocabulary.forms[zone]}
    assert texts == {"zone critique", "Zone critique"}
    landings = next(i for i, e in enumerate(glossary.entries) if e.fr[0] == "débarquements")
    texts = [opus_tokenizer.decode(list(form)) for form in vocabulary.forms[landings]]
    assert set(texts) == {"débarquements", "Débarquements"}
    pieces = [opus_tokenizer.convert_ids_to_tokens(list(form))[0] for form in vocabulary.forms[landings]]
    assert any(not p.startswith("\u2581") for p in pieces)  # written straight after `l'` or `d'`
    glue = set(opus_tokenizer.convert_ids_to_tokens(list(vocabulary.glue)))
    assert "s" not in glue and "x" not in glue and all(p[0].isalnum() for p in glue) and glue
    index = TermIndex.build(glossary, "en")
    found = sentence_constraints(index.counts("The stock is in the Critical Zone, the Critical Zone."), vocabulary)
    assert [(c.entry, c.count) for c in found] == [(zone, 2)]


def test_a_plan_tokenizes_only_the_forced_entries_its_sources_hold(opus_tokenizer) -> None:
    glossary = read_glossary(GLOSSARY)
    zone = next(i for i, e in enumerate(glossary.entries) if e.fr[0] == "zone critique")
    biomass = next(i for i, e in enumerate(glossary.entries) if e.fr[0] == "biomasse du stock reproducteur")
    sources = ["The spawning stock biomass is in the Critical Zone.", "Landings fell."]
    plan = TermConstraints(glossary, "en", "fr").plan(opus_tokenizer, sources)
    landings = next(i for i, e in enumerate(glossary.entries) if e.fr[0] == "débarquements")
    assert set(plan.vocabulary.forms) == {zone, biomass, landings}
    forced = TermConstraints(glossary, "en", "fr", frozenset({zone, landings})).plan(opus_tokenizer, sources)
    assert set(forced.vocabulary.forms) == {zone, landings}
    # The sources are matched against the whole glossary: "biomass" inside "spawning stock biomass" is not forced.
    assert [[c.entry for c in sentence] for sentence in forced.sentences] == [[zone], [landings]]


def held_rows(n: int) -> list[dict]:
    rows = [json.loads(line) for line in HELD.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if r["source_lang"] == "en"][:n]


@pytest.mark.slow
def test_constrained_translation_uses_the_terms_and_leaves_rows_without_terms_alone(tiny_models, tmp_path) -> None:
    rows = held_rows(40)
    data = tmp_path / "held.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    model = tiny_models["opus_mt_en_fr"]
    common = ["--which", "opus_mt_en_fr", "--model-id", model, "--data", data, "--glossary", GLOSSARY,
              "--max-new-tokens", "64", "--json"]  # fmt: skip
    plain = invoke("evaluate", *common, "--hypotheses", tmp_path / "plain.txt")
    constrained = invoke("evaluate", *common, "--term-constraints", "--hypotheses", tmp_path / "terms.txt")
    assert plain.exit_code == 0 and constrained.exit_code == 0, plain.output + constrained.output
    before, after = json.loads(plain.stdout), json.loads(constrained.stdout)
    assert (before["term_constraints"], after["term_constraints"]) == (False, True)
    assert before["terms"]["success"] < 0.6 and after["terms"]["success"] >= 0.95
    hyps = (tmp_path / "terms.txt").read_text(encoding="utf-8").splitlines()
    glossary = read_glossary(GLOSSARY)
    direct = term_success(glossary, [r["source"] for r in rows], hyps, "en", "fr")
    assert direct.hits == after["terms"]["hits"]  # what the report counts is in the file
    index = TermIndex.build(glossary, "en")
    unconstrained = (tmp_path / "plain.txt").read_text(encoding="utf-8").splitlines()
    without_terms = [i for i, r in enumerate(rows) if not index.find(r["source"])]
    assert without_terms and all(hyps[i] == unconstrained[i] for i in without_terms)


@pytest.mark.slow
def test_greedy_and_both_families_with_codes_take_the_constraints(tiny_models, tmp_path) -> None:
    from csas_cli.inference.generation import GenerationSettings, load_for_inference, translate_texts
    from csas_cli.inference.source import resolve_source
    from csas_cli.languages import Direction

    glossary = read_glossary(GLOSSARY)
    sources = [r["source"] for r in held_rows(12)]
    for key, beams in (("m2m100_418m", 1), ("mbart50_mmt_fr", 3), ("opus_mt_en_fr", 1)):
        source = resolve_source(None, key, str(tiny_models[key]))
        loaded = load_for_inference(source)
        settings = GenerationSettings(num_beams=beams, max_new_tokens=64)
        lines = translate_texts(loaded, sources, Direction("en", "fr"), settings,
                                constraints=TermConstraints(glossary, "en", "fr")).lines  # fmt: skip
        score = term_success(glossary, sources, lines, "en", "fr")
        assert score.rate is not None and score.rate >= 0.9, (key, score, lines)
        assert not any("__fr__" in line or "fr_XX" in line for line in lines)


def test_term_constraints_are_refused_where_they_cannot_apply(tmp_path: Path) -> None:
    sentences = tmp_path / "in.txt"
    sentences.write_text("The stock declined.\n")
    for command in (["translate", sentences], ["evaluate", "--data", SAMPLE]):
        line = one_error_line(invoke(*command, "--which", "opus_mt_en_fr", "--term-constraints"))
        assert line == "csas: error: --term-constraints needs --glossary FILE"
    translations = tmp_path / "hyp.txt"
    translations.write_text("Le stock a diminué.\n")
    line = one_error_line(invoke("evaluate", "--data", SAMPLE, "--translations", translations, "--source-lang", "en",
                                 "--glossary", GLOSSARY, "--term-constraints", "--limit", "1"))  # fmt: skip
    assert "drop --term-constraints" in line
    exported = tmp_path / "exported"
    exported.mkdir()
    (exported / "csas_export.json").write_text(json.dumps({"which": "opus_mt_en_fr"}))
    line = one_error_line(invoke("translate", sentences, "--model", exported, "--glossary", GLOSSARY,
                                 "--term-constraints"))  # fmt: skip
    assert "is a CTranslate2 export, whose beam search takes no constraints" in line


@pytest.mark.slow
def test_translate_can_constrain_without_annotating(tiny_models, tmp_path: Path) -> None:
    sentences = tmp_path / "in.txt"
    sentences.write_text("The spawning stock biomass is in the Critical Zone.\nThe stock declined.\n")
    model = ["--which", "opus_mt_en_fr", "--model-id", tiny_models["opus_mt_en_fr"], "--max-new-tokens", "48"]
    plain = invoke("translate", sentences, *model)
    line = one_error_line(invoke("translate", sentences, *model, "--glossary", GLOSSARY, "--no-apply-glossary"))
    assert "--glossary with --no-apply-glossary does nothing" in line
    constrained = invoke("translate", sentences, *model, "--glossary", GLOSSARY, "--no-apply-glossary",
                         "--term-constraints")  # fmt: skip
    first, second = constrained.stdout.splitlines()
    assert "biomasse du stock reproducteur" in first.lower() and "zone critique" in first.lower()
    assert second == plain.stdout.splitlines()[1]


def test_growing_counts_match_the_matcher_on_every_prefix() -> None:
    from csas_cli.data.terms import GrowingCounts

    glossary = read_glossary(GLOSSARY)
    index = TermIndex.build(glossary, "fr")
    targets = [r["target"] for r in held_rows(60)] + [
        "Le point de référence limite, puis le point de référence supérieur du stock.",
        "Les zones critiques; zone. Critique, débarquementsx débarquements2 PRL.",
        "le taux d\u02bcexploitation, l\u2019indice de biomasse",  # apostrophes words() reads as '
        "voir [[zone critique]] et la zone critique [[zone critique]]",  # annotations are not searched
    ]  # fmt: skip
    checked = 0
    for text in targets:
        entries = frozenset(range(len(glossary.entries)))
        growing = GrowingCounts(index, entries)
        for end in range(len(text) + 1):  # as a beam search writes it, a character at a time
            assert growing.counts(text[:end]) == index.counts(text[:end], entries), text[:end]
            checked += 1
    assert checked > 5000


def test_a_bare_word_start_or_a_joined_piece_inside_a_word_does_not_begin_a_term() -> None:
    capital = Constraint(entry=1, count=1, forms=((11, 12, 7),))  # "▁", "D", "ébarquements"
    step = step_row(scores(13, (12,)), [1, 4, 11], [capital], Counter(), WORD_START, EOS, bare=frozenset({11}))
    assert step is not None and not step.only  # the model's own choice after "▁" stands
    joined = Constraint(entry=1, count=1, forms=((8, 3),))  # "dé" written after `l'`, then "▁critique"
    inside = step_row(scores(9), [1, 4, 8], [joined], Counter(), WORD_START, EOS, joins=frozenset({10}))
    assert inside is not None and not inside.only
    after = step_row(scores(9), [1, 10, 8], [joined], Counter(), WORD_START, EOS, joins=frozenset({10}))
    assert after is not None and after.only == {3}


def test_the_last_token_is_free_but_not_glued_and_only_terms_that_fit_are_started() -> None:
    assert step_row(scores(9), [1, 2, 3], [ZONE, LANDINGS], Counter({0: 1}), WORD_START, EOS, left=1) == \
        Step(unglued=True)  # fmt: skip
    assert step_row(scores(9), [1, 4], [LANDINGS], Counter(), WORD_START, EOS, left=1) is None
    fits = step_row(scores(9), [1, 4], [ZONE, LANDINGS], Counter(), WORD_START, EOS, left=3)
    assert fits is not None and fits.only == {2}  # "zone critique" and </s> fit in 3; "débarquements" does not


def test_sentences_that_share_their_first_tokens_keep_their_own_terms() -> None:
    import torch

    glossary = read_glossary(GLOSSARY)
    critical = next(i for i, e in enumerate(glossary.entries) if e.fr[0] == "zone critique")
    healthy = next(i for i, e in enumerate(glossary.entries) if e.fr[0] == "zone saine")
    texts = ("", "", " zone", " critique", " saine", " la", "", "", "", " x")
    vocabulary = Vocabulary(forms={critical: ((2, 3),), healthy: ((2, 4),)}, word_start=frozenset({2, 3, 4, 5, 9}),
                            joins=frozenset(), glue=(), texts=texts, bare=frozenset())  # fmt: skip
    plan = ConstraintPlan([(Constraint(critical, 1, ((2, 3),)),), (Constraint(healthy, 1, ((2, 4),)),)], vocabulary,
                          TermIndex.build(glossary, "fr"), lambda ids: "".join(texts[i] for i in ids), EOS)  # fmt: skip
    processor = BatchConstraints(plan, plan.sentences).processor(num_beams=1)
    first = torch.full((2, 10), -10.0)
    first[:, EOS], first[:, 2] = -0.1, -5.0  # both would end: both start "zone" instead
    assert processor(torch.tensor([[1, 5], [1, 5]]), first).argmax(-1).tolist() == [2, 2]
    second = torch.full((2, 10), -10.0)
    second[:, EOS], second[:, 9] = -0.1, -0.2  # the model would end or write "x"; each sentence finishes its term
    out = processor(torch.tensor([[1, 5, 2], [1, 5, 2]]), second)
    assert [(row > NEG_INF).nonzero().flatten().tolist() for row in out] == [[3], [4]]


def test_a_form_the_tokenizer_cannot_write_back_is_not_a_constraint(opus_tokenizer, tmp_path: Path) -> None:
    glossary = tmp_path / "g.tsv"
    glossary.write_text("en\tfr\nlandings\tdébarquements\nbiomass\tbiomasse \u2080\n", encoding="utf-8")
    terms = read_glossary(glossary)
    vocabulary = Vocabulary.build(terms, TermIndex.build(terms, "fr"), opus_tokenizer)
    assert vocabulary.forms[0] and vocabulary.forms[1] == ()  # NFKC writes the subscript 0 back as 0
