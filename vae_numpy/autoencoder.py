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
from typing import Any

import numpy as np

from . import kernels
from ._validation import check_choice
from .base import BaseModel
from .functional import bernoulli_nll, sigmoid, squared_error, squared_error_grad

__all__ = ["Autoencoder", "AE_LOSSES"]

AE_LOSSES = ("bce", "mse")


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
        super().__init__(
            input_dim,
            hidden_dims,
            latent_dim,
            encoder_out=latent_dim,
            activation=activation,
            dtype=dtype,
            rng=rng,
        )
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
        return self.encoder.forward(self._check_x(x))

    def code(self, x: Any) -> np.ndarray:
        """The code z = f(x), shape (batch, latent_dim) (the same as :meth:`encode`)."""
        return self.encode(x)

    def decode(self, z: Any) -> np.ndarray:
        """The reconstruction g(z): probabilities (bce) or values (mse), shape (batch, input_dim)."""
        out = self.decoder.forward(self._check_z(z))
        return sigmoid(out) if self.loss_name == "bce" else out

    def reconstruct(self, x: Any) -> np.ndarray:
        """``decode(encode(x))``."""
        return self.decode(self.encode(x))

    def _reconstruction(self, out: np.ndarray, x: np.ndarray) -> np.ndarray:
        return bernoulli_nll(out, x) if self.loss_name == "bce" else squared_error(out, x)

    def loss_terms_for_batch(
        self, batch: tuple[np.ndarray, ...], *, rng: Any = None
    ) -> dict[str, np.ndarray]:
        """Per-example ``loss`` = ``reconstruction`` on a checked batch ``(x,)`` (no randomness)."""
        x = batch[0]
        rec = self._reconstruction(self.decoder.forward(self.encoder.forward(x)), x)
        return {"loss": rec, "reconstruction": rec}

    def loss(self, x: Any) -> float:
        """Mean reconstruction loss over the batch, nats-like units per example."""
        return float(np.mean(self.loss_terms_for_batch(self.check_data(x, name="x"))["loss"]))

    def loss_and_gradients(self, x: Any) -> tuple[float, dict[str, np.ndarray]]:
        """Mean reconstruction loss and its gradient for every parameter (keys of :meth:`parameters`)."""
        batch = self.check_data(x, name="x")
        self.zero_grad()  # backward adds into the gradients
        loss, _ = self.loss_and_gradients_for_batch(batch)
        return loss, self.gradients()

    def loss_and_gradients_for_batch(
        self, batch: tuple[np.ndarray, ...], *, rng: Any = None, beta: float | None = None
    ) -> tuple[float, dict[str, float]]:
        """Forward and backward on a checked batch ``(x,)``; adds into :meth:`gradients`.

        ``rng`` and ``beta`` are part of the model protocol; a deterministic model without a
        KL term has no use for them.
        """
        x = batch[0]
        n = len(x)
        z = self.encoder.forward(x)
        out = self.decoder.forward(z)
        if self.loss_name == "bce":
            rec, d_rec = kernels.bernoulli_nll_and_grad(out, x)  # one tanh for both
        else:
            rec, d_rec = squared_error(out, x), squared_error_grad(out, x)
        d_out = d_rec / n  # the loss is the mean over the batch
        d_z = self.decoder.backward(d_out)
        self.encoder.backward_params(d_z)
        mean = float(np.mean(rec))
        return mean, {"reconstruction": mean}
