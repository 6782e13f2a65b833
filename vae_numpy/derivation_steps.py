"""The lines of the lecture's derivation of KL(N(mu, sigma^2) || N(m, s^2)), each checkable.

Part 4 of the lecture derives the divergence between two univariate normals
p = N(mu, sigma^2) and q = N(m, s^2) (sigma and s are standard deviations) in eight lines.
Each line is a :class:`DerivationStep` in the tuple :data:`STEPS`, in the lecture's order:

1. ``definition`` -- KL(p || q) is the expectation under p of the log-ratio of the densities,
   ``int p(x) ln(p(x) / q(x)) dx``.
2. ``densities_substituted`` -- both densities are written out,
   ``N(x; mu, sigma^2) = exp(-(x - mu)^2 / (2 sigma^2)) / sqrt(2 pi sigma^2)``.
3. ``log_split`` -- the log of the ratio is split into the log-ratio of the normalising constants
   ``ln(sqrt(2 pi s^2) / sqrt(2 pi sigma^2))`` plus the logs of the two exponentials.
4. ``logs_of_exponentials`` -- ``ln e^a = a`` turns the exponentials into their exponents, and the
   constants become ``1/2 ln(s^2 / sigma^2)``.
5. ``three_integrals`` -- linearity of the integral separates three integrals:
   ``int p``, ``int (x - mu)^2 p`` and ``int (x - m)^2 p``.
6. ``square_expanded`` -- ``(x - m)^2 = (x - mu + mu - m)^2
   = (x - mu)^2 + 2 (x - mu)(mu - m) + (mu - m)^2`` rewrites the last integral with moments of p
   about its own mean.
7. ``moments_substituted`` -- those moments are known: ``int p = 1``, ``int (x - mu) p = 0``,
   ``int (x - mu)^2 p = sigma^2``.
8. ``closed_form`` -- collecting terms gives
   ``1/2 [ln(s^2 / sigma^2) - 1 + (sigma^2 + (mu - m)^2) / s^2]`` nats.

Every step carries three representations of its line: the LaTeX shown in the lecture, a sympy
expression of the same line (with ``p`` and ``q`` as undefined functions of ``x`` until
:func:`~vae_numpy.derivation_symbols.substitute_densities` replaces them), and a numerical
evaluation of the line *as written*: integrals by ``scipy.integrate.quad`` over
``mu +/- 40 sigma`` (where p < e^-800, which is 0.0 in float64) split at ``mu``; closed pieces in
closed form. Where the line contains a density or an
exponential that float64 would underflow (``q(x)`` can be ``e^-500000`` where ``p(x)`` still
matters), it is evaluated in mpmath, whose exponent range is unbounded, so that the ratio
``p / q`` and ``ln e^a`` are computed literally instead of rearranged.

The symbols and densities the lines are written in are in :mod:`vae_numpy.derivation_symbols`.
The checks that use the lines are in :mod:`vae_numpy.derivation`, which re-exports every name of
this module: ``from vae_numpy.derivation import STEPS`` is the usual import.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mpmath
import numpy as np
import sympy
from scipy import integrate

from ._validation import as_array, check_finite, check_positive_float
from .derivation_symbols import SYMBOLS, normal_density

__all__ = ["STEPS", "DerivationStep"]

_x, _mu, _sigma, _m, _s = SYMBOLS.x, SYMBOLS.mu, SYMBOLS.sigma, SYMBOLS.m, SYMBOLS.s
_p, _q = SYMBOLS.p(_x), SYMBOLS.q(_x)
_HALF = sympy.Rational(1, 2)


def _over_real_line(integrand: sympy.Expr) -> sympy.Expr:
    """``Integral(integrand, (x, -oo, oo))``, unevaluated."""
    return sympy.Integral(integrand, (_x, -sympy.oo, sympy.oo))


# --------------------------------------------------------------------------------------------
# Steps: each line of the derivation, its LaTeX and sympy form above its numeric evaluation
# --------------------------------------------------------------------------------------------


def _check_real(value: Any, name: str) -> float:
    arr = check_finite(as_array(value, name), name)
    if arr.ndim != 0:
        raise ValueError(
            f"{name} must be a scalar, got an array of shape {arr.shape}; pass one number"
        )
    return float(arr)


def _check_std(value: Any, name: str) -> float:
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    try:
        return check_positive_float(value, name)
    except ValueError as exc:
        raise ValueError(
            f"{exc}; {name} is a standard deviation (if you hold a variance v, pass sqrt(v))"
        ) from None


def check_point(mu: Any, sigma: Any, m: Any, s: Any) -> tuple[float, float, float, float]:
    """The point ``(mu, sigma, m, s)`` as floats, checked at the public boundary.

    mu and m must be finite scalars, sigma and s finite scalars > 0 (standard deviations); a
    ValueError names the offending parameter. Used by :meth:`DerivationStep.evaluate` and by
    :func:`vae_numpy.derivation.verify_derivation`.
    """
    return (
        _check_real(mu, "mu"),
        _check_std(sigma, "sigma"),
        _check_real(m, "m"),
        _check_std(s, "s"),
    )


@dataclass(frozen=True)
class DerivationStep:
    """One line of the lecture's derivation of KL(N(mu, sigma^2) || N(m, s^2)).

    Attributes
    ----------
    name : str
        Identifier of the line, e.g. ``"three_integrals"``.
    description : str
        What happens in this line, in words.
    latex : str
        The right-hand side of the line as the lecture writes it (the left-hand side is
        ``\\mathrm{KL}(p \\,\\|\\, q)`` or ``=``).
    expr : sympy expression
        The same line in sympy, in the symbols of
        :data:`~vae_numpy.derivation_symbols.SYMBOLS`; integrals are unevaluated
        ``sympy.Integral(..., (x, -oo, oo))`` and ``p(x)``, ``q(x)`` may appear as undefined
        functions (see :func:`~vae_numpy.derivation_symbols.substitute_densities`).
    numeric : callable
        Private kernel ``(mu, sigma, m, s) -> (value, quad_error)`` that evaluates the line as
        written; it trusts its input. Call :meth:`evaluate` instead.
    """

    name: str
    description: str
    latex: str
    expr: sympy.Expr
    numeric: _Numeric

    def symbolic(self) -> sympy.Expr:
        """The sympy expression of this line (the same object as :attr:`expr`)."""
        return self.expr

    def evaluate(self, mu: float, sigma: float, m: float, s: float) -> float:
        """Evaluate this line at one point, integrals by ``scipy.integrate.quad``.

        Parameters
        ----------
        mu, m : float
            Means of p and q.
        sigma, s : float
            Standard deviations of p and q (finite, > 0).

        Returns
        -------
        float
            The line's value in nats (float64).

        Raises
        ------
        ValueError
            If an argument is NaN or infinite, or sigma or s is not > 0 (the message names it).
        """
        return self.numeric(*check_point(mu, sigma, m, s))[0]


_P_LATEX = r"\frac{1}{\sqrt{2\pi\sigma^2}} e^{-\frac{(x-\mu)^2}{2\sigma^2}}"
_Q_LATEX = r"\frac{1}{\sqrt{2\pi s^2}} e^{-\frac{(x-m)^2}{2s^2}}"

_STEPS: list[DerivationStep] = []


def _line(
    *, name: str, description: str, latex: str, expr: sympy.Expr
) -> Callable[[_Numeric], _Numeric]:
    """Register the decorated function as the numeric twin of one line of the derivation."""

    def register(numeric: _Numeric) -> _Numeric:
        _STEPS.append(DerivationStep(name, description, latex, expr, numeric))
        return numeric

    return register


# --------------------------------------------------------------------------------------------
# Numerical evaluation helpers (they trust their input)
# --------------------------------------------------------------------------------------------

_HALF_WIDTH = 40.0  # integrate over mu +/- 40 sigma; beyond it p(x) < e^-800 == 0.0 in float64
_QUAD_OPTS: dict[str, Any] = {"epsabs": 1e-13, "epsrel": 1e-12, "limit": 200}

# (value, quadrature error estimate); the estimate is 0.0 for a line without integrals.
_Numeric = Callable[[float, float, float, float], tuple[float, float]]


def _quad_over_p(
    integrand: Callable[[float], float], mu: float, sigma: float
) -> tuple[float, float]:
    """``scipy.integrate.quad`` of ``integrand`` over ``mu +/- 40 sigma`` with a break at ``mu``."""
    lo, hi = mu - _HALF_WIDTH * sigma, mu + _HALF_WIDTH * sigma
    with warnings.catch_warnings():
        # A roundoff warning at epsrel=1e-12 is not a failure: the table shows the error estimate
        # and every line is compared with the closed form anyway.
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        value, error = integrate.quad(integrand, lo, hi, points=[mu], **_QUAD_OPTS)
    return float(value), float(error)


def _density(x: float, mean: float, std: float) -> float:
    """N(x; mean, std^2) in float64, straight from the formula."""
    return math.exp(-((x - mean) ** 2) / (2.0 * std**2)) / math.sqrt(2.0 * math.pi * std**2)


@_line(
    name="definition",
    description="KL divergence is the expected log-ratio of the densities under p.",
    latex=r"\int_{-\infty}^{\infty} p(x) \ln\frac{p(x)}{q(x)} \, dx",
    expr=_over_real_line(_p * sympy.log(_p / _q)),
)
def _definition(mu: float, sigma: float, m: float, s: float) -> tuple[float, float]:
    # p and q are mpmath's own normal density, a black box here: the definition knows no formula.
    def integrand(x: float) -> float:
        xm = mpmath.mpf(x)
        p = mpmath.npdf(xm, mu, sigma)
        q = mpmath.npdf(xm, m, s)
        return float(p * mpmath.log(p / q))

    return _quad_over_p(integrand, mu, sigma)


@_line(
    name="densities_substituted",
    description="Both normal densities are written out in full.",
    latex=(
        rf"\int_{{-\infty}}^{{\infty}} {_P_LATEX} "
        rf"\ln\frac{{{_P_LATEX}}}{{{_Q_LATEX}}} \, dx"
    ),
    expr=_over_real_line(
        normal_density(_mu, _sigma)
        * sympy.log(normal_density(_mu, _sigma) / normal_density(_m, _s))
    ),
)
def _densities_substituted(mu: float, sigma: float, m: float, s: float) -> tuple[float, float]:
    def integrand(x: float) -> float:
        xm = mpmath.mpf(x)
        p = mpmath.exp(-((xm - mu) ** 2) / (2 * sigma**2)) / mpmath.sqrt(2 * mpmath.pi * sigma**2)
        q = mpmath.exp(-((xm - m) ** 2) / (2 * s**2)) / mpmath.sqrt(2 * mpmath.pi * s**2)
        return float(p * mpmath.log(p / q))

    return _quad_over_p(integrand, mu, sigma)


@_line(
    name="log_split",
    description=(
        "The log of the ratio splits into the log-ratio of the normalising constants "
        "plus the logs of the two exponentials."
    ),
    latex=(
        r"\int_{-\infty}^{\infty} p(x) \left[ \ln\frac{\sqrt{2\pi s^2}}{\sqrt{2\pi\sigma^2}} "
        r"+ \ln e^{-\frac{(x-\mu)^2}{2\sigma^2}} - \ln e^{-\frac{(x-m)^2}{2s^2}} \right] dx"
    ),
    expr=_over_real_line(
        _p
        * (
            sympy.log(sympy.sqrt(2 * sympy.pi * _s**2) / sympy.sqrt(2 * sympy.pi * _sigma**2))
            + sympy.log(sympy.exp(-((_x - _mu) ** 2) / (2 * _sigma**2)), evaluate=False)
            - sympy.log(sympy.exp(-((_x - _m) ** 2) / (2 * _s**2)), evaluate=False)
        )
    ),
)
def _log_split(mu: float, sigma: float, m: float, s: float) -> tuple[float, float]:
    constants = math.log(math.sqrt(2.0 * math.pi * s**2) / math.sqrt(2.0 * math.pi * sigma**2))

    def integrand(x: float) -> float:
        xm = mpmath.mpf(x)
        log_exp_p = mpmath.log(mpmath.exp(-((xm - mu) ** 2) / (2 * sigma**2)))
        log_exp_q = mpmath.log(mpmath.exp(-((xm - m) ** 2) / (2 * s**2)))
        return _density(x, mu, sigma) * (constants + float(log_exp_p - log_exp_q))

    return _quad_over_p(integrand, mu, sigma)


@_line(
    name="logs_of_exponentials",
    description="ln e^a = a removes the exponentials; the constants give 1/2 ln(s^2/sigma^2).",
    latex=(
        r"\int_{-\infty}^{\infty} p(x) \left[ \frac{1}{2}\ln\frac{s^2}{\sigma^2} "
        r"- \frac{(x-\mu)^2}{2\sigma^2} + \frac{(x-m)^2}{2s^2} \right] dx"
    ),
    expr=_over_real_line(
        _p
        * (
            _HALF * sympy.log(_s**2 / _sigma**2)
            - (_x - _mu) ** 2 / (2 * _sigma**2)
            + (_x - _m) ** 2 / (2 * _s**2)
        )
    ),
)
def _logs_of_exponentials(mu: float, sigma: float, m: float, s: float) -> tuple[float, float]:
    half_log_ratio = 0.5 * math.log(s**2 / sigma**2)

    def integrand(x: float) -> float:
        bracket = half_log_ratio - (x - mu) ** 2 / (2.0 * sigma**2) + (x - m) ** 2 / (2.0 * s**2)
        return _density(x, mu, sigma) * bracket

    return _quad_over_p(integrand, mu, sigma)


@_line(
    name="three_integrals",
    description="Linearity separates three integrals: of p, (x-mu)^2 p and (x-m)^2 p.",
    latex=(
        r"\frac{1}{2}\ln\frac{s^2}{\sigma^2} \int p(x)\,dx "
        r"- \frac{1}{2\sigma^2} \int (x-\mu)^2 p(x)\,dx "
        r"+ \frac{1}{2s^2} \int (x-m)^2 p(x)\,dx"
    ),
    expr=(
        _HALF * sympy.log(_s**2 / _sigma**2) * _over_real_line(_p)
        - _over_real_line((_x - _mu) ** 2 * _p) / (2 * _sigma**2)
        + _over_real_line((_x - _m) ** 2 * _p) / (2 * _s**2)
    ),
)
def _three_integrals(mu: float, sigma: float, m: float, s: float) -> tuple[float, float]:
    half_log_ratio = 0.5 * math.log(s**2 / sigma**2)
    i_p, e_p = _quad_over_p(lambda x: _density(x, mu, sigma), mu, sigma)
    i_mu, e_mu = _quad_over_p(lambda x: (x - mu) ** 2 * _density(x, mu, sigma), mu, sigma)
    i_m, e_m = _quad_over_p(lambda x: (x - m) ** 2 * _density(x, mu, sigma), mu, sigma)
    value = half_log_ratio * i_p - i_mu / (2.0 * sigma**2) + i_m / (2.0 * s**2)
    error = abs(half_log_ratio) * e_p + e_mu / (2.0 * sigma**2) + e_m / (2.0 * s**2)
    return value, error


@_line(
    name="square_expanded",
    description=(
        "(x-m)^2 = (x-mu+mu-m)^2 = (x-mu)^2 + 2(x-mu)(mu-m) + (mu-m)^2 turns the last "
        "integral into moments of p about its own mean."
    ),
    latex=(
        r"\frac{1}{2}\ln\frac{s^2}{\sigma^2} \int p(x)\,dx "
        r"- \frac{1}{2\sigma^2} \int (x-\mu)^2 p(x)\,dx "
        r"+ \frac{1}{2s^2} \left[ \int (x-\mu)^2 p(x)\,dx "
        r"+ 2(\mu-m) \int (x-\mu) p(x)\,dx + (\mu-m)^2 \int p(x)\,dx \right]"
    ),
    expr=(
        _HALF * sympy.log(_s**2 / _sigma**2) * _over_real_line(_p)
        - _over_real_line((_x - _mu) ** 2 * _p) / (2 * _sigma**2)
        + (
            _over_real_line((_x - _mu) ** 2 * _p)
            + 2 * (_mu - _m) * _over_real_line((_x - _mu) * _p)
            + (_mu - _m) ** 2 * _over_real_line(_p)
        )
        / (2 * _s**2)
    ),
)
def _square_expanded(mu: float, sigma: float, m: float, s: float) -> tuple[float, float]:
    half_log_ratio = 0.5 * math.log(s**2 / sigma**2)
    i0, e0 = _quad_over_p(lambda x: _density(x, mu, sigma), mu, sigma)
    i1, e1 = _quad_over_p(lambda x: (x - mu) * _density(x, mu, sigma), mu, sigma)
    i2, e2 = _quad_over_p(lambda x: (x - mu) ** 2 * _density(x, mu, sigma), mu, sigma)
    d = mu - m
    value = (
        half_log_ratio * i0 - i2 / (2.0 * sigma**2) + (i2 + 2.0 * d * i1 + d**2 * i0) / (2.0 * s**2)
    )
    error = (
        abs(half_log_ratio) * e0
        + e2 / (2.0 * sigma**2)
        + (e2 + 2.0 * abs(d) * e1 + d**2 * e0) / (2.0 * s**2)
    )
    return value, error


@_line(
    name="moments_substituted",
    description=(
        "The moments of p are known: int p = 1, int (x-mu) p = 0, int (x-mu)^2 p = sigma^2."
    ),
    latex=(
        r"\frac{1}{2}\ln\frac{s^2}{\sigma^2} \cdot 1 - \frac{\sigma^2}{2\sigma^2} "
        r"+ \frac{\sigma^2 + 2(\mu-m)\cdot 0 + (\mu-m)^2}{2s^2}"
    ),
    expr=sympy.Add(
        _HALF * sympy.log(_s**2 / _sigma**2),
        -sympy.Mul(_sigma**2, sympy.Pow(2 * _sigma**2, -1), evaluate=False),
        (_sigma**2 + (_mu - _m) ** 2) / (2 * _s**2),
        evaluate=False,
    ),
)
def _moments_substituted(mu: float, sigma: float, m: float, s: float) -> tuple[float, float]:
    # The moments of p about its mean in closed form:
    # int p = 1, int (x - mu) p = 0, int (x - mu)^2 p = sigma^2.
    d = mu - m
    value = (
        0.5 * math.log(s**2 / sigma**2) * 1.0
        - sigma**2 / (2.0 * sigma**2)
        + (sigma**2 + 2.0 * d * 0.0 + d**2) / (2.0 * s**2)
    )
    return value, 0.0


@_line(
    name="closed_form",
    description="Collecting terms gives the closed form, in nats.",
    latex=(
        r"\frac{1}{2}\left[ \ln\frac{s^2}{\sigma^2} - 1 "
        r"+ \frac{\sigma^2 + (\mu-m)^2}{s^2} \right]"
    ),
    expr=sympy.Mul(
        _HALF,
        sympy.log(_s**2 / _sigma**2) - 1 + (_sigma**2 + (_mu - _m) ** 2) / _s**2,
        evaluate=False,
    ),
)
def _closed_form(mu: float, sigma: float, m: float, s: float) -> tuple[float, float]:
    value = 0.5 * (math.log(s**2 / sigma**2) - 1.0 + (sigma**2 + (mu - m) ** 2) / s**2)
    return value, 0.0


STEPS: tuple[DerivationStep, ...] = tuple(_STEPS)
"""The lecture's eight lines, in order, from the definition to the closed form."""
