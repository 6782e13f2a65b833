"""The variational autoencoder (Kingma & Welling 2013), with its backward pass written out.

Generative model (decoder, "generative network"): z ~ p(z) = N(0, I), then x ~ p(x|z) whose
parameters a decoder MLP computes from z — Bernoulli logits for images in [0, 1], or a mean with
a learned per-feature log-variance for continuous data.

Recognition model (encoder, "recognition network"): q(z|x) = N(mu(x), diag exp(log_var(x))),
one MLP whose last layer outputs mu and log_var side by side (one fused matrix product).

Training maximises the evidence lower bound

    ELBO(x) = E_q[ln p(x|z)] - KL(q(z|x) || p(z))   <=   ln p(x),

with one reparameterised sample z = mu + exp(log_var / 2) * eps, eps ~ N(0, I). The loss is the
mean over the batch of -ELBO in nats per example, with the KL weighted by ``beta`` (beta = 1 is
the VAE; beta != 1 the beta-VAE of Higgins et al. 2017):

    loss = mean_i [ reconstruction_i + beta * KL_i ],
    reconstruction_i = -ln p(x_i|z_i)   (summed over features),
    KL_i = 1/2 sum_j [exp(log_var_ij) - 1 - log_var_ij + mu_ij^2]   (summed over latent dims).

"The first term clusters the codes, the second pushes the clusters together."

References
----------
Kingma, D. P. & Welling, M. (2013). Auto-Encoding Variational Bayes. arXiv:1312.6114.
Higgins, I. et al. (2017). beta-VAE. ICLR.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._validation import check_choice, check_positive_float, check_positive_int
from .base import BaseModel
from .distributions import reparameterize_backward
from .kl import (
    _kl_standard_normal,
    _kl_standard_normal_grad_log_var,
    _kl_standard_normal_per_dim,
)
from .layers import sigmoid
from .losses import (
    _bernoulli_nll,
    _bernoulli_nll_and_grad,
    _gaussian_nll,
    _gaussian_nll_grad,
)

__all__ = ["VAE", "LOG_VAR_RANGE", "LIKELIHOODS"]

#: The encoder's log-variance is clipped to this range (std from 4.5e-5 to 2.2e4): beyond it
#: exp() would overflow or the KL would be dominated by rounding. The gradient is zero outside.
LOG_VAR_RANGE = (-20.0, 20.0)
#: Lower bound on the Gaussian decoder's per-feature log-variance (std >= 0.0067): without it,
#: pixels that never change (e.g. MNIST borders) would drive the likelihood to infinity.
DECODER_LOG_VAR_MIN = -10.0
LIKELIHOODS = ("bernoulli", "gaussian")


class VAE(BaseModel):
    """Variational autoencoder with MLP encoder and decoder.

    Parameters
    ----------
    input_dim : int
        Number of features of x (64 for 8×8 digits, 784 for MNIST).
    hidden_dims : sequence of int
        Hidden layer sizes of the encoder; the decoder mirrors them.
    latent_dim : int
        Dimension of z.
    likelihood : {"bernoulli", "gaussian"}
        p(x|z): Bernoulli with logits (inputs in [0, 1]) or Gaussian with a learned
        per-feature log-variance (parameter ``"decoder.log_var"``).
    beta : float
        Weight of the KL term (>= 0).
    activation : str
        Hidden activation, one of ``vae_numpy.layers.ACTIVATIONS``.
    dtype : np.float32 or np.float64
    rng : numpy.random.Generator, int or None
        Initial weights.

    Attributes
    ----------
    history_ : dict of lists
        Filled by :meth:`fit`: per-epoch loss, reconstruction, kl, val_loss, seconds, ...
    """

    _kind = "VAE"
    generative = True

    def __init__(
        self,
        input_dim: int,
        hidden_dims: Sequence[int] = (400,),
        latent_dim: int = 20,
        *,
        likelihood: str = "bernoulli",
        beta: float = 1.0,
        activation: str = "relu",
        dtype: Any = np.float32,
        rng: Any = None,
    ) -> None:
        self.likelihood = check_choice(likelihood, "likelihood", LIKELIHOODS)
        self.beta = check_positive_float(beta, "beta", allow_zero=True)
        latent = check_positive_int(latent_dim, "latent_dim")
        super().__init__(
            input_dim,
            hidden_dims,
            latent,
            encoder_out=2 * latent,
            activation=activation,
            dtype=dtype,
            rng=rng,
        )
        self._binary_targets = self.likelihood == "bernoulli"
        if self.likelihood == "gaussian":
            self._extra_params["decoder.log_var"] = np.zeros(self.input_dim, dtype=self.dtype)
            self._extra_grads["decoder.log_var"] = np.zeros(self.input_dim, dtype=self.dtype)

    def get_config(self) -> dict[str, Any]:
        return {
            "input_dim": self.input_dim,
            "hidden_dims": list(self.hidden_dims),
            "latent_dim": self.latent_dim,
            "likelihood": self.likelihood,
            "beta": self.beta,
            "activation": self.activation,
            "dtype": self.dtype.name,
        }

    # --- the two networks -----------------------------------------------------------------

    def _encode(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        h = self.encoder.forward(x)  # (batch, 2 * latent): [mu | log_var]
        mu, raw_log_var = h[:, : self.latent_dim], h[:, self.latent_dim :]
        return mu, np.clip(raw_log_var, *LOG_VAR_RANGE), raw_log_var

    def _decoder_log_var(self) -> np.ndarray:
        return np.maximum(self._extra_params["decoder.log_var"], DECODER_LOG_VAR_MIN)

    def encode(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        """Parameters of q(z|x).

        Parameters
        ----------
        x : ndarray of shape (batch, input_dim)

        Returns
        -------
        mu, log_var : ndarray of shape (batch, latent_dim)
            Mean and log-variance (clipped to ``LOG_VAR_RANGE``).
        """
        mu, log_var, _ = self._encode(self._check_x(x))
        return mu.copy(), log_var

    def code(self, x: Any) -> np.ndarray:
        """The code of ``x``: the mean ``mu`` of q(z|x), shape (batch, latent_dim)."""
        return self.encode(x)[0]

    def decode(self, z: Any) -> np.ndarray:
        """Mean of p(x|z): probabilities (bernoulli) or the Gaussian mean, shape (batch, input_dim)."""
        out = self.decoder.forward(self._check_z(z))
        return sigmoid(out) if self.likelihood == "bernoulli" else out

    def reconstruct(self, x: Any) -> np.ndarray:
        """``decode(mu(x))``: the reconstruction through the mean code, shape (batch, input_dim)."""
        mu, _ = self.encode(x)
        return self.decode(mu)

    def sample(self, n: int, *, rng: Any = None) -> np.ndarray:
        """Generate ``n`` new examples: z ~ N(0, I), then the mean of p(x|z). Shape (n, input_dim)."""
        n = check_positive_int(n, "n")
        z = np.random.default_rng(rng).standard_normal((n, self.latent_dim), dtype=self.dtype)
        return self.decode(z)

    def log_likelihood(self, x: Any, z: Any) -> np.ndarray:
        """ln p(x|z) for paired rows of ``x`` and ``z``, summed over features.

        Parameters
        ----------
        x : ndarray of shape (batch, input_dim)
        z : ndarray of shape (batch, latent_dim)

        Returns
        -------
        ndarray of shape (batch,)
            Nats per example.
        """
        x_a, z_a = self._check_x(x), self._check_z(z)
        if len(x_a) != len(z_a):
            raise ValueError(f"x has {len(x_a)} rows but z has {len(z_a)}; pair one z with each x")
        return self._log_likelihood(x_a, z_a)

    def _log_likelihood(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        return -self._nll(self.decoder.forward(z), x)

    def _nll(self, out: np.ndarray, x: np.ndarray) -> np.ndarray:
        """-ln p(x|z) from the decoder output (logits or mean), shape (batch,)."""
        if self.likelihood == "bernoulli":
            return _bernoulli_nll(out, x)
        return _gaussian_nll(out, self._decoder_log_var(), x)

    def _nll_and_grads(
        self, out: np.ndarray, x: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """-ln p(x|z), its gradient for the decoder output, and (Gaussian) for decoder.log_var."""
        if self.likelihood == "bernoulli":
            nll, d_out = _bernoulli_nll_and_grad(out, x)  # one tanh serves both
            return nll, d_out, None
        log_var = self._decoder_log_var()
        d_out, d_log_var = _gaussian_nll_grad(out, log_var, x)
        return _gaussian_nll(out, log_var, x), d_out, d_log_var

    # --- the loss and its gradient ----------------------------------------------------------

    def _noise(self, batch: int, eps: Any, rng: Any) -> np.ndarray:
        if eps is None:
            return np.random.default_rng(rng).standard_normal(
                (batch, self.latent_dim), dtype=self.dtype
            )
        eps_a = np.asarray(eps)
        if eps_a.shape != (batch, self.latent_dim):
            raise ValueError(
                f"eps must have shape (batch, latent_dim) = {(batch, self.latent_dim)}, got {eps_a.shape}"
            )
        return eps_a.astype(self.dtype, copy=False)

    def _forward(
        self, x: np.ndarray, eps: Any, rng: Any, *, with_grads: bool = False
    ) -> dict[str, Any]:
        mu, log_var, raw_log_var = self._encode(x)
        eps = self._noise(len(x), eps, rng)
        std = np.exp(0.5 * log_var)
        z = mu + std * eps  # reparameterisation: (batch, latent)
        out = self.decoder.forward(z)  # logits or Gaussian mean, (batch, input_dim)
        f = {"mu": mu, "log_var": log_var, "raw_log_var": raw_log_var, "eps": eps}
        if with_grads:
            f["reconstruction"], f["d_out"], f["d_decoder_log_var"] = self._nll_and_grads(out, x)
        else:
            f["reconstruction"] = self._nll(out, x)
        f["kl"] = _kl_standard_normal(mu, log_var)
        return f

    def _loss_terms(
        self, x: np.ndarray, *, eps: Any = None, rng: Any = None, beta: float | None = None
    ) -> dict[str, np.ndarray]:
        f = self._forward(x, eps, rng)
        b = self.beta if beta is None else beta
        return {
            "loss": f["reconstruction"] + b * f["kl"],
            "reconstruction": f["reconstruction"],
            "kl": f["kl"],
        }

    def loss(self, x: Any, *, eps: Any = None, rng: Any = None) -> float:
        """Mean over the batch of -ELBO (reconstruction + beta * KL), in nats per example.

        Parameters
        ----------
        x : ndarray of shape (batch, input_dim)
        eps : ndarray of shape (batch, latent_dim), optional
            Reparameterisation noise; with it the loss is deterministic.
        rng : numpy.random.Generator, int or None
            Draws the noise when ``eps`` is None.
        """
        return super().loss(x, eps=eps, rng=rng)

    def loss_parts(self, x: Any, *, eps: Any = None, rng: Any = None) -> dict[str, Any]:
        """The loss and its terms for one batch, means over the batch (nats per example).

        Returns
        -------
        dict
            ``loss``, ``reconstruction``, ``kl`` (floats) and ``kl_per_dim`` (ndarray of shape
            (latent_dim,), the mean KL of each latent dimension: near 0 for inactive units).
        """
        x = self._check_x(x)
        f = self._forward(x, eps, rng)
        kl_per_dim = np.mean(_kl_standard_normal_per_dim(f["mu"], f["log_var"]), axis=0)
        rec, kl = float(np.mean(f["reconstruction"])), float(np.mean(f["kl"]))
        return {
            "loss": rec + self.beta * kl,
            "reconstruction": rec,
            "kl": kl,
            "kl_per_dim": kl_per_dim,
        }

    def loss_and_gradients(
        self, x: Any, *, eps: Any = None, rng: Any = None
    ) -> tuple[float, dict[str, np.ndarray]]:
        """Mean -ELBO over the batch and its gradient for every parameter (manual backprop).

        The same noise ``eps`` is used in the forward and backward pass; see :meth:`loss`.
        """
        return super().loss_and_gradients(x, eps=eps, rng=rng)

    def _loss_and_gradients(
        self, x: np.ndarray, *, eps: Any = None, rng: Any = None, beta: float | None = None
    ) -> tuple[float, dict[str, float]]:
        """Forward and backward for a validated batch; fills the gradient buffers.

        Returns the mean loss and its mean reconstruction and KL terms.
        """
        beta = self.beta if beta is None else beta
        f = self._forward(x, eps, rng, with_grads=True)
        n = len(x)
        # decoder: d(mean loss)/d(out), then back through the decoder MLP to z
        d_out = f["d_out"]
        d_out /= n
        if f["d_decoder_log_var"] is not None:  # Gaussian decoder's learned log-variance
            active = self._extra_params["decoder.log_var"] > DECODER_LOG_VAR_MIN
            self._extra_grads["decoder.log_var"][...] = (
                f["d_decoder_log_var"].sum(axis=0) * active / n
            )
        d_z = self.decoder.backward(d_out, accumulate=False)  # (batch, latent); grads overwritten
        # reparameterisation z = mu + exp(log_var / 2) * eps, plus the KL term's own gradient
        d_mu, d_log_var = reparameterize_backward(d_z, f["eps"], f["log_var"])
        # KL term: d/dmu = mu and d/dlog_var = (exp(log_var) - 1) / 2, weighted by beta / n
        kl_d_log_var = _kl_standard_normal_grad_log_var(f["log_var"])
        scale = beta / n
        d_h = np.concatenate([d_mu + scale * f["mu"], d_log_var + scale * kl_d_log_var], axis=1)
        low, high = LOG_VAR_RANGE
        d_h[:, self.latent_dim :] *= (f["raw_log_var"] > low) & (f["raw_log_var"] < high)  # clip
        self.encoder.backward(d_h, input_grad=False, accumulate=False)
        rec, kl = float(np.mean(f["reconstruction"])), float(np.mean(f["kl"]))
        return rec + beta * kl, {"reconstruction": rec, "kl": kl}
