"""Reconstruction terms of the ELBO: negative log-likelihoods of the decoder, with gradients.

The first term of the ELBO is E_q[ln p(x|z)]. For one sample of z it is the log-likelihood of the
input under the decoder's output distribution; its negative is the reconstruction loss.

* Bernoulli decoder (binary or grey-level images in [0, 1]): the decoder outputs logits l and
  ``-ln p(x|z) = sum_j [softplus(l_j) - x_j l_j]``, the binary cross-entropy computed from
  logits (never through probabilities, so it is exact for ``|l|`` up to 1e4 and beyond).
* Gaussian decoder (continuous data): mean and log-variance per feature,
  ``-ln p(x|z) = 1/2 sum_j [ln 2π + log_var_j + (x_j - mean_j)^2 / exp(log_var_j)]``.
* Squared error, for the plain autoencoder's ``loss="mse"``.

All are in nats per example, summed over features: shape ``(batch,)``. The ``*_grad``
functions return the gradient of the summed loss with respect to each input entry.

Each function checks its input (shapes, finiteness, targets in [0, 1]) and then evaluates the
formula of :mod:`vae_numpy.functional`, where each is written once; the models call those
directly on data they have already checked.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import functional
from ._validation import as_array, check_finite, check_unit_interval

__all__ = [
    "bernoulli_nll",
    "bernoulli_nll_grad",
    "gaussian_nll",
    "gaussian_nll_grad",
    "squared_error",
    "squared_error_grad",
]


def _same_shape(**arrays: Any) -> list[np.ndarray]:
    out = [check_finite(as_array(v, k), k) for k, v in arrays.items()]
    shapes = {k: a.shape for k, a in zip(arrays, out, strict=True)}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"shapes must match, got {shapes}")
    if out[0].ndim != 2:
        raise ValueError(f"expected 2-D (batch, features) arrays, got shape {out[0].shape}")
    return out


def bernoulli_nll(logits: Any, x: Any) -> np.ndarray:
    """-ln Bernoulli(x | sigmoid(logits)), summed over features.

    Parameters
    ----------
    logits : ndarray of shape (batch, features)
        Decoder outputs before the sigmoid.
    x : ndarray of shape (batch, features)
        Targets in [0, 1] (grey levels are allowed: this is then the cross-entropy).

    Returns
    -------
    ndarray of shape (batch,)
        Nats per example.
    """
    logits_a, x_a = _same_shape(logits=logits, x=x)
    check_unit_interval(x_a, "x")
    return functional.bernoulli_nll(logits_a, x_a)


def bernoulli_nll_grad(logits: Any, x: Any) -> np.ndarray:
    """d/dlogits of ``bernoulli_nll(logits, x).sum()``: ``sigmoid(logits) - x``."""
    logits_a, x_a = _same_shape(logits=logits, x=x)
    check_unit_interval(x_a, "x")
    return functional.bernoulli_nll_grad(logits_a, x_a)


def _gaussian_args(mean: Any, log_var: Any, x: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean_a, x_a = _same_shape(mean=mean, x=x)
    lv_a = check_finite(as_array(log_var, "log_var"), "log_var")
    try:
        np.broadcast_shapes(lv_a.shape, x_a.shape)
    except ValueError as exc:
        raise ValueError(
            f"log_var of shape {lv_a.shape} does not broadcast to x {x_a.shape}"
        ) from exc
    return mean_a, lv_a, x_a


def gaussian_nll(mean: Any, log_var: Any, x: Any) -> np.ndarray:
    """-ln N(x | mean, diag exp(log_var)), summed over features.

    Parameters
    ----------
    mean : ndarray of shape (batch, features)
    log_var : ndarray broadcastable to (batch, features)
        Log-variance, e.g. one learned value per feature of shape (features,).
    x : ndarray of shape (batch, features)

    Returns
    -------
    ndarray of shape (batch,)
        Nats per example.
    """
    return functional.gaussian_nll(*_gaussian_args(mean, log_var, x))


def gaussian_nll_grad(mean: Any, log_var: Any, x: Any) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of ``gaussian_nll(mean, log_var, x).sum()``.

    Returns
    -------
    d_mean : ndarray of shape (batch, features)
        ``(mean - x) / exp(log_var)``.
    d_log_var : ndarray of shape (batch, features)
        ``(1 - (x - mean)^2 / exp(log_var)) / 2``, per entry (sum over the batch for a shared
        per-feature log-variance).
    """
    return functional.gaussian_nll_grad(*_gaussian_args(mean, log_var, x))


def squared_error(pred: Any, x: Any) -> np.ndarray:
    """``sum_j (pred_j - x_j)^2`` per example, shape (batch,)."""
    return functional.squared_error(*_same_shape(pred=pred, x=x))


def squared_error_grad(pred: Any, x: Any) -> np.ndarray:
    """d/dpred of ``squared_error(pred, x).sum()``: ``2 (pred - x)``."""
    return functional.squared_error_grad(*_same_shape(pred=pred, x=x))
