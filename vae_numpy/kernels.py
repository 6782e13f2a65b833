"""Fast kernels: the few formulas of the training step rewritten for speed, each beside its twin.

The code students read is the textbook form in :mod:`vae_numpy.functional` and
:class:`vae_numpy.optim.Adam`. The training step calls the versions below instead: the same
numbers (``tests/test_kernels.py`` checks each against its textbook twin with hypothesis, to
rounding), computed with fewer passes over memory. Like minitorch's ``fast_ops`` beside
``tensor_ops``, the tricks stay here and nowhere else:

* :func:`bernoulli_nll_and_grad` - the Bernoulli loss and its gradient sharing one tanh
  (:func:`bernoulli_nll_and_grad_spans`: on every thread, a span of rows each);
* :func:`adam_update` - Adam's update in cache-sized blocks, in place, in the paper's
  equivalent order (section 2 of Kingma & Ba); :func:`adam_update_spans` runs it on every
  thread of :data:`vae_numpy.parallel.WORKERS`, one contiguous span each;
* :func:`flush_subnormals` - zero optimiser state that is about to become subnormal;
* :func:`flush_negligible` - zero the weights a softmax makes negligible (q(y|x), mixture
  responsibilities, normalised importance weights) before they reach a matrix product.

Contract: inputs already checked (as in :mod:`vae_numpy.functional`).

References
----------
Kingma, D. P. & Ba, J. (2015). Adam: A Method for Stochastic Optimization, section 2. ICLR.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from .parallel import WORKERS

__all__ = [
    "bernoulli_nll_and_grad",
    "bernoulli_nll_and_grad_spans",
    "ROWS_MIN_SPAN",
    "adam_update",
    "adam_update_spans",
    "ADAM_MIN_SPAN",
    "flush_subnormals",
    "flush_negligible",
    "ADAM_BLOCK",
    "FLUSH_EVERY",
    "NEGLIGIBLE",
]

#: Values per block of :func:`adam_update`: 2**16 float32 values of the five arrays (1.3 MB)
#: stay in the CPU cache through its twelve passes (1.5x faster than whole-array passes).
ADAM_BLOCK = 1 << 16
#: Values (rows times features) per thread below which
#: :func:`bernoulli_nll_and_grad_spans` keeps a batch on one thread.
ROWS_MIN_SPAN = 1 << 14
#: Values per thread below which :func:`adam_update_spans` keeps an array on one thread.
ADAM_MIN_SPAN = 1 << 15
#: Steps between two calls of :func:`flush_subnormals` by the optimisers.
FLUSH_EVERY = 64
#: :func:`flush_negligible` zeroes weights below this fraction of their row's largest.
NEGLIGIBLE = 1e-20


def bernoulli_nll_and_grad(
    logits: np.ndarray, x: np.ndarray, out: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``functional.bernoulli_nll`` and ``functional.bernoulli_nll_grad`` sharing one tanh.

    With t = tanh(l / 2): sigmoid(l) = (1 + t) / 2 gives the gradient sigmoid(l) - x, and
    softplus(l) - x l = max(l, 0) - x l - ln sigmoid(``|l|``) with sigmoid(``|l|``) = (1 + ``|t|``) / 2 in
    [1/2, 1], whose logarithm never overflows nor loses precision. One buffer serves t, then
    ln sigmoid(``|l|``).

    Returns
    -------
    nll : ndarray of shape (batch,)
    grad : ndarray of shape (batch, features)
        Written into ``out = (nll, grad)`` when given.
    """
    nll_out, grad_out = (None, None) if out is None else out
    t = np.multiply(logits, 0.5)
    np.tanh(t, out=t)
    grad = np.multiply(t, 0.5, out=grad_out)  # sigmoid(l) - x
    grad += 0.5
    grad -= x
    np.abs(t, out=t)  # t becomes ln sigmoid(|l|) in place
    t += 1
    t *= 0.5
    np.log(t, out=t)
    nll = np.maximum(logits, 0)
    nll -= x * logits
    nll -= t
    return nll.sum(axis=-1, out=nll_out), grad


def bernoulli_nll_and_grad_spans(
    logits: np.ndarray, x: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`bernoulli_nll_and_grad` on contiguous spans of rows, one per thread of
    :data:`vae_numpy.parallel.WORKERS` (one thread below two :data:`ROWS_MIN_SPAN` values per
    thread); the same numbers, row for row."""
    nll = np.empty(logits.shape[:-1], dtype=np.result_type(logits, x))
    grad = np.empty(np.broadcast_shapes(logits.shape, x.shape), dtype=nll.dtype)
    features = max(1, logits.shape[-1])

    def span(lo: int, hi: int) -> None:
        bernoulli_nll_and_grad(logits[lo:hi], x[lo:hi], out=(nll[lo:hi], grad[lo:hi]))

    WORKERS.run(span, len(logits), max(1, ROWS_MIN_SPAN // features))
    return nll, grad


def adam_update(
    theta: np.ndarray,
    g: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    scratch: np.ndarray,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    t: int,
) -> None:
    """One Adam step for one parameter, in place: the same numbers as ``Adam``'s textbook lines.

    Updates ``m``, ``v`` and ``theta``; ``scratch`` is a buffer of the same shape (its content
    is overwritten; every block reuses its first :data:`ADAM_BLOCK` values, which stay in the
    cache: 2-6% faster than a fresh part of it per block). All arrays C-contiguous and of one
    dtype.

    Notes
    -----
    The paper's equivalent order (end of its section 2): with
    ``lr_t = lr sqrt(1 - beta2^t) / (1 - beta1^t)`` and ``eps_t = eps sqrt(1 - beta2^t)``,
    ``theta -= lr_t m / (sqrt(v) + eps_t)`` is ``theta -= lr m_hat / (sqrt(v_hat) + eps)``
    without forming m_hat and v_hat. The moments are updated as ``m = g + beta1 (m - g)``,
    algebraically ``beta1 m + (1 - beta1) g`` with one pass fewer. The scalars stay Python
    floats so that float32 arrays are not upcast.
    """
    root_bias2 = math.sqrt(1 - beta2**t)
    lr_t = lr * root_bias2 / (1 - beta1**t)
    eps_t = eps * root_bias2
    flat = [a.reshape(-1) for a in (theta, g, m, v)]  # views of contiguous arrays
    buffer = scratch.reshape(-1)
    for lo in range(0, theta.size, ADAM_BLOCK):
        pb, gb, mb, vb = (a[lo : lo + ADAM_BLOCK] for a in flat)
        bb = buffer[: len(pb)]  # the same cached values for every block
        mb -= gb  # m = g + beta1 (m - g)
        mb *= beta1
        mb += gb
        np.multiply(gb, gb, out=bb)  # v = g^2 + beta2 (v - g^2)
        vb -= bb
        vb *= beta2
        vb += bb
        np.sqrt(vb, out=bb)  # theta -= lr_t m / (sqrt(v) + eps_t)
        bb += eps_t
        np.divide(mb, bb, out=bb)
        bb *= lr_t
        pb -= bb


def adam_update_spans(
    theta: np.ndarray,
    g: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    scratch: np.ndarray,
    **hyper: float,
) -> None:
    """:func:`adam_update` on contiguous spans of the arrays, one per thread of
    :data:`vae_numpy.parallel.WORKERS` (one thread for arrays shorter than two
    :data:`ADAM_MIN_SPAN`); the same numbers, element for element."""
    flat = [a.reshape(-1) for a in (theta, g, m, v, scratch)]

    def span(lo: int, hi: int) -> None:
        adam_update(*(a[lo:hi] for a in flat), **hyper)  # type: ignore[arg-type]

    WORKERS.run(span, theta.size, ADAM_MIN_SPAN)


def flush_subnormals(arrays: Iterable[np.ndarray]) -> None:
    """Set values that are about to become subnormal to exactly zero, in place.

    A moment whose gradient is always zero (the weight of an MNIST pixel that is always black)
    decays geometrically and becomes a subnormal number (below 1.2e-38 in float32) after a few
    hundred steps; arithmetic on subnormals is 10-100x slower on common CPUs (epochs slowed
    down by 80% within three epochs). Values below ``tiny * 2**(mantissa bits + 1)`` (2e-31 in
    float32) are zeroed; beta1 = 0.9 needs more than :data:`FLUSH_EVERY` steps to take a value
    from there into the subnormal range. Such a moment moves a parameter by less than
    lr * 1e-22 per step, so nothing measurable changes.
    """
    for a in arrays:
        info = np.finfo(a.dtype)
        a[np.abs(a) < info.tiny * 2.0 ** (info.nmant + 1)] = 0


def flush_negligible(weights: np.ndarray, axis: int = -1) -> np.ndarray:
    """``weights`` with every entry below ``NEGLIGIBLE`` times its row's largest set to 0.

    A copy; the input is left as it is. Entries below the smallest normal number
    (``np.finfo(dtype).tiny``, 1.2e-38 in float32) are zeroed too, whatever their row holds.

    Parameters
    ----------
    weights : ndarray
        Non-negative weights, e.g. probabilities along ``axis``: q(y|x), a mixture's
        responsibilities, normalised importance weights.
    axis : int
        The axis along which the weights belong together (the row of one example).

    Returns
    -------
    ndarray of the shape and dtype of ``weights``

    Notes
    -----
    Why: a softmax of confident logits gives the unlikely entries values such as exp(-100),
    far below float32's normal range (1.2e-38). Those subnormal numbers then scale rows of
    gradients, and on common x86 CPUs a matrix product with subnormal inputs runs up to ~160x
    slower (M2 on MNIST slowed down tenfold as its classifier grew confident). Why it
    cannot matter: a float32 sum registers a term only above about 6e-8 (2**-24) of its
    largest term, float64 above 1.1e-16; 1e-20 is far below both, so every sum the weights
    feed (a matrix product over rows, an expectation over labels or samples) is the same with
    the flushed entries as without them, up to rounding that the ratio keeps invisible.
    """
    magnitude = np.abs(weights)
    largest = np.max(magnitude, axis=axis, keepdims=True)
    threshold = np.maximum(largest * NEGLIGIBLE, np.finfo(weights.dtype).tiny)
    flushed = weights.copy()
    flushed[magnitude < threshold] = 0
    return flushed
