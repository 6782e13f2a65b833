"""The one base class of every model: named networks, parameters, checks, the loss, fit and save.

Every model of the package (the autoencoder, the VAE and the VAE family beyond the lecture)
derives from :class:`BaseModel` and works the same way, as the VAE's derivation is written:

* ``forward(batch, eps)`` returns a *record*: a dataclass naming every intermediate of one
  forward pass (the VAE's :class:`~vae_numpy.vae.ForwardPass` is the pattern);
* ``loss_terms(record)`` reads the per-example ``loss`` and its terms off the record;
* ``backward(record)`` adds d(mean loss)/d(parameter) into :meth:`BaseModel.gradients`, in the
  derivation's order, reading the record (the networks' layers keep their own inputs, as
  layers do, so a backward pass follows the forward pass that made its record).

The rest is written here once, on these three: the two batch methods of the model protocol
(:mod:`vae_numpy.protocol`): ``loss_terms_for_batch`` (forward, loss terms) and
``loss_and_gradients_for_batch`` (forward, loss terms, backward); ``loss``,
``loss_and_gradients``, ``loss_parts``, ``score``; the checks at the public boundary; the
noise of the reparameterisation; ``save`` and ``load``.

The variational models share one more piece, written here: the Gaussian encoder head. The
encoder's last layer outputs ``[mu | log_var]`` side by side; :func:`split_encoder_output`
splits it and clips log_var to ``LOG_VAR_RANGE``, and :func:`encoder_output_grad` takes the
gradients for mu and log_var back through that clip.

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

__all__ = [
    "BaseModel",
    "hidden_tuple",
    "LOG_VAR_RANGE",
    "split_encoder_output",
    "encoder_output_grad",
]

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


# --- the Gaussian encoder head of the variational models: [mu | log_var] ---------------

#: The encoder's log-variance is clipped to this range (std from 4.5e-5 to 2.2e4): beyond it
#: exp() would overflow or the KL would be dominated by rounding. The gradient is zero outside.
LOG_VAR_RANGE = (-20.0, 20.0)


def split_encoder_output(
    h: np.ndarray, latent_dim: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split the encoder's output ``[mu | log_var]`` and clip log_var to ``LOG_VAR_RANGE``.

    Parameters
    ----------
    h : ndarray of shape (batch, 2 * latent_dim)
        The encoder's last layer.
    latent_dim : int

    Returns
    -------
    mu, log_var, raw_log_var : ndarray of shape (batch, latent_dim)
        The mean, the clipped log-variance, and the log-variance before the clip (which
        :func:`encoder_output_grad` needs).
    """
    mu, raw_log_var = h[:, :latent_dim], h[:, latent_dim:]
    return mu, np.clip(raw_log_var, *LOG_VAR_RANGE), raw_log_var


def encoder_output_grad(
    d_mu: np.ndarray, d_log_var: np.ndarray, raw_log_var: np.ndarray
) -> np.ndarray:
    """The gradient for the encoder's output ``[mu | log_var]``, back through the clip.

    Parameters
    ----------
    d_mu, d_log_var : ndarray of shape (batch, latent_dim)
        Gradients for mu and for the clipped log-variance.
    raw_log_var : ndarray of shape (batch, latent_dim)
        The log-variance before the clip (from :func:`split_encoder_output`).

    Returns
    -------
    ndarray of shape (batch, 2 * latent_dim)
        ``[d_mu | d_log_var]``, with d_log_var zero where the clip was active (it passes the
        gradient only strictly inside ``LOG_VAR_RANGE``).
    """
    low, high = LOG_VAR_RANGE
    inside = (raw_log_var > low) & (raw_log_var < high)
    return np.concatenate([d_mu, d_log_var * inside], axis=1)


class BaseModel:
    """Named networks and loose parameters, the loss built on forward/backward, fit and save.

    A subclass builds its networks into ``self.networks`` (name → :class:`Sequential`;
    parameters ``"<network>.<layer>.<key>"``, e.g. ``"encoder.0.W"``) and puts the parameters
    that belong to no network into ``self.loose_params`` with their gradients in
    ``self.loose_grads`` (e.g. ``"decoder.log_var"``, ``"prior.mean"``). It sets ``kind`` and
    the flags below and writes ``forward``, ``loss_terms``, ``backward`` and ``get_config``
    (and ``noise_for`` when its noise is not one (batch, latent_dim) draw).
    """

    #: Name written into saved files and checkpoints.
    kind = "model"
    #: True for models with a prior to sample from (see :class:`vae_numpy.protocol.LatentModel`).
    generative = False
    #: KL weight that warm-up ramps; None for a model without a KL term.
    beta: float | None = None
    #: True for a model of p(x|y), whose data and bounds need the labels y.
    conditional = False
    #: True for models trained on ``(X, y)``; their ``check_labels`` validates ``y``.
    labelled = False
    #: True when x must lie in [0, 1] (a Bernoulli likelihood or a cross-entropy).
    _binary_targets = True

    def __init__(self, input_dim: int, latent_dim: int, *, activation: str, dtype: Any) -> None:
        self.input_dim = check_positive_int(input_dim, "input_dim")
        self.latent_dim = check_positive_int(latent_dim, "latent_dim")
        self.activation = check_choice(activation, "activation", tuple(ACTIVATIONS))
        self.dtype = check_dtype(dtype)
        self.networks: dict[str, Sequential] = {}
        #: Parameters that belong to no network (name → array), and their gradients.
        self.loose_params: dict[str, np.ndarray] = {}
        self.loose_grads: dict[str, np.ndarray] = {}
        self.history_: dict[str, list[float]] = {}
        self.optimizer_: Any = None  # set by fit
        # free-form JSON facts saved with the model, e.g. {"dataset": "digits", "image_shape": [8, 8]}
        self.metadata: dict[str, Any] = {}

    def network(self, sizes: Sequence[int], rng: np.random.Generator) -> Sequential:
        """``Dense → activation → ... → Dense`` (linear output) in the model's dtype."""
        return mlp(sizes, self.activation, rng=rng, dtype=self.dtype)

    @property
    def encoder(self) -> Sequential:
        """The recognition network, ``networks["encoder"]``."""
        return self.networks["encoder"]

    @property
    def decoder(self) -> Sequential:
        """The generative network, ``networks["decoder"]``."""
        return self.networks["decoder"]

    # --- parameters -----------------------------------------------------------------------

    def parameters(self) -> dict[str, np.ndarray]:
        """The live parameter arrays under unique names; an optimiser updates them in place."""
        params = {f"{n}.{k}": v for n, net in self.networks.items() for k, v in net.params.items()}
        params.update(self.loose_params)
        return params

    def gradients(self) -> dict[str, np.ndarray]:
        """The live gradient arrays, same keys and shapes as :meth:`parameters`."""
        grads = {f"{n}.{k}": v for n, net in self.networks.items() for k, v in net.grads.items()}
        grads.update(self.loose_grads)
        return grads

    def zero_grad(self) -> None:
        """Set every gradient to zero; backward passes add into them (call before each step)."""
        for net in self.networks.values():
            net.zero_grad()
        for g in self.loose_grads.values():
            g.fill(0)

    @property
    def n_parameters(self) -> int:
        """The number of scalar parameters."""
        return sum(p.size for p in self.parameters().values())

    # --- checks at the public boundary (vae_numpy.protocol) ----------------------------------

    def check_x(self, x: Any, name: str = "x") -> np.ndarray:
        """Validate a (batch, input_dim) batch (values in [0, 1] where the loss needs them)."""
        arr = as_batch(x, name, features=self.input_dim).astype(self.dtype, copy=False)
        if self._binary_targets:
            check_unit_interval(arr, name)
        return arr

    def check_z(self, z: Any) -> np.ndarray:
        """Validate codes of shape (batch, latent_dim), in the model's dtype."""
        return as_batch(z, "z", features=self.latent_dim).astype(self.dtype, copy=False)

    def check_labels(self, y: Any, n: int) -> np.ndarray:  # pragma: no cover - labelled models
        """Validate the labels of n rows; returns them as int64 (labelled models)."""
        raise NotImplementedError

    def check_data(self, *arrays: Any, name: str = "X") -> tuple[np.ndarray, ...]:
        """Validate ``X`` (or ``X, y``) once at the public boundary; return the batch tuple."""
        wanted = "(X, y), the data and their labels" if self.labelled else "X alone (no labels)"
        if len(arrays) != (2 if self.labelled else 1):
            raise TypeError(f"{self.kind} takes {wanted}, got {len(arrays)} array(s)")
        x = self.check_x(arrays[0], name)
        return (x, self.check_labels(arrays[1], len(x))) if self.labelled else (x,)

    def noise(
        self, eps: Any, shape: tuple[int, ...], rng: Any, axes: str = "(batch, latent_dim)"
    ) -> np.ndarray:
        """``eps`` checked to ``shape`` (fixed noise), or fresh N(0, 1) noise from ``rng``.

        ``axes`` names the dimensions of ``shape`` in the message of a wrong ``eps``.
        """
        if eps is None:
            return np.random.default_rng(rng).standard_normal(shape, dtype=self.dtype)
        arr = np.asarray(eps)
        if arr.shape != shape:
            raise ValueError(f"eps must have shape {axes} = {shape}, got {arr.shape}")
        return arr.astype(self.dtype, copy=False)

    def noise_for(self, batch: tuple[np.ndarray, ...], eps: Any = None, rng: Any = None) -> Any:
        """The noise of one forward pass on ``batch``: ``eps`` checked, or drawn from ``rng``.

        One standard-normal draw per row and latent dimension, shape (batch, latent_dim).
        """
        return self.noise(eps, (len(batch[0]), self.latent_dim), rng)

    # --- the loss: each model writes forward, loss_terms and backward -------------------------

    def forward(
        self,
        batch: tuple[np.ndarray, ...],
        eps: Any,
        *,
        beta: float | None = None,
        for_backward: bool = False,
    ) -> Any:  # pragma: no cover - subclasses
        """The record of one forward pass on a checked batch with the noise ``eps``.

        ``beta`` overrides the KL weight for this pass (None: the model's); with
        ``for_backward`` the pass also keeps what :meth:`backward` reads that a fast kernel
        computes together with the loss.
        """
        raise NotImplementedError

    def loss_terms(self, record: Any) -> dict[str, np.ndarray]:  # pragma: no cover - subclasses
        """Per-example ``loss`` and its terms from a record, each of shape (batch,), nats."""
        raise NotImplementedError

    def backward(self, record: Any) -> None:  # pragma: no cover - subclasses
        """Add d(mean loss over the record's rows)/d(parameter) into :meth:`gradients`."""
        raise NotImplementedError

    def mean_loss_terms(self, record: Any) -> tuple[float, dict[str, float]]:
        """The mean over the batch of the loss and of each term (nats per example, in float64)."""
        means = {k: float(np.mean(v, dtype=np.float64)) for k, v in self.loss_terms(record).items()}
        return means.pop("loss"), means

    def row_weights(self, weights: np.ndarray | None, n: int) -> np.ndarray:
        """dObjective/dloss_i of each of ``n`` rows: ``weights``, or 1/n for the mean (None)."""
        if weights is None:
            return np.full(n, 1.0 / n, dtype=self.dtype)  # d(mean)/d(loss_i) = 1/n
        return weights.astype(self.dtype, copy=False)

    # --- the model protocol (vae_numpy.protocol) ---------------------------------------------

    def loss_terms_for_batch(
        self, batch: tuple[np.ndarray, ...], *, rng: Any = None, eps: Any = None
    ) -> dict[str, np.ndarray]:
        """Per-example loss and terms on a checked batch, each of shape (batch,), nats.

        ``eps`` fixes the noise (the shape of :meth:`noise_for`); otherwise ``rng`` draws it.
        """
        return self.loss_terms(self.forward(batch, self.noise_for(batch, eps, rng)))

    def loss_and_gradients_for_batch(
        self,
        batch: tuple[np.ndarray, ...],
        *,
        rng: Any = None,
        beta: float | None = None,
        eps: Any = None,
    ) -> tuple[float, dict[str, float]]:
        """One step on a checked batch: forward, loss terms, backward (adds into :meth:`gradients`).

        ``beta`` overrides the model's KL weight for this call (KL warm-up). Returns the mean
        loss and the mean of each of its terms.
        """
        record = self.forward(batch, self.noise_for(batch, eps, rng), beta=beta, for_backward=True)
        loss, parts = self.mean_loss_terms(record)
        self.backward(record)
        return loss, parts

    # --- the loss for users: data checked here ------------------------------------------------

    def loss_parts(self, *data: Any, eps: Any = None, rng: Any = None) -> dict[str, Any]:
        """The mean loss and the mean of each of its terms over the batch (nats per example).

        ``data`` is ``(x,)`` or ``(x, y)`` as the model trains on; ``eps`` fixes the noise.
        """
        batch = self.check_data(*data, name="x")
        loss, parts = self.mean_loss_terms(self.forward(batch, self.noise_for(batch, eps, rng)))
        return {"loss": loss, **parts}

    def loss(self, *data: Any, eps: Any = None, rng: Any = None) -> float:
        """Mean loss over the batch ``data`` (``x``, or ``x, y``), nats per example.

        With ``eps`` (the model's noise shape) the loss is deterministic; otherwise ``rng``
        draws the noise.
        """
        return float(self.loss_parts(*data, eps=eps, rng=rng)["loss"])

    def loss_and_gradients(
        self, *data: Any, eps: Any = None, rng: Any = None
    ) -> tuple[float, dict[str, np.ndarray]]:
        """Mean loss over the batch ``data`` and its gradient for every parameter (manual backprop).

        The same noise ``eps`` is used in the forward and backward pass; see :meth:`loss`.

        Returns
        -------
        loss : float
            Nats per example.
        grads : dict of str to ndarray
            Keys of :meth:`parameters`; the model's live gradient buffers, which this call
            zeroes (``zero_grad``) before its backward pass adds into them: the next call
            replaces them (copy them to keep them).
        """
        batch = self.check_data(*data, name="x")
        self.zero_grad()
        loss, _ = self.loss_and_gradients_for_batch(batch, eps=eps, rng=rng)
        return loss, self.gradients()

    # --- training and scoring -------------------------------------------------------------

    def fit(self: M, *data: Any, **options: Any) -> M:
        """Train on ``X`` (or ``X, y``) with :func:`vae_numpy.train.fit`; returns ``self``.

        The options (``epochs``, ``batch_size``, ``lr``, ``optimizer``, ``rng``,
        ``validation_data``, ``progress``, ``kl_warmup_epochs``, ``binarize``, ``checkpoint``,
        ``resume``, ``threads``) are those of :func:`vae_numpy.train.fit`, which documents
        them; ``history_`` gets one entry per epoch.
        """
        train.fit(self, *data, **options)
        return self

    def evaluate_terms(self, *data: Any, batch_size: int = 1024, rng: Any = 0) -> dict[str, float]:
        """Mean of each loss term over the data set (``X`` or ``X, y``), nats per example."""
        batch_size = check_positive_int(batch_size, "batch_size")
        return train.mean_loss_terms(self, self.check_data(*data), batch_size=batch_size, rng=rng)

    def score(self, *data: Any, batch_size: int = 1024, rng: Any = 0) -> float:
        """Mean log-likelihood bound per example (higher is better): minus the mean loss.

        Evaluated in batches of ``batch_size``; ``rng`` (default: seed 0, so repeatable) drives
        any sampling the loss needs.
        """
        return -self.evaluate_terms(*data, batch_size=batch_size, rng=rng)["loss"]

    # --- persistence ----------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:  # pragma: no cover - subclasses
        """The constructor's keyword arguments, JSON-serialisable."""
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
