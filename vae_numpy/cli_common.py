"""What the commands of ``vae-numpy`` share: the one-line error, loading a data set with the
command line's words in its errors, the data a model trains or is evaluated on, and the words
every figure title uses.

The parser and :func:`vae_numpy.cli.main` are in :mod:`vae_numpy.cli`; the commands are in
:mod:`vae_numpy.cli_train` and :mod:`vae_numpy.cli_commands`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .data import FOLDERS, Dataset, MissingDataError, get_data_dir, load_dataset
from .protocol import LatentModel

__all__ = ["CLIError", "load_data", "data_of", "model_name", "prior_text"]


class CLIError(Exception):
    """A problem with the user's request, reported as one line."""


def load_data(name: str, split: str, args: argparse.Namespace) -> Dataset:
    """``load_dataset`` with the command line's words in its errors (--data-dir, the folder)."""
    if name != "digits" and args.data_dir is not None and not Path(args.data_dir).is_dir():
        raise CLIError(
            f"--data-dir {args.data_dir} does not exist; pass the folder that holds"
            f" {FOLDERS[name]}/, or leave --data-dir out to use (and download into)"
            f" {get_data_dir()}"
        )
    try:
        return load_dataset(
            name, split, data_dir=args.data_dir, progress=not getattr(args, "no_progress", False)
        )
    except MissingDataError as exc:
        where = f"{exc.folder}" + ("" if exc.folder.is_dir() else " (that folder does not exist)")
        failed = "" if exc.reason is None else f" and could not be downloaded ({exc.reason})"
        flag = (
            "--data-dir DIR"
            if args.data_dir is None
            else f"--data-dir DIR (instead of {args.data_dir})"
        )
        raise CLIError(
            f"the {name} file {' or '.join(exc.filenames)} is not in {where}{failed}."
            f" Put the {name} files in a folder DIR/{FOLDERS[name]}/ and pass {flag}"
        ) from exc


def data_of(model: Any, data: Dataset, *, labels: Any = None) -> tuple[Any, ...]:
    """What ``model`` trains or is evaluated on: ``(x,)``, ``(x, y)`` for a model of p(x|y).

    ``labels`` (M2's training labels, -1 for unlabelled rows) is passed to a labelled model.
    """
    if model.conditional:
        if data.y is None:
            raise CLIError(f"{data.name} has no labels, and a model of p(x|y) needs them")
        return data.x, data.y
    if labels is not None and model.labelled:
        return data.x, labels
    return (data.x,)


def model_name(model: LatentModel, dataset: str | None) -> str:
    """ "VAE on digits": the model and data set that every figure title names."""
    return f"{type(model).__name__} on {dataset}" if dataset else type(model).__name__


def prior_text(model: Any) -> str:
    """What a sample is drawn from, for a figure's title: the lecture's N(0, I), or the
    model's own mixture prior."""
    components = getattr(model, "n_components", None)
    if components:
        return f"z ~ p(z), a mixture of {components} Gaussians"
    return "z ~ N(0, I)"
