"""A run that stops, and continues: training checkpoints, and Ctrl-C between two steps.

:func:`vae_numpy.train.fit` writes one after every epoch (``checkpoint=``) and continues from it
(``resume=True``) with the same result as an uninterrupted run: the model's parameters, the
optimiser's state (its step count and moment buffers), the random generator's state, the
history and the settings the run was started with. One ``.npz`` file, written atomically,
read without pickle (:mod:`vae_numpy.serialization`).

Ctrl-C during ``fit`` never tears an update: :func:`deferred_sigint` turns SIGINT into a flag
that the loop checks between steps, and :class:`TrainingInterrupted` is then raised with the
model at its last completed step (and the checkpoint at its last completed epoch).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .optim import Optimizer
from .protocol import Model
from .serialization import load_npz, save_npz

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "checkpoint_path",
    "resume_training",
    "deferred_sigint",
    "TrainingInterrupted",
    "CHECKPOINT_KIND",
]

#: The ``kind`` a checkpoint file carries in its metadata (a saved model has another).
CHECKPOINT_KIND = "checkpoint"


def _rng_state(gen: np.random.Generator) -> dict[str, Any]:
    state = gen.bit_generator.state
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in state.items()}


def _restore_rng(state: dict[str, Any]) -> np.random.Generator:
    bitgen = getattr(np.random, state["bit_generator"])()
    bitgen.state = state
    return np.random.Generator(bitgen)


def checkpoint_path(checkpoint: str | os.PathLike[str] | None, resume: bool) -> Path | None:
    """``fit``'s ``checkpoint`` as the file it writes (``.npz`` added), or None.

    With ``resume``, the file must be given and exist (ValueError, FileNotFoundError).
    """
    if checkpoint is None:
        if resume:
            raise ValueError("resume=True needs checkpoint=PATH: the file to resume from")
        return None
    path = Path(checkpoint)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    if resume and not path.exists():
        raise FileNotFoundError(
            f"{path}: no checkpoint to resume from; train without resume=True first"
        )
    return path


def save_checkpoint(
    path: str | os.PathLike[str],
    model: Model,
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
        "kind": CHECKPOINT_KIND,
        "model_kind": model.kind,
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
    return load_npz(path, kind=CHECKPOINT_KIND)


def resume_training(
    path: Path, model: Model, optimizer: Optimizer, settings: dict[str, Any]
) -> tuple[int, np.random.Generator]:
    """Load a checkpoint into ``model`` and ``optimizer``; return its epoch and random generator.

    ValueError, naming the file, if the checkpoint is for another model or configuration, or
    was trained with other ``settings`` (batch size, learning rate, optimiser, options).
    """
    arrays, meta = load_checkpoint(path)
    if meta["model_kind"] != model.kind or meta["config"] != model.get_config():
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


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`fit`; the model holds its last completed step."""


@contextlib.contextmanager
def deferred_sigint() -> Iterator[dict[str, bool]]:
    """Turn SIGINT into a flag (``flag["requested"]``) checked between steps.

    Only in the main thread (signals can be handled nowhere else); elsewhere a no-op flag.
    """
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
