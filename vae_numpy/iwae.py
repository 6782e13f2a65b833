"""The importance-weighted bound of the VAE (Burda, Grosse & Salakhutdinov 2015): ``VAE(k > 1)``.

Read it after :mod:`vae_numpy.vae`. With k samples z_j = mu + exp(log_var / 2) eps_j per example,

    IWAE_k(x) = ln (1/k) sum_j w_j,   ln w_j = ln p(x|z_j) + beta [ln N(z_j; 0, I) - ln q(z_j|x)],

lies between the ELBO (k = 1) and ln p(x) and rises with k. Its gradient is the average of the k
single-sample gradients of ln w_j weighted by the normalised importance weights w_j / sum_i w_i.

:class:`ImportanceWeightedBound` holds the VAE's methods for it: the forward pass
(:meth:`~ImportanceWeightedBound.iwae_forward`, whose record is an
:class:`ImportanceWeightedPass`), its backward pass, and the log-weights that
:mod:`vae_numpy.evaluate` averages into a bound on ln p(x). The VAE's ``forward`` and
``backward`` hand a pass to them when ``k > 1``.

Reference: Burda, Y., Grosse, R. & Salakhutdinov, R. (2015). Importance Weighted Autoencoders.
arXiv:1509.00519.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from . import kernels
from .base import encoder_output_grad
from .functional import (
    gaussian_nll_grad,
    importance_weighted_bound,
    log_prior_ratio,
    reparameterize,
    reparameterize_backward,
    softmax,
)

__all__ = ["ImportanceWeightedBound", "ImportanceWeightedPass"]


@dataclass
class ImportanceWeightedPass:
    """One forward pass of the importance-weighted bound with k samples per row.

    Shapes: ``(n, latent_dim)`` for ``mu``, ``log_var``, ``raw_log_var``; ``(k, n, latent_dim)``
    for ``eps`` and ``z``; ``(k * n, input_dim)`` for ``out`` and ``x_k`` (sample-major: row
    ``j * n + i`` is sample j of example i); ``(k, n)`` for ``reconstruction``, ``log_w`` and
    ``weights``; ``(n,)`` for ``bound``.
    """

    mu: np.ndarray  # mean of q(z|x)
    log_var: np.ndarray  # log-variance of q(z|x), clipped to LOG_VAR_RANGE
    raw_log_var: np.ndarray  # the encoder's output before the clip
    eps: np.ndarray  # the k noise draws per row
    z: np.ndarray  # mu + exp(log_var / 2) * eps
    out: np.ndarray  # decoder output for every z_j
    x_k: np.ndarray  # x repeated for every sample
    reconstruction: np.ndarray  # -ln p(x|z_j)
    log_prior_ratio: np.ndarray  # ln N(z_j; 0, I) - ln q(z_j|x)
    log_w: np.ndarray  # ln w_j = -reconstruction + beta * log_prior_ratio
    weights: np.ndarray  # normalised importance weights w_j / sum_i w_i (sum to 1 over j)
    bound: np.ndarray  # ln (1/k) sum_j w_j, nats per example
    beta: float  # the weight of log_prior_ratio in log_w


class ImportanceWeightedBound:
    """The importance-weighted bound's forward and backward passes, for :class:`~vae_numpy.vae.VAE`.

    A part of the VAE, not a model of its own: it uses the VAE's encoder and decoder
    (``_encode``, ``decoder``, ``encoder``), its likelihood (``_nll``, ``decoder_log_var``,
    ``add_decoder_log_var_grad``), ``beta``, ``latent_dim`` and the base class's ``noise``.
    """

    if TYPE_CHECKING:  # what the VAE (and its base class) provides
        beta: float
        latent_dim: int
        likelihood: str
        _encode: Any
        _nll: Any
        decoder: Any
        encoder: Any
        add_decoder_log_var_grad: Any
        noise: Any

        @property
        def decoder_log_var(self) -> np.ndarray: ...

    def log_importance_weights(
        self, batch: tuple[np.ndarray, ...], k: int, *, rng: Any = None
    ) -> np.ndarray:
        """ln w_j = ln p(x|z_j) + ln N(z_j; 0, I) - ln q(z_j|x) for ``k`` draws z_j ~ q(z|x).

        ``batch`` is a checked ``(x,)``; the noise is drawn sample-major from ``rng`` (shape
        (k, batch, latent_dim)), so successive calls read the stream as one call with their
        total k. Returns float64 of shape (k, batch); beta is not applied (the bound on ln p(x)).
        """
        eps = self.noise(None, (k, len(batch[0]), self.latent_dim), rng)
        f = self._importance_samples(batch[0], eps)
        return (f[-1] - f[-2]).astype(np.float64)

    def iwae_forward(
        self, batch: tuple[np.ndarray, ...], eps: np.ndarray, *, beta: float | None = None
    ) -> ImportanceWeightedPass:
        """Log importance weights of ``k`` samples per row of a checked ``(x,)``, and the bound.

        Parameters
        ----------
        batch : tuple ``(x,)``, x of shape (n, input_dim)
        eps : ndarray of shape (k, n, latent_dim)
            The noise of the k samples.
        beta : float, optional
            Weight of ln N(z; 0, I) - ln q(z|x) in each log-weight (None: the model's).

        Notes
        -----
        With z_j = mu + std eps_j, (z_j - mu)^2 / var = eps_j^2, so

            ln N(z_j; 0, I) - ln q(z_j|x) = 1/2 sum_d [log_var + eps_j^2 - z_j^2]

        (the ln 2π terms cancel). The bound is the log-mean-exp
        :func:`vae_numpy.functional.importance_weighted_bound` (the one written for training
        and :mod:`vae_numpy.evaluate` alike), and the normalised weights are its gradient,
        ``softmax(log_w, axis=0)``.
        """
        beta = self.beta if beta is None else beta
        mu, log_var, raw_log_var, z, out, x_k, reconstruction, log_prior_ratio = (
            self._importance_samples(batch[0], eps)
        )
        log_w = -reconstruction + beta * log_prior_ratio  # (k, n)
        return ImportanceWeightedPass(
            mu, log_var, raw_log_var, eps, z, out, x_k, reconstruction, log_prior_ratio,
            log_w, softmax(log_w, axis=0), importance_weighted_bound(log_w), beta,
        )  # fmt: skip

    def _importance_samples(self, x: np.ndarray, eps: np.ndarray) -> tuple[np.ndarray, ...]:
        """Encode ``x`` (n rows), decode z_j = mu + std eps_j for eps of shape (k, n, latent).

        Returns mu, log_var, raw_log_var, z, the decoder output and x repeated (``(k * n, ...)``,
        sample-major), ``-ln p(x|z_j)`` and ``ln N(z_j; 0, I) - ln q(z_j|x)``, each (k, n).
        (:func:`vae_numpy.functional.log_prior_ratio`).
        """
        k, n = eps.shape[:2]
        mu, log_var, raw_log_var = self._encode(x)  # (n, latent)
        z = reparameterize(mu, log_var, eps)  # broadcast over the k samples
        out = self.decoder.forward(z.reshape(k * n, self.latent_dim))  # sample-major rows
        x_k = np.tile(x, (k, 1))  # row j * n + i is x_i
        reconstruction = self._nll(out, x_k).reshape(k, n)  # -ln p(x_i|z_ij)
        ratio = log_prior_ratio(z, eps, log_var)  # (k, n): ln N(z_j; 0, I) - ln q(z_j|x)
        return mu, log_var, raw_log_var, z, out, x_k, reconstruction, ratio

    def iwae_backward(self, f: ImportanceWeightedPass) -> None:
        """Add the gradient of the mean -IWAE_k over the record's rows into :meth:`gradients`.

        Notes
        -----
        d(-IWAE_k)/dθ = -sum_j w~_j d(ln w_j)/dθ with the normalised weights w~_j: each sample
        backpropagates its own -ln w_j with the weight w~_j / n. Through z_j = mu + std eps_j:

        * d(-ln w_j)/dz_j = d(-ln p(x|z_j))/dz_j + beta z_j   (from -beta ln N(z_j; 0, I));
        * dL/dmu = sum_j d_z_j, dL/dlog_var = sum_j d_z_j eps_j std / 2 - beta / (2n), the last
          term from +beta ln q(z_j|x) = -beta/2 sum_d (ln 2π + log_var + eps_j^2) at fixed eps
          (the weights of a row sum to 1).
        """
        k, n = f.weights.shape
        # The normalised weights of samples far worse than a row's best underflow to subnormal
        # numbers, which would scale their decoder rows' gradients and slow the matrix products
        # by up to ~160x; below 1e-20 of the row's largest they cannot change a float32 sum.
        weights = kernels.flush_negligible(f.weights, axis=0)  # (k, n)
        row_weight = (weights / n).reshape(k * n, 1)  # dL/d(-ln w_j) of each decoder row
        if self.likelihood == "bernoulli":
            d_out = kernels.bernoulli_nll_and_grad_spans(f.out, f.x_k)[1] * row_weight
        else:
            d_mean, d_dec_log_var = gaussian_nll_grad(f.out, self.decoder_log_var, f.x_k)
            d_out = d_mean * row_weight
            self.add_decoder_log_var_grad(np.sum(d_dec_log_var * row_weight, axis=0))
        d_z = self.decoder.backward(d_out).reshape(k, n, self.latent_dim)
        d_z += f.beta * f.z * (weights / n)[:, :, None]  # -beta ln N(z_j; 0, I)
        d_mu_k, d_log_var_k = reparameterize_backward(d_z, f.eps, f.log_var)  # per sample
        d_mu = np.sum(d_mu_k, axis=0)
        d_log_var = np.sum(d_log_var_k, axis=0) - f.beta / (2 * n)  # + beta ln q at fixed eps
        self.encoder.backward_params(encoder_output_grad(d_mu, d_log_var, f.raw_log_var))
