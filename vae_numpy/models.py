"""Every model class of the package by the ``kind`` it writes into files, and a loader for any.

``load_model(path)`` reads a file written by ``model.save(path)`` and returns a model of the
right class, whatever it is: the CLI and notebooks need not know, or test, which class a file
holds. A new model class is added to :data:`MODELS` here.
"""

from __future__ import annotations

import os
from typing import Any

from .autoencoder import Autoencoder
from .base import BaseModel
from .serialization import load_npz
from .vae import VAE

__all__ = ["MODELS", "load_model"]

#: Model classes by their ``kind``.
MODELS: dict[str, type[BaseModel]] = {cls.kind: cls for cls in (VAE, Autoencoder)}


def load_model(path: str | os.PathLike[str]) -> Any:
    """The model saved at ``path``, as an instance of the class that saved it.

    Raises
    ------
    ValueError
        If the file is damaged, holds no model, or holds a model of an unknown kind.
    """
    arrays, meta = load_npz(path, kind=tuple(MODELS))
    return MODELS[meta["kind"]].from_saved(arrays, meta, path)
