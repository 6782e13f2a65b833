"""The batch samplers: which rows make up each training step (vae_numpy.samplers)."""

from __future__ import annotations

import numpy as np
import pytest

from vae_numpy.samplers import BalancedBatches, ShuffledMinibatches, shuffled_batches


def test_shuffled_batches_visit_every_row_once_and_keep_rows_of_x_and_y_together():
    """One epoch's minibatches partition the rows; x and y stay paired; the last may be short."""
    x = np.arange(10.0)[:, None] * np.ones((1, 3))
    y = np.arange(10)
    batches = list(shuffled_batches((x, y), 4, np.random.default_rng(0)))
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    rows = np.concatenate([b[1] for b in batches])
    assert sorted(rows.tolist()) == list(range(10)) and rows.tolist() != list(range(10))
    for bx, by in batches:
        np.testing.assert_array_equal(bx[:, 0], by)


def test_default_sampler_is_the_shuffled_minibatches_of_shuffled_batches():
    """ShuffledMinibatches yields exactly what shuffled_batches yields from the same generator."""
    x, y = np.arange(14.0)[:, None], np.arange(14)
    ours = list(ShuffledMinibatches().batches((x, y), 4, np.random.default_rng(3)))
    theirs = list(shuffled_batches((x, y), 4, np.random.default_rng(3)))
    assert ShuffledMinibatches().steps_per_epoch((x, y), 4) == len(ours) == 4
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a[1], b[1])


def test_balanced_batches_pair_each_unlabelled_slice_with_as_many_labelled_rows():
    """Each batch: n unlabelled rows then n labelled ones; an epoch visits every unlabelled row once."""
    x = np.arange(23.0)[:, None]
    y = np.array([0, 1, 2] + [-1] * 20)
    sampler = BalancedBatches()
    batches = list(sampler.batches((x, y), 6, np.random.default_rng(0)))
    assert len(batches) == sampler.steps_per_epoch((x, y), 6) == 4
    assert [len(b[0]) for b in batches] == [12, 12, 12, 4]
    for bx, by in batches:
        half = len(by) // 2
        assert np.all(by[:half] == -1) and np.all(by[half:] >= 0)
        np.testing.assert_array_equal(y[bx[:, 0].astype(int)], by)  # rows of x and y together
    unlabelled = np.concatenate([b[0][: len(b[0]) // 2, 0] for b in batches])
    assert sorted(unlabelled.tolist()) == list(range(3, 23))
    used = np.concatenate([b[1][len(b[1]) // 2 :] for b in batches])
    counts = np.bincount(used, minlength=3)
    assert counts.sum() == 20 and counts.max() - counts.min() <= 1  # each label equally often


@pytest.mark.parametrize(
    ("y", "counts"), [([0, 1, 0, 1], "4 labelled and 0"), ([-1, -1, -1, -1], "0 labelled and 4")]
)
def test_balanced_batches_need_both_kinds_of_rows(y, counts):
    """BalancedBatches on rows of one kind raises ValueError counting them and naming the fix."""
    x = np.zeros((4, 6))
    message = (
        rf"^BalancedBatches needs labelled and unlabelled \(-1\) rows, got {counts} unlabelled;"
        r" train on rows of one kind with sampler=vae_numpy\.samplers\.ShuffledMinibatches\(\)$"
    )
    with pytest.raises(ValueError, match=message):
        BalancedBatches().steps_per_epoch((x, np.array(y)), 2)


def test_balanced_batches_refuse_data_without_labels():
    """BalancedBatches given (X,) alone raises TypeError saying it samples (X, y) with y = -1."""
    x = np.zeros((4, 6))
    message = r"^BalancedBatches samples \(X, y\) with y = -1 on unlabelled rows$"
    with pytest.raises(TypeError, match=message):
        BalancedBatches().steps_per_epoch((x,), 2)
    with pytest.raises(TypeError, match=message):
        next(BalancedBatches().batches((x,), 2, np.random.default_rng(0)))


def test_balanced_batches_take_labelled_rows_in_whole_shuffled_passes():
    """3 labelled rows, slices of 4: each batch has 4 of each kind, the labelled ones in passes.

    The first batch uses up the first pass (3 rows) with one row still needed, which the next
    pass gives; over the epoch the labelled rows, read in order, are 4 shuffled passes.
    """
    x = np.arange(15.0)[:, None]
    y = np.array([-1] * 5 + [0, 1, 2] + [-1] * 7)
    labelled_rows = [5, 6, 7]
    batches = list(BalancedBatches().batches((x, y), 4, np.random.default_rng(0)))
    assert [len(b[0]) for b in batches] == [8, 8, 8]
    taken = []
    for bx, by in batches:
        assert np.all(by[:4] == -1) and np.all(by[4:] >= 0)
        taken += bx[4:, 0].astype(int).tolist()
    passes = [sorted(taken[i : i + 3]) for i in range(0, 12, 3)]
    assert passes == [labelled_rows] * 4, taken
    assert len({tuple(taken[i : i + 3]) for i in range(0, 12, 3)}) > 1  # the passes are reshuffled


@pytest.mark.parametrize("sampler", [ShuffledMinibatches(), BalancedBatches()])
def test_sampler_repr_is_the_call_that_rebuilds_it(sampler):
    """A sampler's repr (written into checkpoints' settings) is its constructor call."""
    name = type(sampler).__name__
    assert repr(sampler) == f"{name}()"
    assert type(eval(repr(sampler), {name: type(sampler)})) is type(sampler)
