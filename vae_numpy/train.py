"""One training loop for the autoencoder and the VAE: minibatches, an optimiser, a history.

``fit(model, X, epochs=...)`` (also reachable as ``model.fit(X, epochs=...)``) shuffles the
data with ``rng`` each epoch, runs ``loss_and_gradients`` on every minibatch and lets the
optimiser update the parameters in place. It records one row per epoch in ``model.history_``:
the mean training loss and its parts (reconstruction, and KL for a VAE), the validation loss
when ``validation_data`` is given, the KL weight used and the seconds taken.

Reproducible: the same ``rng`` seed gives bit-identical parameters and history. Safe: with
``checkpoint=PATH`` the model, optimiser state, random-generator state and history are saved
atomically after every epoch, and ``resume=True`` continues from the saved epoch with the same
result as an uninterrupted run. Ctrl-C stops at the end of the current step (never in the middle
of an update), leaves the model at that step and the checkpoint at the last completed epoch, and
re-raises ``KeyboardInterrupt``. A non-finite loss stops training with ``FloatingPointError``
naming the epoch and batch, after restoring the state at the start of that epoch.

No plotting here: figures are drawn from ``history_`` by :mod:`vae_numpy.plots`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from ._validation import check_positive_float, check_positive_int
from .base import BaseModel
from .data import binarize as binarize_batch
from .optim import Optimizer, make_optimizer
from .serialization import load_npz, save_npz

__all__ = ["fit", "save_checkpoint", "load_checkpoint", "TrainingInterrupted", "SMALL_PRODUCT"]

#: Matrix products with fewer multiply-adds than this (batch x in x out of the largest layer)
#: run BLAS on one thread. They are too small to split: on an idle machine one thread is as
#: fast, and on a busy 2-core machine BLAS threads waiting next to other work made small
#: models train 1.5 to 5 times slower (measured).
SMALL_PRODUCT = 4_000_000

_CHECKPOINT_KIND = "checkpoint"


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`fit`; the model holds its last completed step."""


@contextlib.contextmanager
def _deferred_sigint() -> Iterator[dict[str, bool]]:
    """Turn SIGINT into a flag checked between steps (main thread only; elsewhere a no-op)."""
    flag = {"requested": False}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, frame: Any) -> None:
        flag["requested"] = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def _rng_state(gen: np.random.Generator) -> dict[str, Any]:
    state = gen.bit_generator.state
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in state.items()}


def _restore_rng(state: dict[str, Any]) -> np.random.Generator:
    bitgen = getattr(np.random, state["bit_generator"])()
    bitgen.state = state
    return np.random.Generator(bitgen)


def save_checkpoint(
    path: str | os.PathLike[str],
    model: BaseModel,
    optimizer: Optimizer,
    gen: np.random.Generator,
    epoch: int,
    settings: dict[str, Any],
) -> Path:
    """Save everything needed to continue training exactly (atomic write, no pickle)."""
    arrays = {f"param/{k}": v for k, v in model.parameters().items()}
    opt_state = optimizer.state_dict()
    for buf, values in opt_state["buffers"].items():
        arrays.update({f"optim/{buf}/{k}": v for k, v in values.items()})
    meta = {
        "kind": _CHECKPOINT_KIND,
        "model_kind": model._kind,
        "config": model.get_config(),
        "epoch": epoch,
        "optimizer": {"type": opt_state["type"], "t": opt_state["t"], "hyper": opt_state["hyper"]},
        "rng": _rng_state(gen),
        "history": model.history_,
        "settings": settings,
    }
    return save_npz(path, arrays, meta)


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a training checkpoint: ``(arrays, meta)``; ValueError if it is not one."""
    return load_npz(path, kind=_CHECKPOINT_KIND)


def _resume(
    path: Path, model: BaseModel, optimizer: Optimizer, settings: dict[str, Any]
) -> tuple[int, np.random.Generator]:
    arrays, meta = load_checkpoint(path)
    if meta["model_kind"] != model._kind or meta["config"] != model.get_config():
        raise ValueError(
            f"{path}: checkpoint is for {meta['model_kind']}({meta['config']}), "
            f"not for this {model!r}"
        )
    if meta["settings"] != settings:
        raise ValueError(
            f"{path}: checkpoint was trained with {meta['settings']}, now {settings};"
            " resume with the same batch_size, lr, optimizer and options"
        )
    for k, p in model.parameters().items():
        p[...] = arrays[f"param/{k}"]
    buffers: dict[str, dict[str, np.ndarray]] = {}
    for key, value in arrays.items():
        if key.startswith("optim/"):
            _, buf, name = key.split("/", 2)
            buffers.setdefault(buf, {})[name] = value
    optimizer.load_state_dict({**meta["optimizer"], "buffers": buffers})
    model.history_ = {k: list(v) for k, v in meta["history"].items()}
    return int(meta["epoch"]), _restore_rng(meta["rng"])


def _blas_threads(model: BaseModel, batch_size: int) -> Any:
    """One BLAS thread while training a small model (see SMALL_PRODUCT), else no change."""
    largest = max(p.shape[0] * p.shape[1] for p in model.parameters().values() if p.ndim == 2)
    if batch_size * largest < SMALL_PRODUCT:
        return threadpool_limits(1, user_api="blas")
    return contextlib.nullcontext()


def _warmup_ramp(step: int, warmup_steps: float) -> float:
    """KL weight factor: rises linearly from 0 to 1 over ``warmup_steps`` steps (1 if none)."""
    return 1.0 if warmup_steps == 0 else min(1.0, step / warmup_steps)


def _restore(model: BaseModel, opt: Optimizer, snapshot: tuple[dict[str, np.ndarray], Any]) -> None:
    """Put back the parameters and optimiser state saved at the start of an epoch."""
    params, opt_state = snapshot
    for k, p in model.parameters().items():
        p[...] = params[k]
    opt.load_state_dict(opt_state)


def fit(
    model: BaseModel,
    X: Any,
    *,
    epochs: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    optimizer: Any = "adam",
    rng: Any = None,
    validation_data: Any = None,
    progress: bool = True,
    kl_warmup_epochs: float = 0,
    binarize: bool = False,
    checkpoint: str | os.PathLike[str] | None = None,
    resume: bool = False,
) -> BaseModel:
    """Train ``model`` on ``X`` with minibatch gradient descent.

    Parameters
    ----------
    model : VAE or Autoencoder
    X : ndarray of shape (n, input_dim)
        Training data (values in [0, 1] for Bernoulli/BCE models).
    epochs : int
        Total number of passes over ``X`` (with ``resume``, the target epoch count).
    batch_size : int
        Examples per step; the last batch of an epoch may be smaller.
    lr : float
        Learning rate (ignored when ``optimizer`` is an instance).
    optimizer : {"adam", "sgd", "adagrad"} or Optimizer
        By name, or an optimiser already bound to ``model.parameters()``.
    rng : numpy.random.Generator, int or None
        Drives shuffling, the VAE's noise and binarisation. Same seed, same result.
    validation_data : ndarray of shape (m, input_dim), optional
        Evaluated after each epoch (with fixed noise, seed 0) into ``val_*`` history columns.
    progress : bool
        Show a tqdm progress bar (terminal or notebook); False is silent.
    kl_warmup_epochs : float
        Ramp the VAE's KL weight linearly from 0 to ``model.beta`` over this many epochs
        (per step). 0 disables the warm-up.
    binarize : bool
        Draw a fresh binary version of every minibatch (dynamic binarisation).
    checkpoint : path, optional
        Save model, optimiser, random state and history here after every epoch.
    resume : bool
        Continue from ``checkpoint`` (which must exist) up to ``epochs``.

    Returns
    -------
    model
        The same object, trained, with ``history_`` and ``optimizer_`` set.
    """
    X = model._check_x(X, "X")
    val = None if validation_data is None else model._check_x(validation_data, "validation_data")
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    warmup = check_positive_float(kl_warmup_epochs, "kl_warmup_epochs", allow_zero=True)
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=PATH: the file to resume from")
    opt = make_optimizer(optimizer, model.parameters(), lr)
    settings = {
        "batch_size": batch_size,
        "lr": opt.lr,
        "optimizer": type(opt).__name__,
        "kl_warmup_epochs": warmup,
        "binarize": bool(binarize),
        "n_train": len(X),
    }
    gen = np.random.default_rng(rng)
    start = 0
    ckpt = None if checkpoint is None else Path(checkpoint)
    if ckpt is not None and ckpt.suffix != ".npz":
        ckpt = ckpt.with_name(ckpt.name + ".npz")
    if ckpt is not None and resume:
        if not ckpt.exists():
            raise FileNotFoundError(
                f"{ckpt}: no checkpoint to resume from; train without resume=True first"
            )
        start, gen = _resume(ckpt, model, opt, settings)
    else:
        model.history_ = {}
    model.optimizer_ = opt
    n = len(X)
    steps_per_epoch = -(-n // batch_size)
    beta_target = getattr(model, "beta", None)
    bar = tqdm(
        total=epochs * steps_per_epoch,
        initial=start * steps_per_epoch,
        disable=not progress,
        desc=type(model).__name__,
        unit="step",
        dynamic_ncols=True,
    )
    try:
        # Overflow warnings are silenced because a non-finite loss is caught below and raised
        # as one clear error naming the epoch and batch.
        with (
            _deferred_sigint() as sigint,
            np.errstate(over="ignore", invalid="ignore"),
            _blas_threads(model, batch_size),
        ):
            for epoch in range(start, epochs):
                snapshot = ({k: p.copy() for k, p in model.parameters().items()}, opt.state_dict())
                t0 = time.perf_counter()
                sums: dict[str, float] = {}
                order = gen.permutation(n)
                for b, lo in enumerate(range(0, n, batch_size)):
                    xb = X[order[lo : lo + batch_size]]
                    if binarize:
                        xb = binarize_batch(xb, gen)
                    kwargs: dict[str, Any] = {"rng": gen}
                    if beta_target is not None:
                        step = epoch * steps_per_epoch + b
                        kwargs["beta"] = beta_target * _warmup_ramp(step, warmup * steps_per_epoch)
                    loss, parts = model._loss_and_gradients(xb, **kwargs)
                    if not np.isfinite(loss):
                        _restore(model, opt, snapshot)
                        raise FloatingPointError(
                            f"the training loss became {loss} at epoch {epoch + 1}, batch {b + 1};"
                            f" try a smaller learning rate than lr={opt.lr:g} (e.g. lr={opt.lr / 10:g})."
                            f" The model was restored to the start of epoch {epoch + 1}."
                        )
                    opt.step(model.gradients())
                    m = len(xb)
                    sums["loss"] = sums.get("loss", 0.0) + loss * m
                    for k, v in parts.items():
                        sums[k] = sums.get(k, 0.0) + v * m
                    bar.update(1)
                    if sigint["requested"]:
                        raise TrainingInterrupted(
                            f"interrupted at epoch {epoch + 1}, batch {b + 1}; the model holds that step"
                            + (f", the checkpoint {ckpt} holds epoch {epoch}" if ckpt else "")
                        )
                row = {k: v / n for k, v in sums.items()}
                if beta_target is not None:
                    row["beta"] = float(kwargs["beta"])
                if val is not None:
                    row.update({f"val_{k}": v for k, v in model.evaluate_terms(val, rng=0).items()})
                row["seconds"] = time.perf_counter() - t0
                row["epoch"] = epoch + 1
                for k, v in row.items():
                    model.history_.setdefault(k, []).append(float(v))
                bar.set_postfix(
                    {k: f"{row[k]:.2f}" for k in ("loss", "kl", "val_loss") if k in row}
                )
                if ckpt is not None:
                    save_checkpoint(ckpt, model, opt, gen, epoch + 1, settings)
    finally:
        bar.close()
    return model
