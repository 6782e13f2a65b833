"""Diagonal Gaussians for the latent space: the reparameterisation trick and log-densities.

The recognition model outputs, for each input, the mean ``mu`` and the log-variance
``log_var = ln sigma^2`` of a diagonal Gaussian q(z|x). Sampling z from it directly would
block the gradient; the reparameterisation trick instead draws noise that does not depend on
the parameters and moves it:

    eps ~ N(0, I),    z = mu + exp(log_var / 2) * eps      (std = exp(log_var / 2))

so that dz/dmu = 1 and dz/dlog_var = eps * std / 2. The noise is returned with the sample so the
backward pass uses the same draw.

References
----------
Kingma, D. P. & Welling, M. (2013). Auto-Encoding Variational Bayes, section 2.4. arXiv:1312.6114.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import functional
from ._validation import as_array, check_finite, check_finite_result
from .functional import LOG_2PI

__all__ = ["reparameterize", "reparameterize_backward", "log_normal_pdf", "LOG_2PI"]


def _pair(a: Any, b: Any, name_a: str, name_b: str) -> tuple[np.ndarray, np.ndarray]:
    a_arr = check_finite(as_array(a, name_a), name_a)
    b_arr = check_finite(as_array(b, name_b), name_b)
    if a_arr.shape != b_arr.shape:
        raise ValueError(
            f"{name_a} has shape {a_arr.shape} but {name_b} has {b_arr.shape}; they must match"
        )
    if a_arr.dtype != b_arr.dtype:
        raise TypeError(f"{name_a} is {a_arr.dtype} but {name_b} is {b_arr.dtype}; use one dtype")
    return a_arr, b_arr


def reparameterize(mu: Any, log_var: Any, rng: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Draw z ~ N(mu, diag exp(log_var)) as ``mu + exp(log_var / 2) * eps``.

    Parameters
    ----------
    mu, log_var : ndarray of shape (batch, latent_dim)
        Mean and log-variance (not the standard deviation) of q(z|x).
    rng : numpy.random.Generator, int or None

    Returns
    -------
    z : ndarray of shape (batch, latent_dim)
    eps : ndarray of shape (batch, latent_dim)
        The standard-normal noise, drawn in the dtype of ``mu``; pass it to
        :func:`reparameterize_backward`.
    """
    mu_a, lv_a = _pair(mu, log_var, "mu", "log_var")
    eps = np.random.default_rng(rng).standard_normal(mu_a.shape, dtype=mu_a.dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        z = functional.reparameterize(mu_a, lv_a, eps)
    return check_finite_result(z, "z", "mu or log_var (e.g. log_var > 1400)"), eps


def reparameterize_backward(
    grad_z: np.ndarray, eps: np.ndarray, log_var: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of the loss with respect to mu and log_var, given dL/dz.

    Parameters
    ----------
    grad_z, eps, log_var : ndarray of shape (batch, latent_dim)
        dL/dz, the noise returned by :func:`reparameterize`, and the log-variance.

    Returns
    -------
    d_mu : ndarray
        ``grad_z`` (dz/dmu = 1).
    d_log_var : ndarray
        ``grad_z * eps * exp(log_var / 2) / 2``.
    """
    grad_z, eps, log_var = (np.asarray(a) for a in (grad_z, eps, log_var))
    return functional.reparameterize_backward(grad_z, eps, log_var)


def log_normal_pdf(x: Any, mu: Any, log_var: Any) -> np.ndarray:
    """ln N(x; mu, diag exp(log_var)), summed over the last axis.

    Parameters
    ----------
    x, mu, log_var : array_like of shape (..., d)
        Point, mean and log-variance; ``mu`` and ``log_var`` broadcast against ``x``.

    Returns
    -------
    ndarray of shape (...)
        Nats.
    """
    x_a = check_finite(as_array(x, "x"), "x")
    mu_a = check_finite(as_array(mu, "mu"), "mu")
    lv_a = check_finite(as_array(log_var, "log_var"), "log_var")
    try:
        np.broadcast_shapes(x_a.shape, mu_a.shape, lv_a.shape)
    except ValueError as exc:
        raise ValueError(
            f"x {x_a.shape}, mu {mu_a.shape} and log_var {lv_a.shape} do not broadcast"
        ) from exc
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.sum(functional.gaussian_log_density(x_a, mu_a, lv_a), axis=-1)
    return check_finite_result(out, "log_normal_pdf", "x, mu or log_var")
