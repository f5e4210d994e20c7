"""Tests for csas_cli.data.batches: decoder inputs, batching strategies, step planning, collation."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
import torch

from csas_cli.data import batches as batches_mod
from csas_cli.data.batches import (
    IGNORE_INDEX,
    POOL_BATCHES,
    Batching,
    LengthGrouped,
    StepPlan,
    TokenBudget,
    batching_for,
    collate,
    epoch_batch_counts,
    epoch_fraction,
    fill_token_budget,
    length_grouped_batches,
    optimizer_steps,
    plan_steps,
    rank_share,
    shift_right,
    steps_for_epochs,
    target_tokens,
    token_budget_batches,
)
from csas_cli.data.features import TokenizedPair


def random_lengths(n: int, seed: int = 0, low: int = 1, high: int = 200) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(low, high) for _ in range(n)]


def padded_tokens(batches: list[list[int]], lengths: list[int]) -> int:
    """Tokens a batch order costs once every batch is padded to its longest row."""
    return sum(len(b) * max(lengths[i] for i in b) for b in batches)


def fixed_plan(n: int, batch_size: int, accum: int, epochs: float, max_steps: int | None, world_size: int = 1):
    """The step plan of `n` pairs in micro-batches of `batch_size` pairs."""
    counts = epoch_batch_counts([1] * n, LengthGrouped(batch_size), 0, math.ceil(epochs))
    return plan_steps(counts, accum, epochs, max_steps, world_size=world_size)


# --- shift_right -----------------------------------------------------------------------------------------------


def test_shift_right_starts_with_decoder_start_and_drops_last() -> None:
    assert shift_right([10, 11, 12, 2], 0) == [0, 10, 11, 12]
    assert shift_right((7,), 3) == [3]


def test_shift_right_m2m100_labels() -> None:
    # M2M100: labels are [__fr__, w1, w2, </s>]; generation starts from </s> (decoder_start_token_id = eos = 2),
    # so decoder inputs must be [</s>, __fr__, w1, w2], not [__fr__, __fr__, w1, w2] as finetune.py built them.
    fr, eos = 128028, 2
    labels = [fr, 500, 501, eos]
    assert shift_right(labels, eos) == [eos, fr, 500, 501]
    assert shift_right(labels, eos) != [fr, fr, 500, 501]


@pytest.mark.parametrize("n", [1, 2, 5, 40])
def test_shift_right_keeps_length_and_alignment(n: int) -> None:
    labels = list(range(100, 100 + n))
    shifted = shift_right(labels, 1)
    assert len(shifted) == n
    assert shifted[1:] == labels[:-1]


def test_shift_right_does_not_mutate() -> None:
    labels = [4, 5, 6]
    shift_right(labels, 0)
    assert labels == [4, 5, 6]


# --- length_grouped_batches ------------------------------------------------------------------------------------


@pytest.mark.parametrize("n,batch_size", [(1, 4), (7, 3), (100, 8), (1000, 16), (2003, 7), (5, 10)])
def test_batches_are_a_permutation(n: int, batch_size: int) -> None:
    lengths = random_lengths(n)
    batches = length_grouped_batches(lengths, batch_size, seed=1, epoch=0)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(n))
    assert len(flat) == n
    assert all(1 <= len(b) <= batch_size for b in batches)


def test_only_the_last_batch_of_a_pool_is_short() -> None:
    n, batch_size = 2003, 7
    batches = length_grouped_batches(random_lengths(n), batch_size, seed=3, epoch=2)
    pools = math.ceil(n / (batch_size * POOL_BATCHES))
    short = [b for b in batches if len(b) < batch_size]
    assert len(short) <= pools
    assert len(batches) == sum(math.ceil(min(batch_size * POOL_BATCHES, n - s) / batch_size)
                               for s in range(0, n, batch_size * POOL_BATCHES))


def test_batches_are_deterministic_per_seed_and_epoch() -> None:
    lengths = random_lengths(500)
    a = length_grouped_batches(lengths, 8, seed=42, epoch=3)
    b = length_grouped_batches(list(lengths), 8, seed=42, epoch=3)
    assert a == b


def test_batches_differ_across_epochs_and_seeds() -> None:
    lengths = random_lengths(500)
    e0 = length_grouped_batches(lengths, 8, seed=42, epoch=0)
    e1 = length_grouped_batches(lengths, 8, seed=42, epoch=1)
    s1 = length_grouped_batches(lengths, 8, seed=43, epoch=0)
    assert e0 != e1
    assert e0 != s1
    # Not only the batch order: the grouping itself changes.
    assert {tuple(sorted(b)) for b in e0} != {tuple(sorted(b)) for b in e1}


def test_batch_order_does_not_depend_on_global_random_state() -> None:
    lengths = random_lengths(300)
    random.seed(0)
    a = length_grouped_batches(lengths, 8, seed=5, epoch=0)
    random.seed(12345)
    random.random()
    b = length_grouped_batches(lengths, 8, seed=5, epoch=0)
    assert a == b


def test_batches_are_length_homogeneous_versus_random_batching() -> None:
    n, batch_size = 4000, 16
    lengths = random_lengths(n, seed=7)
    grouped = length_grouped_batches(lengths, batch_size, seed=42, epoch=0)
    order = list(range(n))
    random.Random(42).shuffle(order)
    shuffled = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    real = sum(lengths)
    grouped_padding = padded_tokens(grouped, lengths) - real
    random_padding = padded_tokens(shuffled, lengths) - real
    assert grouped_padding < random_padding
    # With 800 rows per pool over a 1..200 spread, grouping removes most of the padding.
    assert grouped_padding < 0.2 * random_padding


def test_batches_within_a_pool_are_sorted_neighbours() -> None:
    # With a single pool, every batch covers a contiguous range of the sorted lengths.
    lengths = random_lengths(64, seed=11)
    batches = length_grouped_batches(lengths, 8, seed=0, epoch=0)
    spans = sorted((min(lengths[i] for i in b), max(lengths[i] for i in b)) for b in batches)
    for (lo1, hi1), (lo2, hi2) in zip(spans, spans[1:]):
        assert hi1 <= lo2


def test_batches_are_not_sorted_globally() -> None:
    # The batches are shuffled after grouping: the longest batch is not always first.
    lengths = list(range(1, 2001))
    firsts = {length_grouped_batches(lengths, 8, seed=0, epoch=e)[0][0] for e in range(5)}
    assert len(firsts) > 1


# --- plan_steps ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n,batch,accum,epochs,max_steps,batches,per_epoch,total",
    [
        (100, 8, 2, 1.0, None, 13, 7, 7),
        (100, 8, 2, 2.0, None, 13, 7, 14),
        (100, 8, 2, 2.5, None, 13, 7, 18),  # ceil(17.5)
        (100, 8, 2, 0.5, None, 13, 7, 4),  # ceil(3.5)
        (100, 8, 2, 0.01, None, 13, 7, 1),  # never zero steps
        (96, 8, 2, 1.0, None, 12, 6, 6),
        (96, 8, 4, 1.0, None, 12, 3, 3),
        (1, 8, 2, 1.0, None, 1, 1, 1),
        (100, 8, 2, 1.0, 3, 13, 7, 3),  # max_steps overrides epochs
        (100, 8, 2, 1.0, 50, 13, 7, 50),  # ... also upwards
        (100, 8, 2, 3.0, 1, 13, 7, 1),
        (10, 1, 1, 1.0, None, 10, 10, 10),
    ],
)
def test_plan_steps(n, batch, accum, epochs, max_steps, batches, per_epoch, total) -> None:
    plan = fixed_plan(n, batch, accum, epochs, max_steps)
    assert plan == StepPlan(batches, accum, total)
    assert plan.batches_per_epoch == batches
    assert plan.steps_per_epoch == per_epoch
    assert plan.total_steps == total


# --- optimizer_steps -------------------------------------------------------------------------------------------


def all_steps(lengths, batch_size, accum, seed, total, start=0):
    return list(optimizer_steps(lengths, LengthGrouped(batch_size), accum, seed, total, start))


@pytest.mark.parametrize(
    "n,batch,accum,epochs",
    [(100, 8, 2, 1.0), (100, 8, 2, 2.5), (37, 4, 3, 3.0), (10, 3, 1, 2.0), (5, 8, 4, 4.0), (64, 8, 8, 1.0)],
)
def test_optimizer_steps_follow_the_plan(n: int, batch: int, accum: int, epochs: float) -> None:
    lengths = random_lengths(n, seed=n)
    plan = fixed_plan(n, batch, accum, epochs, None)
    steps = all_steps(lengths, batch, accum, 42, plan.total_steps)
    assert [s for s, _, _ in steps] == list(range(1, plan.total_steps + 1))
    assert all(1 <= len(mbs) <= accum for _, _, mbs in steps)
    per_epoch = Counter(epoch for _, epoch, _ in steps)
    for epoch, count in per_epoch.items():
        if epoch < max(per_epoch):
            assert count == plan.steps_per_epoch
    # Steps never span epochs: each epoch's steps, concatenated, are a prefix of that epoch's batch order.
    for epoch in per_epoch:
        used = [b for _, e, mbs in steps if e == epoch for b in mbs]
        expected = length_grouped_batches(lengths, batch, 42, epoch)
        assert used == expected[: len(used)]
        if epoch < max(per_epoch):
            assert used == expected
    # Epochs come in order.
    epochs_seen = [e for _, e, _ in steps]
    assert epochs_seen == sorted(epochs_seen)


def test_optimizer_steps_last_step_of_epoch_may_be_short() -> None:
    # 5 batches per epoch, grad_accum 2: steps hold 2, 2, 1 micro-batches, then the next epoch starts afresh.
    lengths = random_lengths(40, seed=1)
    steps = all_steps(lengths, 8, 2, 0, 6)
    assert [len(m) for _, _, m in steps] == [2, 2, 1, 2, 2, 1]
    assert [e for _, e, _ in steps] == [0, 0, 0, 1, 1, 1]


def test_optimizer_steps_max_steps_past_one_epoch() -> None:
    lengths = random_lengths(16, seed=2)  # 2 batches of 8 -> 1 step per epoch with grad_accum 2
    steps = all_steps(lengths, 8, 2, 0, 5)
    assert [(s, e) for s, e, _ in steps] == [(1, 0), (2, 1), (3, 2), (4, 3), (5, 4)]


@pytest.mark.parametrize("start", [0, 1, 3, 6, 7, 13, 19, 20])
def test_optimizer_steps_resume_matches_uninterrupted(start: int) -> None:
    lengths = random_lengths(100, seed=9)
    full = all_steps(lengths, 8, 2, 42, 20)
    resumed = all_steps(lengths, 8, 2, 42, 20, start)
    assert len(resumed) == 20 - start
    assert resumed == full[start:]
    if resumed:
        assert resumed[0][0] == start + 1


def test_optimizer_steps_zero_total_yields_nothing() -> None:
    assert all_steps(random_lengths(10), 2, 1, 0, 0) == []


def test_optimizer_steps_with_no_examples_terminates(monkeypatch: pytest.MonkeyPatch) -> None:
    real = batches_mod.length_grouped_batches
    calls = []

    def guarded(*args, **kwargs):
        calls.append(1)
        if len(calls) > 5:
            raise RuntimeError("optimizer_steps is looping over empty epochs")
        return real(*args, **kwargs)

    monkeypatch.setattr(batches_mod, "length_grouped_batches", guarded)
    try:
        result = list(optimizer_steps([], LengthGrouped(8), 2, 42, total_steps=1))
    except ValueError:
        return
    assert result == []


# --- collate ---------------------------------------------------------------------------------------------------

PAD, START = 1, 2


def pairs() -> list[TokenizedPair]:
    return [
        TokenizedPair((5, 6, 7), (8, 9)),
        TokenizedPair((5,), (8, 9, 10, 11)),
        TokenizedPair((4, 4), (12,)),
    ]


def test_collate_shapes_and_dtypes() -> None:
    batch = collate(pairs(), PAD, START)
    assert set(batch) == {"input_ids", "attention_mask", "decoder_input_ids", "labels"}
    assert batch["input_ids"].shape == (3, 3)
    assert batch["attention_mask"].shape == (3, 3)
    assert batch["decoder_input_ids"].shape == (3, 4)
    assert batch["labels"].shape == (3, 4)
    for t in batch.values():
        assert t.dtype == torch.long


def test_collate_values() -> None:
    batch = collate(pairs(), PAD, START)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [5, PAD, PAD], [4, 4, PAD]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0], [1, 1, 0]]
    assert batch["labels"].tolist() == [
        [8, 9, IGNORE_INDEX, IGNORE_INDEX],
        [8, 9, 10, 11],
        [12, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX],
    ]
    assert batch["decoder_input_ids"].tolist() == [[START, 8, PAD, PAD], [START, 8, 9, 10], [START, PAD, PAD, PAD]]


def test_collate_decoder_inputs_are_shifted_labels() -> None:
    batch = collate(pairs(), PAD, START)
    for row, pair in enumerate(pairs()):
        t = len(pair.labels)
        assert batch["decoder_input_ids"][row, :t].tolist() == shift_right(pair.labels, START)
        assert batch["decoder_input_ids"][row, 0].item() == START
    # Wherever position j+1 holds a real label, the decoder input there is the label at j.
    labels, dec = batch["labels"], batch["decoder_input_ids"]
    real = labels[:, 1:] != IGNORE_INDEX
    assert torch.equal(dec[:, 1:][real], labels[:, :-1][real])


def test_collate_ignore_index_only_on_padding() -> None:
    batch = collate(pairs(), PAD, START)
    lengths = torch.tensor([len(p.labels) for p in pairs()])
    assert torch.equal((batch["labels"] != IGNORE_INDEX).sum(dim=1), lengths)
    assert torch.equal(batch["attention_mask"].sum(dim=1), torch.tensor([len(p.input_ids) for p in pairs()]))


@pytest.mark.parametrize("multiple,src,tgt", [(1, 3, 4), (2, 4, 4), (4, 4, 4), (8, 8, 8), (3, 3, 6)])
def test_collate_pad_to_multiple_of(multiple: int, src: int, tgt: int) -> None:
    batch = collate(pairs(), PAD, START, pad_to_multiple_of=multiple)
    assert batch["input_ids"].shape == (3, src)
    assert batch["labels"].shape == (3, tgt)
    assert batch["decoder_input_ids"].shape == (3, tgt)
    assert batch["attention_mask"][:, 3:].sum().item() == 0
    assert (batch["labels"][:, 4:] == IGNORE_INDEX).all()
    assert (batch["decoder_input_ids"][:, 4:] == PAD).all()
    assert (batch["input_ids"][:, 3:] == PAD).all()


def test_collate_single_pair_has_no_padding() -> None:
    batch = collate([TokenizedPair((3, 4), (5, 6, 7))], PAD, START)
    assert batch["attention_mask"].tolist() == [[1, 1]]
    assert batch["labels"].tolist() == [[5, 6, 7]]
    assert batch["decoder_input_ids"].tolist() == [[START, 5, 6]]


def test_tokenized_pair_length_is_the_longer_side() -> None:
    assert TokenizedPair((1, 2, 3), (4,)).length == 3
    assert TokenizedPair((1,), (4, 5, 6, 7)).length == 4


# --- several processes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("n,batch,accum,world,epochs", [(100, 8, 2, 2, 1.0), (100, 4, 1, 4, 2.5), (37, 3, 3, 2, 3.0),
                                                        (5, 8, 1, 2, 2.0)])  # fmt: skip
def test_n_processes_step_like_one_process_with_n_times_the_accumulation(n, batch, accum, world, epochs) -> None:
    # The global batch is batch x grad_accum x world_size: the step plan and the batches of every step are those
    # of one process accumulating world_size times as many micro-batches.
    plan = fixed_plan(n, batch, accum, epochs, None, world_size=world)
    single = fixed_plan(n, batch, accum * world, epochs, None)
    assert (plan.total_steps, plan.steps_per_epoch) == (single.total_steps, single.steps_per_epoch)
    assert plan.micro_batches_per_step == accum * world
    lengths = random_lengths(n, seed=n)
    batching = LengthGrouped(batch)
    distributed = list(optimizer_steps(lengths, batching, accum, 42, plan.total_steps, world_size=world))
    assert distributed == all_steps(lengths, batch, accum * world, 42, plan.total_steps)
    resumed = list(optimizer_steps(lengths, batching, accum, 42, plan.total_steps, start_step=2, world_size=world))
    assert resumed == distributed[2:]


def test_plan_steps_divides_an_epoch_among_processes() -> None:
    assert fixed_plan(100, 8, 2, 1.0, None, world_size=1).steps_per_epoch == 7  # 13 batches / 2
    assert fixed_plan(100, 8, 2, 1.0, None, world_size=2).steps_per_epoch == 4  # 13 batches / 4
    assert fixed_plan(100, 8, 2, 1.0, 9, world_size=2).total_steps == 9  # max_steps is a count of steps, as before


@pytest.mark.parametrize("count,world", [(4, 2), (3, 2), (1, 2), (8, 4), (5, 3), (2, 1)])
def test_rank_shares_partition_the_step(count: int, world: int) -> None:
    micro_batches = [[i, i + 100] for i in range(count)]
    shares = [rank_share(micro_batches, world, rank) for rank in range(world)]
    assert sorted(mb for share in shares for mb in share) == micro_batches  # each micro-batch on exactly one rank
    sizes = [len(share) for share in shares]
    assert max(sizes) - min(sizes) <= 1  # a short last step stays balanced
    assert sizes == sorted(sizes, reverse=True)  # only the highest ranks can come up empty


# --- token budgets (--max-tokens) -------------------------------------------------------------------------------


def test_fill_token_budget_cuts_where_the_next_pair_would_overflow() -> None:
    lengths = [10, 9, 9, 5, 5, 5, 5, 30]
    # 3 x 10 = 30 fits, a fourth would be 40; then 4 x 5 = 20; then 30 alone.
    assert fill_token_budget(range(8), lengths, 30) == [[0, 1, 2], [3, 4, 5, 6], [7]]
    # Ascending order (evaluation): the newest pair sets the longest length.
    assert fill_token_budget([3, 4, 0, 7], lengths, 20) == [[3, 4], [0], [7]]


@pytest.mark.parametrize("max_tokens", [200, 512, 2048])
def test_token_budget_batches_cover_every_pair_once_within_budget(max_tokens: int) -> None:
    lengths = random_lengths(3000, seed=7)  # lengths up to 200: any single pair fits
    batches = token_budget_batches(lengths, max_tokens, seed=1, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(3000))
    assert all(len(b) * max(lengths[i] for i in b) <= max_tokens for b in batches)
    # Full batches: adding the next pair of the pool would have overflowed, so most batches use most of the budget.
    used = [len(b) * max(lengths[i] for i in b) / max_tokens for b in batches]
    assert sorted(used)[len(used) // 2] > 0.75


def test_token_budget_batches_hold_many_short_pairs_or_few_long_ones() -> None:
    lengths = [5] * 400 + [100] * 40
    batches = token_budget_batches(lengths, 500, seed=0, epoch=0)
    sizes = {max(lengths[i] for i in b): len(b) for b in batches if len(b) > 1}
    assert max(len(b) for b in batches) == 100 and min(len(b) for b in batches) <= 5
    assert sizes[5] == 100 and sizes[100] == 5


def test_token_budget_batches_are_seeded_and_cut_padding() -> None:
    lengths = random_lengths(2000, seed=3)
    a = token_budget_batches(lengths, 1024, seed=42, epoch=3)
    assert a == token_budget_batches(list(lengths), 1024, seed=42, epoch=3)
    assert a != token_budget_batches(lengths, 1024, seed=42, epoch=4)
    assert a != token_budget_batches(lengths, 1024, seed=43, epoch=3)
    real = sum(lengths)
    random_order = [list(range(i, min(i + 10, 2000))) for i in range(0, 2000, 10)]
    assert padded_tokens(a, lengths) - real < 0.2 * (padded_tokens(random_order, lengths) - real)


def test_a_pair_longer_than_the_budget_gets_a_batch_of_its_own() -> None:
    lengths = [3, 3, 50, 3]
    batches = token_budget_batches(lengths, 10, seed=0, epoch=0)
    assert [2] in batches and sorted(i for b in batches for i in b) == [0, 1, 2, 3]


def test_batching_for_chooses_by_max_tokens() -> None:
    lengths = random_lengths(100, seed=4)
    assert batching_for(8, None) == LengthGrouped(8)
    assert batching_for(8, 600) == TokenBudget(600)
    assert batching_for(8, None).epoch(lengths, 42, 1) == length_grouped_batches(lengths, 8, 42, 1)
    assert batching_for(8, 600).epoch(lengths, 42, 1) == token_budget_batches(lengths, 600, 42, 1)
    assert batching_for(8, None).describe() == "8 pairs"
    assert batching_for(8, 600).describe() == "up to 600 tokens"


@pytest.mark.parametrize("batching", [LengthGrouped(7), TokenBudget(700)])
def test_a_strategys_count_is_its_epochs_length(batching: Batching) -> None:
    lengths = random_lengths(301, seed=8)
    for epoch in range(3):
        assert batching.count(lengths, 42, epoch) == len(batching.epoch(lengths, 42, epoch))


@pytest.mark.parametrize("batching", [LengthGrouped(7), TokenBudget(700)])
def test_validation_batches_are_sorted_by_length_and_cut_like_training(batching: Batching) -> None:
    lengths = random_lengths(301, seed=8)
    batches = batching.validation(lengths)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(301))
    assert [lengths[i] for i in flat] == sorted(lengths)
    assert batching.validation(list(lengths)) == batches  # the same at every evaluation
    if isinstance(batching, LengthGrouped):
        assert all(len(b) == 7 for b in batches[:-1])
    else:
        assert all(len(b) * max(lengths[i] for i in b) <= 700 for b in batches)
        assert batches == fill_token_budget(flat, lengths, 700)


def test_target_tokens_count_the_labels() -> None:
    assert target_tokens(pairs()) == 2 + 4 + 1
    assert target_tokens([]) == 0


def test_epoch_fraction_is_how_far_into_its_epoch_a_step_is() -> None:
    # Epochs of 10 and 6 micro-batches, 4 per step: 3 steps, then 2.
    assert epoch_fraction(1, 0, [10, 6], 4) == pytest.approx(1 / 3)
    assert epoch_fraction(3, 0, [10, 6], 4) == 1.0
    assert epoch_fraction(4, 1, [10, 6], 4) == 0.5
    assert epoch_fraction(5, 1, [10, 6], 4) == 1.0


@pytest.mark.parametrize("start", [0, 1, 5, 11])
def test_token_budget_steps_resume_and_split_like_fixed_batches(start: int) -> None:
    lengths = random_lengths(500, seed=11)
    budget = TokenBudget(800)
    batches = epoch_batch_counts(lengths, budget, 42, 2)
    assert batches[0] == len(token_budget_batches(lengths, 800, 42, 0))
    plan = plan_steps(batches, 2, 2.0, None, fixed_size=budget.fixed_size)
    assert plan.steps_per_epoch == math.ceil(batches[0] / 2)
    full = list(optimizer_steps(lengths, budget, 2, 42, plan.total_steps))
    assert [s for s, _, _ in full] == list(range(1, plan.total_steps + 1))
    assert all(len(mb) * max(lengths[i] for i in mb) <= 800 for _, _, mbs in full for mb in mbs)
    assert list(optimizer_steps(lengths, budget, 2, 42, plan.total_steps, start)) == full[start:]
    # Two processes with grad_accum 1 see the steps of one process with grad_accum 2.
    assert list(optimizer_steps(lengths, budget, 1, 42, plan.total_steps, world_size=2)) == full


@pytest.mark.parametrize(
    "n,batch,accum,epochs",
    [(100, 8, 2, 1.0), (100, 8, 2, 2.5), (37, 4, 3, 3.0), (5, 8, 4, 0.3), (80, 8, 2, 1.6), (80, 8, 2, 2.2),
     (1600, 8, 2, 1.1), (10_000, 5, 2, 1.6)],
)  # fmt: skip
def test_fixed_batches_count_steps_as_the_hf_trainer(n, batch, accum, epochs) -> None:
    """ceil(epochs x steps per epoch), float rounding included (1.6 epochs of 5 steps are 8, 1.1 of 100 are 111)."""
    batches = epoch_batch_counts(random_lengths(n), LengthGrouped(batch), 42, math.ceil(epochs))
    assert batches == [math.ceil(n / batch)] * math.ceil(epochs)
    plan = plan_steps(batches, accum, epochs, None)
    assert plan.total_steps == max(1, math.ceil(epochs * math.ceil(math.ceil(n / batch) / accum)))  # as HF counts
    assert [math.ceil(b / accum) for b in batches] == [plan.steps_per_epoch] * math.ceil(epochs)


def test_fractional_epochs_known_values() -> None:
    assert plan_steps([10], 2, 1.6, None).total_steps == 8  # 5 steps per epoch; (1.6 - 1) x 5 is 3.0000000000000004
    assert plan_steps([10, 10, 10], 2, 2.2, None).total_steps == 11
    assert plan_steps([200, 200], 2, 1.1, None).total_steps == 111  # 1.1 x 100 = 110.00000000000001: HF rounds up
    # Token-budget epochs add their own counts.
    assert plan_steps([10, 12], 2, 1.5, None, fixed_size=False).total_steps == 5 + 3


def test_steps_for_epochs_adds_each_epochs_own_count() -> None:
    assert steps_for_epochs([10, 12, 11], 2.0) == 22
    assert steps_for_epochs([10, 12, 11], 2.5) == 22 + 6
    assert steps_for_epochs([10], 0.01) == 1


def test_token_budget_epochs_end_where_their_batches_end() -> None:
    """Two epochs of token-budget batches whose counts differ: the plan ends on the last batch of the second."""
    lengths = random_lengths(700, seed=5)
    batches = epoch_batch_counts(lengths, TokenBudget(900), 42, 2)
    counts = [math.ceil(b / 2) for b in batches]
    assert counts[0] != counts[1]
    plan = plan_steps(batches, 2, 2.0, None, fixed_size=TokenBudget.fixed_size)
    assert plan.total_steps == steps_for_epochs(counts, 2.0)
    steps = list(optimizer_steps(lengths, TokenBudget(900), 2, 42, plan.total_steps))
    per_epoch = Counter(epoch for _, epoch, _ in steps)
    assert [per_epoch[0], per_epoch[1]] == counts
    last_epoch = [i for _, e, mbs in steps if e == 1 for mb in mbs for i in mb]
    assert sorted(last_epoch) == list(range(700))  # the second epoch is complete, and nothing of a third began
