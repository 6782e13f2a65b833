"""The common (stacked, undercomplete) autoencoder of the lecture's first slides.

An encoder MLP maps x to a deterministic code z = f(x) in a space of lower dimension (the
bottleneck); a decoder MLP maps it back, x_hat = g(z); training minimises a reconstruction
error. Nothing shapes the distribution of the codes: they land wherever reconstruction puts
them, often in separated, oddly shaped clusters, so a point drawn at random in latent space
rarely decodes to anything sensible. The VAE (:mod:`vae_numpy.vae`) fixes exactly that; this
class exists to be compared with it on the same data and sizes.

Losses, in nats-like units per example (summed over features, averaged over the batch):

* ``loss="bce"``: binary cross-entropy from the decoder's logits (inputs in [0, 1]);
* ``loss="mse"``: squared error ``sum_j (x_hat_j - x_j)^2`` of a linear output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import kernels
from ._validation import check_choice
from .base import BaseModel, hidden_tuple
from .functional import (
    bernoulli_nll,
    bernoulli_nll_grad,
    sigmoid,
    squared_error,
    squared_error_grad,
)

__all__ = ["Autoencoder", "AutoencoderPass", "AE_LOSSES"]

AE_LOSSES = ("bce", "mse")


@dataclass
class AutoencoderPass:
    """What one forward pass of the autoencoder computes for a batch.

    Shapes: ``(batch, input_dim)`` for ``x``, ``out`` and ``reconstruction_grad``;
    ``(batch, latent_dim)`` for ``z``; ``(batch,)`` for ``reconstruction``.
    """

    x: np.ndarray  # the batch
    z: np.ndarray  # the code f(x)
    out: np.ndarray  # decoder output g(z): logits (bce) or values (mse)
    reconstruction: np.ndarray  # the reconstruction error per example
    # d reconstruction / d logits = sigmoid(logits) - x, computed with the loss by the fast
    # twin (a "bce" pass made for backward); None otherwise
    reconstruction_grad: np.ndarray | None = None


class Autoencoder(BaseModel):
    """Deterministic autoencoder with MLP encoder and decoder.

    Parameters
    ----------
    input_dim : int
    hidden_dims : sequence of int
        Encoder hidden sizes; the decoder mirrors them.
    latent_dim : int
        Size of the code (the bottleneck).
    loss : {"bce", "mse"}
        Binary cross-entropy on logits (inputs in [0, 1]) or squared error.
    activation : str
    dtype : np.float32 or np.float64
    rng : numpy.random.Generator, int or None
    """

    kind = "Autoencoder"
    generative = False
    beta = None  # no KL term: KL warm-up leaves this model alone

    def __init__(
        self,
        input_dim: int,
        hidden_dims: Sequence[int] = (400,),
        latent_dim: int = 20,
        *,
        loss: str = "bce",
        activation: str = "relu",
        dtype: Any = np.float32,
        rng: Any = None,
    ) -> None:
        self.loss_name = check_choice(loss, "loss", AE_LOSSES)
        super().__init__(input_dim, latent_dim, activation=activation, dtype=dtype)
        self.hidden_dims = hidden_tuple(hidden_dims)
        gen = np.random.default_rng(rng)
        d = self.latent_dim
        self.networks = {
            "encoder": self.network([self.input_dim, *self.hidden_dims, d], gen),
            "decoder": self.network([d, *reversed(self.hidden_dims), self.input_dim], gen),
        }
        self._binary_targets = self.loss_name == "bce"

    def get_config(self) -> dict[str, Any]:
        return {
            "input_dim": self.input_dim,
            "hidden_dims": list(self.hidden_dims),
            "latent_dim": self.latent_dim,
            "loss": self.loss_name,
            "activation": self.activation,
            "dtype": self.dtype.name,
        }

    def encode(self, x: Any) -> np.ndarray:
        """The code z = f(x), shape (batch, latent_dim)."""
        return self.encoder.forward(self.check_x(x))

    def code(self, x: Any) -> np.ndarray:
        """The code z = f(x), shape (batch, latent_dim) (the same as :meth:`encode`)."""
        return self.encode(x)

    def decode(self, z: Any) -> np.ndarray:
        """The reconstruction g(z): probabilities (bce) or values (mse), shape (batch, input_dim)."""
        out = self.decoder.forward(self.check_z(z))
        return sigmoid(out) if self.loss_name == "bce" else out

    def reconstruct(self, x: Any) -> np.ndarray:
        """``decode(encode(x))``."""
        return self.decode(self.encode(x))

    def _reconstruction(self, out: np.ndarray, x: np.ndarray) -> np.ndarray:
        return bernoulli_nll(out, x) if self.loss_name == "bce" else squared_error(out, x)

    # --- the loss: forward, loss terms, backward (vae_numpy.base) -----------------------------

    def noise_for(self, batch: tuple[np.ndarray, ...], eps: Any = None, rng: Any = None) -> None:
        """None: the autoencoder draws no noise (``rng`` is not used; ``eps`` is refused)."""
        if eps is not None:
            raise TypeError("the Autoencoder is deterministic and takes no eps; leave it out")

    def forward(
        self,
        batch: tuple[np.ndarray, ...],
        eps: Any = None,
        *,
        beta: float | None = None,
        for_backward: bool = False,
    ) -> AutoencoderPass:
        """Encode and decode a checked batch ``(x,)``: z = f(x), out = g(z), the error per row.

        ``eps`` and ``beta`` are part of the shared signature; a deterministic model without a
        KL term has no use for them. With ``for_backward`` the "bce" loss and its gradient for
        the logits are computed together (the fast twin
        :func:`vae_numpy.kernels.bernoulli_nll_and_grad`, one tanh) and the gradient is kept
        for :meth:`backward`.
        """
        x = batch[0]
        z = self.encoder.forward(x)
        out = self.decoder.forward(z)
        reconstruction_grad = None
        if for_backward and self.loss_name == "bce":
            reconstruction, reconstruction_grad = kernels.bernoulli_nll_and_grad_spans(out, x)
        else:
            reconstruction = self._reconstruction(out, x)
        return AutoencoderPass(x, z, out, reconstruction, reconstruction_grad)

    def loss_terms(self, f: AutoencoderPass) -> dict[str, np.ndarray]:
        """Per-example ``loss`` = ``reconstruction`` (no randomness, no KL term)."""
        return {"loss": f.reconstruction, "reconstruction": f.reconstruction}

    def mean_loss_terms(self, f: AutoencoderPass) -> tuple[float, dict[str, float]]:
        """The mean reconstruction error over the batch, which is the loss."""
        mean = float(np.mean(f.reconstruction))
        return mean, {"reconstruction": mean}

    def backward(self, f: AutoencoderPass) -> None:
        """Add the gradient of the mean loss over the record's rows into :meth:`gradients`."""
        if self.loss_name == "bce":  # d/dlogits = sigmoid(logits) - x
            d_rec = f.reconstruction_grad  # computed with the loss by the fast twin
            if d_rec is None:  # a pass made without for_backward: the textbook formula
                d_rec = bernoulli_nll_grad(f.out, f.x)
        else:
            d_rec = squared_error_grad(f.out, f.x)
        d_out = d_rec / len(f.x)  # the loss is the mean over the batch
        d_z = self.decoder.backward(d_out)
        self.encoder.backward_params(d_z)
