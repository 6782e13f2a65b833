"""What the plain autoencoder and the VAE share: an encoder MLP, a decoder MLP, their
parameters under unique names, input checks, ``fit``/``score`` and safe ``save``/``load``.

Subclasses define the loss through the two batch methods of the model protocol
(:mod:`vae_numpy.protocol`): ``loss_terms_for_batch`` and ``loss_and_gradients_for_batch``.
:class:`~vae_numpy.autoencoder.Autoencoder` uses a reconstruction error of a deterministic
code, :class:`~vae_numpy.vae.VAE` the negative ELBO.

``fit`` has one owner, :func:`vae_numpy.train.fit`: the training loop knows a model only
through the protocol, and ``model.fit(X, ...)`` hands the model to it.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from . import train
from ._validation import (
    as_batch,
    check_choice,
    check_dtype,
    check_positive_int,
    check_unit_interval,
)
from .layers import ACTIVATIONS, Sequential, mlp
from .serialization import load_npz, save_npz

__all__ = ["BaseModel", "hidden_tuple"]

M = TypeVar("M", bound="BaseModel")


def hidden_tuple(hidden_dims: Any) -> tuple[int, ...]:
    """Validate hidden layer sizes: an int or a sequence of positive ints, as a tuple."""
    if isinstance(hidden_dims, int | np.integer) and not isinstance(hidden_dims, bool):
        hidden_dims = (hidden_dims,)
    if not isinstance(hidden_dims, Sequence) or isinstance(hidden_dims, str):
        raise TypeError(
            f"hidden_dims must be a sequence of ints such as (400,), got {hidden_dims!r}"
        )
    return tuple(check_positive_int(h, f"hidden_dims[{i}]") for i, h in enumerate(hidden_dims))


class BaseModel:
    """Encoder and decoder MLPs with named parameters (``"encoder.0.W"``, ``"decoder.2.b"``, ...).

    Subclasses set ``kind``, ``generative``, ``_binary_targets`` (inputs must lie in [0, 1])
    and implement ``loss_terms_for_batch``, ``loss_and_gradients_for_batch`` and ``get_config``.
    """

    #: Name written into saved files and checkpoints.
    kind = "model"
    #: True for models with a prior to sample from (see :class:`vae_numpy.protocol.LatentModel`).
    generative = False
    #: KL weight that warm-up ramps; None for a model without a KL term.
    beta: float | None = None
    #: True for a model of p(x|y): its data and its bounds need the labels y.
    conditional = False
    #: True for models trained on ``(X, y)``.
    labelled = False

    def __init__(
        self,
        input_dim: int,
        hidden_dims: Sequence[int] | int,
        latent_dim: int,
        *,
        encoder_out: int,
        activation: str,
        dtype: Any,
        rng: Any,
    ) -> None:
        self.input_dim = check_positive_int(input_dim, "input_dim")
        self.hidden_dims = hidden_tuple(hidden_dims)
        self.latent_dim = check_positive_int(latent_dim, "latent_dim")
        self.activation = check_choice(activation, "activation", tuple(ACTIVATIONS))
        self.dtype = check_dtype(dtype)
        gen = np.random.default_rng(rng)
        enc_sizes = [self.input_dim, *self.hidden_dims, encoder_out]
        dec_sizes = [self.latent_dim, *reversed(self.hidden_dims), self.input_dim]
        self.encoder: Sequential = mlp(enc_sizes, activation, rng=gen, dtype=self.dtype)
        self.decoder: Sequential = mlp(dec_sizes, activation, rng=gen, dtype=self.dtype)
        self._extra_params: dict[str, np.ndarray] = {}
        self._extra_grads: dict[str, np.ndarray] = {}
        self.history_: dict[str, list[float]] = {}
        self.optimizer_: Any = None  # set by fit
        # free-form JSON facts saved with the model, e.g. {"dataset": "digits", "image_shape": [8, 8]}
        self.metadata: dict[str, Any] = {}

    # --- parameters -----------------------------------------------------------------------

    def parameters(self) -> dict[str, np.ndarray]:
        """The live parameter arrays under unique names; an optimiser updates them in place."""
        params = {f"encoder.{k}": v for k, v in self.encoder.params.items()}
        params.update({f"decoder.{k}": v for k, v in self.decoder.params.items()})
        params.update(self._extra_params)
        return params

    def gradients(self) -> dict[str, np.ndarray]:
        """The live gradient arrays, same keys and shapes as :meth:`parameters`."""
        grads = {f"encoder.{k}": v for k, v in self.encoder.grads.items()}
        grads.update({f"decoder.{k}": v for k, v in self.decoder.grads.items()})
        grads.update(self._extra_grads)
        return grads

    def zero_grad(self) -> None:
        """Set every gradient to zero; backward passes add into them (call before each step)."""
        self.encoder.zero_grad()
        self.decoder.zero_grad()
        for g in self._extra_grads.values():
            g.fill(0)

    @property
    def n_parameters(self) -> int:
        return sum(p.size for p in self.parameters().values())

    # --- input checks ---------------------------------------------------------------------

    _binary_targets = True

    def _check_x(self, x: Any, name: str = "x") -> np.ndarray:
        """Validate a (batch, input_dim) batch and convert it to the model's dtype."""
        arr = as_batch(x, name, features=self.input_dim).astype(self.dtype, copy=False)
        if self._binary_targets:
            check_unit_interval(arr, name)
        return arr

    def _check_z(self, z: Any) -> np.ndarray:
        return as_batch(z, "z", features=self.latent_dim).astype(self.dtype, copy=False)

    # --- the model protocol (vae_numpy.protocol) ---------------------------------------------

    def check_data(self, *arrays: Any, name: str = "X") -> tuple[np.ndarray, ...]:
        """Validate ``X`` (batch, input_dim) once at the boundary; return ``(X,)`` in the model's dtype."""
        if len(arrays) != 1:
            raise TypeError(
                f"{type(self).__name__} takes X alone (no labels), got {len(arrays)} arrays"
            )
        return (self._check_x(arrays[0], name),)

    def loss_terms_for_batch(
        self, batch: tuple[np.ndarray, ...], *, rng: Any = None
    ) -> dict[str, np.ndarray]:  # pragma: no cover - subclasses
        """Per-example ``loss`` and its terms on a checked batch, each of shape (batch,)."""
        raise NotImplementedError

    def loss_and_gradients_for_batch(
        self, batch: tuple[np.ndarray, ...], *, rng: Any = None, beta: float | None = None
    ) -> tuple[float, dict[str, float]]:  # pragma: no cover - subclasses
        """One training step on a checked batch: mean loss and terms; adds into the gradients."""
        raise NotImplementedError

    # --- training and scoring -------------------------------------------------------------

    def fit(self: M, *data: Any, **options: Any) -> M:
        """Train on ``X``: ``vae_numpy.train.fit(self, X, **options)``; returns ``self``.

        The options (``epochs``, ``batch_size``, ``lr``, ``optimizer``, ``rng``,
        ``validation_data``, ``progress``, ``kl_warmup_epochs``, ``binarize``, ``checkpoint``,
        ``resume``, ``threads``) are those of :func:`vae_numpy.train.fit`, which documents
        them; ``history_`` gets one entry per epoch.
        """
        train.fit(self, *data, **options)
        return self

    def score(self, X: Any, *, batch_size: int = 1024, rng: Any = 0) -> float:
        """Mean log-likelihood bound per example (higher is better): minus the mean loss.

        Evaluated in batches of ``batch_size``; ``rng`` (default: seed 0, so repeatable) drives
        any sampling the loss needs.
        """
        return -self.evaluate_terms(X, batch_size=batch_size, rng=rng)["loss"]

    def evaluate_terms(self, X: Any, *, batch_size: int = 1024, rng: Any = 0) -> dict[str, float]:
        """Mean of each loss term over ``X`` (e.g. loss, reconstruction, kl), nats per example."""
        batch_size = check_positive_int(batch_size, "batch_size")
        return train.mean_loss_terms(self, self.check_data(X), batch_size=batch_size, rng=rng)

    # --- persistence ----------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:  # pragma: no cover - subclasses
        raise NotImplementedError

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write parameters and configuration to ``path`` (.npz, atomic, no pickle)."""
        meta = {
            "kind": self.kind,
            "config": self.get_config(),
            "history": self.history_,
            "metadata": self.metadata,
        }
        return save_npz(path, self.parameters(), meta)

    @classmethod
    def load(cls: type[M], path: str | os.PathLike[str]) -> M:
        """Rebuild a model saved with :meth:`save`; raises ValueError on a wrong or damaged file."""
        arrays, meta = load_npz(path, kind=cls.kind)
        return cls.from_saved(arrays, meta, path)

    @classmethod
    def from_saved(
        cls: type[M], arrays: dict[str, np.ndarray], meta: dict[str, Any], path: Any = "file"
    ) -> M:
        """The model held by ``(arrays, meta)`` as read from a saved file (``path`` for messages)."""
        try:
            model = cls(**meta["config"])
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(
                f"{path}: invalid configuration {meta.get('config')!r}: {exc}"
            ) from exc
        params = model.parameters()
        if set(arrays) != set(params):
            raise ValueError(
                f"{path}: parameters {sorted(arrays)} do not match the model's {sorted(params)}"
            )
        for k, p in params.items():
            if arrays[k].shape != p.shape:
                raise ValueError(
                    f"{path}: parameter {k} has shape {arrays[k].shape}, expected {p.shape}"
                )
            p[...] = arrays[k]
        model.history_ = {k: list(v) for k, v in meta.get("history", {}).items()}
        model.metadata = dict(meta.get("metadata", {}))
        return model

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


# help(model.fit) and IDEs show train.fit's options: the signature is written once, there.
setattr(BaseModel.fit, "__signature__", inspect.signature(train.fit))  # noqa: B010
