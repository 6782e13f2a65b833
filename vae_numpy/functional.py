"""Every formula of the lecture, once, as the lecture writes it: the package's functional layer.

Contract: **inputs already checked.** These functions trust their arguments (floating arrays of
compatible shapes, finite, targets in [0, 1] where a Bernoulli needs it) and do no validation,
so that the models can call them on every training step without paying for checks. The public
functions of :mod:`vae_numpy.losses`, :mod:`vae_numpy.kl` and :mod:`vae_numpy.distributions`
check their input at the boundary and then call these. Faster but less readable versions of a
few of them live in :mod:`vae_numpy.kernels`, each tested equal to its twin here.

Units: log-densities and losses in nats. Arrays are ``(batch, features)`` unless stated;
``log_var`` is always the log of a *variance*, ``std = exp(log_var / 2)``.

References
----------
Kingma, D. P. & Welling, M. (2013). Auto-Encoding Variational Bayes, section 2.4 and
appendices B-C. arXiv:1312.6114.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "LOG_2PI",
    "sigmoid",
    "softplus",
    "gaussian_log_density",
    "gaussian_nll",
    "gaussian_nll_grad",
    "bernoulli_nll",
    "bernoulli_nll_grad",
    "squared_error",
    "squared_error_grad",
    "reparameterize",
    "reparameterize_backward",
    "log_prior_ratio",
    "kl_standard_normal_per_dim",
    "kl_standard_normal",
    "kl_standard_normal_grad",
    "log_sum_exp",
    "softmax",
    "log_softmax",
    "importance_weighted_bound",
]

#: ln(2 pi), the constant of every Gaussian log-density.
LOG_2PI = math.log(2.0 * math.pi)


# --- the two squashing functions -------------------------------------------------------------


def sigmoid(x: np.ndarray) -> np.ndarray:
    """sigma(x) = 1 / (1 + exp(-x)), in the dtype of ``x``.

    For x below about -88 (float32) exp(-x) overflows to inf and the result is exactly 0, the
    correct limit; for large x it underflows to 0 and the result is 1. Both are expected and
    not reported.
    """
    with np.errstate(over="ignore", under="ignore"):
        return 1 / (1 + np.exp(-x))


def softplus(x: np.ndarray) -> np.ndarray:
    """softplus(x) = ln(1 + exp(x)), as ``logaddexp(0, x)`` so that large x does not overflow."""
    return np.logaddexp(0, x)


# --- the reconstruction term: -ln p(x|z) ------------------------------------------------------


def gaussian_log_density(x: Any, mean: Any, log_var: Any) -> Any:
    """ln N(x; mean, exp(log_var)) elementwise: ``-1/2 [ln 2 pi + log_var + (x - mean)^2 / exp(log_var)]``."""
    return -0.5 * (LOG_2PI + log_var + (x - mean) ** 2 * np.exp(-log_var))


def gaussian_nll(mean: np.ndarray, log_var: np.ndarray, x: np.ndarray) -> np.ndarray:
    """-ln N(x | mean, diag exp(log_var)), summed over the last axis: shape (batch,)."""
    return -np.sum(gaussian_log_density(x, mean, log_var), axis=-1)


def gaussian_nll_grad(
    mean: np.ndarray, log_var: np.ndarray, x: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of ``gaussian_nll(mean, log_var, x).sum()`` per entry.

    Returns ``d_mean = (mean - x) / exp(log_var)`` and
    ``d_log_var = (1 - (x - mean)^2 / exp(log_var)) / 2``, both of the broadcast shape.
    """
    inv_var = np.exp(-log_var)
    d_mean = (mean - x) * inv_var
    d_log_var = 0.5 * (1 - (x - mean) ** 2 * inv_var)
    return d_mean, d_log_var


def bernoulli_nll(logits: np.ndarray, x: np.ndarray) -> np.ndarray:
    """-ln Bernoulli(x | sigmoid(logits)) summed over features: ``sum_j softplus(l_j) - x_j l_j``.

    The binary cross-entropy written with logits: -[x ln s + (1 - x) ln(1 - s)] with
    s = sigmoid(l) equals softplus(l) - x l, which never takes the log of 0.

    The training step of the VAE and the autoencoder runs its fast twin
    :func:`vae_numpy.kernels.bernoulli_nll_and_grad` (this loss and :func:`bernoulli_nll_grad`
    sharing one tanh); ``tests/test_kernels.py`` checks the two equal to rounding. Evaluation,
    the conditional, mixture and semi-supervised models run this one.
    """
    return np.sum(softplus(logits) - x * logits, axis=-1)


def bernoulli_nll_grad(logits: np.ndarray, x: np.ndarray) -> np.ndarray:
    """d/dlogits of ``bernoulli_nll(logits, x).sum()``: ``sigmoid(logits) - x``.

    The VAE's and the autoencoder's training step computes it with the loss in the fast twin
    :func:`vae_numpy.kernels.bernoulli_nll_and_grad`, tested equal in ``tests/test_kernels.py``.
    """
    return sigmoid(logits) - x


def squared_error(pred: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``sum_j (pred_j - x_j)^2`` per example, shape (batch,)."""
    return np.sum((pred - x) ** 2, axis=-1)


def squared_error_grad(pred: np.ndarray, x: np.ndarray) -> np.ndarray:
    """d/dpred of ``squared_error(pred, x).sum()``: ``2 (pred - x)``."""
    return 2 * (pred - x)


# --- the reparameterisation trick -------------------------------------------------------------


def reparameterize(mu: np.ndarray, log_var: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """z = mu + exp(log_var / 2) * eps: a draw from N(mu, diag exp(log_var)) given eps ~ N(0, I)."""
    std = np.exp(0.5 * log_var)
    return mu + std * eps


def reparameterize_backward(
    d_z: np.ndarray, eps: np.ndarray, log_var: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Chain rule through ``z = mu + exp(log_var / 2) * eps``, given dL/dz.

    dz/dmu = 1 and dz/dlog_var = eps * exp(log_var / 2) / 2, so ``d_mu = d_z`` and
    ``d_log_var = d_z * eps * std / 2``.
    """
    std = np.exp(0.5 * log_var)
    return d_z, d_z * eps * std / 2


def log_prior_ratio(z: np.ndarray, eps: np.ndarray, log_var: np.ndarray) -> np.ndarray:
    """ln N(z; 0, I) - ln q(z|x) at a reparameterised draw, summed over the last (latent) axis.

    With z = mu + exp(log_var / 2) eps, (z - mu)^2 / exp(log_var) = eps^2, so the two
    Gaussian log-densities differ by ``1/2 sum_d [log_var + eps^2 - z^2]`` (the ln 2 pi terms
    cancel). Its average over draws is -KL(q(z|x) || N(0, I)); the importance weights of the
    IWAE bound are ``ln p(x|z) + log_prior_ratio``.
    """
    return 0.5 * np.sum(log_var + eps * eps - z * z, axis=-1)


# --- the KL term: KL(N(mu, diag sigma^2) || N(0, I)) -----------------------------------------


def kl_standard_normal_per_dim(mu: np.ndarray, log_var: np.ndarray) -> np.ndarray:
    """KL(N(mu, sigma^2) || N(0, 1)) of each latent dimension, shape of ``mu``.

    The lecture's ``1/2 [ln(s^2/sigma^2) - 1 + (sigma^2 + (mu - m)^2) / s^2]`` with m = 0, s = 1
    and sigma^2 = exp(log_var): ``1/2 [exp(log_var) - 1 - log_var + mu^2]``. ``exp(v) - 1`` is
    written ``expm1(v)``, which keeps the bracket >= 0 under rounding.
    """
    return 0.5 * (np.expm1(log_var) - log_var + mu**2)


def kl_standard_normal(mu: np.ndarray, log_var: np.ndarray) -> np.ndarray:
    """KL(N(mu, diag exp(log_var)) || N(0, I)), summed over the last (latent) axis."""
    return np.sum(kl_standard_normal_per_dim(mu, log_var), axis=-1)


def kl_standard_normal_grad(mu: np.ndarray, log_var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradient of ``kl_standard_normal(mu, log_var).sum()``: ``d_mu = mu``, ``d_log_var = (exp(log_var) - 1) / 2``."""
    return mu, 0.5 * np.expm1(log_var)


# --- sums of exponentials: mixtures, importance weights, class probabilities -----------------


def log_sum_exp(a: np.ndarray, axis: int = -1, keepdims: bool = False) -> np.ndarray:
    """ln sum_i exp(a_i) along ``axis``, without overflow or underflow.

    The largest term m is taken out first: ln sum_i exp(a_i) = m + ln sum_i exp(a_i - m), where
    every exp(a_i - m) lies in (0, 1] and one of them is 1. Used for a mixture's log-density,
    the importance-weighted bound (a log-mean-exp is ``log_sum_exp(a) - ln k``) and log q(y|x).
    """
    m = np.max(a, axis=axis, keepdims=True)
    out = m + np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True))
    return out if keepdims else np.squeeze(out, axis=axis)


def softmax(a: np.ndarray, axis: int = -1) -> np.ndarray:
    """exp(a_i) / sum_j exp(a_j) along ``axis``: the gradient of :func:`log_sum_exp`.

    The responsibilities of mixture components, the normalised importance weights of the IWAE
    bound and class probabilities are all this; each slice along ``axis`` sums to 1.
    """
    e = np.exp(a - np.max(a, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(a: np.ndarray, axis: int = -1) -> np.ndarray:
    """ln softmax(a) = a_i - ln sum_j exp(a_j) along ``axis``: log-probabilities, e.g. ln q(y|x)."""
    return a - log_sum_exp(a, axis=axis, keepdims=True)


def importance_weighted_bound(log_w: np.ndarray, axis: int = 0) -> np.ndarray:
    """The importance-weighted bound ln (1/k) sum_j w_j from k log-weights along ``axis``.

    With ``log_w[j] = ln p(x, z_j) - ln q(z_j|x)`` for k draws z_j ~ q(z|x), this is IWAE_k of
    Burda et al. (2015): a lower bound on ln p(x) whose expectation rises with k (k = 1 is
    the ELBO). A log-mean-exp, ``log_sum_exp(log_w) - ln k``, so no weight overflows. Its
    gradient with respect to ``log_w`` is the normalised weights ``softmax(log_w, axis)``.
    The VAE's training bound (``VAE(..., k)``) and :mod:`vae_numpy.evaluate` both use it.
    """
    return log_sum_exp(log_w, axis=axis) - math.log(log_w.shape[axis])
