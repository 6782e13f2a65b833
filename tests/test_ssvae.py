"""M2: gradients on a mixed batch, both bounds by explicit summation, the classifier, training."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.strategies import seeds
from vae_numpy.data import load_dataset
from vae_numpy.gradcheck import check_model
from vae_numpy.ssvae import SemiSupervisedVAE


@settings(max_examples=10)
@given(seeds, st.sampled_from(["elu", "tanh", "softplus"]), st.floats(0.0, 5.0))
def test_m2_gradients_match_central_differences_on_a_mixed_batch(seed, activation, alpha):
    """Every gradient (classifier, encoder, decoder) of the mixed-batch cost matches differences."""
    rng = np.random.default_rng(seed)
    model = SemiSupervisedVAE(
        5, 3, (4,), 2, alpha=alpha, activation=activation, dtype=np.float64, rng=rng
    )
    x = rng.random((6, 5))
    y = np.array([0, -1, 2, -1, 1, -1])
    eps = rng.standard_normal((6, 3, 2))
    # fourth-order differences with h = 1e-4: gradients far below the loss stay above rounding
    check_model(model, x, y, noise=eps, eps=1e-4, order=4).assert_ok(1e-6)


def test_unlabelled_bound_equals_explicit_sum_over_labels():
    """U(x) = sum_y q(y|x) [L(x, y) + ln q(y|x)], each L(x, y) from the conditional VAE's own loss."""
    rng = np.random.default_rng(0)
    model = SemiSupervisedVAE(6, 4, (5,), 2, dtype=np.float64, rng=1)
    x, eps = rng.random((3, 6)), rng.standard_normal((3, 4, 2))
    q = model.predict_proba(x)
    expected = [
        sum(
            q[i, c]
            * (
                model.cvae.loss(x[i : i + 1], c, eps=eps[i, c][None])
                + math.log(4)
                + math.log(q[i, c])
            )
            for c in range(4)
        )
        for i in range(3)
    ]
    np.testing.assert_allclose(model.unlabelled_bound(x, eps=eps), expected, rtol=1e-12)


def test_unlabelled_bound_is_below_every_labelled_mixture():
    """-U(x) = ln p(x) bound ≥ any q's bound: it is log-sum-exp of -L(x, y) minus ln at the optimum q."""
    rng = np.random.default_rng(0)
    model = SemiSupervisedVAE(6, 3, (5,), 2, dtype=np.float64, rng=1)
    x, eps = rng.random((2, 6)), rng.standard_normal((2, 3, 2))
    L = np.array(
        [
            [model.cvae.loss(x[i : i + 1], c, eps=eps[i, c][None]) + math.log(3) for c in range(3)]
            for i in range(2)
        ]
    )
    # the best q(y|x) is softmax(-L), where U = -logsumexp(-L): the given classifier can only be worse
    best = -np.log(np.exp(-L).sum(axis=1))
    assert np.all(model.unlabelled_bound(x, eps=eps) >= best - 1e-12)


def test_labelled_cost_is_bound_plus_weighted_cross_entropy():
    """A labelled row costs L(x, y) + ln C + alpha (-ln q(y|x)), L from the conditional VAE."""
    rng = np.random.default_rng(0)
    model = SemiSupervisedVAE(6, 3, (5,), 2, alpha=7.0, dtype=np.float64, rng=1)
    x, eps = rng.random((1, 6)), rng.standard_normal((1, 3, 2))
    q = model.predict_proba(x)[0, 2]
    L = model.cvae.loss(x, 2, eps=eps[:, 2])
    assert model.loss(x, [2], eps=eps) == pytest.approx(
        L + math.log(3) - 7.0 * math.log(q), rel=1e-12
    )


def test_predict_proba_rows_are_distributions_and_predict_is_their_argmax():
    """q(y|x) rows are non-negative and sum to 1; predict returns the argmax."""
    model = SemiSupervisedVAE(6, 4, (5,), 2, rng=0)
    x = np.random.default_rng(0).random((5, 6))
    p = model.predict_proba(x)
    assert p.shape == (5, 4) and np.all(p >= 0)
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_array_equal(model.predict(x), p.argmax(axis=1))


@pytest.mark.parametrize("y", [np.array([0, -2]), np.array([0, 4])])
def test_labels_outside_minus_one_to_c_raise(y):
    """Labels below -1 or at least n_classes raise ValueError that mentions -1 (unlabelled)."""
    model = SemiSupervisedVAE(6, 4, (5,), 2, rng=0)
    with pytest.raises(ValueError, match="-1"):
        model.loss(np.zeros((2, 6)), y)


def test_balanced_batches_need_both_kinds_of_rows():
    """fit(labelled_batch_size=...) with no unlabelled rows raises ValueError saying why."""
    model = SemiSupervisedVAE(6, 2, (5,), 2, rng=0)
    with pytest.raises(ValueError, match="unlabelled"):
        model.fit(np.zeros((4, 6)), [0, 1, 0, 1], epochs=1, labelled_batch_size=2)


def test_m2_learns_digits_from_three_labels_per_class():
    """On digits with 3 labels per class (30 of 1,500 rows), M2's classifier is far above chance."""
    x, y, _ = load_dataset("digits")
    x_test, y_test, _ = load_dataset("digits", "test")
    rng = np.random.default_rng(0)
    lab = np.concatenate([rng.choice(np.flatnonzero(y == c), 3, replace=False) for c in range(10)])
    partial = np.full(len(y), -1)
    partial[lab] = y[lab]
    model = SemiSupervisedVAE(64, 10, (32,), 4, alpha=20.0, activation="elu", rng=0)
    model.fit(x, partial, epochs=10, batch_size=100, labelled_batch_size=30, lr=3e-3, rng=0)
    assert model.history_["loss"][-1] < model.history_["loss"][0]
    assert np.mean(model.predict(x_test) == y_test) > 0.7
