"""The conditional VAE: generate a chosen kind of object (Sohn et al. 2015; Kingma et al. 2014).

The lecture's first application is "generating new objects of a chosen kind". A plain VAE
cannot be told which digit to draw; a conditional VAE is given the label y as an input to both
networks:

    recognition model  q(z|x, y) = N(mu(x, y), diag exp(log_var(x, y))),
    generative model   z ~ p(z) = N(0, I),   x ~ p(x|z, y) = Bernoulli(sigmoid(decoder(z, y))),

and maximises the conditional evidence lower bound

    ELBO(x | y) = E_q[ln p(x|z, y)] - KL(q(z|x, y) || N(0, I))   <=   ln p(x|y).

The label enters each network as a one-hot vector appended to its input. Because the label
carries the class, the code z is free to carry what the class does not: slant, stroke width,
style. Decoding one image's z under every label gives the "analogies" figure of Kingma et al.
(2014, figure 1): the same style written as each digit (:meth:`ConditionalVAE.analogies`).

The loss is the mean over the batch of -ELBO(x|y) in nats per example; its backward pass is
written out in :meth:`ConditionalVAE.backward`, beside :meth:`ConditionalVAE.forward`.
:mod:`vae_numpy.ssvae` reuses this pair (forward on per-row labels, backward with per-row
weights) for the generative half of the semi-supervised model.

References
----------
Kingma, D. P., Rezende, D. J., Mohamed, S. & Welling, M. (2014). Semi-supervised learning with
deep generative models. NeurIPS. arXiv:1406.5298.
Sohn, K., Lee, H. & Yan, X. (2015). Learning structured output representation using deep
conditional generative models. NeurIPS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._validation import check_positive_float, check_positive_int
from .base import BaseModel, encoder_output_grad, hidden_tuple, split_encoder_output
from .functional import (
    bernoulli_nll,
    bernoulli_nll_grad,
    kl_standard_normal,
    kl_standard_normal_grad,
    log_prior_ratio,
    reparameterize,
    reparameterize_backward,
    sigmoid,
)

__all__ = ["ConditionalVAE", "ConditionalPass", "check_labels", "one_hot"]


def check_labels(y: Any, n: int, n_classes: int, *, allow_unlabelled: bool = False) -> np.ndarray:
    """Validate integer labels: shape (n,), values in [0, n_classes) (or -1 when allowed).

    Returns
    -------
    ndarray of shape (n,), int64
    """
    arr = np.asarray(y)
    if arr.dtype.kind not in "iu":
        if (
            arr.dtype.kind == "f"
            and arr.size
            and np.all(np.isfinite(arr))
            and np.all(arr == np.round(arr))
        ):
            arr = arr.astype(np.int64)
        else:
            raise TypeError(
                f"y must hold integer class labels, got dtype {arr.dtype}; convert with y.astype(int)"
            )
    if arr.shape != (n,):
        raise ValueError(f"y must have shape ({n},), one label per row of x, got {arr.shape}")
    low = -1 if allow_unlabelled else 0
    if arr.size and (arr.min() < low or arr.max() >= n_classes):
        what = "-1 (unlabelled) or " if allow_unlabelled else ""
        raise ValueError(
            f"y has labels in [{arr.min()}, {arr.max()}]; expected {what}0 .. {n_classes - 1}"
        )
    return arr.astype(np.int64, copy=False)


def one_hot(y: np.ndarray, n_classes: int, dtype: Any = np.float32) -> np.ndarray:
    """One-hot rows for integer labels in [0, n_classes): shape (len(y), n_classes)."""
    out = np.zeros((len(y), n_classes), dtype=dtype)
    out[np.arange(len(y)), y] = 1
    return out


@dataclass
class ConditionalPass:
    """What one forward pass of the conditional VAE computes for its rows, as in the derivation.

    Shapes: ``(rows, input_dim)`` for ``x`` and ``logits``; ``(rows, n_classes)`` for ``y1``;
    ``(rows, latent_dim)`` for ``mu``, ``log_var``, ``raw_log_var``, ``eps``, ``z``;
    ``(rows,)`` for ``reconstruction`` and ``kl``.
    """

    x: np.ndarray  # the rows
    y1: np.ndarray  # their one-hot labels
    mu: np.ndarray  # mean of q(z|x, y)
    log_var: np.ndarray  # log-variance of q(z|x, y), clipped to LOG_VAR_RANGE
    raw_log_var: np.ndarray  # the encoder's output before the clip
    eps: np.ndarray  # the noise eps ~ N(0, I) of the reparameterisation
    z: np.ndarray  # mu + exp(log_var / 2) * eps
    logits: np.ndarray  # the decoder's output for [z | y1]
    reconstruction: np.ndarray  # -ln p(x|z, y), nats per row
    kl: np.ndarray  # KL(q(z|x, y) || N(0, I)), nats per row
    beta: float  # the KL weight of this pass


class ConditionalVAE(BaseModel):
    """Conditional VAE with MLP networks and a Bernoulli decoder.

    Parameters
    ----------
    input_dim : int
        Number of features of x (values in [0, 1]).
    n_classes : int
        Number of labels; y takes integer values 0 .. n_classes - 1.
    hidden_dims : sequence of int
        Hidden layer sizes of the encoder; the decoder mirrors them.
    latent_dim : int
        Dimension of z.
    beta : float
        Weight of the KL term (1: the conditional ELBO).
    activation : str
        Hidden activation, one of ``vae_numpy.layers.ACTIVATIONS`` (CS236 uses ``"elu"``).
    dtype : np.float32 or np.float64
    rng : numpy.random.Generator, int or None
        Initial weights.

    Attributes
    ----------
    encoder : Sequential
        [x | one_hot(y)] (input_dim + n_classes) → hidden → [mu | log_var] (2 latent_dim).
    decoder : Sequential
        [z | one_hot(y)] (latent_dim + n_classes) → hidden → logits (input_dim).
    history_ : dict of lists
        Filled by :meth:`fit`.
    """

    kind = "ConditionalVAE"
    generative = True
    labelled = True
    conditional = True

    def __init__(
        self,
        input_dim: int,
        n_classes: int,
        hidden_dims: Sequence[int] | int = (400,),
        latent_dim: int = 20,
        *,
        beta: float = 1.0,
        activation: str = "relu",
        dtype: Any = np.float32,
        rng: Any = None,
    ) -> None:
        super().__init__(input_dim, latent_dim, activation=activation, dtype=dtype)
        self.n_classes = check_positive_int(n_classes, "n_classes")
        self.beta: float = check_positive_float(beta, "beta", allow_zero=True)
        self.hidden_dims = hidden_tuple(hidden_dims)
        gen = np.random.default_rng(rng)
        c, d = self.n_classes, self.latent_dim
        self.networks = {
            "encoder": self.network([self.input_dim + c, *self.hidden_dims, 2 * d], gen),
            "decoder": self.network([d + c, *reversed(self.hidden_dims), self.input_dim], gen),
        }

    def get_config(self) -> dict[str, Any]:
        return {
            "input_dim": self.input_dim,
            "n_classes": self.n_classes,
            "hidden_dims": list(self.hidden_dims),
            "latent_dim": self.latent_dim,
            "beta": self.beta,
            "activation": self.activation,
            "dtype": self.dtype.name,
        }

    # --- checks -----------------------------------------------------------------------------

    def check_labels(self, y: Any, n: int) -> np.ndarray:
        """``y`` as an int label per row: an int broadcasts, an array must have n entries."""
        if isinstance(y, int | np.integer) and not isinstance(y, bool):
            y = np.full(n, int(y))
        return check_labels(y, n, self.n_classes)

    # --- the two networks -------------------------------------------------------------------

    def _encode(self, x: np.ndarray, y1: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        h = self.encoder.forward(np.concatenate([x, y1], axis=1))  # (batch, 2 latent)
        return split_encoder_output(h, self.latent_dim)  # mu, clipped and raw log_var

    def encode(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """Parameters of q(z|x, y).

        Parameters
        ----------
        x : ndarray of shape (batch, input_dim)
        y : int or ndarray of shape (batch,) of int

        Returns
        -------
        mu, log_var : ndarray of shape (batch, latent_dim)
        """
        x = self.check_x(x)
        y1 = one_hot(self.check_labels(y, len(x)), self.n_classes, self.dtype)
        mu, log_var, _ = self._encode(x, y1)
        return mu.copy(), log_var

    def decode(self, z: Any, y: Any) -> np.ndarray:
        """Mean of p(x|z, y) (pixel probabilities), shape (batch, input_dim).

        Parameters
        ----------
        z : ndarray of shape (batch, latent_dim)
        y : int or ndarray of shape (batch,) of int
        """
        z_a = self.check_z(z)
        y1 = one_hot(self.check_labels(y, len(z_a)), self.n_classes, self.dtype)
        return sigmoid(self.decoder.forward(np.concatenate([z_a, y1], axis=1)))

    def reconstruct(self, x: Any, y: Any) -> np.ndarray:
        """``decode(mu(x, y), y)``, shape (batch, input_dim)."""
        mu, _ = self.encode(x, y)
        return self.decode(mu, y)

    def sample(self, n: int, *, y: Any = None, rng: Any = None) -> np.ndarray:
        """Generate ``n`` examples of chosen classes: z ~ N(0, I), then the mean of p(x|z, y).

        Parameters
        ----------
        n : int
        y : None, int or ndarray of shape (n,) of int
            The class of every row (an int), one class per row, or None for classes drawn
            uniformly at random.
        rng : numpy.random.Generator, int or None

        Returns
        -------
        ndarray of shape (n, input_dim)
        """
        n = check_positive_int(n, "n")
        gen = np.random.default_rng(rng)
        labels = gen.integers(0, self.n_classes, n) if y is None else self.check_labels(y, n)
        z = gen.standard_normal((n, self.latent_dim), dtype=self.dtype)
        return self.decode(z, labels)

    def analogies(self, x: Any, y: Any) -> np.ndarray:
        """Each row's style under every label: ``decode(mu(x_i, y_i), c)`` for c = 0 .. C-1.

        Parameters
        ----------
        x : ndarray of shape (batch, input_dim)
        y : ndarray of shape (batch,) of int
            The true labels of ``x`` (the code is inferred with them).

        Returns
        -------
        ndarray of shape (batch, n_classes, input_dim)
            Entry [i, c] is image i's code decoded as class c (Kingma et al. 2014, figure 1).
        """
        mu, _ = self.encode(x, y)  # (batch, latent)
        b, c = len(mu), self.n_classes
        z = np.repeat(mu, c, axis=0)  # (batch * C, latent): each code C times
        labels = np.tile(np.arange(c), b)
        return self.decode(z, labels).reshape(b, c, self.input_dim)

    # --- the loss as a layer: forward per row, backward with per-row weights -----------------

    def forward(
        self,
        batch: tuple[np.ndarray, ...],
        eps: np.ndarray,
        *,
        beta: float | None = None,
        for_backward: bool = False,
    ) -> ConditionalPass:
        """Encode, reparameterise and decode checked rows ``(x, y)`` with the noise ``eps``.

        Inputs are trusted (already checked, in the model's dtype).

        Parameters
        ----------
        batch : tuple ``(x, y)``
            x of shape (rows, input_dim); y of shape (rows,), integer labels.
        eps : ndarray of shape (rows, latent_dim)
            Standard-normal noise of the reparameterisation z = mu + exp(log_var / 2) eps.
        beta : float, optional
            KL weight for this pass (None: the model's ``beta``).
        for_backward : bool
            Part of the shared signature; every pass keeps what :meth:`backward` reads.
        """
        x, labels = batch
        y1 = one_hot(labels, self.n_classes, self.dtype)
        mu, log_var, raw_log_var = self._encode(x, y1)
        z = reparameterize(mu, log_var, eps)  # mu + exp(log_var / 2) eps, (rows, latent)
        logits = self.decoder.forward(np.concatenate([z, y1], axis=1))  # (rows, input_dim)
        reconstruction = bernoulli_nll(logits, x)  # -ln p(x|z, y), (rows,)
        kl = kl_standard_normal(mu, log_var)  # KL(q(z|x, y) || N(0, I)), (rows,)
        beta = self.beta if beta is None else beta
        return ConditionalPass(
            x, y1, mu, log_var, raw_log_var, eps, z, logits, reconstruction, kl, beta
        )

    def loss_terms(self, f: ConditionalPass) -> dict[str, np.ndarray]:
        """Per-row ``loss`` = -ELBO(x|y) = ``reconstruction + beta * kl``, each (rows,), nats."""
        return {
            "loss": f.reconstruction + f.beta * f.kl,
            "reconstruction": f.reconstruction,
            "kl": f.kl,
        }

    def backward(self, f: ConditionalPass, weights: np.ndarray | None = None) -> None:
        """Add d(sum_i weights_i * loss_i)/dparams of the pass ``f`` into ``gradients()``.

        Parameters
        ----------
        f : ConditionalPass
            The record of the last :meth:`forward`.
        weights : ndarray of shape (rows,), optional
            dObjective/dloss_i: None for the mean (``1 / rows``), q(y|x) / batch in the
            semi-supervised model's sum over labels.
        """
        w = self.row_weights(weights, len(f.x))[:, None]  # (rows, 1)
        # reconstruction: d(-ln p(x|z, y))/dlogits = sigmoid(logits) - x
        d_logits = bernoulli_nll_grad(f.logits, f.x) * w
        d_zy = self.decoder.backward(d_logits)  # (rows, latent + C)
        d_z = d_zy[:, : self.latent_dim]
        # reparameterisation z = mu + exp(log_var / 2) eps
        d_mu, d_log_var = reparameterize_backward(d_z, f.eps, f.log_var)
        # KL(q || N(0, I)): d/dmu = mu, d/dlog_var = (exp(log_var) - 1) / 2
        kl_d_mu, kl_d_log_var = kl_standard_normal_grad(f.mu, f.log_var)
        d_mu = d_mu + f.beta * w * kl_d_mu
        d_log_var = d_log_var + f.beta * w * kl_d_log_var
        self.encoder.backward_params(encoder_output_grad(d_mu, d_log_var, f.raw_log_var))

    # --- bounds on ln p(x|y), for vae_numpy.evaluate ----------------------------------------

    def log_weights(self, x: np.ndarray, y1: np.ndarray, eps: np.ndarray) -> np.ndarray:
        """ln p(x|z_j, y) + ln N(z_j; 0, I) - ln q(z_j|x, y) for k draws per row; trusted inputs.

        Parameters
        ----------
        x : ndarray of shape (n, input_dim)
        y1 : ndarray of shape (n, n_classes)
            One-hot labels.
        eps : ndarray of shape (k, n, latent_dim)
            The noise of z_j = mu + exp(log_var / 2) eps_j.

        Returns
        -------
        ndarray of shape (k, n), the model's dtype
            Log importance weights of the bound on ln p(x|y).
        """
        k, n = eps.shape[:2]
        mu, log_var, _ = self._encode(x, y1)  # (n, latent)
        z = reparameterize(mu, log_var, eps)  # (k, n, latent)
        zy = np.concatenate([z.reshape(k * n, self.latent_dim), np.tile(y1, (k, 1))], axis=1)
        log_px_z = -bernoulli_nll(self.decoder.forward(zy), np.tile(x, (k, 1))).reshape(k, n)
        return log_px_z + log_prior_ratio(z, eps, log_var)

    def elbo_for_batch(
        self, batch: tuple[np.ndarray, ...], *, n_samples: int = 1, rng: Any = None
    ) -> np.ndarray:
        """Per-example ELBO(x|y) of a checked batch ``(x, y)`` with beta = 1, float64 (batch,).

        E_q[ln p(x|z, y)] averaged over ``n_samples`` draws (sample-major noise from ``rng``);
        KL(q(z|x, y) || N(0, I)) in closed form. A lower bound on ln p(x|y).
        """
        x, labels = batch
        n, y1 = len(x), one_hot(labels, self.n_classes, self.dtype)
        eps = self.noise(None, (n_samples, n, self.latent_dim), rng)
        mu, log_var, _ = self._encode(x, y1)
        z = reparameterize(mu, log_var, eps).reshape(n_samples * n, self.latent_dim)
        logits = self.decoder.forward(np.concatenate([z, np.tile(y1, (n_samples, 1))], axis=1))
        log_px_z = -bernoulli_nll(logits, np.tile(x, (n_samples, 1))).reshape(n_samples, n)
        rec = np.sum(log_px_z, axis=0, dtype=np.float64) / n_samples
        return rec - kl_standard_normal(mu, log_var).astype(np.float64)

    def log_importance_weights(
        self, batch: tuple[np.ndarray, ...], k: int, *, rng: Any = None
    ) -> np.ndarray:
        """Log importance weights of ``k`` draws z_j ~ q(z|x, y) per row of ``(x, y)``: (k, batch).

        Float64; their log-mean-exp bounds ln p(x|y). Noise drawn sample-major from ``rng``.
        """
        x, labels = batch
        eps = self.noise(None, (k, len(x), self.latent_dim), rng)
        return self.log_weights(x, one_hot(labels, self.n_classes, self.dtype), eps).astype(
            np.float64
        )
