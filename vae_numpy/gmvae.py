"""A VAE with a learned mixture-of-Gaussians prior (the GMVAE of Stanford CS236's homework).

The lecture's prior N(0, I) pushes every code toward one blob ("the second term pushes the
clusters together"). A richer prior lets the codes keep their clusters: here

    p(z) = (1/K) sum_k N(z; m_k, diag exp(l_k)),

an equal-weight mixture of K diagonal Gaussians whose means m_k and log-variances l_k are
parameters learned with the networks (``"prior.mean"`` and ``"prior.log_var"``, each of shape
(K, latent_dim)). The recognition model and the Bernoulli decoder are those of the VAE.

KL(q(z|x) || p(z)) between a Gaussian and a mixture has no closed form, so the loss uses the
single-sample Monte Carlo estimate the course uses, with the same reparameterised z that
feeds the decoder:

    KL ≈ ln q(z|x) - ln p(z),    z = mu + exp(log_var / 2) eps,

which is unbiased, and the loss -ELBO ≈ -ln p(x|z) + ln q(z|x) - ln p(z) per example. The
mixture's log-density is a log-sum-exp over components; its gradients are weighted by the
responsibilities r_k(z) = softmax_k(ln N(z; m_k, diag exp(l_k))), see
:func:`mixture_log_density_grad`.

References
----------
Dilokthanakul, N. et al. (2016). Deep unsupervised clustering with Gaussian mixture
variational autoencoders. arXiv:1611.02648.
Tomczak, J. & Welling, M. (2018). VAE with a VampPrior. AISTATS.
Stanford CS236 (Ermon & Grover), homework 2: the GMVAE.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import kernels
from ._validation import check_positive_float, check_positive_int
from .base import BaseModel, encoder_output_grad, hidden_tuple, split_encoder_output
from .functional import (
    LOG_2PI,
    bernoulli_nll,
    bernoulli_nll_grad,
    log_sum_exp,
    reparameterize,
    reparameterize_backward,
    sigmoid,
    softmax,
)

__all__ = [
    "GaussianMixtureVAE",
    "MixturePriorPass",
    "mixture_log_density",
    "mixture_log_density_grad",
]


def _component_log_densities(z: np.ndarray, means: np.ndarray, log_vars: np.ndarray) -> np.ndarray:
    """ln N(z_b; m_k, diag exp(l_k)) for every row b and component k, shape (batch, K).

    The squared Mahalanobis distance sum_j (z_j - m_kj)^2 / v_kj is expanded into matrix
    products, z^2 @ (1/v).T - 2 z @ (m/v).T + sum_j m_kj^2 / v_kj, so no (batch, K, d) array
    is formed.
    """
    inv_var = np.exp(-log_vars)  # (K, d)
    dist = (z * z) @ inv_var.T  # (batch, K)
    dist -= 2 * (z @ (means * inv_var).T)
    dist += np.sum(means * means * inv_var, axis=1)
    return -0.5 * (np.sum(LOG_2PI + log_vars, axis=1) + dist)


def mixture_log_density(z: np.ndarray, means: np.ndarray, log_vars: np.ndarray) -> np.ndarray:
    """ln p(z) for the equal-weight mixture (1/K) sum_k N(z; m_k, diag exp(l_k)).

    Inputs are trusted (finite, in one dtype).

    Parameters
    ----------
    z : ndarray of shape (batch, d)
    means, log_vars : ndarray of shape (K, d)
        Component means and log-variances.

    Returns
    -------
    ndarray of shape (batch,)
        Nats; ``logsumexp_k ln N(z; m_k, v_k) - ln K``, stable for far-away z.
    """
    comp = _component_log_densities(z, means, log_vars)  # (batch, K)
    return log_sum_exp(comp, axis=1) - math.log(len(means))


def mixture_log_density_grad(
    z: np.ndarray, means: np.ndarray, log_vars: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of ``sum_b weights_b ln p(z_b)`` for the mixture of :func:`mixture_log_density`.

    With responsibilities r_bk = softmax_k ln N(z_b; m_k, v_k) (the derivative of log-sum-exp):

        d/dz_b   = -sum_k r_bk (z_b - m_k) / v_k                (times weights_b)
        d/dm_k   =  sum_b weights_b r_bk (z_b - m_k) / v_k
        d/dl_k   =  sum_b weights_b r_bk [(z_b - m_k)^2 / v_k - 1] / 2

    Parameters
    ----------
    z : ndarray of shape (batch, d)
    means, log_vars : ndarray of shape (K, d)
    weights : ndarray of shape (batch,)

    Returns
    -------
    d_z : ndarray of shape (batch, d)
    d_means, d_log_vars : ndarray of shape (K, d)
    """
    comp = _component_log_densities(z, means, log_vars)  # (batch, K)
    # responsibilities r_bk, each row sums to 1. Those of components far from z_b underflow to
    # subnormal numbers, which slow the matrix products below by up to ~160x; below 1e-20 of
    # the row's largest they cannot change a float32 sum, so they become 0.
    r = kernels.flush_negligible(softmax(comp, axis=1), axis=1)
    inv_var = np.exp(-log_vars)  # (K, d)
    rw = r * weights[:, None]  # (batch, K)
    mass = rw.sum(axis=0)[:, None]  # (K, 1): sum_b weights_b r_bk
    # sum_k r_bk (z_b - m_k) / v_k = z_b * (r @ 1/v)_b - (r @ m/v)_b
    d_z = -(z * (r @ inv_var) - r @ (means * inv_var)) * weights[:, None]
    rw_z, rw_z2 = rw.T @ z, rw.T @ (z * z)  # (K, d)
    d_means = inv_var * (rw_z - mass * means)
    sq = rw_z2 - 2 * means * rw_z + mass * means * means  # sum_b rw_bk (z_b - m_k)^2
    d_log_vars = 0.5 * (sq * inv_var - mass)
    return d_z, d_means, d_log_vars


@dataclass
class MixturePriorPass:
    """What one forward pass of the mixture-prior VAE computes for its rows.

    Shapes: ``(rows, input_dim)`` for ``x`` and ``logits``; ``(rows, latent_dim)`` for ``mu``,
    ``log_var``, ``raw_log_var``, ``eps``, ``z``; ``(rows,)`` for ``reconstruction``,
    ``log_q`` and ``log_p``.
    """

    x: np.ndarray  # the rows
    mu: np.ndarray  # mean of q(z|x)
    log_var: np.ndarray  # log-variance of q(z|x), clipped to LOG_VAR_RANGE
    raw_log_var: np.ndarray  # the encoder's output before the clip
    eps: np.ndarray  # the noise eps ~ N(0, I) of the reparameterisation
    z: np.ndarray  # mu + exp(log_var / 2) * eps
    logits: np.ndarray  # the decoder's output
    reconstruction: np.ndarray  # -ln p(x|z), nats per row
    log_q: np.ndarray  # ln q(z|x) at the sample
    log_p: np.ndarray  # ln p(z) under the mixture prior
    beta: float  # the KL weight of this pass


class GaussianMixtureVAE(BaseModel):
    """VAE whose prior is a learned equal-weight mixture of ``n_components`` diagonal Gaussians.

    Parameters
    ----------
    input_dim : int
        Number of features of x (values in [0, 1]; Bernoulli decoder).
    hidden_dims : sequence of int
        Hidden layer sizes of the encoder; the decoder mirrors them.
    latent_dim : int
        Dimension of z.
    n_components : int
        K, the number of mixture components (500 in CS236).
    beta : float
        Weight of the KL estimate (1: the ELBO).
    activation : str
        Hidden activation, one of ``vae_numpy.layers.ACTIVATIONS`` (CS236 uses ``"elu"``).
    dtype : np.float32 or np.float64
    rng : numpy.random.Generator, int or None
        Initial weights and prior means (m_k ~ N(0, 1 / (K d)), l_k = 0 as in CS236's start
        of nearly coincident components).

    Notes
    -----
    KL(q(z|x) || p(z)) is estimated by Monte Carlo with the single reparameterised sample that
    also feeds the decoder (``ln q(z|x) - ln p(z)``), as CS236 does: the loss and its ``kl``
    term are unbiased estimates, not closed forms, and the ``kl`` of one example can be
    negative.
    """

    kind = "GaussianMixtureVAE"

    def __init__(
        self,
        input_dim: int,
        hidden_dims: Sequence[int] | int = (400,),
        latent_dim: int = 20,
        *,
        n_components: int = 500,
        beta: float = 1.0,
        activation: str = "relu",
        dtype: Any = np.float32,
        rng: Any = None,
    ) -> None:
        super().__init__(input_dim, latent_dim, activation=activation, dtype=dtype)
        self.hidden_dims = hidden_tuple(hidden_dims)
        self.n_components = check_positive_int(n_components, "n_components")
        self.beta: float = check_positive_float(beta, "beta", allow_zero=True)
        gen = np.random.default_rng(rng)
        d, k = self.latent_dim, self.n_components
        self.networks = {
            "encoder": self.network([self.input_dim, *self.hidden_dims, 2 * d], gen),
            "decoder": self.network([d, *reversed(self.hidden_dims), self.input_dim], gen),
        }
        # the prior's parameters belong to no network
        means = gen.standard_normal((k, d)) / math.sqrt(k * d)
        self.loose_params = {
            "prior.mean": means.astype(self.dtype),
            "prior.log_var": np.zeros((k, d), dtype=self.dtype),
        }
        self.loose_grads = {name: np.zeros_like(p) for name, p in self.loose_params.items()}

    #: The model protocol's flag: a prior to sample from and a bound on ln p(x).
    generative = True
    #: The decoder's distribution, as the VAE names it: Bernoulli logits.
    likelihood = "bernoulli"

    def get_config(self) -> dict[str, Any]:
        return {
            "input_dim": self.input_dim,
            "hidden_dims": list(self.hidden_dims),
            "latent_dim": self.latent_dim,
            "n_components": self.n_components,
            "beta": self.beta,
            "activation": self.activation,
            "dtype": self.dtype.name,
        }

    # --- the prior and the two networks ---------------------------------------------------

    def prior_log_density(self, z: Any) -> np.ndarray:
        """ln p(z) under the learned mixture prior, shape (batch,), nats."""
        z_a = self.check_z(z)
        return mixture_log_density(
            z_a, self.loose_params["prior.mean"], self.loose_params["prior.log_var"]
        )

    def _encode(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        h = self.encoder.forward(x)  # (batch, 2 latent): [mu | log_var]
        return split_encoder_output(h, self.latent_dim)  # mu, clipped and raw log_var

    def code(self, x: Any) -> np.ndarray:
        """The mean of q(z|x), shape (batch, latent_dim) (the model protocol's code)."""
        return self.encode(x)[0]

    def encode(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        """Parameters of q(z|x): ``mu, log_var``, each of shape (batch, latent_dim)."""
        mu, log_var, _ = self._encode(self.check_x(x))
        return mu.copy(), log_var

    def decoder_output(self, z: Any) -> np.ndarray:
        """The decoder's logits for codes ``z``, shape (batch, input_dim)."""
        return self.decoder.forward(self.check_z(z))

    def decode(self, z: Any) -> np.ndarray:
        """Mean of p(x|z) (pixel probabilities), shape (batch, input_dim)."""
        return sigmoid(self.decoder_output(z))

    def reconstruct(self, x: Any) -> np.ndarray:
        """``decode(mu(x))``, shape (batch, input_dim)."""
        return self.decode(self.encode(x)[0])

    def sample_prior(self, n: int, *, rng: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` codes from the mixture: a component k uniformly, then z ~ N(m_k, v_k).

        Returns
        -------
        z : ndarray of shape (n, latent_dim)
        components : ndarray of shape (n,) of int
        """
        n = check_positive_int(n, "n")
        gen = np.random.default_rng(rng)
        k = gen.integers(0, self.n_components, n)
        std = np.exp(0.5 * self.loose_params["prior.log_var"][k])
        z = self.loose_params["prior.mean"][k] + std * gen.standard_normal(
            std.shape, dtype=self.dtype
        )
        return z.astype(self.dtype, copy=False), k

    def sample(self, n: int, *, rng: Any = None) -> np.ndarray:
        """Generate ``n`` examples: z from the mixture prior, then the mean of p(x|z)."""
        return self.decode(self.sample_prior(n, rng=rng)[0])

    # --- the loss as a layer ---------------------------------------------------------------

    def forward(
        self,
        batch: tuple[np.ndarray, ...],
        eps: np.ndarray,
        *,
        beta: float | None = None,
        for_backward: bool = False,
    ) -> MixturePriorPass:
        """Encode, reparameterise and decode checked rows ``(x,)``; the single-sample KL.

        Inputs are trusted. ``x`` of shape (rows, input_dim), ``eps`` of shape (rows,
        latent_dim); ``beta`` the KL weight of this pass (None: the model's). ``for_backward``
        is part of the shared signature: every pass keeps what :meth:`backward` reads.
        """
        (x,) = batch
        mu, log_var, raw_log_var = self._encode(x)
        z = reparameterize(mu, log_var, eps)  # mu + exp(log_var / 2) eps, (rows, latent)
        logits = self.decoder.forward(z)
        reconstruction = bernoulli_nll(logits, x)
        # ln q(z|x) at z = mu + std eps: (z - mu)^2 / var = eps^2
        log_q = -0.5 * np.sum(LOG_2PI + log_var + eps * eps, axis=1)
        log_p = mixture_log_density(
            z, self.loose_params["prior.mean"], self.loose_params["prior.log_var"]
        )
        beta = self.beta if beta is None else beta
        return MixturePriorPass(
            x, mu, log_var, raw_log_var, eps, z, logits, reconstruction, log_q, log_p, beta
        )

    def loss_terms(self, f: MixturePriorPass) -> dict[str, np.ndarray]:
        """``loss = reconstruction + beta * kl``, ``reconstruction = -ln p(x|z)`` and
        ``kl = ln q(z|x) - ln p(z)`` (the single-sample estimate), each (rows,), nats."""
        kl = f.log_q - f.log_p
        return {
            "loss": f.reconstruction + f.beta * kl,
            "reconstruction": f.reconstruction,
            "kl": kl,
        }

    def backward(self, f: MixturePriorPass, weights: np.ndarray | None = None) -> None:
        """Add d(sum_i weights_i * loss_i)/dparams of the pass ``f`` into ``gradients()``.

        ``weights`` of shape (rows,): dObjective/dloss_i; None for the mean (1 / rows).
        """
        w = self.row_weights(weights, len(f.x))
        w_kl = f.beta * w  # the KL estimate's weight per row
        d_logits = bernoulli_nll_grad(f.logits, f.x) * w[:, None]  # d(-ln p(x|z))/dlogits
        d_z = self.decoder.backward(d_logits)  # (rows, latent) from the reconstruction
        # -ln p(z): the mixture's gradient, for z and for the prior's parameters
        lp_z, lp_means, lp_log_vars = mixture_log_density_grad(
            f.z, self.loose_params["prior.mean"], self.loose_params["prior.log_var"], w_kl
        )
        d_z = d_z - lp_z
        self.loose_grads["prior.mean"] -= lp_means
        self.loose_grads["prior.log_var"] -= lp_log_vars
        d_mu, d_log_var = reparameterize_backward(d_z, f.eps, f.log_var)
        # +ln q(z|x) = -1/2 sum (ln 2π + log_var + eps^2): d/dlog_var = -1/2 at fixed eps
        d_log_var = d_log_var - 0.5 * w_kl[:, None]
        self.encoder.backward_params(encoder_output_grad(d_mu, d_log_var, f.raw_log_var))

    # --- bounds on ln p(x), for vae_numpy.evaluate ----------------------------------------

    def log_importance_weights(
        self, batch: tuple[np.ndarray, ...], k: int, *, rng: Any = None
    ) -> np.ndarray:
        """ln w_j = ln p(x|z_j) + ln p(z_j) - ln q(z_j|x) (mixture prior), k draws per row of x.

        The negative of :meth:`forward`'s per-row loss at beta = 1 (its ``kl`` is the same
        single-draw ln q - ln p), for k draws z_j ~ q(z|x) whose noise is drawn sample-major
        from ``rng``. Returns float64 of shape (k, batch); its log-mean-exp
        (:func:`vae_numpy.functional.importance_weighted_bound`) bounds ln p(x).
        """
        (x,) = batch
        n = len(x)
        eps = self.noise(None, (k, n, self.latent_dim), rng)
        x_k = np.tile(x, (k, 1))  # row j * n + i is x_i, as eps.reshape orders the draws
        f = self.forward((x_k,), eps.reshape(k * n, self.latent_dim), beta=1.0)
        return -self.loss_terms(f)["loss"].reshape(k, n).astype(np.float64)

    def elbo_for_batch(
        self, batch: tuple[np.ndarray, ...], *, n_samples: int = 1, rng: Any = None
    ) -> np.ndarray:
        """Per-example ELBO of ``(x,)`` with beta = 1: the mean of ``n_samples`` log-weights.

        KL(q(z|x) || p(z)) has no closed form for the mixture prior, so the ELBO is the Monte
        Carlo average of ln p(x|z) + ln p(z) - ln q(z|x) (the training loss's estimate; with
        ``n_samples=1`` it draws a training step's noise). Float64 of shape (batch,).
        """
        return np.mean(self.log_importance_weights(batch, n_samples, rng=rng), axis=0)
