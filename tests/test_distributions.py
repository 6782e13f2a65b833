"""Reparameterisation and Gaussian log-densities: moments, gradients, independence from global state."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from tests.strategies import seeds
from vae_numpy.distributions import log_normal_pdf, reparameterize, reparameterize_backward
from vae_numpy.gradcheck import numerical_gradient, relative_error


@settings(max_examples=20)
@given(seeds, st.floats(-3, 3), st.floats(-4, 3))
def test_reparameterized_samples_have_requested_mean_and_variance(seed, mu, log_var):
    """z = mu + exp(log_var/2) eps has mean mu and variance exp(log_var) (not exp(log_var)^2)."""
    n = 200_000
    mu_a = np.full((n, 1), mu)
    z, eps = reparameterize(mu_a, np.full((n, 1), log_var), rng=seed)
    var = np.exp(log_var)
    se_mean = np.sqrt(var / n)
    assert abs(z.mean() - mu) < 5 * se_mean
    # variance of the sample variance of a normal is 2 var^2 / (n - 1)
    assert abs(z.var(ddof=1) - var) < 5 * np.sqrt(2 * var**2 / (n - 1))
    assert abs(eps.mean()) < 5 / np.sqrt(n)


def test_reparameterized_samples_pass_a_normality_test():
    """The standardised samples are N(0, 1) by a Kolmogorov-Smirnov test."""
    z, _ = reparameterize(np.full((5000, 1), 2.0), np.full((5000, 1), np.log(9.0)), rng=0)
    assert stats.kstest((z[:, 0] - 2.0) / 3.0, "norm").pvalue > 1e-3


@settings(max_examples=30)
@given(seeds, st.integers(1, 4), st.integers(1, 5))
def test_reparameterize_backward_matches_central_differences(seed, batch, d):
    """(d_mu, d_log_var) from the saved noise agree with central differences of sum(z * R)."""
    rng = np.random.default_rng(seed)
    mu, lv, R = (rng.standard_normal((batch, d)) for _ in range(3))
    _, eps = reparameterize(mu, lv, rng=seed)

    def f_mu(v):
        return np.sum((v + np.exp(0.5 * lv) * eps) * R)

    def f_lv(v):
        return np.sum((mu + np.exp(0.5 * v) * eps) * R)

    d_mu, d_lv = reparameterize_backward(R, eps, lv)
    assert relative_error(d_mu, numerical_gradient(f_mu, mu))[0] < 1e-6
    assert relative_error(d_lv, numerical_gradient(f_lv, lv))[0] < 1e-6


def test_reparameterize_draws_noise_in_input_dtype_and_ignores_global_state():
    """float32 in gives float32 noise; the same seed gives the same draw regardless of np.random.seed."""
    mu = np.zeros((3, 2), np.float32)
    np.random.seed(1)  # noqa: NPY002 - deliberately set the legacy global state
    z1, e1 = reparameterize(mu, mu, rng=5)
    np.random.seed(2)  # noqa: NPY002 - deliberately set the legacy global state
    z2, e2 = reparameterize(mu, mu, rng=5)
    assert z1.dtype == e1.dtype == np.float32
    np.testing.assert_array_equal(e1, e2)


@settings(max_examples=50)
@given(seeds, st.integers(1, 5))
def test_log_normal_pdf_matches_scipy(seed, d):
    """The diagonal Gaussian log-density equals scipy.stats.norm.logpdf summed over dimensions."""
    rng = np.random.default_rng(seed)
    x, mu, lv = rng.standard_normal((3, 4, d))
    expected = stats.norm.logpdf(x, loc=mu, scale=np.exp(0.5 * lv)).sum(-1)
    np.testing.assert_allclose(log_normal_pdf(x, mu, lv), expected, rtol=1e-12)


def test_distributions_reject_bad_input():
    """Mismatched shapes, mixed dtypes and NaN raise clear errors."""
    with pytest.raises(ValueError, match="shape"):
        reparameterize(np.zeros((2, 3)), np.zeros((2, 2)))
    with pytest.raises(TypeError, match="dtype"):
        reparameterize(np.zeros((2, 3), np.float32), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        reparameterize(np.full((1, 1), np.nan), np.zeros((1, 1)))
    with pytest.raises(ValueError, match="broadcast"):
        log_normal_pdf(np.zeros((2, 3)), np.zeros(4), 0.0)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: reparameterize([[np.nan]], [[0.0]]), ValueError, r"^mu contains 1 NaN"),
        (lambda: reparameterize([[0.0]], [[np.inf]]), ValueError, r"^log_var contains 1 NaN"),
        (lambda: reparameterize([["a"]], [[0.0]]), TypeError, r"^mu must hold real numbers"),
        (lambda: reparameterize([[0.0]], [["a"]]), TypeError, r"^log_var must hold real"),
        (
            lambda: reparameterize(np.zeros((2, 3)), np.zeros((2, 2))),
            ValueError,
            r"^mu has shape \(2, 3\) but log_var has \(2, 2\)",
        ),
        (
            lambda: reparameterize(np.zeros((1, 2), np.float32), np.zeros((1, 2))),
            TypeError,
            r"^mu is float32 but log_var is float64",
        ),
        (lambda: reparameterize([[0.0]], [[2000.0]]), ValueError, r"^z overflowed"),
        (lambda: log_normal_pdf([[np.nan]], 0.0, 0.0), ValueError, r"^x contains 1 NaN"),
        (lambda: log_normal_pdf([[0.0]], [[np.nan]], 0.0), ValueError, r"^mu contains 1 NaN"),
        (lambda: log_normal_pdf([[0.0]], 0.0, [[np.nan]]), ValueError, r"^log_var contains 1 NaN"),
        (lambda: log_normal_pdf([["a"]], 0.0, 0.0), TypeError, r"^x must hold real numbers"),
        (
            lambda: log_normal_pdf(np.zeros((2, 3)), np.zeros(4), 0.0),
            ValueError,
            r"x \(2, 3\), mu \(4,\) and log_var \(\) do not broadcast",
        ),
        (
            lambda: log_normal_pdf([[1e200]], 0.0, [[-700.0]]),
            ValueError,
            r"^log_normal_pdf overflowed",
        ),
    ],
)
def test_distributions_name_the_bad_argument(call, error, message):
    """Bad input is refused at the boundary with the argument's name (and the fix)."""
    with pytest.raises(error, match=message):
        call()


def test_reparameterize_returns_the_noise_it_used():
    """z - mu = exp(log_var / 2) * eps for the eps returned, in the dtype of mu."""
    mu = np.array([[1.0, -1.0]], np.float32)
    log_var = np.array([[np.log(4.0), 0.0]], np.float32)
    z, eps = reparameterize(mu, log_var, rng=0)
    assert z.dtype == eps.dtype == np.float32
    np.testing.assert_allclose(z - mu, np.array([[2.0, 1.0]]) * eps, rtol=1e-6)
    d_mu, d_lv = reparameterize_backward(np.ones((1, 2)), eps, log_var)
    np.testing.assert_array_equal(d_mu, np.ones((1, 2)))
    np.testing.assert_allclose(d_lv, eps * np.array([[1.0, 0.5]]), rtol=1e-6)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (
            lambda: reparameterize([[0.0]], [[2000.0]], rng=0),
            ValueError,
            r"^z overflowed to inf or NaN: mu or log_var \(e\.g\. log_var > 1400\) are too extreme",
        ),
        (
            lambda: log_normal_pdf([[0.0]], [[0.0]], [[-1000.0]]),
            ValueError,
            r"^log_normal_pdf overflowed to inf or NaN: x, mu or log_var are too extreme",
        ),
        (lambda: log_normal_pdf([[0.0]], [["a"]], 0.0), TypeError, r"^mu must hold real numbers"),
        (lambda: log_normal_pdf([[0.0]], 0.0, [["a"]]), TypeError, r"^log_var must hold real"),
        (
            lambda: log_normal_pdf(np.zeros((2, 3)), np.zeros(3), np.zeros(4)),
            ValueError,
            r"log_var \(4,\) do not broadcast",
        ),
    ],
)
def test_distributions_explain_overflow_and_name_every_argument(call, error, message):
    """Overflow (even 0 * inf inside) is a ValueError saying which inputs are too extreme."""
    with pytest.raises(error, match=message):
        call()


def test_log_normal_pdf_sums_over_the_last_axis_of_any_batch_shape():
    """For (2, 3, 4) input the result is (2, 3): ln N summed over the last axis only."""
    gen = np.random.default_rng(8)
    x, mu, lv = gen.standard_normal((3, 2, 3, 4))
    expected = stats.norm(mu, np.exp(lv / 2)).logpdf(x).sum(axis=-1)
    np.testing.assert_allclose(log_normal_pdf(x, mu, lv), expected, rtol=1e-12)
