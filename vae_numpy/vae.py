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

With ``k > 1`` (``VAE(..., k=5)``) training maximises instead the importance-weighted bound
IWAE_k of Burda et al. (2015), with k samples of z per example: its forward and backward passes
are in :mod:`vae_numpy.iwae`. ``k = 1`` keeps the ELBO above, with its KL in closed form, bit for
bit.

References
----------
Kingma, D. P. & Welling, M. (2013). Auto-Encoding Variational Bayes. arXiv:1312.6114.
Higgins, I. et al. (2017). beta-VAE. ICLR.
Burda, Y., Grosse, R. & Salakhutdinov, R. (2015). Importance Weighted Autoencoders.
arXiv:1509.00519.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import kernels
from ._validation import as_batch, check_choice, check_positive_float, check_positive_int
from .base import BaseModel, encoder_output_grad, hidden_tuple, split_encoder_output
from .functional import (
    LOG_2PI,
    bernoulli_nll,
    bernoulli_nll_grad,
    gaussian_nll,
    gaussian_nll_grad,
    kl_standard_normal,
    kl_standard_normal_grad,
    kl_standard_normal_per_dim,
    reparameterize,
    reparameterize_backward,
    sigmoid,
)
from .iwae import ImportanceWeightedBound, ImportanceWeightedPass

__all__ = ["VAE", "ForwardPass", "DECODER_LOG_VAR_MIN", "LIKELIHOODS"]

#: Lower bound on the Gaussian decoder's per-feature log-variance (std >= 0.0067): without it,
#: pixels that never change (e.g. MNIST borders) would drive the likelihood to infinity.
DECODER_LOG_VAR_MIN = -10.0
LIKELIHOODS = ("bernoulli", "gaussian")


@dataclass
class ForwardPass:
    """What one forward pass of the VAE computes for a batch, named as in the derivation.

    Shapes: ``(batch, input_dim)`` for ``x``, ``out`` and ``reconstruction_grad``;
    ``(batch, latent_dim)`` for ``mu``, ``log_var``, ``raw_log_var``, ``eps``, ``z``;
    ``(batch,)`` for ``reconstruction`` and ``kl``.
    """

    x: np.ndarray  # the batch
    mu: np.ndarray  # mean of q(z|x)
    log_var: np.ndarray  # log-variance of q(z|x), clipped to LOG_VAR_RANGE
    raw_log_var: np.ndarray  # the encoder's output before the clip
    eps: np.ndarray  # the noise eps ~ N(0, I) of the reparameterisation
    z: np.ndarray  # mu + exp(log_var / 2) * eps
    out: np.ndarray  # decoder output: Bernoulli logits or Gaussian mean
    reconstruction: np.ndarray  # -ln p(x|z), nats per example
    kl: np.ndarray  # KL(q(z|x) || N(0, I)), nats per example
    beta: float  # the KL weight of this pass
    # d reconstruction / d logits = sigmoid(logits) - x, computed with the loss by the fast
    # twin (a Bernoulli pass made for backward); None otherwise
    reconstruction_grad: np.ndarray | None = None


class VAE(ImportanceWeightedBound, BaseModel):
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
    k : int
        Importance samples per example of the training bound: 1 is the ELBO, k > 1 the
        importance-weighted bound IWAE_k (with ``beta`` weighting ln p(z) - ln q(z|x) in each
        log-weight). The noise ``eps`` of a deterministic loss then has shape
        ``(k, batch, latent_dim)``.
    activation : str
        Hidden activation, one of ``vae_numpy.layers.ACTIVATIONS``.
    dtype : np.float32 or np.float64
    rng : numpy.random.Generator, int or None
        Initial weights.

    Attributes
    ----------
    networks : dict of str to Sequential
        ``"encoder"`` (x → [mu | log_var]) and ``"decoder"`` (z → logits or Gaussian mean),
        also ``model.encoder`` and ``model.decoder``.
    loose_params : dict of str to ndarray
        The parameters of no network: ``"decoder.log_var"`` for a Gaussian decoder.
    history_ : dict of lists
        Filled by :meth:`fit`: per-epoch loss, reconstruction, kl, val_loss, seconds, ...
    """

    kind = "VAE"
    beta: float
    generative = True

    def __init__(
        self,
        input_dim: int,
        hidden_dims: Sequence[int] = (400,),
        latent_dim: int = 20,
        *,
        likelihood: str = "bernoulli",
        beta: float = 1.0,
        k: int = 1,
        activation: str = "relu",
        dtype: Any = np.float32,
        rng: Any = None,
    ) -> None:
        self.likelihood = check_choice(likelihood, "likelihood", LIKELIHOODS)
        self.beta = check_positive_float(beta, "beta", allow_zero=True)
        self.k = check_positive_int(k, "k")
        super().__init__(input_dim, latent_dim, activation=activation, dtype=dtype)
        self.hidden_dims = hidden_tuple(hidden_dims)
        gen = np.random.default_rng(rng)
        d = self.latent_dim
        self.networks = {  # the encoder's last layer outputs [mu | log_var] side by side
            "encoder": self.network([self.input_dim, *self.hidden_dims, 2 * d], gen),
            "decoder": self.network([d, *reversed(self.hidden_dims), self.input_dim], gen),
        }
        self._binary_targets = self.likelihood == "bernoulli"
        if self.likelihood == "gaussian":  # a parameter of no network: the decoder's log-variance
            self.loose_params["decoder.log_var"] = np.zeros(self.input_dim, dtype=self.dtype)
            self.loose_grads["decoder.log_var"] = np.zeros(self.input_dim, dtype=self.dtype)

    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments; ``k`` only when it is not 1 (ELBO models are unchanged)."""
        config = {
            "input_dim": self.input_dim,
            "hidden_dims": list(self.hidden_dims),
            "latent_dim": self.latent_dim,
            "likelihood": self.likelihood,
            "beta": self.beta,
            "activation": self.activation,
            "dtype": self.dtype.name,
        }
        if self.k != 1:
            config["k"] = self.k
        return config

    # --- the two networks -----------------------------------------------------------------

    def _encode(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """mu, clipped log_var and raw log_var of q(z|x) for a checked batch."""
        h = self.encoder.forward(x)  # (batch, 2 * latent): [mu | log_var]
        return split_encoder_output(h, self.latent_dim)

    @property
    def decoder_log_var(self) -> np.ndarray:
        """The Gaussian decoder's per-feature log-variance, floored at ``DECODER_LOG_VAR_MIN``.

        Shape (input_dim,); only for ``likelihood="gaussian"`` (AttributeError otherwise).
        """
        if self.likelihood != "gaussian":
            raise AttributeError("a Bernoulli decoder has no log-variance")
        return np.maximum(self.loose_params["decoder.log_var"], DECODER_LOG_VAR_MIN)

    def add_decoder_log_var_grad(self, d_log_var: np.ndarray) -> None:
        """Add d(loss)/d(decoder.log_var), shape (input_dim,); zero where the floor is active."""
        above_floor = self.loose_params["decoder.log_var"] > DECODER_LOG_VAR_MIN
        self.loose_grads["decoder.log_var"] += d_log_var * above_floor

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
        mu, log_var, _ = self._encode(self.check_x(x))
        return mu.copy(), log_var

    def code(self, x: Any) -> np.ndarray:
        """The code of ``x``: the mean ``mu`` of q(z|x), shape (batch, latent_dim)."""
        return self.encode(x)[0]

    def decoder_output(self, z: Any) -> np.ndarray:
        """The decoder's raw output for codes ``z``: Bernoulli logits or the Gaussian mean.

        Shape (batch, input_dim); :meth:`decode` applies the sigmoid to logits.
        """
        return self.decoder.forward(self.check_z(z))

    def decode(self, z: Any) -> np.ndarray:
        """Mean of p(x|z): probabilities (bernoulli) or the Gaussian mean, shape (batch, input_dim)."""
        out = self.decoder_output(z)
        return sigmoid(out) if self.likelihood == "bernoulli" else out

    def reconstruct(self, x: Any) -> np.ndarray:
        """``decode(mu(x))``: the reconstruction through the mean code, shape (batch, input_dim)."""
        return self.decode(self.code(x))

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
        x_a, z_a = self.check_x(x), self.check_z(z)
        if len(x_a) != len(z_a):
            raise ValueError(f"x has {len(x_a)} rows but z has {len(z_a)}; pair one z with each x")
        return -self._nll(self.decoder.forward(z_a), x_a)

    def _nll(self, out: np.ndarray, x: np.ndarray) -> np.ndarray:
        """-ln p(x|z) from the decoder output (logits or mean), shape (batch,)."""
        if self.likelihood == "bernoulli":
            return bernoulli_nll(out, x)
        return gaussian_nll(out, self.decoder_log_var, x)

    def prior_log_density(self, z: Any) -> np.ndarray:
        """ln p(z) = ln N(z; 0, I), summed over latent dimensions: shape (batch,), float64, nats."""
        z_a = as_batch(z, "z", features=self.latent_dim).astype(np.float64)
        return -0.5 * np.sum(LOG_2PI + z_a * z_a, axis=1)

    # --- bounds on ln p(x), for vae_numpy.evaluate (the model protocol's VariationalModel) ------

    def elbo_for_batch(
        self, batch: tuple[np.ndarray, ...], *, n_samples: int = 1, rng: Any = None
    ) -> np.ndarray:
        """Per-example ELBO of a checked batch ``(x,)`` with beta = 1, float64 of shape (batch,).

        E_q[ln p(x|z)] is averaged over ``n_samples`` draws z ~ q(z|x) (noise drawn sample-major
        from ``rng``, shape (n_samples, batch, latent_dim)); the KL term is in closed form. With
        ``n_samples=1`` it draws the noise of a training step: minus the mean is ``score``.
        """
        x = batch[0]
        n = len(x)
        mu, log_var, _ = self._encode(x)  # (n, latent)
        eps = np.random.default_rng(rng).standard_normal(
            (n_samples, n, self.latent_dim), dtype=self.dtype
        )
        z = reparameterize(mu, log_var, eps).reshape(n_samples * n, self.latent_dim)
        log_px_z = -self._nll(self.decoder.forward(z), np.tile(x, (n_samples, 1)))
        rec = np.sum(log_px_z.reshape(n_samples, n), axis=0, dtype=np.float64) / n_samples
        return rec - kl_standard_normal(mu, log_var).astype(np.float64)

    # --- the loss: forward, loss terms, backward (vae_numpy.base) -----------------------------

    def noise_for(self, batch: tuple[np.ndarray, ...], eps: Any = None, rng: Any = None) -> Any:
        """The noise of one forward pass: ``eps`` checked, or drawn from ``rng``.

        Shape (batch, latent_dim); with k > 1 samples per row, (k, batch, latent_dim).
        """
        n = len(batch[0])
        if self.k > 1:
            return self.noise(eps, (self.k, n, self.latent_dim), rng, "(k, batch, latent_dim)")
        return self.noise(eps, (n, self.latent_dim), rng)

    def forward(
        self,
        batch: tuple[np.ndarray, ...],
        eps: np.ndarray,
        *,
        beta: float | None = None,
        for_backward: bool = False,
    ) -> ForwardPass | ImportanceWeightedPass:
        """Encode, reparameterise and decode a checked batch ``(x,)``; the KL in closed form.

        Parameters
        ----------
        batch : tuple ``(x,)``, x of shape (batch, input_dim)
            Trusted (checked, in the model's dtype).
        eps : ndarray of shape (batch, latent_dim)
            The noise of z = mu + exp(log_var / 2) eps; with k > 1, shape (k, batch,
            latent_dim) and the pass is that of the importance-weighted bound
            (:meth:`~vae_numpy.iwae.ImportanceWeightedBound.iwae_forward`).
        beta : float, optional
            The KL weight of this pass (None: the model's).
        for_backward : bool
            For a Bernoulli decoder, compute the loss and its gradient for the logits together
            (the fast twin :func:`vae_numpy.kernels.bernoulli_nll_and_grad`, sharing one tanh)
            and keep the gradient for :meth:`backward`; otherwise the textbook
            :func:`vae_numpy.functional.bernoulli_nll`.
        """
        beta = self.beta if beta is None else beta
        if self.k > 1:
            return self.iwae_forward(batch, eps, beta=beta)
        x = batch[0]
        mu, log_var, raw_log_var = self._encode(x)
        z = reparameterize(mu, log_var, eps)  # z = mu + exp(log_var / 2) * eps
        out = self.decoder.forward(z)  # logits or Gaussian mean, (batch, input_dim)
        kl = kl_standard_normal(mu, log_var)  # (batch,)
        reconstruction_grad = None
        if for_backward and self.likelihood == "bernoulli":  # -ln p(x|z) and d/dlogits, one tanh
            reconstruction, reconstruction_grad = kernels.bernoulli_nll_and_grad_spans(out, x)
        else:
            reconstruction = self._nll(out, x)  # -ln p(x|z), (batch,)
        return ForwardPass(
            x, mu, log_var, raw_log_var, eps, z, out, reconstruction, kl, beta, reconstruction_grad
        )

    def loss_terms(self, f: ForwardPass | ImportanceWeightedPass) -> dict[str, np.ndarray]:
        """Per-example ``loss`` (reconstruction + beta KL), ``reconstruction`` and ``kl`` (nats).

        For the importance-weighted pass: ``loss`` = -IWAE_k; ``reconstruction`` and ``kl`` the
        sample averages of -ln p(x|z_j) and of ln q(z_j|x) - ln N(z_j; 0, I) (their sum is the
        ELBO estimate the bound improves on: loss <= reconstruction + beta * kl).
        """
        if isinstance(f, ImportanceWeightedPass):
            return {
                "loss": -f.bound,
                "reconstruction": np.mean(f.reconstruction, axis=0),
                "kl": -np.mean(f.log_prior_ratio, axis=0),
            }
        return {
            "loss": f.reconstruction + f.beta * f.kl,
            "reconstruction": f.reconstruction,
            "kl": f.kl,
        }

    def mean_loss_terms(
        self, f: ForwardPass | ImportanceWeightedPass
    ) -> tuple[float, dict[str, float]]:
        """Means over the batch: the ELBO's loss is mean reconstruction + beta * mean KL."""
        if isinstance(f, ImportanceWeightedPass):
            means = {name: float(np.mean(v)) for name, v in self.loss_terms(f).items()}
            return means.pop("loss"), means
        rec, kl = float(np.mean(f.reconstruction)), float(np.mean(f.kl))
        return rec + f.beta * kl, {"reconstruction": rec, "kl": kl}

    def backward(self, f: ForwardPass | ImportanceWeightedPass) -> None:
        """Add the gradient of the mean loss over the record's rows into :meth:`gradients`.

        Notes
        -----
        With n rows, L = (1/n) sum_i [rec_i + beta KL_i]. Backward, named as in the derivation:

        * d_out = dL/d(decoder output) = (1/n) d rec / d out;
        * d_z = dL/dz, through the decoder;
        * through z = mu + exp(log_var / 2) eps: dL/dmu = d_z, dL/dlog_var = d_z eps std / 2;
        * plus the KL term's own gradient (beta / n) (mu, (exp(log_var) - 1) / 2);
        * the clip of log_var to LOG_VAR_RANGE passes the gradient only strictly inside it.

        The pass of the importance-weighted bound goes back through
        :meth:`~vae_numpy.iwae.ImportanceWeightedBound.iwae_backward`.
        """
        if isinstance(f, ImportanceWeightedPass):
            self.iwae_backward(f)
            return
        n = len(f.x)
        if self.likelihood == "bernoulli":  # d(-ln p(x|z))/dlogits = sigmoid(logits) - x
            d_rec = f.reconstruction_grad  # computed with the loss by the fast twin
            if d_rec is None:  # a pass made without for_backward: the textbook formula
                d_rec = bernoulli_nll_grad(f.out, f.x)
            d_out = d_rec / n
        else:  # Gaussian decoder: the mean and the learned per-feature log-variance
            d_mean, d_dec_log_var = gaussian_nll_grad(f.out, self.decoder_log_var, f.x)
            d_out = d_mean / n
            self.add_decoder_log_var_grad(d_dec_log_var.sum(axis=0) / n)
        d_z = self.decoder.backward(d_out)  # (batch, latent)
        d_mu_rec, d_log_var_rec = reparameterize_backward(d_z, f.eps, f.log_var)
        d_mu_kl, d_log_var_kl = kl_standard_normal_grad(f.mu, f.log_var)
        d_mu = d_mu_rec + f.beta / n * d_mu_kl
        d_log_var = d_log_var_rec + f.beta / n * d_log_var_kl
        # [mu | log_var]; the clip of log_var passes the gradient only strictly inside its range
        self.encoder.backward_params(encoder_output_grad(d_mu, d_log_var, f.raw_log_var))

    # --- the loss for users -------------------------------------------------------------------

    def loss(self, *data: Any, eps: Any = None, rng: Any = None) -> float:
        """Mean over the batch of -ELBO (reconstruction + beta * KL), in nats per example.

        Parameters
        ----------
        x : ndarray of shape (batch, input_dim)
            The one array of ``data``.
        eps : ndarray of shape (batch, latent_dim), optional
            Reparameterisation noise (k > 1: shape (k, batch, latent_dim)); with it the loss is
            deterministic.
        rng : numpy.random.Generator, int or None
            Draws the noise when ``eps`` is None.
        """
        terms = self.loss_terms_for_batch(self.check_data(*data, name="x"), eps=eps, rng=rng)
        return float(np.mean(terms["loss"]))

    def loss_parts(self, *data: Any, eps: Any = None, rng: Any = None) -> dict[str, Any]:
        """The loss and its terms for one batch ``x``, means over the batch (nats per example).

        Returns
        -------
        dict
            ``loss``, ``reconstruction``, ``kl`` (floats) and ``kl_per_dim`` (ndarray of shape
            (latent_dim,), the mean KL of each latent dimension: near 0 for inactive units).
        """
        batch = self.check_data(*data, name="x")
        f = self.forward(batch, self.noise_for(batch, eps, rng))
        loss, parts = self.mean_loss_terms(f)
        kl_per_dim = np.mean(kl_standard_normal_per_dim(f.mu, f.log_var), axis=0)
        return {"loss": loss, **parts, "kl_per_dim": kl_per_dim}
