"""M2: gradients on a mixed batch, both bounds by explicit summation, the classifier, training."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.special import expit, log_softmax

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


# --- defaults, networks and messages -------------------------------------------------------


def test_constructor_defaults_and_the_networks_it_names():
    """Defaults: latent_dim 20, alpha 50; networks classifier/encoder/decoder, the last two the CVAE's."""
    model = SemiSupervisedVAE(5, 3)
    assert model.latent_dim == 20 and model.alpha == 50.0 and model.n_classes == 3
    assert model.dtype == np.float32 and model.activation == "relu"
    assert set(model.networks) == {"classifier", "encoder", "decoder"}
    assert model.encoder is model.cvae.encoder and model.decoder is model.cvae.decoder
    assert {k.split(".")[0] for k in model.parameters()} == {"classifier", "encoder", "decoder"}
    assert SemiSupervisedVAE(5, 2, (4,), 2, rng=0).n_classes == 2  # two classes suffice
    assert SemiSupervisedVAE(5, 3, (4,), 2, alpha=0, rng=0).alpha == 0.0  # no classification term


def test_bad_parameters_raise_errors_naming_them():
    """n_classes (at least 2) and alpha (at least 0) are named in the errors they raise."""
    with pytest.raises(ValueError, match=r"^n_classes must be >= 2, got 1$"):
        SemiSupervisedVAE(5, 1, (4,), 2)
    with pytest.raises(TypeError, match=r"^n_classes must be an integer"):
        SemiSupervisedVAE(5, 2.5, (4,), 2)
    with pytest.raises(ValueError, match=r"^alpha must be a finite number >= 0, got -1\.0$"):
        SemiSupervisedVAE(5, 3, (4,), 2, alpha=-1.0)
    with pytest.raises(TypeError, match=r"^alpha must be a number"):
        SemiSupervisedVAE(5, 3, (4,), 2, alpha="50")


def test_data_and_noise_errors_name_the_argument():
    """check_data names X (as fit calls it) or x (as loss does); a wrong eps names M2's noise axes."""
    model = SemiSupervisedVAE(5, 3, (4,), 2, rng=0)
    with pytest.raises(ValueError, match=r"^X must be 2-D"):
        model.check_data(np.zeros(5))
    with pytest.raises(ValueError, match=r"^X must be 2-D"):
        model.check_data(np.zeros(5), np.array([0]))
    with pytest.raises(ValueError, match=r"^x must be 2-D"):
        model.loss(np.zeros(5), np.array([0]))
    with pytest.raises(ValueError, match=r"^x must be 2-D"):
        model.loss(np.zeros(5))
    x, y = np.zeros((2, 5)), np.array([0, -1])
    with pytest.raises(
        ValueError,
        match=r"^eps must have shape \(batch, n_classes, latent_dim\) = \(2, 3, 2\), got \(2, 2\)$",
    ):
        model.loss(x, y, eps=np.zeros((2, 2)))


def test_x_alone_is_every_row_unlabelled():
    """check_data(X) returns X and int64 labels of -1; its loss is the bound U(x) alone."""
    model = SemiSupervisedVAE(5, 3, (4,), 2, dtype=np.float64, rng=0)
    x = np.random.default_rng(0).random((3, 5))
    checked, y = model.check_data(x)
    np.testing.assert_array_equal(checked, x)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, [-1, -1, -1])
    eps = np.random.default_rng(1).standard_normal((3, 3, 2))
    assert model.loss(x, eps=eps) == pytest.approx(model.loss(x, y, eps=eps), rel=1e-15)


# --- the networks by hand --------------------------------------------------------------------


def _tiny_model(**kwargs):
    """input 5, 3 classes, hidden (4,), latent 2, tanh, float64."""
    kwargs = {"activation": "tanh", "dtype": np.float64, "rng": 1, **kwargs}
    return SemiSupervisedVAE(5, 3, (4,), 2, **kwargs)


def _mlp_by_hand(model, name, a):
    """Dense, tanh, Dense of the network ``name``, written with the raw parameter arrays."""
    p = model.parameters()
    h = np.tanh(a @ p[f"{name}.0.W"] + p[f"{name}.0.b"])
    return h @ p[f"{name}.2.W"] + p[f"{name}.2.b"]


def _label_terms_by_hand(model, x, c, eps):
    """mu, log_var, z, -ln p(x|z, c) (scipy) and KL (closed form) of rows x under label c."""
    y1 = np.zeros((len(x), model.n_classes))
    y1[:, c] = 1
    h = _mlp_by_hand(model, "encoder", np.concatenate([x, y1], axis=1))
    mu, log_var = h[:, :2], h[:, 2:]
    z = mu + np.exp(log_var / 2) * eps
    prob = expit(_mlp_by_hand(model, "decoder", np.concatenate([z, y1], axis=1)))
    nll = -stats.bernoulli.logpmf(x, prob).sum(axis=1)
    kl = 0.5 * np.sum(mu**2 + np.exp(log_var) - 1 - log_var, axis=1)
    return mu, log_var, z, nll, kl


def _costs_by_hand(model, x, y, eps):
    """ln q(y|x), L(x, c) for every row and class, and each row's bound (L or U), by hand."""
    n, C = len(x), model.n_classes
    log_q = log_softmax(_mlp_by_hand(model, "classifier", x), axis=1)
    L = np.empty((n, C))
    for c in range(C):
        *_, nll, kl = _label_terms_by_hand(model, x, c, eps[:, c])
        L[:, c] = nll + kl + math.log(C)
    bound = np.where(
        y >= 0,
        L[np.arange(n), np.maximum(y, 0)],
        np.sum(np.exp(log_q) * (L + log_q), axis=1),
    )
    return log_q, L, bound


def test_encode_decode_and_sample_are_the_conditional_networks():
    """encode splits encoder([x | one_hot(y)]); decode is sigmoid(decoder([z | one_hot(y)]))."""
    model = _tiny_model()
    rng = np.random.default_rng(0)
    x, y, eps = rng.random((3, 5)), np.array([2, 0, 1]), rng.standard_normal((3, 2))
    mu, log_var = model.encode(x, y)
    for i, c in enumerate(y):
        m, lv, z, *_ = _label_terms_by_hand(model, x[i : i + 1], c, eps[i : i + 1])
        np.testing.assert_allclose(mu[i], m[0], rtol=1e-12)
        np.testing.assert_allclose(log_var[i], lv[0], rtol=1e-12)
        y1 = np.eye(3)[[c]]
        expected = expit(_mlp_by_hand(model, "decoder", np.concatenate([z, y1], axis=1)))
        np.testing.assert_allclose(model.decode(z, [c]), expected, rtol=1e-12)


def test_sample_decodes_standard_normal_codes_of_the_chosen_class():
    """sample(n, y=c, rng=s) = decode(default_rng(s).standard_normal((n, latent), dtype), c)."""
    model = SemiSupervisedVAE(5, 3, (4,), 2, rng=0)
    z = np.random.default_rng(3).standard_normal((4, 2), dtype=np.float32)
    for c in range(3):
        s = model.sample(4, y=c, rng=3)
        assert s.shape == (4, 5) and s.dtype == np.float32
        np.testing.assert_array_equal(s, model.decode(z, np.full(4, c)))
    labels = np.array([2, 0, 2, 1])
    np.testing.assert_array_equal(model.sample(4, y=labels, rng=3), model.decode(z, labels))


# --- the forward record, the loss terms and the gradients ---------------------------------------


def test_forward_record_and_loss_terms_match_a_computation_by_hand():
    """The record's x, y, rows, ln q, q, g, bound and classification, and the terms, by hand."""
    rng = np.random.default_rng(0)
    model = _tiny_model(alpha=3.0)
    x, y = (rng.random((5, 5)) < 0.5).astype(float), np.array([0, -1, 2, -1, 1])
    eps = rng.standard_normal((5, 3, 2))
    batch = model.check_data(x, y)
    f = model.forward(batch, eps)
    log_q, L, bound = _costs_by_hand(model, x, y, eps)
    np.testing.assert_array_equal(f.x, x)
    np.testing.assert_array_equal(f.y, y)
    np.testing.assert_array_equal(f.labelled_rows, [0, 2, 4])
    np.testing.assert_array_equal(f.unlabelled_rows, [1, 3])
    np.testing.assert_allclose(f.log_q, log_q, rtol=1e-12)
    np.testing.assert_allclose(f.q, np.exp(log_q), rtol=1e-12)
    np.testing.assert_allclose(f.g, L[[1, 3]] + log_q[[1, 3]], rtol=1e-12)
    np.testing.assert_allclose(f.bound, bound, rtol=1e-12)
    ce = np.array([-log_q[0, 0], 0, -log_q[2, 2], 0, -log_q[4, 1]])
    np.testing.assert_allclose(f.classification, ce, rtol=1e-12)
    terms = model.loss_terms(f)
    assert set(terms) == {"loss", "bound", "classification"}
    np.testing.assert_allclose(terms["loss"], bound + 3.0 * ce, rtol=1e-12)
    np.testing.assert_allclose(terms["bound"], bound, rtol=1e-12)
    np.testing.assert_allclose(terms["classification"], ce, rtol=1e-12)


def test_float32_model_computes_in_float32_and_reports_float64_bounds():
    """A float32 model's q, codes, samples and loss terms are float32; its bounds are float64."""
    rng = np.random.default_rng(0)
    model = SemiSupervisedVAE(5, 3, (4,), 2, rng=0)
    x, y = rng.random((4, 5)).astype(np.float32), np.array([0, -1, 2, -1])
    assert model.predict_proba(x).dtype == np.float32
    mu, log_var = model.encode(x, y % 3)
    assert mu.dtype == log_var.dtype == np.float32
    assert model.decode(mu, y % 3).dtype == np.float32
    assert model.sample(2, rng=0).dtype == np.float32
    batch = model.check_data(x, y)
    for name, term in model.loss_terms_for_batch(batch, rng=0).items():
        assert term.dtype == np.float32, name
    elbo = model.elbo_for_batch(batch, rng=0)
    log_w = model.log_importance_weights(batch, 3, rng=0)
    u = model.unlabelled_bound(x, rng=0)
    assert elbo.dtype == log_w.dtype == u.dtype == np.float64
    assert elbo.shape == u.shape == (4,) and log_w.shape == (3, 4)


def test_backward_with_one_hot_weights_is_that_rows_gradient():
    """backward(f, weights=e_i) on a mixed batch gives the gradient of the cost of row i alone."""
    rng = np.random.default_rng(4)
    model = _tiny_model(alpha=2.0)
    x, y = rng.random((4, 5)), np.array([0, -1, 2, -1])
    eps = rng.standard_normal((4, 3, 2))
    for i in (1, 2):  # an unlabelled row, a labelled one
        model.zero_grad()
        f = model.forward(model.check_data(x, y), eps, for_backward=True)
        model.backward(f, weights=np.eye(4)[i])
        weighted = {k: g.copy() for k, g in model.gradients().items()}
        _, alone = model.loss_and_gradients(x[i : i + 1], y[i : i + 1], eps=eps[i : i + 1])
        for name, g in alone.items():
            np.testing.assert_allclose(weighted[name], g, rtol=1e-10, atol=1e-14, err_msg=name)


def test_classifier_gradient_flushes_q_relative_to_its_own_row():
    """A class at 1.4e-20 of its row's largest q keeps its gradient though another row is sure."""
    model = _tiny_model()
    p = model.parameters()
    p["classifier.0.W"][...] = np.eye(5, 4)  # hidden = tanh(x[:4])
    p["classifier.0.b"][...] = 0
    p["classifier.2.W"][...] = 0
    p["classifier.2.W"][0] = [100.0, 0.0, -200.0]
    p["classifier.2.b"][...] = [0.0, 0.0, -45.7]
    # row 0: logits (0, 0, -45.7), q_2 = 7e-21 is above 1e-20 of its row's largest (0.5) but
    # below 1e-20 of row 1's (about 1); row 1 is sure of class 0 and its q_2 underflows
    x = np.array([[0.0, 0.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0, 1.0]])
    y = np.array([-1, -1])
    eps = np.random.default_rng(0).standard_normal((2, 3, 2))
    log_q, L, bound = _costs_by_hand(model, x, y, eps)
    q = np.exp(log_q)
    assert 1e-20 * 0.5 < q[0, 2] < 1e-20 and q[1, 0] > 1 - 1e-12 and q[1, 2] < 1e-100
    _, grads = model.loss_and_gradients(x, y, eps=eps)
    # dU/da = q (g - sum q g), g = L + ln q; the mean over 2 rows weights each by 1/2
    expected = 0.5 * q[0, 2] * (L[0, 2] + log_q[0, 2] - bound[0])
    assert expected != 0
    assert grads["classifier.2.b"][2] == pytest.approx(expected, rel=1e-9, abs=0)


# --- the bounds for vae_numpy.evaluate ----------------------------------------------------------


def test_elbo_for_batch_averages_over_samples_and_draws_one_by_default():
    """elbo_for_batch is minus the mean of the bounds on successive noise draws; one by default."""
    rng = np.random.default_rng(0)
    model = _tiny_model()
    x, y = (rng.random((4, 5)) < 0.5).astype(float), np.array([1, -1, 0, -1])
    batch = model.check_data(x, y)
    eps = np.random.default_rng(5).standard_normal((2, 4, 3, 2))
    one, two = (_costs_by_hand(model, x, y, e)[2] for e in eps)
    np.testing.assert_allclose(model.elbo_for_batch(batch, rng=5), -one, rtol=1e-12)
    np.testing.assert_allclose(
        model.elbo_for_batch(batch, n_samples=2, rng=5), -(one + two) / 2, rtol=1e-12
    )
    np.testing.assert_allclose(
        model.unlabelled_bound(x, eps=eps[0]),
        _costs_by_hand(model, x, np.full(4, -1), eps[0])[2],
        rtol=1e-12,
    )


def test_log_importance_weights_match_scipy_log_densities():
    """ln w = ln p(x|y, z) + ln N(z) - ln C - ln q(z|x, y) [- ln q(y|x) with y ~ q if unlabelled]."""
    rng = np.random.default_rng(0)
    model = _tiny_model()
    x = (rng.random((5, 5)) < 0.5).astype(float)
    y = np.array([0, -1, 2, -1, -1])
    k = 8
    log_w = model.log_importance_weights(model.check_data(x, y), k, rng=7)
    log_q = log_softmax(_mlp_by_hand(model, "classifier", x), axis=1)
    gen = np.random.default_rng(7)  # per draw: a uniform for each row's label, then the noise
    drawn = set()
    for j in range(k):
        u = gen.random(5)
        eps = gen.standard_normal((5, 2))
        for i in range(5):
            c = y[i]
            if c < 0:  # inverse CDF of q(y|x_i)
                c = int(np.searchsorted(np.cumsum(np.exp(log_q[i])), u[i], side="right"))
                drawn.add(c)
            mu, log_var, z, nll, _ = _label_terms_by_hand(model, x[i : i + 1], c, eps[i])
            expected = (
                -nll[0]
                + stats.norm.logpdf(z).sum()
                - math.log(3)
                - stats.norm.logpdf(z, mu, np.exp(log_var / 2)).sum()
                - (log_q[i, c] if y[i] < 0 else 0.0)
            )
            assert log_w[j, i] == pytest.approx(expected, rel=1e-10), (j, i)
    assert drawn == {0, 1, 2}  # every class, the last included, is drawn for unlabelled rows


def test_float32_labelled_log_weights_are_the_float32_cvae_weights_plus_log_prior():
    """A float32 model's labelled ln w is its CVAE's float32 ln w on the documented draws, minus ln C."""
    model = SemiSupervisedVAE(5, 3, (4,), 2, rng=0)
    x = (np.random.default_rng(0).random((3, 5)) < 0.5).astype(np.float32)
    y = np.array([0, 2, 1])
    log_w = model.log_importance_weights(model.check_data(x, y), 1, rng=7)
    gen = np.random.default_rng(7)
    gen.random((3, 1))  # the labels' uniforms, unused for labelled rows
    eps = gen.standard_normal((1, 3, 2), dtype=np.float32)
    cvae_w = model.cvae.log_weights(x, np.eye(3, dtype=np.float32)[y], eps)
    assert cvae_w.dtype == np.float32
    np.testing.assert_allclose(log_w, cvae_w.astype(np.float64) - math.log(3), rtol=1e-12)


# --- fit: which sampler ------------------------------------------------------------------------


def _tiny_fit(y, **options):
    """The optimiser's step count after one epoch of batch_size 3 on 12 random rows."""
    x = np.random.default_rng(0).random((12, 5))
    model = SemiSupervisedVAE(5, 3, (4,), 2, rng=0)
    model.fit(x, y, epochs=1, batch_size=3, rng=0, progress=False, threads=1, **options)
    return model.optimizer_.t


def test_fit_balances_only_mixed_labels_and_keeps_a_given_sampler():
    """Mixed labels: ceil(n_unlabelled / 3) balanced steps; one kind of row, or a sampler: ceil(n / 3)."""
    mixed = np.array([0, 1, 2, 0] + [-1] * 8)
    assert _tiny_fit(mixed) == 3  # 8 unlabelled rows, each step with as many labelled ones
    assert _tiny_fit(mixed, sampler=ShuffledMinibatches()) == 4
    assert _tiny_fit(np.arange(12) % 3) == 4  # every row labelled, class 0 included
    assert _tiny_fit(np.zeros(12, dtype=int)) == 4
    assert _tiny_fit(np.full(12, -1)) == 4
