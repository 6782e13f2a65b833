"""VAE(k): training on the importance-weighted bound, checked against the ELBO and the evaluator."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.strategies import seeds
from vae_numpy.data import load_dataset
from vae_numpy.evaluate import iwae_log_likelihood
from vae_numpy.gradcheck import check_model
from vae_numpy.vae import VAE


@settings(max_examples=15)
@given(
    seeds,
    st.sampled_from(["bernoulli", "gaussian"]),
    st.sampled_from(["tanh", "softplus", "elu"]),
    st.integers(2, 6),
    st.floats(0.0, 2.0),
)
def test_iwae_gradients_match_central_differences(seed, likelihood, activation, k, beta):
    """Every gradient of the mean -IWAE_k bound (fixed noise of shape (k, batch, latent)) matches."""
    rng = np.random.default_rng(seed)
    model = VAE(
        5, (4,), 2, likelihood=likelihood, beta=beta, activation=activation, k=k,
        dtype=np.float64, rng=rng,
    )  # fmt: skip
    if likelihood == "gaussian":
        model.parameters()["decoder.log_var"][...] = rng.normal(0, 0.5, 5)
    x = rng.random((4, 5)) if likelihood == "bernoulli" else rng.normal(0, 1, (4, 5))
    eps = rng.standard_normal((k, 4, 2))
    # fourth-order differences with h = 1e-4: gradients far below the loss stay above rounding
    check_model(model, x, noise=eps, eps=1e-4, order=4).assert_ok(1e-6)


def test_k_equal_one_is_the_elbo_bit_for_bit():
    """VAE(k=1) gives exactly the loss and gradients of VAE() on the same noise."""
    rng = np.random.default_rng(0)
    x, eps = rng.random((5, 6)).astype(np.float32), rng.standard_normal((5, 2)).astype(np.float32)
    plain, one = VAE(6, (5,), 2, rng=3), VAE(6, (5,), 2, k=1, rng=3)
    loss_a, grads_a = plain.loss_and_gradients(x, eps=eps)
    grads_a = {name: g.copy() for name, g in grads_a.items()}
    loss_b, grads_b = one.loss_and_gradients(x, eps=eps)
    assert loss_a == loss_b
    for name, g in grads_a.items():
        np.testing.assert_array_equal(g, grads_b[name])


def test_iwae_loss_equals_the_evaluators_estimate_on_the_same_draws():
    """-loss per example = evaluate.iwae_log_likelihood with the same seed (sample-major draws)."""
    rng = np.random.default_rng(0)
    model = VAE(6, (5,), 3, k=7, dtype=np.float64, rng=1)
    x = rng.random((4, 6))
    eps = np.random.default_rng(5).standard_normal((7, 4, 3))
    evaluated = iwae_log_likelihood(model, x, k=7, batch_size=4, chunk_size=7, rng=5)
    assert model.loss(x, eps=eps) == pytest.approx(-evaluated.mean(), rel=1e-12)


def test_iwae_loss_is_log_mean_exp_of_log_weights_by_hand():
    """-loss = mean_i ln (1/k) sum_j p(x|z_j) N(z_j; 0, I) / q(z_j|x), from encode/decode by hand."""
    rng = np.random.default_rng(0)
    model = VAE(6, (5,), 2, k=4, dtype=np.float64, rng=1)
    x, eps = rng.random((3, 6)), rng.standard_normal((4, 3, 2))
    mu, log_var = model.encode(x)
    z = mu + np.exp(log_var / 2) * eps  # (4, 3, 2)
    p = model.decode(z.reshape(12, 2)).reshape(4, 3, 6)
    log_px = np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=2)
    log_pz = np.sum(-0.5 * np.log(2 * np.pi) - z**2 / 2, axis=2)
    log_qz = np.sum(-0.5 * np.log(2 * np.pi) - log_var / 2 - eps**2 / 2, axis=2)
    w = np.exp(log_px + log_pz - log_qz)  # small numbers, no overflow here
    expected = -np.mean(np.log(w.mean(axis=0)))
    assert model.loss(x, eps=eps) == pytest.approx(expected, rel=1e-12)


def test_iwae_bound_is_above_the_elbo_and_rises_with_k():
    """Averaged over many draws, E[IWAE_1] = ELBO <= E[IWAE_5] <= E[IWAE_50] (Burda et al. 2015)."""
    x, _, _ = load_dataset("digits")
    model = VAE(64, (32,), 2, rng=0).fit(x[:300], epochs=5, batch_size=50, rng=0, progress=False)
    xb = np.repeat(x[:20], 50, axis=0)  # 20 images, 50 independent estimates each
    means, ses = {}, {}
    for k in (1, 5, 50):
        bound = VAE(64, (32,), 2, k=k, rng=0)
        for name, p in bound.parameters().items():
            p[...] = model.parameters()[name]
        per_row = -bound.loss_terms_for_batch((xb,), rng=np.random.default_rng(k))["loss"]
        means[k], ses[k] = per_row.mean(), per_row.std() / math.sqrt(len(per_row))
    elbo = model.score(xb, rng=9)  # closed-form KL, one sample: the same expectation as IWAE_1
    assert abs(means[1] - elbo) < 4 * ses[1] * math.sqrt(2)
    assert means[5] > means[1] + 2 * ses[1]
    assert means[50] > means[5] + 2 * ses[5]


def test_iwae_training_lowers_its_own_bound_on_digits():
    """VAE(k=5).fit lowers the -IWAE_5 loss; its samples have the data's shape."""
    x, _, _ = load_dataset("digits")
    model = VAE(64, (64,), 2, k=5, rng=0).fit(x, epochs=8, batch_size=64, rng=0, progress=False)
    assert model.history_["loss"][-1] < model.history_["loss"][0] - 5
    assert model.sample(4, rng=0).shape == (4, 64)


@pytest.mark.parametrize(("k", "error"), [(0, ValueError), (2.5, TypeError)])
def test_bad_k_raises(k, error):
    """k must be a positive integer."""
    with pytest.raises(error, match="k"):
        VAE(6, (5,), 2, k=k)


def test_eps_of_the_wrong_shape_names_the_expected_one():
    """With k > 1, eps must have shape (k, batch, latent_dim)."""
    model = VAE(6, (5,), 2, k=3, rng=0)
    with pytest.raises(ValueError, match=r"\(3, 4, 2\)"):
        model.loss(np.zeros((4, 6)), eps=np.zeros((4, 2)))


@settings(max_examples=30)
@given(seeds, st.floats(-800.0, 800.0), st.integers(1, 6))
def test_log_sum_exp_and_softmax_match_scipy_at_any_offset(seed, offset, k):
    """log_sum_exp and softmax equal scipy.special's logsumexp and softmax, even at |offset| = 800."""
    from scipy.special import logsumexp
    from scipy.special import softmax as scipy_softmax

    from vae_numpy.functional import log_sum_exp, softmax

    a = np.random.default_rng(seed).normal(0, 3, (k, 4)) + offset  # exp(800) overflows float64
    with np.errstate(over="raise", under="ignore"):
        np.testing.assert_allclose(log_sum_exp(a, axis=0), logsumexp(a, axis=0), rtol=1e-13)
        np.testing.assert_allclose(softmax(a, axis=0), scipy_softmax(a, axis=0), rtol=1e-12)
    np.testing.assert_allclose(softmax(a, axis=0).sum(axis=0), 1.0, rtol=1e-14)


def test_iwae_forward_uses_the_beta_given_and_the_models_when_none():
    """iwae_forward's record: mu of q(z|x), ln w_j = ln p(x|z_j) + beta ln N(z_j)/q(z_j|x) by hand."""
    from scipy.stats import norm

    model = VAE(5, (4,), 2, beta=1.0, k=3, dtype=np.float64, rng=0)
    x = np.random.default_rng(0).random((4, 5))
    eps = np.random.default_rng(1).standard_normal((3, 4, 2))
    mu, log_var = model.encode(x)
    std = np.exp(log_var / 2)
    z = mu + std * eps
    p = model.decode(z.reshape(12, 2)).reshape(3, 4, 5)
    log_px = np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=2)
    log_ratio = norm.logpdf(z).sum(axis=2) - norm.logpdf(z, mu, std).sum(axis=2)
    for beta, f in (
        (0.5, model.iwae_forward((x,), eps, beta=0.5)),
        (1.0, model.iwae_forward((x,), eps)),
    ):
        assert f.beta == beta
        np.testing.assert_allclose(f.mu, mu, rtol=1e-14)
        log_w = log_px + beta * log_ratio
        np.testing.assert_allclose(f.log_w, log_w, rtol=1e-12)
        w = np.exp(log_w)
        np.testing.assert_allclose(f.weights, w / w.sum(axis=0), rtol=1e-12)
        np.testing.assert_allclose(f.bound, np.log(w.mean(axis=0)), rtol=1e-12)


def test_importance_weights_are_flushed_relative_to_their_own_example():
    """A sample 8e-21 of its example's weight keeps its gradient though another example's is 1."""
    from scipy.special import softmax

    # encoder output 0: mu = 0, log_var = 0, so z = eps; decoder hidden unit 3 = relu(z_0 - 5)
    # fires only for the last sample of example 0, unit 0 = relu(z_1 - 1) for the first two of
    # example 1; each lowers every logit (x = 1), so their weights drop by chosen amounts
    model = VAE(5, (4,), 2, beta=0.0, k=3, dtype=np.float64, rng=0)
    twin = VAE(5, (4,), 2, beta=0.0, dtype=np.float64, rng=0)  # the ELBO of single samples
    params = model.parameters()
    params["encoder.2.W"][...] = 0.0
    params["encoder.2.b"][...] = 0.0
    params["decoder.0.W"][...] = 0.0
    params["decoder.0.b"][...] = -1.0
    params["decoder.0.W"][1, 0], params["decoder.0.W"][0, 3], params["decoder.0.b"][3] = 1, 1, -5
    params["decoder.2.W"][...] = 0.0
    params["decoder.2.W"][0] = -4.0  # ln w drops by about 5 * 4 * 49 = 980 nats: weight 0
    gap = 45.6  # ln w of example 0's last sample: 45.6 nats below its other two
    params["decoder.2.W"][3] = -np.log(np.expm1(gap / 5 + np.log(2)))
    params["decoder.2.b"][...] = 0.0
    for name, p in twin.parameters().items():
        p[...] = params[name]
    x = np.ones((2, 5))
    eps = np.zeros((3, 2, 2))
    eps[2, 0] = [6.0, 0.0]
    eps[:2, 1] = [0.0, 50.0]
    log_w = np.stack([model.log_likelihood(x, eps[j]) for j in range(3)])  # beta = 0
    w = softmax(log_w, axis=0)  # (k, n): each example's weights sum to 1
    assert 0.5e-20 < w[2, 0] < 1e-20 and w[2, 1] == 1.0  # above 1e-20 of 0.5, below 1e-20 of 1
    # the mean -IWAE gradient written out: sum_ij w_ij / n * grad(-ln p(x_i|z_ij))
    expected = {name: np.zeros_like(p) for name, p in params.items()}
    for i in range(2):
        for j in range(3):
            twin.zero_grad()
            twin.loss_and_gradients_for_batch((x[i : i + 1],), eps=eps[j, i : i + 1])
            for name, g in twin.gradients().items():
                expected[name] += w[j, i] / 2 * g
    model.zero_grad()
    model.loss_and_gradients_for_batch((x,), eps=eps)
    # from example 0's last sample alone: a flush against the largest weight of the batch, or
    # of the same sample index across examples (1 for example 1), would set it to 0
    assert expected["decoder.0.b"][3] != 0.0
    for name, g in model.gradients().items():
        np.testing.assert_allclose(g, expected[name], rtol=1e-9, atol=0, err_msg=name)
