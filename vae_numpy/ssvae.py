"""Semi-supervised learning with a deep generative model: M2 of Kingma et al. (2014).

The lecture names semi-supervised learning as an application: a few labelled examples and many
unlabelled ones. M2 treats the label y as a second latent variable, observed for some rows:

    generative model   y ~ Cat(1/C),  z ~ N(0, I),  x ~ p(x|y, z) = Bernoulli(decoder(z, y)),
    recognition model  q(y|x) = Cat(softmax(classifier(x))),  q(z|x, y) = N(mu(x, y), exp(log_var)).

For a labelled pair the bound on ln p(x, y) is the conditional VAE's with the prior of y added,

    -L(x, y) = E_q(z|x,y)[ln p(x|y, z)] - KL(q(z|x, y) || N(0, I)) + ln p(y)  <=  ln p(x, y),

and for an unlabelled x the label is summed out under the classifier,

    -U(x) = sum_y q(y|x) (-L(x, y)) + H(q(y|x))  <=  ln p(x).

The bound alone never trains the classifier on the labelled rows, so they also pay a weighted
classification loss: a labelled row costs ``L(x, y) + alpha * (-ln q(y|x))``, an unlabelled
row ``U(x) = sum_y q(y|x) [L(x, y) + ln q(y|x)]``. The loss of a batch is the mean of these
costs. :meth:`SemiSupervisedVAE.fit` trains through :func:`vae_numpy.train.fit` on
:class:`~vae_numpy.samplers.BalancedBatches` (as many labelled rows as unlabelled ones in every step), so that a
few labels are not drowned by many unlabelled rows.

U needs L(x, y) for every y: the unlabelled rows are repeated once per class through the
conditional VAE's networks (:class:`vae_numpy.cvae.ConditionalVAE`, reused as a layer with
per-row weights q(y|x)).

Gradient of U for the classifier logits a: with g_y = L(x, y) + ln q(y|x) (the +1 from
d(q ln q)/dq cancels because q sums to one), dU/da = q ⊙ (g - sum_y q_y g_y).

References
----------
Kingma, D. P., Rezende, D. J., Mohamed, S. & Welling, M. (2014). Semi-supervised learning with
deep generative models. NeurIPS. arXiv:1406.5298.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import kernels, train
from ._validation import check_positive_float, check_positive_int
from .base import BaseModel, hidden_tuple
from .cvae import ConditionalPass, ConditionalVAE, check_labels, one_hot
from .functional import log_softmax, softmax
from .layers import Sequential
from .samplers import BalancedBatches

__all__ = ["SemiSupervisedVAE", "SemiSupervisedPass", "UNLABELLED"]

#: The label that marks an unlabelled row in ``y``.
UNLABELLED = -1


@dataclass
class SemiSupervisedPass:
    """What one forward pass of M2 computes for a batch of labelled and unlabelled rows.

    Shapes: ``(batch, input_dim)`` for ``x``; ``(batch,)`` for ``y``, ``bound`` and
    ``classification``; ``(batch, n_classes)`` for ``log_q`` and ``q``; ``(n_u, n_classes)``
    for ``g``, with n_u unlabelled rows.
    """

    x: np.ndarray  # the rows
    y: np.ndarray  # their labels, -1 for unlabelled rows
    labelled_rows: np.ndarray  # indices of the labelled rows
    unlabelled_rows: np.ndarray  # indices of the unlabelled rows
    log_q: np.ndarray  # ln q(y|x) for every class
    q: np.ndarray  # q(y|x)
    rows: ConditionalPass  # the conditional VAE's: labelled rows, then unlabelled ones C times
    g: np.ndarray  # L(x, y) + ln q(y|x) of each unlabelled row and class
    bound: np.ndarray  # L(x, y) for labelled rows, U(x) for unlabelled ones, nats
    classification: np.ndarray  # -ln q(y|x) for labelled rows, 0 for unlabelled ones


class SemiSupervisedVAE(BaseModel):
    """M2: a classifier q(y|x) and a conditional VAE trained on labelled and unlabelled rows.

    Parameters
    ----------
    input_dim : int
        Number of features of x (values in [0, 1]; Bernoulli decoder).
    n_classes : int
        Number of classes C.
    hidden_dims : sequence of int
        Hidden layer sizes of the classifier and the encoder; the decoder mirrors them.
    latent_dim : int
        Dimension of z.
    alpha : float
        Weight of the classification loss -ln q(y|x) on labelled rows. The default, 50, is a
        constant on purpose. Kingma et al. (2014) weight the labelled rows' mean -ln q(y|x)
        by alpha = 0.1 N against a bound *summed* over the N rows, so their weight grows
        with the data to keep the two in proportion; here every loss is a *mean* per row
        over balanced batches (:class:`~vae_numpy.samplers.BalancedBatches`), the data size cancels, and what
        the weight must match is the bound of one row, tens of nats for the 8x8 digits and
        about 100 for MNIST. CS236 uses 100 on MNIST; on the digits with 10 labels per
        class (150 epochs) 10 and 50 both reach 0.93 test accuracy and 1 reaches 0.92,
        against 0.91 for a logistic regression on the labels alone; 50 sits between the
        digits' best and CS236's choice.
    activation : str
        Hidden activation, one of ``vae_numpy.layers.ACTIVATIONS`` (CS236 uses ``"elu"``).
    dtype : np.float32 or np.float64
    rng : numpy.random.Generator, int or None
        Initial weights.

    Attributes
    ----------
    classifier : Sequential
        x → hidden → C logits of q(y|x).
    cvae : ConditionalVAE
        q(z|x, y) and p(x|y, z); its networks are this model's ``encoder`` and ``decoder``.
    """

    kind = "SemiSupervisedVAE"
    generative = True
    labelled = True

    def __init__(
        self,
        input_dim: int,
        n_classes: int,
        hidden_dims: Sequence[int] | int = (400,),
        latent_dim: int = 20,
        *,
        alpha: float = 50.0,
        activation: str = "relu",
        dtype: Any = np.float32,
        rng: Any = None,
    ) -> None:
        super().__init__(input_dim, latent_dim, activation=activation, dtype=dtype)
        self.n_classes = check_positive_int(n_classes, "n_classes", minimum=2)
        self.hidden_dims = hidden_tuple(hidden_dims)
        self.alpha = check_positive_float(alpha, "alpha", allow_zero=True)
        gen = np.random.default_rng(rng)
        classifier = self.network([self.input_dim, *self.hidden_dims, self.n_classes], gen)
        self.cvae = ConditionalVAE(
            input_dim,
            n_classes,
            self.hidden_dims,
            latent_dim,
            activation=activation,
            dtype=dtype,
            rng=gen,
        )
        self.networks = {
            "classifier": classifier,
            "encoder": self.cvae.encoder,
            "decoder": self.cvae.decoder,
        }

    @property
    def classifier(self) -> Sequential:
        """The network of q(y|x), x → hidden → C logits (``networks["classifier"]``)."""
        return self.networks["classifier"]

    def get_config(self) -> dict[str, Any]:
        return {
            "input_dim": self.input_dim,
            "n_classes": self.n_classes,
            "hidden_dims": list(self.hidden_dims),
            "latent_dim": self.latent_dim,
            "alpha": self.alpha,
            "activation": self.activation,
            "dtype": self.dtype.name,
        }

    # --- the classifier ----------------------------------------------------------------------

    def predict_proba(self, x: Any) -> np.ndarray:
        """q(y|x) for every class, shape (batch, n_classes); rows sum to 1."""
        return softmax(self.classifier.forward(self.check_x(x)), axis=1)

    def predict(self, x: Any) -> np.ndarray:
        """The most probable class under q(y|x), shape (batch,) of int."""
        return np.argmax(self.predict_proba(x), axis=1)

    # --- the generative half -------------------------------------------------------------------

    def encode(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """Parameters of q(z|x, y); see :meth:`vae_numpy.cvae.ConditionalVAE.encode`."""
        return self.cvae.encode(x, y)

    def decode(self, z: Any, y: Any) -> np.ndarray:
        """Mean of p(x|y, z), shape (batch, input_dim)."""
        return self.cvae.decode(z, y)

    def sample(self, n: int, *, y: Any = None, rng: Any = None) -> np.ndarray:
        """``n`` examples of chosen (or uniformly drawn) classes; see ConditionalVAE.sample."""
        return self.cvae.sample(n, y=y, rng=rng)

    # --- the loss as a layer ---------------------------------------------------------------------

    def check_labels(self, y: Any, n: int) -> np.ndarray:
        """Labels 0 .. C-1, or -1 for an unlabelled row; shape (n,), int64."""
        return check_labels(y, n, self.n_classes, allow_unlabelled=True)

    def check_data(self, *arrays: Any, name: str = "X") -> tuple[np.ndarray, ...]:
        """``(X, y)`` checked (``y = -1`` for unlabelled rows); ``X`` alone: every row unlabelled.

        With ``X`` alone the model's bounds are on ln p(x), the label summed out (how
        :mod:`vae_numpy.evaluate` scores M2 on unlabelled data).
        """
        if len(arrays) == 1:
            x = self.check_x(arrays[0], name)
            return x, np.full(len(x), UNLABELLED, dtype=np.int64)
        return super().check_data(*arrays, name=name)

    def noise_for(self, batch: tuple[np.ndarray, ...], eps: Any = None, rng: Any = None) -> Any:
        """The noise of one forward pass: ``eps`` checked, or drawn from ``rng``.

        Shape (batch, n_classes, latent_dim): one draw for each row and each candidate label.
        """
        shape = (len(batch[0]), self.n_classes, self.latent_dim)
        return self.noise(eps, shape, rng, "(batch, n_classes, latent_dim)")

    def forward(
        self,
        batch: tuple[np.ndarray, ...],
        eps: np.ndarray,
        *,
        beta: float | None = None,
        for_backward: bool = False,
    ) -> SemiSupervisedPass:
        """Per-row bound (labelled: L; unlabelled: U) and classification loss with fixed noise.

        Inputs are trusted (checked, in the model's dtype).

        Parameters
        ----------
        batch : tuple ``(x, y)``
            x of shape (batch, input_dim); y of shape (batch,) of int, ``-1`` for unlabelled
            rows.
        eps : ndarray of shape (batch, n_classes, latent_dim)
            Noise of q(z|x, y) for each row and each candidate label (a labelled row uses the
            entry of its own label).
        beta, for_backward
            Part of the shared signature: M2 has no separate KL weight, and every pass keeps
            what :meth:`backward` reads.
        """
        x, y = batch
        n, C = len(x), self.n_classes
        labelled = y >= 0
        li, ui = np.flatnonzero(labelled), np.flatnonzero(~labelled)
        logits = self.classifier.forward(x)  # (batch, C)
        log_q = log_softmax(logits, axis=1)  # ln q(y|x)
        q = np.exp(log_q)
        # rows through the conditional VAE: labelled (x_i, y_i), then unlabelled (x_i, c) for all c
        rows_x = np.concatenate([x[li], np.repeat(x[ui], C, axis=0)])
        rows_y = np.concatenate([y[li], np.tile(np.arange(C), len(ui))])
        rows_eps = np.concatenate([eps[li, y[li]], eps[ui].reshape(len(ui) * C, self.latent_dim)])
        rows = self.cvae.forward((rows_x, rows_y), rows_eps)
        L = self.cvae.loss_terms(rows)["loss"] + math.log(C)  # -ln p(y) = ln C, uniform prior
        L_lab, L_unl = L[: len(li)], L[len(li) :].reshape(len(ui), C)  # (n_l,), (n_u, C)
        ce = np.zeros(n, dtype=self.dtype)
        ce[li] = -log_q[li, y[li]]
        bound = np.empty(n, dtype=self.dtype)
        bound[li] = L_lab
        g = L_unl + log_q[ui]  # (n_u, C): L(x, y) + ln q(y|x)
        bound[ui] = np.sum(q[ui] * g, axis=1)  # U(x) = sum_y q (L + ln q)
        return SemiSupervisedPass(x, y, li, ui, log_q, q, rows, g, bound, ce)

    def loss_terms(self, f: SemiSupervisedPass) -> dict[str, np.ndarray]:
        """``loss`` (batch,): the cost of each row, ``bound + alpha * classification``;
        ``bound``: -ln p(x, y) bound L for labelled rows and U for unlabelled ones;
        ``classification``: -ln q(y|x) for labelled rows, 0 for unlabelled ones."""
        return {
            "loss": f.bound + self.alpha * f.classification,
            "bound": f.bound,
            "classification": f.classification,
        }

    def backward(self, f: SemiSupervisedPass, weights: np.ndarray | None = None) -> None:
        """Add d(sum_i weights_i * loss_i)/dparams of the pass ``f`` into ``gradients()``.

        ``weights`` of shape (batch,): dObjective/dloss_i; None for the mean (1 / batch).
        """
        li, ui, g = f.labelled_rows, f.unlabelled_rows, f.g
        # q(y|x) of the classes a confident classifier rules out underflows to subnormal
        # numbers, which would scale whole rows of the gradients below and slow every matrix
        # product they reach by up to ~160x; below 1e-20 of the row's largest they cannot
        # change any float32 sum, so they become exactly 0 (kernels.flush_negligible).
        q = kernels.flush_negligible(f.q, axis=1)
        w = self.row_weights(weights, len(f.y))
        # the conditional VAE's rows: weight w_i for labelled rows, w_i q(y|x_i) for the others
        row_w = np.concatenate([w[li], (w[ui, None] * q[ui]).ravel()])
        self.cvae.backward(f.rows, row_w)
        # classifier logits a: labelled alpha (q - onehot(y)); unlabelled q ⊙ (g - sum_y q g)
        d_a = np.zeros_like(q)
        d_a[li] = self.alpha * (q[li] - one_hot(f.y[li], self.n_classes, self.dtype))
        d_a[ui] = q[ui] * (g - np.sum(q[ui] * g, axis=1, keepdims=True))
        self.classifier.backward_params(d_a * w[:, None])

    # --- bounds on ln p(x) (or ln p(x, y) for labelled rows), for vae_numpy.evaluate ----------

    def elbo_for_batch(
        self, batch: tuple[np.ndarray, ...], *, n_samples: int = 1, rng: Any = None
    ) -> np.ndarray:
        """Per-row bound of a checked ``(x, y)``: -U(x) (y summed out) or -L(x, y) if labelled.

        Each of ``n_samples`` draws takes the noise of one training step, shape (batch,
        n_classes, latent_dim), from ``rng``; the bounds are averaged. Float64 of shape (batch,).
        The classification term (``alpha``) is not part of a bound and is left out.
        """
        gen = np.random.default_rng(rng)
        x, labels = batch
        total = np.zeros(len(x), dtype=np.float64)
        for _ in range(n_samples):
            total -= self.loss_terms_for_batch(batch, rng=gen)["bound"]
        return total / n_samples

    def log_importance_weights(
        self, batch: tuple[np.ndarray, ...], k: int, *, rng: Any = None
    ) -> np.ndarray:
        """Log importance weights of ``k`` joint draws (y_j, z_j) per row of ``(x, y)``: (k, batch).

        An unlabelled row draws y_j ~ q(y|x) and z_j ~ q(z|x, y_j), and

            ln w_j = ln p(x|y_j, z_j) + ln N(z_j; 0, I) + ln p(y_j)
                     - ln q(z_j|x, y_j) - ln q(y_j|x),

        whose log-mean-exp bounds ln p(x) (its expectation at k = 1 is -U(x)); a labelled row
        keeps its y (no ln q(y|x) term) and bounds ln p(x, y). Sample-major draws from ``rng``
        (for each j: a uniform per row for y_j, then the row's noise), so successive calls read
        the stream as one call with their total k. Float64.
        """
        gen = np.random.default_rng(rng)
        x, labels = batch
        n, C, d = len(x), self.n_classes, self.latent_dim
        log_q = log_softmax(self.classifier.forward(x), axis=1)  # (n, C): ln q(y|x)
        cdf = np.cumsum(np.exp(log_q.astype(np.float64)), axis=1)  # (n, C)
        unlabelled = labels < 0
        y = np.empty((k, n), dtype=np.int64)
        eps = np.empty((k, n, d), dtype=self.dtype)
        for j in range(k):  # y_j ~ q(y|x) by inverting the CDF, then the noise of z_j
            drawn = np.sum(gen.random((n, 1)) * cdf[:, -1:] > cdf, axis=1)
            y[j] = np.where(unlabelled, np.minimum(drawn, C - 1), labels)
            eps[j] = gen.standard_normal((n, d), dtype=self.dtype)
        rows_y1 = one_hot(y.ravel(), C, self.dtype)  # (k * n, C), sample-major
        log_w = self.cvae.log_weights(np.tile(x, (k, 1)), rows_y1, eps.reshape(1, k * n, d))
        log_w = log_w.reshape(k, n).astype(np.float64) - math.log(C)  # + ln p(y) = -ln C
        log_q_drawn = np.take_along_axis(log_q.astype(np.float64), y.T, axis=1).T  # (k, n)
        return log_w - np.where(unlabelled, log_q_drawn, 0.0)

    def unlabelled_bound(self, x: Any, *, eps: Any = None, rng: Any = None) -> np.ndarray:
        """U(x) per row: the negative bound on ln p(x) with the label summed out, nats."""
        x_a = self.check_x(x)
        batch = (x_a, np.full(len(x_a), UNLABELLED))
        terms = self.loss_terms_for_batch(batch, eps=eps, rng=rng)
        return terms["bound"].astype(np.float64)

    # --- training ----------------------------------------------------------------------------------

    def fit(self, *data: Any, **options: Any) -> SemiSupervisedVAE:
        """Train on ``X, y``: labels ``0 .. C-1``, or ``-1`` for an unlabelled row.

        :func:`vae_numpy.train.fit` runs the training, with every option it documents
        (``epochs``, ``batch_size``, ``lr``, ``rng``, ``validation_data``, ``progress``,
        ``binarize``, ``checkpoint``, ``resume``, ``threads``, ...). When ``y`` holds both
        labelled and unlabelled rows, its minibatches are :class:`~vae_numpy.samplers.BalancedBatches`: each step
        takes ``batch_size`` unlabelled rows and as many labelled ones, so that a handful of
        labels is not drowned by thousands of unlabelled rows (an epoch is a pass over the
        unlabelled rows). Give ``sampler=`` to choose otherwise, e.g.
        ``vae_numpy.samplers.ShuffledMinibatches()`` for minibatches of all rows mixed.

        Parameters
        ----------
        *data : ``X`` of shape (n, input_dim) and ``y`` of shape (n,) of int
        **options
            As :func:`vae_numpy.train.fit`.

        Returns
        -------
        self
        """
        if "sampler" not in options and len(data) == 2:
            data = self.check_data(*data)
            labelled = data[1] >= 0
            if labelled.any() and not labelled.all():
                options["sampler"] = BalancedBatches()
        return super().fit(*data, **options)


# help(model.fit) and IDEs show train.fit's options, as for every model (vae_numpy.base)
setattr(SemiSupervisedVAE.fit, "__signature__", inspect.signature(train.fit))  # noqa: B010
