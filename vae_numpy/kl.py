"""KL divergence between normal distributions: the lecture's closed form, checked every way.

Part 4 of the lecture derives, for two univariate normals p = N(mu, sigma^2) and q = N(m, s^2),

    KL(p || q) = 1/2 [ ln(s^2 / sigma^2) - 1 + (sigma^2 + (mu - m)^2) / s^2 ]      (nats)

and the VAE uses the special case q = N(0, 1) with sigma^2 = exp(log_var), summed over the
latent dimensions of a diagonal Gaussian. This module gives the closed form twice: as the
lecture writes it (:func:`kl_normal_lecture`, the line to read first) and rearranged so that
rounding can never make it negative (:func:`kl_normal`, which the package runs; the two are
tested equal in ``tests/test_kl.py``), then the VAE's special case
(:func:`kl_standard_normal` and its gradient), and two independent routes
to the same number: numerical integration of the definition with ``scipy.integrate.quad``
(:func:`kl_by_quadrature`) and a Monte Carlo average of ln p(x) - ln q(x) for x ~ p
(:func:`kl_monte_carlo`). The tests compare them.

Standard deviations, not variances, are passed as ``sigma`` and ``s``, exactly as
``scipy.stats.norm(loc, scale)`` takes them.

References
----------
Kingma, D. P. & Welling, M. (2013). Auto-Encoding Variational Bayes, appendix B. arXiv:1312.6114.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from scipy import integrate, special

from . import functional
from ._validation import (
    as_array,
    check_finite,
    check_positive_float,
    check_positive_int,
    common_float_dtype,
)

__all__ = [
    "kl_normal_lecture",
    "kl_normal",
    "kl_standard_normal",
    "kl_standard_normal_grad",
    "kl_by_quadrature",
    "kl_monte_carlo",
]


def _positive(arr: np.ndarray, name: str) -> np.ndarray:
    arr = check_finite(arr, name)
    if np.any(arr <= 0):
        raise ValueError(
            f"{name} must be a standard deviation > 0, got min {float(arr.min()):g};"
            " if you hold a log-variance, pass np.exp(0.5 * log_var)"
        )
    return arr


def _normal_params(mu: Any, sigma: Any, m: Any, s: Any) -> tuple[np.ndarray, ...]:
    arrays = [as_array(v, n) for v, n in ((mu, "mu"), (sigma, "sigma"), (m, "m"), (s, "s"))]
    # Python floats such as the defaults m=0.0, s=1.0 must not upcast float32 input.
    dtype = common_float_dtype(
        *(v if np.isscalar(v) else a for v, a in zip((mu, sigma, m, s), arrays, strict=True))
    )
    with np.errstate(over="ignore"):  # a value too large for float32 becomes inf, reported below
        mu_a, sigma_a, m_a, s_a = (a.astype(dtype, copy=False) for a in arrays)
    mu_a, m_a = check_finite(mu_a, "mu"), check_finite(m_a, "m")
    sigma_a, s_a = _positive(sigma_a, "sigma"), _positive(s_a, "s")
    try:
        np.broadcast_shapes(mu_a.shape, sigma_a.shape, m_a.shape, s_a.shape)
    except ValueError as exc:
        raise ValueError(
            f"mu, sigma, m, s do not broadcast together: shapes {mu_a.shape}, {sigma_a.shape},"
            f" {m_a.shape}, {s_a.shape}"
        ) from exc
    return mu_a, sigma_a, m_a, s_a


def kl_normal_lecture(mu: Any, sigma: Any, m: Any = 0.0, s: Any = 1.0) -> Any:
    """KL(N(mu, sigma^2) || N(m, s^2)) in nats, literally as the lecture writes it.

        KL = 1/2 [ln(s^2 / sigma^2) - 1 + (sigma^2 + (mu - m)^2) / s^2]

    Parameters and result as :func:`kl_normal`, which computes the same number rearranged
    (``tests/test_kl.py`` checks the two equal with hypothesis) and is what the package runs:
    here ``ln(s^2/sigma^2) - 1 + sigma^2/s^2`` adds terms of opposite sign, so for nearly equal
    distributions rounding can leave a tiny negative number instead of a tiny positive one.
    """
    mu_a, sigma_a, m_a, s_a = _normal_params(mu, sigma, m, s)
    out = 0.5 * (np.log(s_a**2 / sigma_a**2) - 1 + (sigma_a**2 + (mu_a - m_a) ** 2) / s_a**2)
    return float(out) if out.ndim == 0 else out


def kl_normal(mu: Any, sigma: Any, m: Any = 0.0, s: Any = 1.0) -> Any:
    """Elementwise KL(N(mu, sigma^2) || N(m, s^2)) in nats: :func:`kl_normal_lecture`, stable.

    Parameters
    ----------
    mu, m : array_like
        Means of p and q.
    sigma, s : array_like
        Standard deviations of p and q (> 0). All four broadcast against each other.

    Returns
    -------
    ndarray or float
        The divergence, shape of the broadcast inputs, dtype of the inputs (float32 stays
        float32); a Python float when every input is a scalar.

    Notes
    -----
    The lecture's closed form is ``1/2 [ln(s^2/sigma^2) - 1 + (sigma^2 + (mu - m)^2) / s^2]``
    (:func:`kl_normal_lecture`, tested equal to this one in ``tests/test_kl.py``).
    With ``r = sigma^2 / s^2`` it reads ``1/2 [(r - 1 - ln r) + (mu - m)^2 / s^2]``, which is how it
    is evaluated: each bracket is >= 0 term by term, so rounding can never make the result
    negative, and both terms are exactly 0 when the distributions are equal. Near ``r = 1``,
    ``d = r - 1`` is exact in floating point (Sterbenz's lemma), so ``d - ln r`` (about
    ``d^2 / 2``) carries only the rounding of ``ln r``, about ``1e-16 d``: a relative error of
    about ``2e-16 / d``. The literal form adds and subtracts terms of size 1, an absolute error
    of about 1e-16, which is all of the result once ``d`` is below 1e-8.
    """
    mu_a, sigma_a, m_a, s_a = _normal_params(mu, sigma, m, s)
    ratio = (sigma_a / s_a) ** 2  # r = sigma^2 / s^2
    scale_term = (ratio - 1) - np.log(ratio)
    mean_term = ((mu_a - m_a) / s_a) ** 2
    out = 0.5 * (scale_term + mean_term)
    return float(out) if out.ndim == 0 else out


def _latent_pair(mu: Any, log_var: Any) -> tuple[np.ndarray, np.ndarray]:
    mu_a = check_finite(as_array(mu, "mu"), "mu")
    lv_a = check_finite(as_array(log_var, "log_var"), "log_var")
    if mu_a.shape != lv_a.shape:
        raise ValueError(
            f"mu has shape {mu_a.shape} but log_var has shape {lv_a.shape}; they must match"
        )
    if mu_a.ndim == 0:
        raise ValueError("mu and log_var must have at least one axis (latent dimensions last)")
    return mu_a, lv_a


def kl_standard_normal(mu: Any, log_var: Any) -> np.ndarray:
    """KL(N(mu, diag exp(log_var)) || N(0, I)) per example, summed over latent dimensions.

    Parameters
    ----------
    mu : ndarray of shape (batch, latent_dim)
        Means of the recognition model q(z|x).
    log_var : ndarray of shape (batch, latent_dim)
        Log-variances ln sigma^2 of q(z|x).

    Returns
    -------
    ndarray of shape (batch,)
        Nats per example.

    Notes
    -----
    The lecture's formula with m = 0, s = 1 and sigma^2 = exp(log_var):
    ``1/2 sum_j [exp(log_var_j) - 1 - log_var_j + mu_j^2]``. ``exp(v) - 1`` is evaluated
    as ``expm1(v)``, which keeps ``expm1(v) - v >= 0`` under rounding.
    """
    return functional.kl_standard_normal(*_latent_pair(mu, log_var))


def kl_standard_normal_grad(mu: Any, log_var: Any) -> tuple[np.ndarray, np.ndarray]:
    """Gradient of ``kl_standard_normal(mu, log_var).sum()`` with respect to mu and log_var.

    Returns
    -------
    d_mu : ndarray, shape of ``mu``
        ``mu``.
    d_log_var : ndarray, shape of ``log_var``
        ``(exp(log_var) - 1) / 2``.
    """
    d_mu, d_log_var = functional.kl_standard_normal_grad(*_latent_pair(mu, log_var))
    return d_mu.copy(), d_log_var


def _log_normal_density(x: Any, mean: float, std: float) -> Any:
    """ln N(x; mean, std^2): the Gaussian log-density of :mod:`vae_numpy.functional`."""
    return functional.gaussian_log_density(x, mean, 2.0 * math.log(std))


def _quad_one(mu: float, sigma: float, m: float, s: float) -> float:
    def integrand(x: float) -> float:
        log_p = _log_normal_density(x, mu, sigma)
        return math.exp(log_p) * (log_p - _log_normal_density(x, m, s))

    def density(x: float) -> float:
        return math.exp(_log_normal_density(x, mu, sigma))

    opts: dict[str, Any] = {"epsabs": 1e-13, "epsrel": 1e-10, "limit": 200}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        mass, _ = integrate.quad(density, -np.inf, np.inf, **opts)
        value, _ = integrate.quad(integrand, -np.inf, np.inf, **opts)
    if abs(mass - 1.0) < 1e-9:
        return float(value)
    # The infinite-range rule missed p's narrow peak: integrate between p's quantiles
    # 1e-15 and 1 - 1e-15 instead (the mass outside them changes nothing at 1e-10).
    lo = mu + sigma * float(special.ndtri(1e-15))
    hi = mu - sigma * float(special.ndtri(1e-15))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        value, _ = integrate.quad(integrand, lo, hi, **opts)
    return float(value)


def kl_by_quadrature(mu: Any, sigma: Any, m: Any = 0.0, s: Any = 1.0) -> np.ndarray | float:
    """KL(N(mu, sigma^2) || N(m, s^2)) by numerical integration of its definition.

    Integrates ``p(x) [ln p(x) - ln q(x)]`` over the real line with ``scipy.integrate.quad``,
    using nothing of the closed form. When the infinite-range rule misses the peak of p
    (detected because the same rule does not integrate p to 1), it integrates between p's
    quantiles 1e-15 and 1 - 1e-15.

    Parameters
    ----------
    mu, sigma, m, s : array_like
        As in :func:`kl_normal` (sigma, s are standard deviations); broadcast.

    Returns
    -------
    float or ndarray of float64
        Nats; a float for scalar input.
    """
    args = np.broadcast_arrays(*_normal_params(mu, sigma, m, s))
    out = np.empty(args[0].shape)  # float64, whatever the inputs' precision
    for idx in np.ndindex(out.shape):
        out[idx] = _quad_one(*(float(a[idx]) for a in args))
    return float(out) if out.ndim == 0 else out


def kl_monte_carlo(
    mu: float,
    sigma: float,
    m: float = 0.0,
    s: float = 1.0,
    n: int = 100_000,
    rng: Any = None,
) -> tuple[float, float]:
    """Monte Carlo estimate of KL(N(mu, sigma^2) || N(m, s^2)) with its standard error.

    Draws ``x_1..x_n ~ N(mu, sigma^2)`` and averages ``ln p(x_i) - ln q(x_i)``.

    Parameters
    ----------
    mu, sigma, m, s : float
        Scalars; sigma and s are standard deviations.
    n : int
        Number of samples.
    rng : numpy.random.Generator, int or None
        Passed through ``np.random.default_rng``.

    Returns
    -------
    estimate : float
        Nats.
    standard_error : float
        Sample standard deviation of the log-ratio divided by sqrt(n).
    """
    for value, name in ((mu, "mu"), (m, "m")):
        check_finite(as_array(value, name), name)
        if np.ndim(value) != 0:
            raise ValueError(
                f"{name} must be a scalar for kl_monte_carlo, got shape {np.shape(value)}"
            )
    sigma_f = check_positive_float(sigma, "sigma")
    s_f = check_positive_float(s, "s")
    n = check_positive_int(n, "n", minimum=2)
    x = np.random.default_rng(rng).normal(float(mu), sigma_f, size=n)
    log_ratio = _log_normal_density(x, float(mu), sigma_f) - _log_normal_density(x, float(m), s_f)
    return float(log_ratio.mean()), float(log_ratio.std(ddof=1) / math.sqrt(n))
