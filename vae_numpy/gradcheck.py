"""Finite-difference gradient checking, for students and for the test suite.

Backpropagation written by hand is easy to get subtly wrong. The remedy is old and reliable:
nudge one number, watch the loss, and compare the slope with the analytic gradient.
:func:`numerical_gradient` does this by central differences,

    dL/dx_i ≈ (L(x + eps e_i) - L(x - eps e_i)) / (2 eps),

whose error is O(eps^2). The checkers compare it with a layer's or a model's own gradients and
report the worst disagreement with the parameter's name, the index and both numbers.

Run checks in float64: in float32 the rounding error of L (about 1e-7 relative) divided by eps
swamps the comparison.

The error reported for a parameter is ``max_i |a_i - n_i| / max(max_i |a_i|, max_i |n_i|, floor)``:
the largest difference relative to the largest gradient entry of that parameter. Entries that
are zero up to rounding then cannot produce a spurious huge ratio, while any genuine mistake in
the backward pass shows up as an error of order one. The checkers set ``floor = 1e-6 * max(1,
|L|)``: a parameter whose whole gradient is a millionth of the loss L (a dead ReLU unit, say)
is compared with that scale instead of with its own rounding noise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._validation import check_positive_float
from .layers import Layer

__all__ = [
    "numerical_gradient",
    "relative_error",
    "GradCheckEntry",
    "GradCheckReport",
    "check_gradients",
    "check_layer",
    "check_model",
]


def numerical_gradient(
    f: Callable[[np.ndarray], Any], x: np.ndarray, eps: float = 1e-6, *, order: int = 2
) -> np.ndarray:
    """Central-difference gradient of the scalar ``f(x)`` with respect to the array ``x``.

    ``x`` is perturbed in place, one entry at a time, and restored exactly afterwards, so ``f``
    may read ``x`` through any reference (for example a model parameter).

    Parameters
    ----------
    f : callable
        ``f(x) -> float``.
    x : ndarray (float64 recommended)
        Point at which to differentiate; modified during the call and restored.
    eps : float
        Step size h.
    order : {2, 4}
        Accuracy order of the stencil. 2: ``(f(x+h) - f(x-h)) / 2h``, error O(h^2).
        4: ``(-f(x+2h) + 8 f(x+h) - 8 f(x-h) + f(x-2h)) / 12h``, error O(h^4); it allows a larger
        step (1e-4), which divides the rounding error of ``f`` by a larger number — useful when
        a gradient is tiny compared with the loss.

    Returns
    -------
    ndarray, same shape and dtype as ``x``
    """
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f":
        kind = f" of dtype {x.dtype}" if isinstance(x, np.ndarray) else ""
        raise TypeError(f"x must be a floating-point ndarray, got {type(x).__name__}{kind}")
    eps = check_positive_float(eps, "eps")
    if order not in (2, 4):
        raise ValueError(f"order must be 2 or 4, got {order!r}")
    stencil = (
        [(1, 0.5), (-1, -0.5)]
        if order == 2
        else [(2, -1 / 12), (1, 8 / 12), (-1, -8 / 12), (-2, 1 / 12)]
    )
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        total = 0.0
        for shift, weight in stencil:
            x[idx] = old + shift * eps
            total += weight * float(f(x))
        x[idx] = old
        grad[idx] = total / eps
    return grad


def relative_error(
    analytic: np.ndarray, numeric: np.ndarray, floor: float = 0.0
) -> tuple[float, tuple[int, ...]]:
    """Largest ``|analytic - numeric|`` relative to the largest entry of either; and where it is.

    Parameters
    ----------
    analytic, numeric : ndarray of the same shape
    floor : float
        Smallest scale to divide by (see the module docstring).

    Returns
    -------
    error : float
        ``max |a - n| / max(max |a|, max |n|, floor)`` (0 when all three are zero).
    index : tuple of int
        Index of the largest difference.
    """
    a, n = np.asarray(analytic, dtype=np.float64), np.asarray(numeric, dtype=np.float64)
    if a.shape != n.shape:
        raise ValueError(f"analytic gradient has shape {a.shape}, numeric {n.shape}")
    if a.size == 0:
        return 0.0, ()
    diff = np.abs(a - n)
    index = tuple(int(i) for i in np.unravel_index(int(np.argmax(diff)), diff.shape))
    scale = max(float(np.max(np.abs(a))), float(np.max(np.abs(n))), floor)
    if scale == 0.0:
        return 0.0, index
    return float(diff[index] / scale), index


@dataclass(frozen=True)
class GradCheckEntry:
    """Result for one parameter: its worst entry and both numbers there."""

    name: str
    error: float
    index: tuple[int, ...]
    analytic: float
    numeric: float

    def __str__(self) -> str:
        return (
            f"{self.name:<16} error {self.error:.2e} at {self.index}: "
            f"analytic {self.analytic:+.10e}, numeric {self.numeric:+.10e}"
        )


@dataclass(frozen=True)
class GradCheckReport:
    """Per-parameter comparisons; ``worst`` is the entry with the largest error."""

    entries: tuple[GradCheckEntry, ...]

    @property
    def worst(self) -> GradCheckEntry:
        return max(self.entries, key=lambda e: e.error)

    @property
    def max_error(self) -> float:
        return self.worst.error

    def ok(self, tol: float = 1e-6) -> bool:
        """True when every parameter's error is below ``tol``."""
        return self.max_error < tol

    def assert_ok(self, tol: float = 1e-6) -> None:
        """Raise AssertionError naming the worst parameter, index and both numbers."""
        if not self.ok(tol):
            raise AssertionError(f"gradient check failed (tolerance {tol:.0e}):\n{self}")

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.entries)


def check_gradients(
    loss: Callable[[], Any],
    params: Mapping[str, np.ndarray],
    grads: Mapping[str, np.ndarray],
    *,
    eps: float = 1e-6,
    order: int = 2,
) -> GradCheckReport:
    """Compare analytic ``grads`` with central differences of ``loss()`` over ``params``.

    Parameters
    ----------
    loss : callable
        ``loss() -> float``, reading the live arrays in ``params``.
    params, grads : mapping of str to ndarray
        Same keys and shapes; ``grads`` already holds the analytic gradient.
    eps : float
        Finite-difference step.
    order : {2, 4}
        Stencil of :func:`numerical_gradient`.
    """
    if set(params) != set(grads):
        raise ValueError(
            f"params and grads have different keys: {sorted(params)} vs {sorted(grads)}"
        )
    floor = 1e-6 * max(1.0, abs(float(loss())))
    entries = []
    for name, p in params.items():
        g = np.asarray(grads[name])
        if g.shape != p.shape:
            raise ValueError(f"grads[{name!r}] has shape {g.shape} but the parameter has {p.shape}")
        num = numerical_gradient(lambda _: loss(), p, eps, order=order)
        err, idx = relative_error(g, num, floor)
        a_val = float(g[idx]) if g.size else 0.0
        n_val = float(num[idx]) if num.size else 0.0
        entries.append(GradCheckEntry(name, err, idx, a_val, n_val))
    return GradCheckReport(tuple(entries))


def check_layer(
    layer: Layer, x: np.ndarray, *, rng: Any = None, eps: float = 1e-6
) -> GradCheckReport:
    """Check a layer's ``backward`` (parameters and input) against central differences.

    The scalar checked is ``L = sum(forward(x) * R)`` for a fixed random ``R``, so that
    ``dL/dy = R`` exercises every output with a different weight.

    Parameters
    ----------
    layer : Layer
        Any object with ``forward``, ``backward``, ``params``, ``grads`` and ``zero_grad``.
    x : ndarray of shape (batch, in_features)
        Input; use float64 (and a float64 layer).

    Returns
    -------
    GradCheckReport
        One entry per parameter plus one named ``"input"``.
    """
    gen = np.random.default_rng(rng)
    x = np.array(x, copy=True)
    y = layer.forward(x)
    R = gen.standard_normal(y.shape).astype(y.dtype)

    def loss() -> float:
        return float(np.sum(layer.forward(x) * R))

    layer.zero_grad()
    layer.forward(x)
    grad_x = layer.backward(R)
    analytic = {name: g.copy() for name, g in layer.grads.items()}
    report = check_gradients(loss, layer.params, analytic, eps=eps)
    num_x = numerical_gradient(lambda _: loss(), x, eps)
    err, idx = relative_error(grad_x, num_x, 1e-6 * max(1.0, abs(loss())))
    entry = GradCheckEntry("input", err, idx, float(grad_x[idx]), float(num_x[idx]))
    return GradCheckReport(report.entries + (entry,))


def check_model(
    model: Any,
    *data: np.ndarray,
    noise: np.ndarray | None = None,
    eps: float = 1e-6,
    order: int = 2,
) -> GradCheckReport:
    """Check ``model.loss_and_gradients`` against central differences of ``model.loss``.

    Parameters
    ----------
    model : VAE or Autoencoder (anything with ``parameters``, ``loss``, ``loss_and_gradients``)
        Build it with ``dtype=np.float64``.
    *data : ndarray
        ``x`` of shape (batch, input_dim), followed by the labels ``y`` of shape (batch,) for
        models trained on ``(x, y)``.
    noise : ndarray, optional
        The model's fixed noise (a VAE's of shape (batch, latent_dim)), passed to the model as
        its ``eps`` keyword so that the loss is deterministic. Leave None for an Autoencoder.
    eps : float
        Finite-difference step.
    order : {2, 4}
        Stencil of :func:`numerical_gradient`; 4 with ``eps=1e-4`` for deep or saturated
        networks whose gradients are many orders of magnitude below the loss.
    """
    kwargs: dict[str, Any] = {} if noise is None else {"eps": noise}
    _, grads = model.loss_and_gradients(*data, **kwargs)
    loss = lambda: model.loss(*data, **kwargs)  # noqa: E731
    return check_gradients(loss, model.parameters(), grads, eps=eps, order=order)
