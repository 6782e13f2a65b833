"""The lecture's derivation of KL(N(mu, sigma^2) || N(m, s^2)), one checkable line at a time.

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
:func:`substitute_densities` replaces them), and a numerical evaluation of the line *as written*:
integrals by ``scipy.integrate.quad`` over ``mu +/- 40 sigma`` (where p < e^-800, which is 0.0 in
float64) split at ``mu``; closed pieces in closed form. Where the line contains a density or an
exponential that float64 would underflow (``q(x)`` can be ``e^-500000`` where ``p(x)`` still
matters), it is evaluated in mpmath, whose exponent range is unbounded, so that the ratio
``p / q`` and ``ln e^a`` are computed literally instead of rearranged.

Two independent checks use them. :func:`verify_derivation` evaluates every line at one point
(mu, sigma, m, s) and tabulates how far each is from the previous line and from the closed form;
a line copied wrongly from the board, or a wrong candidate closed form passed as
``closed_form=``, shows up as a row that disagrees. :func:`verify_symbolically` lets sympy do
every integral and shows that consecutive lines differ by exactly 0, and that the definition
integrated directly equals the closed form.

References
----------
Kingma, D. P. & Welling, M. (2013). Auto-Encoding Variational Bayes, appendix B
("Solution of -D_KL, Gaussian case"). arXiv:1312.6114.
"""

from __future__ import annotations

import functools
import html
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import mpmath
import numpy as np
import sympy
from scipy import integrate

from ._validation import as_array, check_finite, check_positive_float

__all__ = [
    "SYMBOLS",
    "STEPS",
    "DerivationStep",
    "StepCheck",
    "DerivationCheck",
    "SymbolicPair",
    "SymbolicCheck",
    "normal_density",
    "substitute_densities",
    "lecture_closed_form",
    "integrate_line",
    "derivation_latex",
    "verify_derivation",
    "verify_symbolically",
]


# --------------------------------------------------------------------------------------------
# Symbols
# --------------------------------------------------------------------------------------------


class _Symbols(NamedTuple):
    """The sympy symbols every step is written in."""

    x: sympy.Symbol  # integration variable, real
    mu: sympy.Symbol  # mean of p, real
    sigma: sympy.Symbol  # standard deviation of p, positive
    m: sympy.Symbol  # mean of q, real
    s: sympy.Symbol  # standard deviation of q, positive
    p: Any  # undefined function p(x)
    q: Any  # undefined function q(x)


SYMBOLS = _Symbols(
    x=sympy.Symbol("x", real=True),
    mu=sympy.Symbol("mu", real=True),
    sigma=sympy.Symbol("sigma", positive=True),
    m=sympy.Symbol("m", real=True),
    s=sympy.Symbol("s", positive=True),
    p=sympy.Function("p"),
    q=sympy.Function("q"),
)
"""Symbols ``x, mu, m`` (real), ``sigma, s`` (positive) and undefined functions ``p, q``."""

_x, _mu, _sigma, _m, _s = SYMBOLS.x, SYMBOLS.mu, SYMBOLS.sigma, SYMBOLS.m, SYMBOLS.s
_p, _q = SYMBOLS.p(_x), SYMBOLS.q(_x)
_HALF = sympy.Rational(1, 2)


def _over_real_line(integrand: sympy.Expr) -> sympy.Expr:
    """``Integral(integrand, (x, -oo, oo))``, unevaluated."""
    return sympy.Integral(integrand, (_x, -sympy.oo, sympy.oo))


def normal_density(mean: sympy.Expr, std: sympy.Expr) -> sympy.Expr:
    """The normal density N(x; mean, std^2) as a sympy expression in ``SYMBOLS.x``.

    Parameters
    ----------
    mean : sympy expression
        The mean.
    std : sympy expression
        The standard deviation (not the variance).

    Returns
    -------
    sympy expression
        ``exp(-(x - mean)^2 / (2 std^2)) / sqrt(2 pi std^2)``.
    """
    return sympy.exp(-((_x - mean) ** 2) / (2 * std**2)) / sympy.sqrt(2 * sympy.pi * std**2)


def substitute_densities(expr: sympy.Expr) -> sympy.Expr:
    """Replace the undefined ``p(x)`` and ``q(x)`` by N(x; mu, sigma^2) and N(x; m, s^2).

    Parameters
    ----------
    expr : sympy expression
        A step's :attr:`DerivationStep.expr`.

    Returns
    -------
    sympy expression
        The same line with concrete densities; unchanged if it holds neither p nor q.
    """
    return expr.subs({_p: normal_density(_mu, _sigma), _q: normal_density(_m, _s)})


def lecture_closed_form() -> sympy.Expr:
    """The lecture's result ``1/2 [ln(s^2/sigma^2) - 1 + (sigma^2 + (mu - m)^2) / s^2]``, in sympy.

    Written here from the lecture, apart from the last step of :data:`STEPS`, as the target of
    :func:`verify_symbolically`.
    """
    return _HALF * (sympy.log(_s**2 / _sigma**2) - 1 + (_sigma**2 + (_mu - _m) ** 2) / _s**2)


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


def _check_params(mu: Any, sigma: Any, m: Any, s: Any) -> tuple[float, float, float, float]:
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
        The same line in sympy, in the symbols of :data:`SYMBOLS`; integrals are unevaluated
        ``sympy.Integral(..., (x, -oo, oo))`` and ``p(x)``, ``q(x)`` may appear as undefined
        functions (see :func:`substitute_densities`).
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
        return self.numeric(*_check_params(mu, sigma, m, s))[0]


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


def derivation_latex(steps: Sequence[DerivationStep] = STEPS) -> str:
    """The whole derivation as one LaTeX ``aligned`` block, one line per step.

    Parameters
    ----------
    steps : sequence of DerivationStep
        Defaults to :data:`STEPS`.

    Returns
    -------
    str
        ``\\begin{aligned} \\mathrm{KL}(p\\,\\|\\,q) &= ... \\\\ &= ... \\end{aligned}``, ready for
        ``IPython.display.Math`` or a ``$$ $$`` markdown cell.
    """
    lines = [rf"&= {step.latex}" for step in _as_steps(steps)]
    lines[0] = r"\mathrm{KL}(p \,\|\, q) " + lines[0]
    return "\\begin{aligned}\n" + " \\\\\n".join(lines) + "\n\\end{aligned}"


def _as_steps(steps: Any) -> tuple[DerivationStep, ...]:
    try:
        out = tuple(steps)
    except TypeError as exc:
        raise TypeError(
            f"steps must be a sequence of DerivationStep, got {type(steps).__name__}"
        ) from exc
    if not out:
        raise ValueError("steps is empty; pass at least one DerivationStep (default: STEPS)")
    for i, step in enumerate(out):
        if not isinstance(step, DerivationStep):
            raise TypeError(f"steps[{i}] is a {type(step).__name__}, not a DerivationStep")
    return out


# --------------------------------------------------------------------------------------------
# Numerical verification
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepCheck:
    """One row of a :class:`DerivationCheck` table.

    Attributes
    ----------
    index : int
        1-based position of the step.
    step : str
        The step's name.
    value : float
        The line evaluated at the point (nats).
    quad_error : float
        ``scipy.integrate.quad``'s error estimate for the line (0.0 for a line without integrals).
    diff_previous : float or None
        ``value`` minus the previous row's value (None for the first row).
    diff_closed_form : float
        ``value`` minus the closed form used as reference.
    ok : bool
        ``|diff_closed_form| <= rtol * |closed form| + atol``.
    """

    index: int
    step: str
    value: float
    quad_error: float
    diff_previous: float | None
    diff_closed_form: float
    ok: bool


@dataclass(frozen=True)
class DerivationCheck:
    """Result of :func:`verify_derivation`: every line evaluated at one point.

    Attributes
    ----------
    mu, sigma, m, s : float
        The point (sigma, s are standard deviations).
    rtol, atol : float
        The tolerances each row is checked with.
    closed_form_name : str
        The reference closed form: the last step's name, or the candidate function's name.
    closed_form_value : float
        Its value at the point (nats).
    table : tuple of StepCheck
        One row per step, in order.
    """

    mu: float
    sigma: float
    m: float
    s: float
    rtol: float
    atol: float
    closed_form_name: str
    closed_form_value: float
    table: tuple[StepCheck, ...]

    @property
    def ok(self) -> bool:
        """True when the closed form is finite and every line agrees with it within tolerance."""
        return math.isfinite(self.closed_form_value) and all(row.ok for row in self.table)

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The table as a list of dicts (for ``pandas.DataFrame(check.rows)``)."""
        return [
            {
                "index": r.index,
                "step": r.step,
                "value": r.value,
                "quad_error": r.quad_error,
                "diff_previous": r.diff_previous,
                "diff_closed_form": r.diff_closed_form,
                "ok": r.ok,
            }
            for r in self.table
        ]

    def _title(self) -> str:
        return (
            f"KL(N(mu={self.mu:g}, sigma^2={self.sigma:g}^2) || N(m={self.m:g}, s^2={self.s:g}^2))"
            f" line by line, in nats;"
            f" reference {self.closed_form_name} = {self.closed_form_value!r}"
        )

    def to_text(self) -> str:
        """Plain-text table: step, value, difference to the previous line and to the closed form."""
        header = (
            f"{'#':>2}  {'step':<22} {'value':>22} {'diff previous':>14} {'diff closed form':>17}"
            f" {'quad error':>11}  ok"
        )
        lines = [self._title(), header]
        for r in self.table:
            prev = "" if r.diff_previous is None else f"{r.diff_previous:.3e}"
            lines.append(
                f"{r.index:>2}  {r.step:<22} {r.value:>22.16g} {prev:>14}"
                f" {r.diff_closed_form:>17.3e} {r.quad_error:>11.1e}  {'yes' if r.ok else 'NO'}"
            )
        verdict = "all lines agree" if self.ok else "MISMATCH: some lines disagree"
        lines.append(f"{verdict} (rtol={self.rtol:g}, atol={self.atol:g}): ok={self.ok}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()

    def _repr_html_(self) -> str:
        cells = []
        for r in self.table:
            prev = "" if r.diff_previous is None else f"{r.diff_previous:.3e}"
            style = "" if r.ok else ' style="color:#b00020;font-weight:bold"'
            cells.append(
                f"<tr{style}><td>{r.index}</td><td>{html.escape(r.step)}</td>"
                f"<td>{r.value:.16g}</td><td>{prev}</td><td>{r.diff_closed_form:.3e}</td>"
                f"<td>{r.quad_error:.1e}</td><td>{'yes' if r.ok else 'NO'}</td></tr>"
            )
        head = "".join(
            f"<th>{h}</th>"
            for h in ("#", "step", "value", "diff previous", "diff closed form", "quad error", "ok")
        )
        return (
            f"<p>{html.escape(self._title())}</p><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(cells)}</tbody></table>"
            f"<p>ok = <b>{self.ok}</b> (rtol={self.rtol:g}, atol={self.atol:g})</p>"
        )


def verify_derivation(
    mu: float,
    sigma: float,
    m: float,
    s: float,
    *,
    rtol: float = 1e-7,
    atol: float = 1e-10,
    closed_form: Callable[[float, float, float, float], float] | None = None,
    steps: Sequence[DerivationStep] = STEPS,
) -> DerivationCheck:
    """Evaluate every line of the derivation at one point and check that they all agree.

    Parameters
    ----------
    mu, m : float
        Means of p and q (finite).
    sigma, s : float
        Standard deviations of p and q (finite, > 0).
    rtol, atol : float
        A line passes when ``|line - closed form| <= rtol * |closed form| + atol`` (nats).
    closed_form : callable, optional
        A candidate closed form ``f(mu, sigma, m, s) -> float`` to use as the reference instead
        of the last step, e.g. a student's answer. A wrong candidate disagrees with the lines
        computed by quadrature, so the result's ``ok`` is False.
    steps : sequence of DerivationStep
        The lines to evaluate; default :data:`STEPS`.

    Returns
    -------
    DerivationCheck
        The table (``str(check)``, ``check.rows``, or rich display in a notebook) and ``check.ok``.

    Raises
    ------
    ValueError
        If mu or m is not finite, or sigma or s is not a finite number > 0 (the message names it).
    TypeError
        If ``closed_form`` is not callable or does not return a real number.

    Examples
    --------
    >>> check = verify_derivation(1.0, 2.0, 0.5, 1.5)
    >>> check.ok
    True
    >>> verify_derivation(1.0, 2.0, 0.5, 1.5, closed_form=lambda mu, sg, m, s: 0.0).ok
    False
    """
    mu_f, sigma_f, m_f, s_f = _check_params(mu, sigma, m, s)
    rtol = check_positive_float(rtol, "rtol", allow_zero=True)
    atol = check_positive_float(atol, "atol", allow_zero=True)
    chain = _as_steps(steps)
    evaluated = [step.numeric(mu_f, sigma_f, m_f, s_f) for step in chain]

    if closed_form is None:
        ref_name, ref_value = chain[-1].name, evaluated[-1][0]
    else:
        if not callable(closed_form):
            raise TypeError(
                f"closed_form must be a function f(mu, sigma, m, s), got {closed_form!r}"
            )
        ref_name = getattr(closed_form, "__name__", type(closed_form).__name__)
        ref_value = _as_real(closed_form(mu_f, sigma_f, m_f, s_f), ref_name)

    tolerance = rtol * abs(ref_value) + atol
    table = []
    for i, (step, (value, error)) in enumerate(zip(chain, evaluated, strict=True)):
        diff_ref = value - ref_value
        table.append(
            StepCheck(
                index=i + 1,
                step=step.name,
                value=value,
                quad_error=error,
                diff_previous=None if i == 0 else value - evaluated[i - 1][0],
                diff_closed_form=diff_ref,
                ok=bool(abs(diff_ref) <= tolerance),  # False for NaN
            )
        )
    return DerivationCheck(mu_f, sigma_f, m_f, s_f, rtol, atol, ref_name, ref_value, tuple(table))


def _as_real(value: Any, name: str) -> float:
    arr = np.asarray(value)
    if arr.ndim != 0 or arr.dtype.kind not in "biuf":
        raise TypeError(
            f"closed form {name} must return one real number, got {value!r}; return a float"
        )
    return float(arr)


# --------------------------------------------------------------------------------------------
# Symbolic verification
# --------------------------------------------------------------------------------------------


class SymbolicPair(NamedTuple):
    """Two lines compared by sympy and their difference after integrating and simplifying."""

    step_from: str
    step_to: str
    difference: sympy.Expr


@dataclass(frozen=True)
class SymbolicCheck:
    """Result of :func:`verify_symbolically`.

    Attributes
    ----------
    pairs : tuple of SymbolicPair
        Each consecutive pair of steps, then ``(last step, lecture closed form)`` and
        ``(first step, lecture closed form)``, with the simplified difference.
    values : tuple of (str, sympy expression)
        Each step's name and its value with every integral done by sympy
        (:func:`integrate_line`).
    seconds : float
        Wall time the sympy computation took (when it first ran; the result is cached).
    """

    pairs: tuple[SymbolicPair, ...]
    values: tuple[tuple[str, sympy.Expr], ...]
    seconds: float

    @property
    def ok(self) -> bool:
        """True when every difference simplified to exactly 0."""
        return all(pair.difference == 0 for pair in self.pairs)

    def to_text(self) -> str:
        """One line per pair: ``from -> to: difference``."""
        width = max(len(p.step_from) for p in self.pairs)
        lines = [f"{p.step_from:<{width}} -> {p.step_to}: {p.difference}" for p in self.pairs]
        lines.append(f"ok={self.ok} ({self.seconds:.1f} s of sympy)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()


def integrate_line(step: DerivationStep | sympy.Expr) -> sympy.Expr:
    """A line's value with the densities substituted and every integral done by sympy.

    Parameters
    ----------
    step : DerivationStep or sympy expression
        A step, or an expression in the symbols of :data:`SYMBOLS`.

    Returns
    -------
    sympy expression
        ``substitute_densities(expr).doit()``: sympy evaluates each
        ``Integral(..., (x, -oo, oo))`` using mu, m real and sigma, s positive.
    """
    expr = step.expr if isinstance(step, DerivationStep) else step
    return substitute_densities(expr).doit()


@functools.lru_cache(maxsize=8)
def verify_symbolically(steps: tuple[DerivationStep, ...] = STEPS) -> SymbolicCheck:
    """Show with sympy that each line equals the next, and that the chain ends in the closed form.

    For every line, ``p(x)`` and ``q(x)`` are replaced by the normal densities, sympy evaluates
    each ``Integral(..., (x, -oo, oo))`` with ``.doit()`` (mu, m real; sigma, s positive), and
    ``sympy.simplify`` reduces the difference of consecutive lines. The last line is also compared
    with :func:`lecture_closed_form`, and the first line -- the definition, integrated by sympy in
    one go -- with it as well, which checks the result without going through the chain.

    Parameters
    ----------
    steps : tuple of DerivationStep
        Default :data:`STEPS`. A tuple (hashable) because the result is cached.

    Returns
    -------
    SymbolicCheck
        ``pairs`` (step_from, step_to, simplified difference) and ``ok``.

    Notes
    -----
    Takes about a second or two for :data:`STEPS`; repeated calls return the cached result.
    """
    chain = _as_steps(steps)
    start = time.perf_counter()
    values = [integrate_line(step) for step in chain]
    reference = lecture_closed_form()
    compared = [
        (chain[i].name, chain[i + 1].name, values[i], values[i + 1]) for i in range(len(chain) - 1)
    ]
    compared.append((chain[-1].name, "lecture_closed_form", values[-1], reference))
    compared.append((chain[0].name, "lecture_closed_form", values[0], reference))
    pairs = tuple(
        SymbolicPair(a, b, sympy.simplify(sympy.expand_log(left - right)))
        for a, b, left, right in compared
    )
    named_values = tuple((step.name, value) for step, value in zip(chain, values, strict=True))
    return SymbolicCheck(pairs=pairs, values=named_values, seconds=time.perf_counter() - start)
