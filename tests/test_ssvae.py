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
from vae_numpy.samplers import ShuffledMinibatches
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


def _few_labels(y, per_class, seed=0):
    """y with all but ``per_class`` rows of each class set to -1 (unlabelled)."""
    rng = np.random.default_rng(seed)
    keep = np.concatenate(
        [rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in np.unique(y)]
    )
    partial = np.full(len(y), -1)
    partial[keep] = y[keep]
    return partial


def test_fit_on_mixed_rows_runs_balanced_batches_through_train_fit_with_its_options():
    """fit(X, y) with -1 rows takes balanced steps and every option of train.fit (validation, rng)."""
    x, y, _ = load_dataset("digits")
    x, partial = x[:300], _few_labels(y[:300], 2)
    runs = []
    for _ in range(2):
        model = SemiSupervisedVAE(64, 10, (16,), 2, rng=0)
        model.fit(
            x, partial, epochs=2, batch_size=50, rng=3, progress=False, threads=1,
            validation_data=x[:40],
        )  # fmt: skip
        runs.append(model)
    history = runs[0].history_
    assert set(history) >= {"loss", "bound", "classification", "val_loss", "seconds"}
    assert len(history["loss"]) == 2
    assert runs[0].optimizer_.t == 2 * 6  # ceil(280 unlabelled / 50) steps an epoch
    assert history["loss"] == runs[1].history_["loss"]  # same rng, same run
    plain = SemiSupervisedVAE(64, 10, (16,), 2, rng=0)
    plain.fit(
        x, partial, epochs=1, batch_size=50, rng=3, progress=False, sampler=ShuffledMinibatches()
    )
    assert plain.optimizer_.t == 6  # ceil(300 rows / 50): the sampler given is used


def test_default_alpha_is_the_documented_constant():
    """alpha defaults to 50 (see the class docstring: why a constant, why this one)."""
    assert SemiSupervisedVAE(6, 3, (5,), 2, rng=0).alpha == 50.0


def test_m2_with_its_defaults_beats_logistic_regression_on_the_same_few_labels():
    """On digits with 5 labels per class, M2 classifies held-out rows clearly better than LR."""
    from sklearn.linear_model import LogisticRegression

    x, y, _ = load_dataset("digits")
    x_test, y_test, _ = load_dataset("digits", "test")
    partial = _few_labels(y, 5)
    labelled = partial >= 0
    # held out from both: the unlabelled training rows and the test split
    x_eval = np.concatenate([x[~labelled], x_test])
    y_eval = np.concatenate([y[~labelled], y_test])
    model = SemiSupervisedVAE(64, 10, (64,), 2, activation="elu", rng=0)
    model.fit(x, partial, epochs=60, lr=3e-3, rng=0, progress=False)
    m2 = float(np.mean(model.predict(x_eval) == y_eval))
    logistic = LogisticRegression(max_iter=2000).fit(x[labelled], y[labelled])
    lr = float(np.mean(logistic.predict(x_eval) == y_eval))
    assert m2 >= lr + 0.02, f"M2 accuracy {m2:.3f}, logistic regression {lr:.3f} (50 labels)"


def test_balanced_training_resumes_from_a_checkpoint_bit_for_bit(tmp_path):
    """Two epochs in one go equal one epoch, a checkpoint, and a resumed second epoch."""
    x, y, _ = load_dataset("digits")
    x, partial = x[:200], _few_labels(y[:200], 2)
    options = dict(batch_size=50, rng=4, progress=False, threads=1)
    whole = SemiSupervisedVAE(64, 10, (8,), 2, rng=0).fit(x, partial, epochs=2, **options)
    path = tmp_path / "m2.npz"
    halves = SemiSupervisedVAE(64, 10, (8,), 2, rng=0)
    halves.fit(x, partial, epochs=1, checkpoint=path, **options)
    halves.fit(x, partial, epochs=2, checkpoint=path, resume=True, **options)
    for k, p in whole.parameters().items():
        np.testing.assert_array_equal(halves.parameters()[k], p, err_msg=k)
    assert halves.history_["loss"] == whole.history_["loss"]
