"""What the plain autoencoder and the VAE share: an encoder MLP, a decoder MLP, their
parameters under unique names, input checks, ``fit``/``score`` and safe ``save``/``load``.

Subclasses define the loss: :class:`~vae_numpy.autoencoder.Autoencoder` a reconstruction error
of a deterministic code, :class:`~vae_numpy.vae.VAE` the negative ELBO.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ._validation import (
    as_batch,
    check_choice,
    check_dtype,
    check_positive_int,
    check_unit_interval,
)
from .layers import ACTIVATIONS, Sequential, mlp
from .serialization import load_npz, save_npz

__all__ = ["BaseModel"]

M = TypeVar("M", bound="BaseModel")


def _hidden_tuple(hidden_dims: Any) -> tuple[int, ...]:
    if isinstance(hidden_dims, int | np.integer) and not isinstance(hidden_dims, bool):
        hidden_dims = (hidden_dims,)
    if not isinstance(hidden_dims, Sequence) or isinstance(hidden_dims, str):
        raise TypeError(
            f"hidden_dims must be a sequence of ints such as (400,), got {hidden_dims!r}"
        )
    return tuple(check_positive_int(h, f"hidden_dims[{i}]") for i, h in enumerate(hidden_dims))


class BaseModel:
    """Encoder and decoder MLPs with named parameters (``"encoder.0.W"``, ``"decoder.2.b"``, ...).

    Subclasses set ``_binary_targets`` (inputs must lie in [0, 1]) and implement
    ``_loss_and_gradients``, ``_loss_terms`` and ``get_config``.
    """

    _kind = "model"

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
        self.hidden_dims = _hidden_tuple(hidden_dims)
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

    @property
    def kind(self) -> str:
        """Name written into saved files and checkpoints (``"VAE"``, ``"Autoencoder"``)."""
        return self._kind

    def check_data(self, *arrays: Any, name: str = "X") -> tuple[np.ndarray, ...]:
        """Validate ``X`` (batch, input_dim) once at the boundary; return ``(X,)`` in the model's dtype."""
        if len(arrays) != 1:
            raise TypeError(
                f"{type(self).__name__} is trained on X alone, got {len(arrays)} arrays;"
                " pass fit(X) without labels"
            )
        return (self._check_x(arrays[0], name),)

    def loss_and_gradients_for_batch(
        self, batch: tuple[np.ndarray, ...], *, rng: np.random.Generator, beta: float | None = None
    ) -> tuple[float, dict[str, float]]:
        """One training step on a checked batch ``(x,)``: see :mod:`vae_numpy.protocol`."""
        return self._loss_and_gradients(batch[0], rng=rng, beta=beta)

    def loss_terms_for_batch(
        self, batch: tuple[np.ndarray, ...], *, rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        """Per-example loss and terms on a checked batch ``(x,)``, each of shape (batch,)."""
        return self._loss_terms(batch[0], rng=rng)

    # --- the loss (subclasses) --------------------------------------------------------------

    # ``eps`` (fixed noise), ``rng`` and ``beta`` (KL weight override) matter to the VAE only;
    # the autoencoder accepts and ignores them so that one training loop drives both.

    def _loss_terms(
        self, x: np.ndarray, *, eps: Any = None, rng: Any = None, beta: float | None = None
    ) -> dict[str, np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def _loss_and_gradients(
        self, x: np.ndarray, *, eps: Any = None, rng: Any = None, beta: float | None = None
    ) -> tuple[float, dict[str, float]]:  # pragma: no cover
        raise NotImplementedError

    def loss(self, x: Any, *, eps: Any = None, rng: Any = None) -> float:
        """Mean loss over the batch, nats per example (see the subclass for the terms)."""
        terms = self._loss_terms(self._check_x(x), eps=eps, rng=rng)
        return float(np.mean(terms["loss"]))

    def loss_and_gradients(
        self, x: Any, *, eps: Any = None, rng: Any = None
    ) -> tuple[float, dict[str, np.ndarray]]:
        """Mean loss over the batch and its gradient for every parameter.

        Returns
        -------
        loss : float
            Nats per example.
        grads : dict of str to ndarray
            Keys of :meth:`parameters`; the model's live gradient buffers, overwritten by the
            next call (copy them to keep them).
        """
        loss, _ = self._loss_and_gradients(self._check_x(x), eps=eps, rng=rng)
        return loss, self.gradients()

    # --- training and scoring -------------------------------------------------------------

    def fit(
        self: M,
        X: Any,
        *,
        epochs: int,
        batch_size: int = 128,
        lr: float = 1e-3,
        optimizer: Any = "adam",
        rng: Any = None,
        validation_data: Any = None,
        progress: bool = True,
        **options: Any,
    ) -> M:
        """Train with minibatches; see :func:`vae_numpy.train.fit` for every option.

        Returns ``self`` with ``history_`` filled (one entry per epoch).
        """
        from .train import fit  # the training loop lives downstream of the models

        fit(
            self,
            X,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            optimizer=optimizer,
            rng=rng,
            validation_data=validation_data,
            progress=progress,
            **options,
        )
        return self

    def score(self, X: Any, *, batch_size: int = 1024, rng: Any = 0) -> float:
        """Mean log-likelihood bound per example (higher is better): minus the mean loss.

        Evaluated in batches of ``batch_size``; ``rng`` (default: seed 0, so repeatable) drives
        any sampling the loss needs.
        """
        X = self._check_x(X, "X")
        return -self.evaluate_terms(X, batch_size=batch_size, rng=rng)["loss"]

    def evaluate_terms(self, X: Any, *, batch_size: int = 1024, rng: Any = 0) -> dict[str, float]:
        """Mean of each loss term over ``X`` (e.g. loss, reconstruction, kl), nats per example."""
        X = self._check_x(X, "X")
        batch_size = check_positive_int(batch_size, "batch_size")
        gen = np.random.default_rng(rng)
        totals: dict[str, float] = {}
        for start in range(0, len(X), batch_size):
            terms = self._loss_terms(X[start : start + batch_size], rng=gen)
            for k, v in terms.items():
                if np.ndim(v) == 1:
                    totals[k] = totals.get(k, 0.0) + float(np.sum(v, dtype=np.float64))
        return {k: v / len(X) for k, v in totals.items()}

    # --- persistence ----------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:  # pragma: no cover - subclasses
        raise NotImplementedError

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write parameters and configuration to ``path`` (.npz, atomic, no pickle)."""
        meta = {
            "kind": self._kind,
            "config": self.get_config(),
            "history": self.history_,
            "metadata": self.metadata,
        }
        return save_npz(path, self.parameters(), meta)

    @classmethod
    def load(cls: type[M], path: str | os.PathLike[str]) -> M:
        """Rebuild a model saved with :meth:`save`; raises ValueError on a wrong or damaged file."""
        arrays, meta = load_npz(path, kind=cls._kind)
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
