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


@pytest.mark.parametrize("y", [[0, 1, 0, 1], [-1, -1, -1, -1]])
def test_balanced_batches_need_both_kinds_of_rows(y):
    """BalancedBatches on rows of one kind raises ValueError naming the plain sampler."""
    x = np.zeros((4, 6))
    with pytest.raises(ValueError, match="ShuffledMinibatches"):
        BalancedBatches().steps_per_epoch((x, np.array(y)), 2)
