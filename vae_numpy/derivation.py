"""Checks of the lecture's derivation of KL(N(mu, sigma^2) || N(m, s^2)), line by line.

Part 4 of the lecture derives the divergence between two univariate normals in eight lines.
They are the steps of :data:`~vae_numpy.derivation_steps.STEPS` in
:mod:`vae_numpy.derivation_steps` (each line as LaTeX, as sympy and evaluated numerically),
written in the symbols and densities of :mod:`vae_numpy.derivation_symbols`. This module holds
the checks and re-exports the public names of both, so that
``from vae_numpy.derivation import STEPS, verify_derivation, verify_symbolically`` has them all.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import sympy

from ._validation import check_positive_float
from .derivation_steps import STEPS, DerivationStep, check_point
from .derivation_symbols import SYMBOLS, lecture_closed_form, normal_density, substitute_densities

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


def derivation_latex(steps: Sequence[DerivationStep] = STEPS) -> str:
    """The whole derivation as one LaTeX ``aligned`` block, one line per step.

    Parameters
    ----------
    steps : sequence of DerivationStep
        Defaults to :data:`~vae_numpy.derivation_steps.STEPS`.

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
        The lines to evaluate; default :data:`~vae_numpy.derivation_steps.STEPS`.

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
    mu_f, sigma_f, m_f, s_f = check_point(mu, sigma, m, s)
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
        A step, or an expression in the symbols of
        :data:`~vae_numpy.derivation_symbols.SYMBOLS`.

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
    with :func:`~vae_numpy.derivation_symbols.lecture_closed_form`, and the first line -- the
    definition, integrated by sympy in one go -- with it as well, which checks the result without
    going through the chain.

    Parameters
    ----------
    steps : tuple of DerivationStep
        Default :data:`~vae_numpy.derivation_steps.STEPS`. A tuple (hashable) because the
        result is cached.

    Returns
    -------
    SymbolicCheck
        ``pairs`` (step_from, step_to, simplified difference) and ``ok``.

    Notes
    -----
    Takes about a second or two for :data:`~vae_numpy.derivation_steps.STEPS`; repeated calls
    return the cached result.
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
