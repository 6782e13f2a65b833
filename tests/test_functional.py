"""The functional layer: each formula against an independent route (scipy, sums, moments)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import special, stats

from tests.strategies import seeds
from vae_numpy import functional as F
from vae_numpy.gradcheck import numerical_gradient


def test_log_2pi_is_the_gaussian_constant():
    """LOG_2PI = ln(2 pi): the density N(0; 0, 1) is 1/sqrt(2 pi)."""
    assert math.exp(-0.5 * F.LOG_2PI) == pytest.approx(stats.norm.pdf(0.0), rel=1e-15)


@given(seeds, st.sampled_from([np.float32, np.float64]))
def test_sigmoid_and_softplus_match_scipy(seed, dtype):
    """sigmoid = scipy.special.expit and softplus = ln(1 + e^x), in the input's dtype."""
    x = (8 * np.random.default_rng(seed).standard_normal((3, 5))).astype(dtype)
    eps = float(np.finfo(dtype).eps)
    assert F.sigmoid(x).dtype == dtype and F.softplus(x).dtype == dtype
    np.testing.assert_allclose(F.sigmoid(x), special.expit(x), rtol=4 * eps)
    np.testing.assert_allclose(F.softplus(x), np.log1p(np.exp(x.astype(np.float64))), rtol=4 * eps)


def test_sigmoid_reaches_its_limits_without_warnings():
    """sigmoid(-1e4) = 0 and sigmoid(1e4) = 1 exactly, with overflow warnings as errors."""
    with np.errstate(all="raise"):
        np.testing.assert_array_equal(F.sigmoid(np.array([-1e4, 0.0, 1e4])), [0.0, 0.5, 1.0])


@given(seeds)
def test_gaussian_log_density_matches_scipy_norm(seed):
    """ln N(x; m, exp(v)) = scipy.stats.norm(m, exp(v/2)).logpdf(x), entry by entry."""
    gen = np.random.default_rng(seed)
    x, m, v = gen.standard_normal((3, 4, 6))
    expected = stats.norm(m, np.exp(v / 2)).logpdf(x)
    np.testing.assert_allclose(F.gaussian_log_density(x, m, v), expected, rtol=1e-12)
    np.testing.assert_allclose(F.gaussian_nll(m, v, x), -expected.sum(axis=-1), rtol=1e-12)


@given(seeds)
def test_bernoulli_nll_matches_the_cross_entropy_of_probabilities(seed):
    """softplus(l) - x l summed = -sum [x ln s + (1 - x) ln(1 - s)] with s = sigmoid(l)."""
    gen = np.random.default_rng(seed)
    logits, x = 3 * gen.standard_normal((4, 7)), gen.random((4, 7))
    s = special.expit(logits)
    expected = -np.sum(x * np.log(s) + (1 - x) * np.log1p(-s), axis=1)
    np.testing.assert_allclose(F.bernoulli_nll(logits, x), expected, rtol=1e-12)


@pytest.mark.parametrize(
    "loss, grad, n_args",
    [
        (F.bernoulli_nll, F.bernoulli_nll_grad, 2),
        (F.squared_error, F.squared_error_grad, 2),
    ],
    ids=["bernoulli", "squared_error"],
)
def test_loss_gradients_match_central_differences(loss, grad, n_args):
    """d/dprediction of the summed loss equals central differences in float64."""
    gen = np.random.default_rng(0)
    pred, x = gen.standard_normal((3, 4)), gen.random((3, 4))
    numeric = numerical_gradient(lambda p: loss(p, x).sum(), pred.copy())
    np.testing.assert_allclose(grad(pred, x), numeric, rtol=1e-6, atol=1e-9)


def test_gaussian_nll_gradients_match_central_differences():
    """d/dmean and d/dlog_var of the summed Gaussian NLL equal central differences."""
    gen = np.random.default_rng(1)
    mean, log_var, x = gen.standard_normal((3, 2, 5))
    d_mean, d_log_var = F.gaussian_nll_grad(mean, log_var, x)
    num_mean = numerical_gradient(lambda m: F.gaussian_nll(m, log_var, x).sum(), mean.copy())
    num_lv = numerical_gradient(lambda v: F.gaussian_nll(mean, v, x).sum(), log_var.copy())
    np.testing.assert_allclose(d_mean, num_mean, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(d_log_var, num_lv, rtol=1e-6, atol=1e-9)


def test_reparameterized_draws_have_mean_mu_and_variance_exp_log_var():
    """z = mu + exp(log_var / 2) eps has mean mu and variance exp(log_var) (log_var is a variance)."""
    eps = np.random.default_rng(2).standard_normal((200_000, 2))
    mu, log_var = np.array([1.5, -2.0]), np.array([np.log(4.0), np.log(0.25)])
    z = F.reparameterize(mu, log_var, eps)
    np.testing.assert_allclose(z.mean(axis=0), mu, atol=0.02)
    np.testing.assert_allclose(z.var(axis=0), [4.0, 0.25], rtol=0.02)


def test_reparameterize_backward_matches_central_differences():
    """d/dmu and d/dlog_var of sum(f(z)) through z = mu + exp(log_var/2) eps, f(z) = z^3."""
    gen = np.random.default_rng(3)
    mu, log_var, eps = gen.standard_normal((3, 2, 3))

    def loss(m, v):
        return np.sum(F.reparameterize(m, v, eps) ** 3)

    d_z = 3 * F.reparameterize(mu, log_var, eps) ** 2
    d_mu, d_log_var = F.reparameterize_backward(d_z, eps, log_var)
    np.testing.assert_allclose(
        d_mu, numerical_gradient(lambda m: loss(m, log_var), mu.copy()), rtol=1e-6
    )
    np.testing.assert_allclose(
        d_log_var, numerical_gradient(lambda v: loss(mu, v), log_var.copy()), rtol=1e-6, atol=1e-9
    )


@given(seeds)
def test_kl_per_dimension_is_the_lectures_formula_with_m_0_and_s_1(seed):
    """1/2[ln(s^2/sigma^2) - 1 + (sigma^2 + (mu - m)^2)/s^2] at m = 0, s = 1, summed over dims."""
    gen = np.random.default_rng(seed)
    mu, log_var = gen.standard_normal((2, 3, 4))
    sigma2 = np.exp(log_var)
    lecture = 0.5 * (np.log(1 / sigma2) - 1 + (sigma2 + mu**2) / 1)
    np.testing.assert_allclose(F.kl_standard_normal_per_dim(mu, log_var), lecture, atol=1e-12)
    np.testing.assert_allclose(F.kl_standard_normal(mu, log_var), lecture.sum(-1), atol=1e-12)


def test_kl_gradient_matches_central_differences():
    """(d/dmu, d/dlog_var) of the summed KL equal central differences."""
    gen = np.random.default_rng(4)
    mu, log_var = gen.standard_normal((2, 3, 4))
    d_mu, d_lv = F.kl_standard_normal_grad(mu, log_var)
    num_mu = numerical_gradient(lambda m: F.kl_standard_normal(m, log_var).sum(), mu.copy())
    num_lv = numerical_gradient(lambda v: F.kl_standard_normal(mu, v).sum(), log_var.copy())
    np.testing.assert_allclose(d_mu, num_mu, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(d_lv, num_lv, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 5)])
def test_losses_sum_over_the_last_axis_only(shape):
    """Each loss is one number per example: summed over the last (feature) axis, explicitly."""
    gen = np.random.default_rng(5)
    a, x = gen.standard_normal(shape), gen.random(shape)
    np.testing.assert_allclose(F.squared_error(a, x), np.sum((a - x) ** 2, axis=-1), rtol=1e-14)
    np.testing.assert_allclose(
        F.bernoulli_nll(a, x), np.sum(np.logaddexp(0, a) - x * a, axis=-1), rtol=1e-14
    )
    expected = -np.sum(stats.norm(a, 1.0).logpdf(x), axis=-1)
    np.testing.assert_allclose(F.gaussian_nll(a, np.zeros(shape), x), expected, rtol=1e-12)
    assert F.squared_error(a, x).shape == shape[:-1]


@given(seeds, st.integers(1, 7), st.sampled_from([0.0, 800.0, -800.0]))
def test_importance_weighted_bound_is_the_log_mean_of_the_weights(seed, k, shift):
    """importance_weighted_bound(a) = ln mean_j exp(a_j) along axis 0 (scipy), even where exp overflows."""
    a = np.random.default_rng(seed).standard_normal((k, 4)) * 5 + shift
    expected = special.logsumexp(a, axis=0) - math.log(k)
    np.testing.assert_allclose(F.importance_weighted_bound(a), expected, rtol=1e-13, atol=1e-12)
    np.testing.assert_allclose(F.importance_weighted_bound(a.T, axis=1), expected, rtol=1e-13)
    if k == 1:  # one sample: the bound is its log-weight, the ELBO's single-sample estimate
        np.testing.assert_array_equal(F.importance_weighted_bound(a), a[0])


def test_importance_weighted_bound_lies_between_the_mean_and_the_largest_log_weight():
    """Jensen: mean_j a_j <= ln mean_j exp(a_j) <= max_j a_j, with equality when all a_j agree."""
    a = np.random.default_rng(0).standard_normal((50, 30))
    bound = F.importance_weighted_bound(a)
    assert np.all(a.mean(axis=0) < bound) and np.all(bound < a.max(axis=0))
    np.testing.assert_allclose(F.importance_weighted_bound(np.full((6, 2), 3.0)), 3.0, rtol=1e-15)


@given(seeds)
def test_log_softmax_is_the_log_of_softmax_and_its_exp_sums_to_one(seed):
    """log_softmax(a) = ln softmax(a) = a - logsumexp(a), rows of exp summing to 1, for large |a| too."""
    a = 300 * np.random.default_rng(seed).standard_normal((5, 4))
    out = F.log_softmax(a, axis=1)
    np.testing.assert_allclose(out, a - special.logsumexp(a, axis=1, keepdims=True), atol=1e-10)
    np.testing.assert_allclose(np.exp(out).sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.exp(out), F.softmax(a, axis=1), atol=1e-15)


@given(seeds)
def test_log_prior_ratio_is_the_difference_of_the_two_gaussian_log_densities(seed):
    """log_prior_ratio(z, eps, log_var) = ln N(z; 0, I) - ln N(z; mu, exp(log_var)) at z = mu + std eps."""
    gen = np.random.default_rng(seed)
    mu, log_var, eps = (
        gen.standard_normal((3, 4)),
        gen.standard_normal((3, 4)),
        gen.standard_normal((3, 4)),
    )
    z = F.reparameterize(mu, log_var, eps)
    direct = np.sum(stats.norm.logpdf(z), axis=-1) - np.sum(
        stats.norm.logpdf(z, loc=mu, scale=np.exp(0.5 * log_var)), axis=-1
    )
    np.testing.assert_allclose(F.log_prior_ratio(z, eps, log_var), direct, rtol=1e-10, atol=1e-12)


def test_log_softmax_works_along_the_axis_it_is_given():
    """log_softmax(a, axis=0) normalises columns, as scipy.special.log_softmax(a, axis=0)."""
    a = np.random.default_rng(0).standard_normal((3, 4))
    np.testing.assert_allclose(F.log_softmax(a, axis=0), special.log_softmax(a, axis=0), rtol=1e-13)
