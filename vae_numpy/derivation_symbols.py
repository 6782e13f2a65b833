"""The symbols the lecture's KL derivation is written in, and its densities and result in sympy.

The derivation is about two univariate normals p = N(mu, sigma^2) and q = N(m, s^2) (sigma and s
are standard deviations). :data:`SYMBOLS` holds ``x, mu, m`` (real), ``sigma, s`` (positive) and
the undefined functions ``p, q``; :func:`normal_density` writes a density out,
:func:`substitute_densities` puts both into a line, and :func:`lecture_closed_form` is the
lecture's result.

The lines of the derivation are in :mod:`vae_numpy.derivation_steps`; :mod:`vae_numpy.derivation`
checks them and re-exports every name of this module.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import sympy

__all__ = ["SYMBOLS", "normal_density", "substitute_densities", "lecture_closed_form"]


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

    Written here from the lecture, apart from the last step of
    :data:`~vae_numpy.derivation_steps.STEPS`, as the target of
    :func:`~vae_numpy.derivation.verify_symbolically`.
    """
    return _HALF * (sympy.log(_s**2 / _sigma**2) - 1 + (_sigma**2 + (_mu - _m) ** 2) / _s**2)
