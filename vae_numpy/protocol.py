"""The model protocol: everything the training loop, evaluation, plots and the CLI may ask of a model.

A model of this package (the autoencoder, the VAE, and every model added beside them) is used
from outside only through the names below. :mod:`vae_numpy.train`, :mod:`vae_numpy.evaluate`,
:mod:`vae_numpy.plots` and :mod:`vae_numpy.cli` never read a model's private attributes and
never ask which class it is: they ask what it *can do* (``model.generative``).

Batches
-------
A *batch* is a tuple of arrays that share their first axis (one row per example):

* ``(x,)`` for unsupervised models (``VAE``, ``Autoencoder``), ``x`` of shape
  ``(batch, input_dim)``;
* ``(x, y)`` for models trained with labels (a conditional VAE, the semi-supervised M2 model),
  ``y`` of shape ``(batch,)`` holding integer labels (``-1`` for an unlabelled row where the
  model allows it).

Data enters at the public boundary once: ``model.check_data(X)`` or ``model.check_data(X, y)``
validates the whole training set (shape, dtype, range, finiteness) and returns the batch
tuple in the model's dtype. Rows taken from a checked batch (``tuple(a[idx] for a in batch)``)
are trusted: ``loss_and_gradients_for_batch`` and ``loss_terms_for_batch`` do not check them
again, which keeps the training step free of validation passes.

Contract of one training step
-----------------------------
``loss, parts = model.loss_and_gradients_for_batch(batch, rng=gen, beta=b)``

* ``loss`` is the mean loss over the batch's rows (nats per example), a float;
* ``parts`` maps the name of each term (``"reconstruction"``, ``"kl"``, ...) to its mean over
  the batch, floats; the training loop averages them into ``history_``;
* the step's backward pass **adds** d loss / d parameter into ``model.gradients()`` for every
  key of ``model.parameters()``, as micrograd and PyTorch do: the caller zeroes them first
  with ``model.zero_grad()`` (the training loop does, before every step);
* ``rng`` (a ``numpy.random.Generator``) drives every random draw of the step (the VAE's
  reparameterisation noise); the same generator state gives the same numbers;
* ``beta`` overrides the model's KL weight for this step (KL warm-up); ``None`` means the
  model's own ``beta``. Models without a KL term ignore it (their ``beta`` is ``None``).

A saved model is read back, whatever its class, with :func:`vae_numpy.models.load_model`.

Inside, every model of the package derives from :class:`vae_numpy.base.BaseModel`, which
writes the two batch methods once on each model's own three: ``forward(batch, eps)`` returns a
record of the pass's named intermediates, ``loss_terms(record)`` its per-example terms, and
``backward(record)`` adds the gradients. ``loss_terms_for_batch`` is forward then loss terms;
``loss_and_gradients_for_batch`` is forward, loss terms, backward.

Everything else a model offers (``encode``, ``loss``, ``loss_parts``, ``fit``, ``score``,
``forward``, ``backward``...) is its own public API, for users; the machinery of the package
relies only on this protocol.

References
----------
PEP 544 - Protocols: structural subtyping (static duck typing).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "Batch",
    "Model",
    "LatentModel",
    "GenerativeModel",
    "VariationalModel",
    "DecoderModel",
]

#: One minibatch: ``(x,)`` or ``(x, y)``, arrays sharing their first axis.
Batch = tuple[np.ndarray, ...]


@runtime_checkable
class Model(Protocol):
    """What :func:`vae_numpy.train.fit` needs: parameters, gradients, a loss for a batch.

    Attributes
    ----------
    kind : str
        Name written into saved files and checkpoints (``"VAE"``, ``"Autoencoder"``, ...).
    input_dim : int
        Number of features of ``x``.
    dtype : numpy.dtype
        float32 or float64: parameters, gradients and checked data share it.
    beta : float or None
        The KL weight that KL warm-up ramps from 0 to this value; None for a model with no
        KL term (the plain autoencoder), which then gets no ``beta`` column in its history.
    history_ : dict of str to list of float
        Per-epoch records written by the training loop.
    optimizer_ : Optimizer or None
        The optimiser of the last ``fit``.
    """

    kind: str
    input_dim: int
    dtype: np.dtype
    history_: dict[str, list[float]]
    optimizer_: Any

    @property
    def beta(self) -> float | None:
        """The KL weight (None: no KL term)."""
        ...

    def parameters(self) -> dict[str, np.ndarray]:
        """The live parameter arrays under unique names; an optimiser updates them in place."""
        ...

    def gradients(self) -> dict[str, np.ndarray]:
        """The live gradient arrays, with the keys and shapes of :meth:`parameters`."""
        ...

    def zero_grad(self) -> None:
        """Set every gradient array to zero (backward passes add into them)."""
        ...

    def check_data(self, *arrays: Any, name: str = "X") -> Batch:
        """Validate training or evaluation data at the public boundary; return the batch tuple.

        ``check_data(X)`` for unsupervised models, ``check_data(X, y)`` for labelled ones.
        Raises ValueError/TypeError naming the bad argument (``name``) and the fix.
        """
        ...

    def loss_and_gradients_for_batch(
        self, batch: Batch, *, rng: np.random.Generator, beta: float | None = None
    ) -> tuple[float, dict[str, float]]:
        """One step's forward and backward pass on a checked batch; adds into :meth:`gradients`.

        Returns the mean loss (nats per example) and the mean of each of its terms.
        """
        ...

    def loss_terms_for_batch(
        self, batch: Batch, *, rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        """Per-example loss and terms on a checked batch: each of shape (batch,), nats."""
        ...

    def get_config(self) -> dict[str, Any]:
        """The constructor's keyword arguments, JSON-serialisable: ``type(m)(**m.get_config())``."""
        ...

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write parameters and configuration (``.npz``, atomic, no pickle)."""
        ...


@runtime_checkable
class LatentModel(Model, Protocol):
    """A model with a latent code: what the pictures of latent spaces need.

    Attributes
    ----------
    latent_dim : int
        Dimension of the code.
    generative : bool
        True when the model has a prior to sample from and a likelihood bound (the VAE
        family: ``sample`` works, its loss is -ELBO); False for the plain autoencoder.
    metadata : dict
        Free-form JSON facts saved with the model (e.g. ``{"image_shape": [28, 28]}``).
    """

    latent_dim: int
    generative: bool
    metadata: dict[str, Any]

    def code(self, x: Any) -> np.ndarray:
        """The code of ``x``, shape (batch, latent_dim): z = f(x), or the mean of q(z|x)."""
        ...

    def decode(self, z: Any) -> np.ndarray:
        """The mean of the decoder's output for codes ``z``, shape (batch, input_dim)."""
        ...

    def reconstruct(self, x: Any) -> np.ndarray:
        """``decode(code(x))``, shape (batch, input_dim)."""
        ...


@runtime_checkable
class GenerativeModel(LatentModel, Protocol):
    """A latent-variable model with a prior: new examples and a bound on ln p(x)."""

    def sample(self, n: int, *, rng: Any = None) -> np.ndarray:
        """``n`` new examples decoded from z ~ p(z), shape (n, input_dim)."""
        ...


@runtime_checkable
class VariationalModel(Model, Protocol):
    """A latent-variable model with a recognition model q: what :mod:`vae_numpy.evaluate` needs.

    Every model of the VAE family follows it with its own prior and conditioning: the VAE
    (prior N(0, I)), the conditional VAE (a bound on ln p(x|y), given y), the mixture-prior
    VAE (its learned mixture), M2 (y summed out, or ln p(x, y) for labelled rows).

    Attributes
    ----------
    generative : bool
        True.
    latent_dim : int
    conditional : bool
        True for a model of p(x|y): ``check_data(X, y)`` needs the labels, and the bounds are
        on ln p(x|y). False: ``check_data(X)`` (M2 also takes ``(X, y)`` with -1 for
        unlabelled rows).
    """

    generative: bool
    latent_dim: int
    conditional: bool

    def elbo_for_batch(self, batch: Batch, *, n_samples: int = 1, rng: Any = None) -> np.ndarray:
        """Per-example ELBO (beta = 1) of a checked batch, averaged over ``n_samples`` draws.

        Float64 of shape (batch,), nats. With ``n_samples=1`` it draws the noise of a training
        step from ``rng``, so that its mean is ``score`` of a beta = 1 model.
        """
        ...

    def log_importance_weights(self, batch: Batch, k: int, *, rng: Any = None) -> np.ndarray:
        """ln p(x, z_j) - ln q(z_j|x) for ``k`` draws z_j ~ q per row: float64 of shape (k, batch).

        The draws are sample-major: successive calls with k1 and k2 read ``rng``'s stream as
        one call with k1 + k2. Their log-mean-exp is the importance-weighted bound.
        """
        ...


@runtime_checkable
class DecoderModel(VariationalModel, Protocol):
    """An unconditional model whose ln p(x) can be integrated over a 2-D latent grid.

    What :func:`vae_numpy.evaluate.exact_log_likelihood` needs: the prior's log-density, the
    decoder's raw output and the distribution it parameterises.

    Attributes
    ----------
    likelihood : {"bernoulli", "gaussian"}
        The decoder's distribution: Bernoulli logits, or a Gaussian mean whose per-feature
        log-variance is the property ``decoder_log_var`` of shape (input_dim,) (a Bernoulli
        decoder has none: the property raises AttributeError, which is why it is not listed as
        a member that ``isinstance`` checks).
    """

    likelihood: str

    def prior_log_density(self, z: Any) -> np.ndarray:
        """ln p(z) summed over latent dimensions, shape (batch,), nats."""
        ...

    def decoder_output(self, z: Any) -> np.ndarray:
        """The decoder's raw output (logits or Gaussian mean), shape (batch, input_dim)."""
        ...
