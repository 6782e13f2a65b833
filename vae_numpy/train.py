"""The training loop: one epoch as the lecture writes it, and ``fit`` around it.

Read :func:`train_epoch` first. One epoch is: shuffle the rows, cut them into minibatches, and
for each minibatch compute the loss and its gradients, then let the optimiser take a step::

    for batch in shuffled_batches(data, batch_size, rng):
        model.zero_grad()  # backward adds into the gradients
        loss, parts = model.loss_and_gradients_for_batch(batch, rng=rng, beta=...)
        optimizer.step(model.gradients())

The model is used only through :mod:`vae_numpy.protocol`, so this loop trains the
autoencoder, the VAE and every model added beside them, with or without labels. Which rows
make up each minibatch is the job of a sampler (:mod:`vae_numpy.samplers`): by default
:class:`~vae_numpy.samplers.ShuffledMinibatches` (the loop above); a model that needs special
batches passes its own (M2's balanced labelled/unlabelled batches,
:class:`~vae_numpy.samplers.BalancedBatches`).

:func:`fit` (also reachable as ``model.fit(X, ...)``) wraps that loop with what a real run
needs, each piece in one named helper:

* KL warm-up: :func:`warmup_beta` ramps the KL weight from 0 to ``model.beta`` step by step;
* threads: a :class:`~vae_numpy.threads.ThreadPolicy` around the epochs times the steps and
  picks the number of BLAS threads (``threads="auto"``), or uses the number given;
* progress: a tqdm bar, updated after every step;
* Ctrl-C: :func:`~vae_numpy.checkpoints.deferred_sigint` turns SIGINT into a flag checked between steps, so an update
  is never torn; :class:`~vae_numpy.checkpoints.TrainingInterrupted` is raised with the model at that step;
* divergence: a non-finite loss restores the state of the start of the epoch and raises
  ``FloatingPointError`` naming the epoch and batch;
* history: one row per epoch in ``model.history_`` (mean loss and parts, the KL weight, the
  validation terms, a classifier's validation accuracy, the seconds taken);
* checkpoints: :func:`~vae_numpy.checkpoints.save_checkpoint` after every epoch (model, optimiser state, random
  state, history; atomic, no pickle); ``resume=True`` continues with the same result as an
  uninterrupted run.

Reproducible: the same ``rng`` seed gives bit-identical parameters and history.

No plotting here: figures are drawn from ``history_`` by :mod:`vae_numpy.plots`.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ._validation import check_positive_float, check_positive_int
from .checkpoints import (
    TrainingInterrupted,
    checkpoint_path,
    deferred_sigint,
    resume_training,
    save_checkpoint,
)
from .data import binarize as binarize_rows
from .optim import Optimizer, make_optimizer
from .protocol import Batch, Model
from .samplers import BatchSampler, ShuffledMinibatches
from .threads import ThreadPolicy

__all__ = [
    "fit",
    "train_epoch",
    "mean_loss_terms",
    "warmup_beta",
    "NonFiniteLoss",
]

# --- one epoch ------------------------------------------------------------------------------


def train_epoch(
    model: Model,
    optimizer: Optimizer,
    data: Batch,
    *,
    batch_size: int,
    rng: np.random.Generator,
    beta: Callable[[int], float | None] = lambda step: None,
    transform: Callable[[Batch, np.random.Generator], Batch] | None = None,
    after_step: Callable[[int], None] | None = None,
    sampler: BatchSampler | None = None,
) -> dict[str, float]:
    """One pass over ``data``: shuffle, minibatch, zero the gradients, loss and gradients, step.

    Parameters
    ----------
    model : Model
        Anything that follows :class:`vae_numpy.protocol.Model`.
    optimizer : Optimizer
        Bound to ``model.parameters()``.
    data : tuple of ndarray
        The checked training set, ``(X,)`` or ``(X, y)`` (see ``model.check_data``).
    batch_size : int
        Rows per step.
    rng : numpy.random.Generator
        Shuffles the rows and draws the model's noise.
    beta : callable
        ``beta(b)`` is the KL weight of the epoch's step ``b`` (None: the model's own).
    transform : callable, optional
        Applied to each minibatch before the step, e.g. dynamic binarisation.
    after_step : callable, optional
        Called with the step's index after each update (progress bar, Ctrl-C check).
    sampler : BatchSampler, optional
        Makes the epoch's minibatches; None is :class:`~vae_numpy.samplers.ShuffledMinibatches`.

    Returns
    -------
    dict of str to float
        Mean over the rows the epoch's steps saw (with the default sampler: every row once)
        of the loss and of each of its terms, nats per example.

    Raises
    ------
    NonFiniteLoss
        (a FloatingPointError) when the loss of a step is not finite, with the batch number;
        the parameters have not been updated by that step.
    """
    sums: dict[str, float] = {}
    seen = 0
    sampler = ShuffledMinibatches() if sampler is None else sampler
    for b, batch in enumerate(sampler.batches(data, batch_size, rng)):
        if transform is not None:
            batch = transform(batch, rng)
        model.zero_grad()  # the backward pass adds into the gradients (micrograd, PyTorch)
        loss, parts = model.loss_and_gradients_for_batch(batch, rng=rng, beta=beta(b))
        if not np.isfinite(loss):
            raise NonFiniteLoss(loss, b + 1)
        optimizer.step(model.gradients())
        rows = len(batch[0])
        seen += rows
        for name, value in {"loss": loss, **parts}.items():
            sums[name] = sums.get(name, 0.0) + value * rows
        if after_step is not None:
            after_step(b)
    return {name: total / seen for name, total in sums.items()}


def mean_loss_terms(
    model: Model, data: Batch, *, batch_size: int = 1024, rng: Any = 0
) -> dict[str, float]:
    """Mean over the rows of ``data`` (checked) of each per-example loss term, nats per example.

    Evaluated ``batch_size`` rows at a time in the data's order; ``rng`` drives the model's
    noise (default: seed 0, so repeatable).
    """
    gen = np.random.default_rng(rng)
    n = len(data[0])
    totals: dict[str, float] = {}
    with ThreadPolicy() as policy:
        for lo in range(0, n, batch_size):
            with policy.step():
                batch = tuple(a[lo : lo + batch_size] for a in data)
                terms = model.loss_terms_for_batch(batch, rng=gen)
            for name, values in terms.items():
                totals[name] = totals.get(name, 0.0) + float(np.sum(values, dtype=np.float64))
    return {name: total / n for name, total in totals.items()}


# --- what wraps the epochs ------------------------------------------------------------------


def warmup_beta(beta: float | None, step: int, warmup_steps: float) -> float | None:
    """KL weight at global ``step``: ``beta`` times a ramp from 0 to 1 over ``warmup_steps``.

    None (a model without KL term) stays None; ``warmup_steps = 0`` gives ``beta`` throughout.
    """
    if beta is None:
        return None
    return beta if warmup_steps == 0 else beta * min(1.0, step / warmup_steps)


class NonFiniteLoss(FloatingPointError):
    """The loss of a training step was NaN or infinite (``loss``; ``batch`` counts from 1)."""

    def __init__(self, loss: float, batch: int) -> None:
        super().__init__(f"the training loss became {loss} at batch {batch}")
        self.loss, self.batch = loss, batch


def _as_batch_tuple(data: Any) -> tuple[Any, ...]:
    """``validation_data`` may be ``X`` or a tuple ``(X, y)``."""
    return tuple(data) if isinstance(data, tuple) else (data,)


def _accuracy_on(model: Model, labels: Any, val: Batch | None) -> Callable[[], float] | None:
    """``validation_labels`` checked: what computes ``val_accuracy`` (None without labels)."""
    if labels is None:
        return None
    predict = getattr(model, "predict", None)  # asked by capability, as everywhere
    if not callable(predict):
        raise TypeError(
            f"validation_labels needs a model that classifies (with a predict method);"
            f" {type(model).__name__} has none: leave validation_labels out"
        )
    if val is None:
        raise ValueError("validation_labels labels the rows of validation_data: give both")
    y = np.asarray(labels)
    if y.dtype.kind not in "iu" or y.shape != (len(val[0]),) or np.any(y < 0):
        raise ValueError(
            f"validation_labels must hold {len(val[0])} integer classes >= 0, one per row of"
            f" validation_data; got dtype {y.dtype}, shape {y.shape}"
        )
    return lambda: float(np.mean(predict(val[0]) == y))


def fit(
    model: Model,
    *data: Any,
    epochs: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    optimizer: Any = "adam",
    rng: Any = None,
    validation_data: Any = None,
    validation_labels: Any = None,
    progress: bool = True,
    kl_warmup_epochs: float = 0,
    binarize: bool = False,
    checkpoint: str | os.PathLike[str] | None = None,
    resume: bool = False,
    threads: int | str | None = "auto",
    sampler: BatchSampler | None = None,
) -> Model:
    """Train ``model`` on ``X`` (or ``X, y``) with minibatch gradient descent.

    Parameters
    ----------
    model : Model
        A VAE, an Autoencoder, or any :class:`vae_numpy.protocol.Model`.
    *data : ndarray
        ``X`` of shape (n, input_dim) (values in [0, 1] for Bernoulli/BCE models), followed
        by ``y`` of shape (n,) for models trained with labels.
    epochs : int
        Total number of passes over ``X`` (with ``resume``, the target epoch count).
    batch_size : int
        Examples per step; the last batch of an epoch may be smaller.
    lr : float
        Learning rate (ignored when ``optimizer`` is an instance).
    optimizer : {"adam", "sgd", "adagrad"} or Optimizer
        By name, or an optimiser already bound to ``model.parameters()``.
    rng : numpy.random.Generator, int or None
        Drives shuffling, the model's noise and binarisation. Same seed, same result.
    validation_data : ndarray or tuple of ndarray, optional
        ``X_val`` (or ``(X_val, y_val)``), evaluated after each epoch (with fixed noise, seed
        0) into ``val_*`` history columns.
    validation_labels : ndarray of shape (n_val,) of int, optional
        The classes of the rows of ``validation_data``, for a model that classifies (one with
        ``predict``, as M2): the fraction ``model.predict`` gets right is recorded after each
        epoch as ``history_["val_accuracy"]``. The ``val_*`` loss terms keep their meaning
        (M2 given ``X_val`` alone: ``val_loss`` is the bound on ln p(x), y summed out).
    progress : bool
        Show a tqdm progress bar (terminal or notebook); False is silent.
    kl_warmup_epochs : float
        Ramp the KL weight linearly from 0 to ``model.beta`` over this many epochs (per
        step). 0 disables the warm-up.
    binarize : bool
        Draw a fresh binary version of every minibatch's ``x`` (dynamic binarisation).
    checkpoint : path, optional
        Save model, optimiser, random state and history here after every epoch.
    resume : bool
        Continue from ``checkpoint`` (which must exist) up to ``epochs``.
    threads : int or "auto"
        BLAS threads for the matrix products. ``"auto"`` times steps at 1 thread and at all
        cores, keeps the faster, and times them again from time to time (see
        :mod:`vae_numpy.threads`; ``VAE_NUMPY_THREADS`` or a BLAS variable such as
        ``OPENBLAS_NUM_THREADS`` set in the environment is respected). The count used in
        each epoch is recorded in ``history_["threads"]``. The results do not depend on it
        beyond the rounding of matrix products split between threads; for bit-identical
        results across runs of a large model, give a number.
    sampler : BatchSampler, optional
        Which rows make up each step (see :class:`~vae_numpy.samplers.BatchSampler`); None
        shuffles the rows into minibatches of ``batch_size``
        (:class:`~vae_numpy.samplers.ShuffledMinibatches`). An epoch is one
        call of its ``batches``.

    Returns
    -------
    model
        The same object, trained, with ``history_`` and ``optimizer_`` set.
    """
    data = model.check_data(*data, name="X")
    val = None
    if validation_data is not None:
        val = model.check_data(*_as_batch_tuple(validation_data), name="validation_data")
    accuracy = _accuracy_on(model, validation_labels, val)
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    warmup = check_positive_float(kl_warmup_epochs, "kl_warmup_epochs", allow_zero=True)
    if sampler is None:
        sampler = ShuffledMinibatches()
    elif not isinstance(sampler, BatchSampler):
        raise TypeError(
            f"sampler must have the methods batches(data, batch_size, rng) and"
            f" steps_per_epoch(data, batch_size) (see vae_numpy.samplers.BatchSampler),"
            f" got {type(sampler).__name__}"
        )
    policy = ThreadPolicy(threads)  # checks `threads`; touches BLAS only inside the `with`
    opt = make_optimizer(optimizer, model.parameters(), lr)
    n = len(data[0])
    settings = {
        "batch_size": batch_size,
        "lr": opt.lr,
        "optimizer": type(opt).__name__,
        "kl_warmup_epochs": warmup,
        "binarize": bool(binarize),
        "n_train": n,
    }
    if not isinstance(sampler, ShuffledMinibatches):  # the default leaves old checkpoints valid
        settings["sampler"] = repr(sampler)
    if accuracy is not None:  # so is a run without validation_labels
        settings["val_accuracy"] = True
    gen = np.random.default_rng(rng)
    start = 0
    ckpt = checkpoint_path(checkpoint, resume)
    if ckpt is not None and resume:
        start, gen = resume_training(ckpt, model, opt, settings)
    else:
        model.history_ = {}
    model.optimizer_ = opt
    steps_per_epoch = sampler.steps_per_epoch(data, batch_size)
    transform = None
    if binarize:

        def transform(batch: Batch, g: np.random.Generator) -> Batch:
            return (binarize_rows(batch[0], g), *batch[1:])

    bar = tqdm(
        total=epochs * steps_per_epoch,
        initial=start * steps_per_epoch,
        disable=not progress,
        desc=type(model).__name__,
        unit="step",
        dynamic_ncols=True,
    )
    # Overflow warnings are silenced because a non-finite loss is caught and raised as one
    # clear error naming the epoch and batch.
    with (
        contextlib.closing(bar),
        deferred_sigint() as sigint,
        np.errstate(over="ignore", invalid="ignore"),
        policy,
    ):
        for epoch in range(start, epochs):
            t0 = time.perf_counter()
            row = _guarded_epoch(
                model,
                opt,
                data,
                epoch,
                batch_size,
                gen,
                warmup,
                transform,
                bar,
                sigint,
                ckpt,
                policy,
                sampler,
            )
            row["threads"] = policy.most_used()  # BLAS threads of most of the epoch's steps
            if val is not None:
                row.update({f"val_{k}": v for k, v in mean_loss_terms(model, val).items()})
            if accuracy is not None:
                row["val_accuracy"] = accuracy()
            row["seconds"] = time.perf_counter() - t0
            row["epoch"] = epoch + 1
            for k, v in row.items():
                model.history_.setdefault(k, []).append(float(v))
            postfix: dict[str, str] = {
                k: f"{row[k]:.2f}" for k in ("loss", "kl", "val_loss", "val_accuracy") if k in row
            }
            postfix["threads"] = str(policy.threads)
            bar.set_postfix(postfix)
            if ckpt is not None:
                save_checkpoint(ckpt, model, opt, gen, epoch + 1, settings)
    return model


def _guarded_epoch(
    model: Model,
    opt: Optimizer,
    data: Batch,
    epoch: int,
    batch_size: int,
    gen: np.random.Generator,
    warmup_epochs: float,
    transform: Callable[[Batch, np.random.Generator], Batch] | None,
    bar: Any,
    sigint: dict[str, bool],
    ckpt: Path | None,
    policy: ThreadPolicy,
    sampler: BatchSampler,
) -> dict[str, float]:
    """:func:`train_epoch` with KL warm-up, progress, Ctrl-C, divergence handling and the
    thread policy's timing of every step.

    Returns the epoch's history row (mean loss and parts, and ``beta`` for a model with KL).
    """
    steps_per_epoch = sampler.steps_per_epoch(data, batch_size)

    def beta_at(b: int) -> float | None:
        step = epoch * steps_per_epoch + b
        return warmup_beta(model.beta, step, warmup_epochs * steps_per_epoch)

    def after_step(b: int) -> None:
        policy.lap()
        bar.update(1)
        if sigint["requested"]:
            raise TrainingInterrupted(
                f"interrupted at epoch {epoch + 1}, batch {b + 1}; the model holds that step"
                + (f", the checkpoint {ckpt} holds epoch {epoch}" if ckpt else "")
            )

    snapshot = ({k: p.copy() for k, p in model.parameters().items()}, opt.state_dict())
    policy.start_laps()
    try:
        row = train_epoch(
            model,
            opt,
            data,
            batch_size=batch_size,
            rng=gen,
            beta=beta_at,
            transform=transform,
            after_step=after_step,
            sampler=sampler,
        )
    except NonFiniteLoss as exc:
        for k, p in model.parameters().items():
            p[...] = snapshot[0][k]
        opt.load_state_dict(snapshot[1])
        raise FloatingPointError(
            f"the training loss became {exc.loss} at epoch {epoch + 1}, batch {exc.batch};"
            f" try a smaller learning rate than lr={opt.lr:g} (e.g. lr={opt.lr / 10:g})."
            f" The model was restored to the start of epoch {epoch + 1}."
        ) from exc
    final_beta = beta_at(steps_per_epoch - 1)
    if final_beta is not None:
        row["beta"] = final_beta
    return row
