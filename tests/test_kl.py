"""The closed-form KL between normals against quadrature, Monte Carlo and its defining properties."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.strategies import means, normal_params, seeds, stds
from vae_numpy.gradcheck import numerical_gradient, relative_error
from vae_numpy.kl import (
    kl_by_quadrature,
    kl_monte_carlo,
    kl_normal,
    kl_normal_lecture,
    kl_standard_normal,
    kl_standard_normal_grad,
)


@settings(max_examples=250)
@given(normal_params)
def test_kl_matches_quadrature(params):
    """The closed form equals the numerically integrated definition to rtol 1e-6."""
    mu, sigma, m, s = params
    np.testing.assert_allclose(
        kl_normal(mu, sigma, m, s), kl_by_quadrature(mu, sigma, m, s), rtol=1e-6, atol=1e-9
    )


def test_kl_matches_quadrature_for_narrow_far_peaks():
    """The quadrature fallback finds a narrow peak far from zero (where quad(-inf, inf) misses it)."""
    for mu, sigma, m, s in [
        (10.0, 0.05, -10.0, 20.0),
        (-9.5, 0.05, 0.0, 0.05),
        (10.0, 0.05, 10.0, 20.0),
    ]:
        np.testing.assert_allclose(
            kl_normal(mu, sigma, m, s), kl_by_quadrature(mu, sigma, m, s), rtol=1e-6
        )


def test_kl_known_values():
    """Hand-computed cases: equal normals give 0; N(1,1)||N(0,1) = 1/2; N(0,4)||N(0,1) = (3 - ln 4)/2."""
    assert kl_normal(0.0, 1.0) == 0.0
    assert kl_normal(1.0, 1.0) == pytest.approx(0.5, rel=1e-15)
    assert kl_normal(0.0, 2.0) == pytest.approx(0.5 * (4 - 1 - np.log(4)), rel=1e-15)


@settings(max_examples=300)
@given(normal_params)
def test_kl_is_non_negative(params):
    """Gibbs' inequality: KL >= 0 for any pair, even after rounding."""
    assert kl_normal(*params) >= 0.0


@settings(max_examples=200)
@given(means, stds)
def test_kl_is_zero_for_equal_distributions(mu, sigma):
    """KL(p || p) is exactly 0."""
    assert kl_normal(mu, sigma, mu, sigma) == 0.0


@settings(max_examples=200)
@given(normal_params)
def test_kl_is_positive_for_different_distributions(params):
    """KL > 0 whenever the two normals differ in mean or standard deviation."""
    mu, sigma, m, s = params
    if mu != m or sigma != s:
        # a strictly positive difference of at least rounding size must show
        if abs(mu - m) / s > 1e-6 or abs(sigma / s - 1) > 1e-4:
            assert kl_normal(mu, sigma, m, s) > 0.0


def test_kl_is_not_symmetric():
    """KL(p||q) != KL(q||p) in general: N(0,1) vs N(0,2) gives 0.318... and 0.806..."""
    forward, reverse = kl_normal(0.0, 1.0, 0.0, 2.0), kl_normal(0.0, 2.0, 0.0, 1.0)
    assert forward == pytest.approx(np.log(2) - 0.375)
    assert reverse == pytest.approx(1.5 - np.log(2))
    assert abs(forward - reverse) > 0.4


@settings(max_examples=200)
@given(normal_params, st.floats(0.1, 10.0), st.floats(-5.0, 5.0), st.booleans())
def test_kl_is_invariant_under_shared_affine_map(params, a, b, flip):
    """Mapping both distributions through x -> a x + b (a != 0) leaves KL unchanged."""
    mu, sigma, m, s = params
    a = -a if flip else a
    mapped = kl_normal(a * mu + b, abs(a) * sigma, a * m + b, abs(a) * s)
    np.testing.assert_allclose(mapped, kl_normal(mu, sigma, m, s), rtol=1e-9, atol=1e-12)


@settings(max_examples=100)
@given(seeds, st.integers(1, 8))
def test_diagonal_kl_is_sum_of_univariate_kls(seed, d):
    """KL of diagonal Gaussians equals the quadrature-computed univariate KLs summed over dims."""
    rng = np.random.default_rng(seed)
    mu, m = rng.uniform(-3, 3, d), rng.uniform(-3, 3, d)
    sigma, s = np.exp(rng.uniform(-1, 1, d)), np.exp(rng.uniform(-1, 1, d))
    # Multivariate closed form with covariances S1 = diag(sigma^2), S2 = diag(s^2):
    # 1/2 [tr(S2^-1 S1) + (m-mu)^T S2^-1 (m-mu) - d + ln det S2 - ln det S1]
    S1, S2 = np.diag(sigma**2), np.diag(s**2)
    inv2 = np.linalg.inv(S2)
    multivariate = 0.5 * (
        np.trace(inv2 @ S1)
        + (m - mu) @ inv2 @ (m - mu)
        - d
        + np.linalg.slogdet(S2)[1]
        - np.linalg.slogdet(S1)[1]
    )
    np.testing.assert_allclose(kl_normal(mu, sigma, m, s).sum(), multivariate, rtol=1e-10)
    np.testing.assert_allclose(kl_by_quadrature(mu, sigma, m, s).sum(), multivariate, rtol=1e-6)


@settings(max_examples=100)
@given(seeds, st.integers(1, 4), st.integers(1, 6))
def test_kl_standard_normal_reduces_to_univariate_case(seed, batch, d):
    """kl_standard_normal(mu, log_var) = sum_j kl_normal(mu_j, exp(log_var_j / 2), 0, 1)."""
    rng = np.random.default_rng(seed)
    mu, log_var = rng.normal(0, 2, (batch, d)), rng.normal(0, 2, (batch, d))
    expected = kl_normal(mu, np.exp(log_var / 2), 0.0, 1.0).sum(-1)
    np.testing.assert_allclose(kl_standard_normal(mu, log_var), expected, rtol=1e-10, atol=1e-14)
    assert kl_standard_normal(mu, log_var).shape == (batch,)


@settings(max_examples=50)
@given(seeds, st.integers(1, 4), st.integers(1, 5))
def test_kl_standard_normal_grad_matches_central_differences(seed, batch, d):
    """The analytic (d_mu, d_log_var) agree with central differences to 1e-6 relative."""
    rng = np.random.default_rng(seed)
    mu, log_var = rng.normal(0, 1.5, (batch, d)), rng.normal(0, 1.5, (batch, d))
    d_mu, d_lv = kl_standard_normal_grad(mu, log_var)
    num_mu = numerical_gradient(lambda v: kl_standard_normal(v, log_var).sum(), mu)
    num_lv = numerical_gradient(lambda v: kl_standard_normal(mu, v).sum(), log_var)
    assert relative_error(d_mu, num_mu)[0] < 1e-6
    assert relative_error(d_lv, num_lv)[0] < 1e-6


@settings(max_examples=30)
@given(
    st.tuples(st.floats(-3, 3), st.floats(0.3, 3.0), st.floats(-3, 3), st.floats(0.3, 3.0)), seeds
)
def test_kl_monte_carlo_agrees_within_four_standard_errors(params, seed):
    """The Monte Carlo estimate lies within 4 standard errors of the closed form."""
    est, se = kl_monte_carlo(*params, n=20_000, rng=seed)
    assert abs(est - kl_normal(*params)) < 4 * se + 1e-12


def test_kl_monte_carlo_is_reproducible_with_seed():
    """The same seed gives the same estimate; no global random state is used."""
    assert kl_monte_carlo(1.0, 2.0, 0.0, 1.0, n=1000, rng=3) == kl_monte_carlo(
        1.0, 2.0, 0.0, 1.0, n=1000, rng=3
    )


def test_kl_keeps_float32():
    """float32 input gives float32 output; Python-float defaults do not upcast."""
    mu = np.zeros((2, 3), np.float32)
    assert kl_normal(mu, np.ones_like(mu)).dtype == np.float32
    assert kl_standard_normal(mu, mu).dtype == np.float32
    assert all(g.dtype == np.float32 for g in kl_standard_normal_grad(mu, mu))


def test_kl_broadcasts():
    """Arguments broadcast like numpy arrays."""
    out = kl_normal(np.zeros((3, 1)), np.ones(4), 0.0, np.full((3, 4), 2.0))
    assert out.shape == (3, 4)


@pytest.mark.parametrize("sigma", [0.0, -1.0, np.nan, np.inf])
def test_kl_rejects_non_positive_or_non_finite_std(sigma):
    """sigma <= 0, NaN or inf raises ValueError naming sigma."""
    with pytest.raises(ValueError, match="sigma"):
        kl_normal(0.0, sigma)
    with pytest.raises(ValueError, match="sigma"):
        kl_by_quadrature(0.0, sigma)


def test_kl_rejects_bad_inputs_with_clear_messages():
    """Non-numeric input is a TypeError; shape mismatches and bad s are ValueErrors naming the value."""
    with pytest.raises(TypeError, match="mu"):
        kl_normal("zero", 1.0)
    with pytest.raises(ValueError, match="broadcast"):
        kl_normal(np.zeros(3), np.ones(4))
    with pytest.raises(ValueError, match="s must be"):
        kl_normal(0.0, 1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="shape"):
        kl_standard_normal(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="n must be"):
        kl_monte_carlo(0.0, 1.0, n=1)
    with pytest.raises(ValueError, match="sigma"):
        kl_monte_carlo(0.0, -1.0)


def test_kl_helpers_default_to_the_standard_normal():
    """m = 0 and s = 1 by default, for the closed form, quadrature and Monte Carlo alike."""
    assert kl_normal(1.0, 2.0) == kl_normal(1.0, 2.0, 0.0, 1.0)
    assert kl_by_quadrature(1.0, 2.0) == pytest.approx(kl_normal(1.0, 2.0, 0.0, 1.0), rel=1e-9)
    assert kl_monte_carlo(1.0, 2.0, rng=0) == kl_monte_carlo(1.0, 2.0, 0.0, 1.0, n=100_000, rng=0)


def test_kl_monte_carlo_standard_error_shrinks_as_one_over_root_n():
    """se = sample std of the log-ratio / sqrt(n): 16 times the samples, a quarter of the error."""
    _, se_small = kl_monte_carlo(0.5, 2.0, 0.0, 1.0, n=4_000, rng=1)
    _, se_large = kl_monte_carlo(0.5, 2.0, 0.0, 1.0, n=64_000, rng=2)
    assert se_large / se_small == pytest.approx(0.25, rel=0.1)
    # p = N(0, 1), q = N(0, 2^2): log-ratio = ln 2 - 3x^2/8, whose variance is 2 (3/8)^2 = 9/32
    _, se = kl_monte_carlo(0.0, 1.0, 0.0, 2.0, n=10_000, rng=3)
    assert se == pytest.approx(np.sqrt(9 / 32) / 100, rel=0.05)


def test_kl_monte_carlo_accepts_two_samples_and_refuses_one():
    """n = 2 is the smallest sample with a standard deviation; n = 1 raises ValueError."""
    est, se = kl_monte_carlo(0.0, 1.0, 0.5, 1.0, n=2, rng=0)
    assert np.isfinite(est) and np.isfinite(se) and se >= 0
    with pytest.raises(ValueError, match="n must be >= 2"):
        kl_monte_carlo(0.0, 1.0, n=1)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"mu": np.nan}, ValueError, r"^mu contains 1 NaN"),
        ({"m": np.inf}, ValueError, r"^m contains 1 NaN"),
        (
            {"mu": np.zeros(3)},
            ValueError,
            r"^mu must be a scalar for kl_monte_carlo, got shape \(3,\)",
        ),
        ({"m": np.zeros((2, 1))}, ValueError, r"^m must be a scalar .* got shape \(2, 1\)"),
        ({"mu": "a"}, TypeError, r"^mu must hold real numbers"),
        ({"m": "b"}, TypeError, r"^m must hold real numbers"),
        ({"sigma": 0.0}, ValueError, r"^sigma must be a finite number > 0"),
        ({"s": -2.0}, ValueError, r"^s must be a finite number > 0"),
        ({"s": "x"}, TypeError, r"^s must be a number"),
    ],
)
def test_kl_monte_carlo_names_the_bad_argument(kwargs, error, message):
    """Each bad argument of kl_monte_carlo raises an error that starts with its name."""
    args = {"mu": 0.0, "sigma": 1.0, "m": 0.0, "s": 1.0, **kwargs}
    with pytest.raises(error, match=message):
        kl_monte_carlo(**args, n=10, rng=0)


@pytest.mark.parametrize("bad", ["mu", "log_var"])
def test_kl_standard_normal_names_the_non_finite_argument(bad):
    """A NaN in mu or log_var is reported under that argument's name (and for the gradient too)."""
    args = {"mu": np.zeros((2, 3)), "log_var": np.zeros((2, 3))}
    args[bad][0, 1] = np.nan
    for f in (kl_standard_normal, kl_standard_normal_grad):
        with pytest.raises(ValueError, match=rf"^{bad} contains 1 NaN"):
            f(**args)
    with pytest.raises(TypeError, match=rf"^{bad} must hold real numbers"):
        kl_standard_normal(**{**args, bad: [["a"]]})


def test_kl_standard_normal_needs_a_latent_axis_and_accepts_a_single_vector():
    """A 0-d pair is refused (no latent axis); a 1-D pair is one example, summed to a scalar."""
    with pytest.raises(ValueError, match=r"^mu and log_var must have at least one axis"):
        kl_standard_normal(0.0, 0.0)
    value = kl_standard_normal(np.array([1.0, 0.0]), np.array([0.0, np.log(2.0)]))
    assert value.shape == () and float(value) == pytest.approx(0.5 + 0.5 * (1 - np.log(2.0)))


@pytest.mark.parametrize(
    "params, calls",
    [((0.3, 1.2, 0.0, 1.0), 2), ((-1.0, 0.5, 2.0, 3.0), 2), ((10.0, 0.05, -10.0, 20.0), 3)],
)
def test_quadrature_falls_back_to_finite_bounds_only_when_the_peak_is_missed(
    monkeypatch, params, calls
):
    """Two quad calls (mass, value) over the real line when p integrates to 1; a third otherwise."""
    from vae_numpy import kl as kl_module

    seen = []
    real_quad = kl_module.integrate.quad

    def counting_quad(f, a, b, **kw):
        seen.append((a, b, kw.get("epsabs"), kw.get("epsrel"), kw.get("limit")))
        return real_quad(f, a, b, **kw)

    monkeypatch.setattr(kl_module.integrate, "quad", counting_quad)
    value = kl_by_quadrature(*params)
    assert len(seen) == calls
    assert all(call[2:] == (1e-13, 1e-10, 200) for call in seen)  # tolerances as documented
    assert seen[0][:2] == (-np.inf, np.inf) and seen[1][:2] == (-np.inf, np.inf)
    assert value == pytest.approx(kl_normal(*params), rel=1e-9, abs=1e-12)


def test_quadrature_returns_a_float_for_scalars_and_float64_arrays_otherwise():
    """kl_by_quadrature(scalars) is a Python float; array input gives a float64 array of its shape."""
    assert type(kl_by_quadrature(1.0, 2.0)) is float
    out = kl_by_quadrature(np.zeros((2, 1), np.float32), np.ones(3, np.float32))
    assert out.dtype == np.float64 and out.shape == (2, 3)


def test_quadrature_fallback_is_accurate_to_its_tolerances():
    """On a narrow far peak (the fallback path) quadrature meets the closed form to 1e-10 nats."""
    for params in [(10.0, 0.05, -10.0, 20.0), (-9.5, 0.05, 0.0, 0.05)]:
        assert abs(kl_by_quadrature(*params) - kl_normal(*params)) < 1e-10 * max(
            1.0, kl_normal(*params)
        )


# --- the lecture's form as written, and the rearrangement that runs --------------------------------


@settings(max_examples=500)
@given(normal_params)
def test_lecture_form_equals_the_stable_rearrangement(params):
    """kl_normal_lecture (the formula as written) = kl_normal (rearranged) up to the rounding of its terms."""
    mu, sigma, m, s = params
    literal, stable = kl_normal_lecture(mu, sigma, m, s), kl_normal(mu, sigma, m, s)
    # the literal form adds terms of this size with opposite signs: its rounding error scales with them
    size = abs(np.log(s**2 / sigma**2)) + 1 + (sigma**2 + (mu - m) ** 2) / s**2
    assert abs(literal - stable) <= 8 * np.finfo(np.float64).eps * size, (literal, stable)


def test_lecture_form_is_the_formula_on_known_values_and_broadcasts_like_kl_normal():
    """KL(N(1, 2^2) || N(0, 1)) = (4 + 1 - 1 - ln 4) / 2 by the literal form; arrays broadcast."""
    assert kl_normal_lecture(1.0, 2.0) == pytest.approx(0.5 * (4 - np.log(4)), rel=1e-15)
    assert kl_normal_lecture(0.0, 1.0) == 0.0
    mu, sigma = np.zeros((3, 1), np.float32), np.full(4, 2.0, np.float32)
    out = kl_normal_lecture(mu, sigma, 0.0, 1.0)
    assert out.shape == (3, 4) and out.dtype == np.float32
    np.testing.assert_allclose(out, kl_normal(mu, sigma), rtol=1e-6)


def test_only_the_rearrangement_keeps_nearly_equal_normals_accurate():
    """For sigma = s (1 + d), KL = d^2 to second order: kl_normal gets it, the literal form cancels."""
    for d in (1e-5, 1e-7, 1e-9):
        series = d**2 - d**3 + 7 * d**4 / 6  # r - 1 - ln r over 2, r = (1 + d)^2
        assert kl_normal(0.0, 1.0 + d) == pytest.approx(series, rel=1e-6)
        # the literal form is right only to the rounding of its O(1) terms (about 1e-16)
        assert abs(kl_normal_lecture(0.0, 1.0 + d) - series) < 1e-15
    lost = kl_normal_lecture(0.0, 1.0 + 1e-9)  # the cancellation leaves none of the 1e-18
    assert abs(lost - 1e-18) > 0.5e-18 and kl_normal(0.0, 1.0 + 1e-9) > 0.0


def test_kl_normal_lecture_rejects_bad_input_like_kl_normal():
    """A non-positive standard deviation is refused by name, as by kl_normal."""
    with pytest.raises(ValueError, match="sigma must be a standard deviation > 0"):
        kl_normal_lecture(0.0, 0.0)
    with pytest.raises(ValueError, match="s must be a standard deviation > 0"):
        kl_normal_lecture(0.0, 1.0, 0.0, -1.0)


@pytest.mark.parametrize("f", [kl_normal, kl_normal_lecture])
@pytest.mark.parametrize("name", ["mu", "sigma", "m", "s"])
def test_each_argument_is_named_when_it_is_not_numeric_or_not_finite(f, name):
    """Strings, NaN and infinity are refused under the argument's own name."""
    good = {"mu": 0.5, "sigma": 1.5, "m": -0.5, "s": 2.0}
    with pytest.raises(TypeError, match=rf"^{name} must hold real numbers"):
        f(**{**good, name: ["a"]})
    for bad in (np.nan, np.inf):
        with pytest.raises(ValueError, match=rf"^{name} contains 1 NaN or infinite"):
            f(**{**good, name: np.array([1.0, bad])})


@pytest.mark.parametrize("name", ["mu", "sigma", "m", "s"])
def test_the_argument_that_does_not_broadcast_is_reported_with_every_shape(name):
    good = {"mu": np.zeros((2, 3)), "sigma": np.ones(3), "m": np.zeros((1, 3)), "s": np.ones(1)}
    with pytest.raises(ValueError, match=r"^mu, sigma, m, s do not broadcast together"):
        kl_normal(**{**good, name: np.ones(4)})


def test_a_non_positive_standard_deviation_points_to_the_log_variance_mistake():
    with pytest.raises(ValueError, match=r"pass np\.exp\(0\.5 \* log_var\)$"):
        kl_normal(0.0, np.array([1.0, -2.0]))


def test_a_value_float32_cannot_hold_is_reported_as_not_finite_without_a_warning():
    """1e300 beside float32 input becomes inf in float32: a clear error, no RuntimeWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"^m contains 1 NaN or infinite"):
            kl_normal(np.float32([0.0]), 1.0, 1e300, 1.0)


@pytest.mark.parametrize("f", [kl_normal, kl_normal_lecture])
def test_integer_lists_take_the_precision_of_the_float_arrays(f):
    """Integers convert to float32, so they do not upcast float32 arrays (NEP 50 for lists)."""
    out = f([0, 1], np.ones(2, np.float32))
    assert out.dtype == np.float32 and out.shape == (2,)
    assert f([0, 1], np.ones(2)).dtype == np.float64


@pytest.mark.parametrize("f", [kl_normal, kl_normal_lecture])
def test_scalars_give_a_python_float_and_arrays_keep_their_shape(f):
    assert type(f(0.0, 2.0)) is float and f(0.0, 2.0) == pytest.approx(math.log(0.5) + 1.5)
    one = f(np.array([0.0]), 2.0)
    assert isinstance(one, np.ndarray) and one.shape == (1,)
    assert f(np.zeros((2, 1)), 2.0).shape == (2, 1)
