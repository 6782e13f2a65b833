"""Reconstruction losses: values against scipy's distributions, gradients by central differences."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from tests.strategies import seeds
from vae_numpy.gradcheck import numerical_gradient, relative_error
from vae_numpy.losses import (
    bernoulli_nll,
    bernoulli_nll_grad,
    gaussian_nll,
    gaussian_nll_grad,
    squared_error,
    squared_error_grad,
)

shapes = st.tuples(st.integers(1, 4), st.integers(1, 6))


@settings(max_examples=50)
@given(seeds, shapes)
def test_bernoulli_nll_matches_scipy_for_binary_targets(seed, shape):
    """For x in {0, 1} the loss is -sum log Bernoulli(x | sigmoid(l)) computed by scipy."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, shape)
    x = (rng.random(shape) < 0.5).astype(float)
    expected = -stats.bernoulli.logpmf(x, 1 / (1 + np.exp(-logits))).sum(-1)
    np.testing.assert_allclose(bernoulli_nll(logits, x), expected, rtol=1e-10)


def test_bernoulli_nll_is_exact_for_huge_logits():
    """At |logit| = 1e4 the loss is 0 when right and |logit| when wrong, with no overflow."""
    logits = np.array([[1e4, -1e4, 1e4, -1e4]], dtype=np.float32)
    x = np.array([[1.0, 0.0, 0.0, 1.0]], dtype=np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss = bernoulli_nll(logits, x)
        grad = bernoulli_nll_grad(logits, x)
    np.testing.assert_allclose(loss, [2e4])
    np.testing.assert_allclose(grad, [[0.0, 0.0, 1.0, -1.0]])
    assert loss.dtype == grad.dtype == np.float32


@settings(max_examples=50)
@given(seeds, shapes)
def test_bernoulli_nll_grad_matches_central_differences(seed, shape):
    """d/dlogits agrees with central differences for grey-level targets."""
    rng = np.random.default_rng(seed)
    logits, x = rng.normal(0, 3, shape), rng.random(shape)
    num = numerical_gradient(lambda v: bernoulli_nll(v, x).sum(), logits)
    assert relative_error(bernoulli_nll_grad(logits, x), num)[0] < 1e-6


@settings(max_examples=50)
@given(seeds, shapes, st.booleans())
def test_gaussian_nll_matches_scipy(seed, shape, shared_var):
    """The loss is -sum scipy.stats.norm.logpdf, for per-entry or per-feature log-variances."""
    rng = np.random.default_rng(seed)
    mean, x = rng.standard_normal(shape), rng.standard_normal(shape)
    lv = rng.normal(0, 1, shape[1:] if shared_var else shape)
    expected = -stats.norm.logpdf(x, mean, np.exp(0.5 * lv)).sum(-1)
    np.testing.assert_allclose(gaussian_nll(mean, lv, x), expected, rtol=1e-12)


@settings(max_examples=50)
@given(seeds, shapes)
def test_gaussian_nll_grad_matches_central_differences(seed, shape):
    """d/dmean and d/dlog_var agree with central differences."""
    rng = np.random.default_rng(seed)
    mean, lv, x = (rng.standard_normal(shape) for _ in range(3))
    d_mean, d_lv = gaussian_nll_grad(mean, lv, x)
    assert (
        relative_error(d_mean, numerical_gradient(lambda v: gaussian_nll(v, lv, x).sum(), mean))[0]
        < 1e-6
    )
    assert (
        relative_error(d_lv, numerical_gradient(lambda v: gaussian_nll(mean, v, x).sum(), lv))[0]
        < 1e-6
    )


@settings(max_examples=30)
@given(seeds, shapes)
def test_squared_error_grad_matches_central_differences(seed, shape):
    """The squared-error gradient agrees with central differences."""
    rng = np.random.default_rng(seed)
    pred, x = rng.standard_normal(shape), rng.standard_normal(shape)
    num = numerical_gradient(lambda v: squared_error(v, x).sum(), pred)
    assert relative_error(squared_error_grad(pred, x), num)[0] < 1e-6


def test_losses_reject_bad_input():
    """Targets outside [0, 1], shape mismatches and NaN raise errors that explain the fix."""
    with pytest.raises(ValueError, match="divide by 255"):
        bernoulli_nll(np.zeros((1, 2)), np.array([[0.0, 255.0]]))
    with pytest.raises(ValueError, match="shapes must match"):
        bernoulli_nll(np.zeros((1, 2)), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="NaN"):
        gaussian_nll(np.zeros((1, 2)), 0.0, np.array([[np.nan, 0.0]]))
    with pytest.raises(ValueError, match="2-D"):
        squared_error(np.zeros(3), np.zeros(3))


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: bernoulli_nll([[np.nan]], [[0.5]]), ValueError, r"^logits contains 1 NaN"),
        (lambda: bernoulli_nll([[0.0]], [[np.inf]]), ValueError, r"^x contains 1 NaN"),
        (lambda: bernoulli_nll([["a"]], [[0.5]]), TypeError, r"^logits must hold real numbers"),
        (lambda: bernoulli_nll([[0.0]], [["a"]]), TypeError, r"^x must hold real numbers"),
        (lambda: bernoulli_nll([[0.0]], [[2.0]]), ValueError, r"^x has values in \[2, 2\]"),
        (lambda: bernoulli_nll_grad([[0.0]], [[-1.0]]), ValueError, r"^x has values in"),
        (
            lambda: bernoulli_nll(np.zeros((2, 3)), np.zeros((2, 2))),
            ValueError,
            "shapes must match",
        ),
        (
            lambda: bernoulli_nll(np.zeros(3), np.zeros(3)),
            ValueError,
            r"expected 2-D .* shape \(3,\)",
        ),
        (
            lambda: gaussian_nll([[0.0]], [[np.nan]], [[0.0]]),
            ValueError,
            r"^log_var contains 1 NaN",
        ),
        (lambda: gaussian_nll([[0.0]], [["a"]], [[0.0]]), TypeError, r"^log_var must hold real"),
        (lambda: gaussian_nll([[np.nan]], 0.0, [[0.0]]), ValueError, r"^mean contains 1 NaN"),
        (
            lambda: gaussian_nll_grad(np.zeros((2, 3)), np.zeros(4), np.zeros((2, 3))),
            ValueError,
            r"log_var of shape \(4,\) does not broadcast to x \(2, 3\)",
        ),
        (lambda: squared_error([[np.nan]], [[0.0]]), ValueError, r"^pred contains 1 NaN"),
        (lambda: squared_error_grad([[0.0]], [[np.nan]]), ValueError, r"^x contains 1 NaN"),
    ],
)
def test_losses_name_the_bad_argument(call, error, message):
    """Each loss checks its input at the boundary and names the argument that is wrong."""
    with pytest.raises(error, match=message):
        call()


def test_gaussian_nll_accepts_a_per_feature_log_variance():
    """log_var of shape (features,) broadcasts over the batch, as the Gaussian decoder uses it."""
    mean, x = np.zeros((2, 3)), np.ones((2, 3))
    log_var = np.log(np.array([1.0, 4.0, 0.25]))
    expected = 0.5 * np.sum(np.log(2 * np.pi) + log_var + 1 / np.exp(log_var))
    np.testing.assert_allclose(gaussian_nll(mean, log_var, x), [expected, expected], rtol=1e-13)
    d_mean, d_lv = gaussian_nll_grad(mean, log_var, x)
    np.testing.assert_allclose(d_mean, np.broadcast_to(-1 / np.exp(log_var), (2, 3)), rtol=1e-13)
    np.testing.assert_allclose(d_lv, np.broadcast_to(0.5 * (1 - np.exp(-log_var)), (2, 3)))
