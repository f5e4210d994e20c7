"""Evaluation during training, the pure parts: the chrF sample, best tracking and --patience, the validation
loss's batches and token average, chrF's batches and length cap, and a stop request between batches
(csas_cli.training.evaluation)."""

from __future__ import annotations

import math
from contextlib import contextmanager, nullcontext

import pytest
import torch

from csas_cli.data.batches import LengthGrouped, TokenBudget, target_tokens
from csas_cli.data.features import TokenizedPair, TokenizedSplit
from csas_cli.data.rows import Example
from csas_cli.inference.generation import GenerationSettings
from csas_cli.training.distributed import ProcessGroup
from csas_cli.languages import Direction
from csas_cli.training.evaluation import BestTracker, EvaluationStopped, Evaluator, chrf_sample, evaluations_in

# --- the chrF sample -------------------------------------------------------------------------------------------


def test_chrf_sample_is_fixed_sorted_distinct_and_capped():
    sample = chrf_sample(1000, 200, seed=42)
    assert sample == chrf_sample(1000, 200, seed=42)  # the same rows at every evaluation, and in a resumed run
    assert sample == sorted(set(sample)) and len(sample) == 200
    assert all(0 <= i < 1000 for i in sample)
    assert sample != list(range(200))  # a sample, not the first rows
    assert chrf_sample(1000, 200, seed=7) != sample


def test_a_smaller_chrf_sample_is_a_subset_of_a_larger_one():
    assert set(chrf_sample(500, 20, seed=3)) < set(chrf_sample(500, 100, seed=3))


def test_a_chrf_sample_larger_than_the_split_takes_every_row():
    assert chrf_sample(5, 200, seed=42) == [0, 1, 2, 3, 4]
    assert chrf_sample(0, 200, seed=42) == []


def test_a_chrf_sample_needs_a_row():
    with pytest.raises(ValueError):
        chrf_sample(10, 0, seed=42)


# --- best tracking and patience --------------------------------------------------------------------------------


def test_the_lowest_loss_is_the_best():
    best = BestTracker("eval_loss")
    updates = [best.update(step, v) for step, v in [(10, 3.0), (20, 2.5), (30, 2.7), (40, 2.4)]]
    assert updates == [True, True, False, True]
    assert (best.best_step, best.best_value, best.bad_evaluations) == (40, 2.4, 0)
    assert not best.higher_is_better


def test_the_highest_chrf_is_the_best():
    best = BestTracker("eval_chrf")
    assert [best.update(step, v) for step, v in [(10, 30.0), (20, 35.5), (30, 31.0)]] == [True, True, False]
    assert (best.best_step, best.best_value, best.bad_evaluations) == (20, 35.5, 1)
    assert best.describe() == "eval_chrf 35.50 at step 20"


def test_a_tie_or_a_nan_is_no_improvement():
    best = BestTracker("eval_loss")
    assert not best.update(10, math.nan)  # a nan first evaluation is not a best
    assert best.best_step is None and best.bad_evaluations == 1
    assert best.update(20, 2.0)
    assert not best.update(30, 2.0)
    assert not best.update(40, math.inf)
    assert (best.best_step, best.bad_evaluations) == (20, 2)


def test_patience_counts_evaluations_in_a_row_without_improvement():
    best = BestTracker("eval_loss", patience=2)
    best.update(10, 3.0)
    best.update(20, 3.1)
    assert not best.exhausted
    best.update(30, 2.9)  # an improvement starts the count again
    best.update(40, 3.0)
    assert not best.exhausted
    best.update(50, 3.0)
    assert best.exhausted and best.best_step == 30


def test_without_patience_the_run_never_stops():
    best = BestTracker("eval_chrf")
    best.update(1, 50.0)
    for step in range(2, 100):
        best.update(step, 10.0)
    assert not best.exhausted and best.bad_evaluations == 98


def test_state_round_trips_through_a_checkpoint():
    before = BestTracker("eval_chrf", patience=3)
    for step, value in [(5, 40.0), (10, 42.0), (15, 41.0)]:
        before.update(step, value)
    after = BestTracker("eval_chrf", patience=3)
    after.restore(before.state())
    assert after == before
    assert after.update(20, 41.5) is False and after.bad_evaluations == 2


def test_an_older_checkpoint_or_another_metric_starts_afresh():
    fresh = BestTracker("eval_loss", patience=2)
    fresh.restore(None)
    fresh.restore({"metric": "eval_chrf", "step": 5, "value": 40.0, "bad_evaluations": 1})
    assert fresh == BestTracker("eval_loss", patience=2)


def test_an_unknown_metric_is_refused():
    with pytest.raises(ValueError, match="unknown metric"):
        BestTracker("bleu")


@pytest.mark.parametrize("total,every,count", [(6, 2, 3), (7, 2, 4), (3, 1000, 1), (1000, 1000, 1), (1001, 1000, 2)])
def test_evaluations_in_a_run(total, every, count):
    assert evaluations_in(total, every) == count


# --- the validation loss ---------------------------------------------------------------------------------------


def validation_split(n: int = 11) -> TokenizedSplit:
    pairs = [TokenizedPair(tuple(range(1, 2 + i % 5)), tuple(range(1, 2 + (7 * i) % 9))) for i in range(n)]
    return TokenizedSplit(train=[], eval=pairs, eval_examples=[])


@pytest.mark.parametrize("batching", [LengthGrouped(3), TokenBudget(12)])
def test_the_validation_loss_is_a_token_average_over_the_strategys_validation_batches(batching):
    data = validation_split()
    evaluator = Evaluator(data, batching, ProcessGroup(), chrf_rows=[], generation=GenerationSettings(1, 8, 3))
    assert evaluator.batches == batching.validation([p.length for p in data.eval])
    seen: list[list[TokenizedPair]] = []

    def loss_sum(pairs):
        seen.append(list(pairs))
        assert not torch.is_grad_enabled()  # evaluation computes no gradients
        return torch.tensor(float(sum(2 * len(p.labels) + len(p.input_ids) for p in pairs)))

    loss = evaluator.loss(loss_sum, "cpu")
    assert seen == [[data.eval[i] for i in batch] for batch in evaluator.batches]
    want = sum(2 * len(p.labels) + len(p.input_ids) for p in data.eval) / target_tokens(data.eval)
    assert loss == pytest.approx(want, rel=1e-12)
    assert evaluator.loss(loss_sum, "cpu") == loss  # the same batches at every evaluation


def test_a_stop_request_abandons_the_validation_loss_between_batches():
    data = validation_split()
    asked = []
    evaluator = Evaluator(data, LengthGrouped(3), ProcessGroup(), chrf_rows=[], generation=GenerationSettings(1, 8, 3),
                          stop_requested=lambda: len(asked) >= 2)  # fmt: skip

    def loss_sum(pairs):
        asked.append(pairs)
        return torch.tensor(1.0)

    with pytest.raises(EvaluationStopped):
        evaluator.loss(loss_sum, "cpu")
    assert len(asked) == 2 < len(evaluator.batches)  # the batch under way ends; no further one starts


# --- chrF's translations ---------------------------------------------------------------------------------------


class FakeModel:
    """What Evaluator.chrf needs of a LoadedModel: a direction to translate in, and batches translated (each source
    "translated" as its own length), every call recorded with its settings."""

    def __init__(self, on_batch=lambda: None) -> None:
        self.calls: list[tuple[Direction, int, GenerationSettings]] = []
        self.current: Direction | None = None
        self.on_batch = on_batch

    @contextmanager
    def direction(self, direction: Direction):
        self.current = direction
        yield
        self.current = None

    def translate_batches(self, inputs, settings):
        for batch in inputs:
            self.calls.append((self.current, len(batch), settings))
            self.on_batch()
            yield [f"{len(ids)} tokens" for ids in batch]


def chrf_split(n: int = 10) -> TokenizedSplit:
    """n validation rows, the even ones English -> French, their sources 2 to 11 tokens long."""
    pairs = [TokenizedPair(tuple(range(1, 3 + i)), (1, 2)) for i in range(n)]
    examples = [Example(f"{2 + i} tokens", f"{2 + i} tokens", *(("en", "fr") if i % 2 == 0 else ("fr", "en")), None,
                        i + 1) for i in range(n)]  # fmt: skip
    return TokenizedSplit(train=[], eval=pairs, eval_examples=examples)


@pytest.mark.parametrize("follow_source", [True, False])
def test_chrf_translates_each_direction_in_batches_that_stop_at_the_cap(follow_source):
    data = chrf_split()
    evaluator = Evaluator(data, LengthGrouped(3), ProcessGroup(), chrf_rows=list(range(10)),
                          generation=GenerationSettings(1, 12, 2), follow_source=follow_source)  # fmt: skip
    model = FakeModel()
    assert evaluator.chrf(model, nullcontext(), step=5) == 100.0  # each row's "translation" is its target
    directions = [d for d, _, _ in model.calls]
    assert directions == sorted(directions, key=lambda d: (d.source, d.target)) and len(set(directions)) == 2
    assert [n for _, n, _ in model.calls] == [2, 2, 1, 2, 2, 1]
    # English sources are 2, 4, 6, 8, 10 tokens long, length-sorted into batches of 2: longest 4, 8, 10.
    caps = [s.max_new_tokens for d, _, s in model.calls if d.source == "en"]
    assert caps == ([min(12, math.ceil(1.5 * n) + 10) for n in (4, 8, 10)] if follow_source else [12, 12, 12])


def test_a_stop_request_abandons_chrf_after_the_batch_under_way():
    data = chrf_split()
    model = FakeModel()
    evaluator = Evaluator(data, LengthGrouped(3), ProcessGroup(), chrf_rows=list(range(10)),
                          generation=GenerationSettings(1, 12, 2), stop_requested=lambda: len(model.calls) >= 2)
    lines: list[str] = []
    with pytest.raises(EvaluationStopped):
        evaluator.chrf(model, nullcontext(), step=5, say=lines.append)
    assert len(model.calls) == 2
    assert lines == []  # no closing count, as if the evaluation had ended
