"""The ``vae-numpy`` command: train a model and draw the lecture's pictures, sample, evaluate,
and check the KL formula.

    vae-numpy train --out runs/digits            # VAE, latent 2, on the bundled digits
    vae-numpy sample --model runs/digits/model.npz -n 64 --out samples.png
    vae-numpy evaluate --model runs/digits/model.npz
    vae-numpy verify-kl

This module holds the options of every command (:func:`build_parser`) and :func:`main`, which
runs the command named: ``train`` is in :mod:`vae_numpy.cli_train`, ``sample``, ``evaluate``,
``explore``, ``verify-kl`` and ``notebooks`` are in :mod:`vae_numpy.cli_commands`, and
``assignments`` is in :mod:`vae_numpy.assignments`. What the commands share (the one-line
error, loading a data set) is in :mod:`vae_numpy.cli_common`.

Bad arguments give a one-line error and exit status 2, not a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from . import assignments
from ._argtypes import non_negative_float, positive_float, positive_int
from .cli_commands import cmd_evaluate, cmd_explore, cmd_notebooks, cmd_sample, cmd_verify_kl
from .cli_common import CLIError
from .cli_train import (
    DEFAULT_COMPONENTS,
    DEFAULT_EPOCHS,
    DEFAULT_LABELS,
    MODEL_CHOICES,
    cmd_train,
    labelled_subset,
)
from .data import DATASETS
from .layers import ACTIVATIONS

__all__ = ["main", "build_parser", "labelled_subset"]

#: Help of --data-dir, shared by train and evaluate.
DATA_DIR_HELP = (
    "folder holding mnist/, fashion_mnist/ or frey_face/ (default: $VAE_NUMPY_DATA, else the"
    " cache ~/.cache/vae_numpy, where missing files are downloaded)"
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``vae-numpy`` (exposed for the documentation and tests)."""
    parser = argparse.ArgumentParser(
        prog="vae-numpy",
        description="Variational autoencoders from scratch in NumPy: train, sample, evaluate.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser(
        "train",
        help="train a model of the VAE family (or an autoencoder) and write its figures",
        description="Train a model, then write model.npz, history.json and PNG figures to --out.",
    )
    train.add_argument(
        "--dataset", default="digits", choices=DATASETS, help="data set (default: digits, bundled)"
    )
    train.add_argument("--data-dir", default=None, metavar="DIR", help=DATA_DIR_HELP)
    train.add_argument(
        "--model",
        default="vae",
        choices=tuple(MODEL_CHOICES),
        help="; ".join(f"{k}: {v}" for k, v in MODEL_CHOICES.items()) + " (default vae)",
    )
    train.add_argument(
        "--likelihood",
        default=None,
        choices=("bernoulli", "gaussian"),
        help="VAE decoder (default: gaussian for frey-faces, bernoulli otherwise)",
    )
    train.add_argument(
        "--latent-dim", type=positive_int, default=2, help="latent dimensions (default 2)"
    )
    train.add_argument(
        "--hidden",
        type=positive_int,
        nargs="+",
        default=[128],
        help="hidden layer sizes of the encoder, mirrored in the decoder (default 128)",
    )
    train.add_argument(
        "--epochs",
        type=positive_int,
        default=None,
        help="passes over the data (default per data set: "
        + ", ".join(f"{name} {n}" for name, n in DEFAULT_EPOCHS.items())
        + ")",
    )
    train.add_argument(
        "--batch-size", type=positive_int, default=64, help="examples per step (default 64)"
    )
    train.add_argument(
        "--lr",
        type=positive_float,
        default=1e-3,
        help="learning rate of the optimizer chosen with --optimizer (default 1e-3)",
    )
    train.add_argument(
        "--optimizer",
        default="adam",
        choices=("adam", "sgd", "adagrad"),
        help="adam (Kingma & Ba 2015), sgd (plain gradient descent) or adagrad (default adam)",
    )
    train.add_argument(
        "--activation",
        default="relu",
        choices=tuple(ACTIVATIONS),
        help="hidden activation (default relu; CS236 uses elu)",
    )
    train.add_argument(
        "--importance-samples",
        type=positive_int,
        default=1,
        metavar="K",
        help="vae: train on the importance-weighted bound with K samples (default 1: the ELBO)",
    )
    train.add_argument(
        "--components",
        type=positive_int,
        default=None,
        metavar="N",
        help=f"gmvae: mixture components of the prior (default {DEFAULT_COMPONENTS})",
    )
    train.add_argument(
        "--labels",
        type=positive_int,
        default=None,
        metavar="N",
        help="ssvae: how many training examples keep their label, the same number of each"
        f" class as far as possible; the others are unlabelled (default {DEFAULT_LABELS})",
    )
    train.add_argument(
        "--beta",
        type=non_negative_float,
        default=1.0,
        help="KL weight of vae, cvae and gmvae (default 1)",
    )
    train.add_argument(
        "--kl-warmup",
        type=non_negative_float,
        default=0.0,
        help="epochs over which beta ramps up from 0 (default 0: off)",
    )
    train.add_argument(
        "--binarize", action="store_true", help="dynamic binarisation of every batch"
    )
    train.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    train.add_argument("--out", default="runs/digits", help="output folder (default runs/digits)")
    train.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")

    sample = sub.add_parser("sample", help="draw new images from a trained model of the VAE family")
    sample.add_argument("--model", required=True, help="model.npz written by 'vae-numpy train'")
    sample.add_argument("-n", type=positive_int, default=64, help="number of samples (default 64)")
    sample.add_argument(
        "--label",
        type=int,
        default=None,
        metavar="L",
        help="cvae, ssvae: the class of every sample (default: drawn uniformly; printed)",
    )
    sample.add_argument("--seed", type=int, default=0, help="random seed of z (default 0)")
    sample.add_argument("--out", default="samples.png", help="PNG to write (default samples.png)")

    evaluate = sub.add_parser("evaluate", help="print the ELBO and its parts on a data set")
    evaluate.add_argument("--model", required=True, help="model.npz written by 'vae-numpy train'")
    evaluate.add_argument(
        "--dataset",
        default=None,
        choices=DATASETS,
        help="data set (default: the one the model was trained on)",
    )
    evaluate.add_argument(
        "--split", default="test", choices=("train", "test"), help="which split (default test)"
    )
    evaluate.add_argument("--data-dir", default=None, metavar="DIR", help=DATA_DIR_HELP)
    evaluate.add_argument(
        "--seed", type=int, default=0, help="random seed of the Monte Carlo samples (default 0)"
    )
    evaluate.add_argument(
        "--iwae-k",
        type=positive_int,
        default=None,
        metavar="K",
        help="also print the importance-weighted bound with K samples (and, for a "
        "2-D latent space, the exact log-likelihood by quadrature)",
    )
    evaluate.add_argument(
        "--max-examples",
        type=positive_int,
        default=None,
        metavar="N",
        help="evaluate the first N examples only",
    )

    sub.add_parser("verify-kl", help="closed-form KL between normals vs quadrature and Monte Carlo")

    notebooks = sub.add_parser(
        "notebooks",
        help="copy the lecture notebooks and the assignments (student copies) into a folder",
        description="Copy the five lecture notebooks into DIR and the student copies of the "
        "assignments into DIR/assignments, from the installed package. Open them with "
        "'jupyter lab DIR'.",
    )
    notebooks.add_argument("dir", metavar="DIR", help="folder to copy into (created if missing)")
    notebooks.add_argument(
        "--force", action="store_true", help="overwrite notebooks that already exist in DIR"
    )
    notebooks.add_argument(  # gone: kept only to say where the solutions are
        "--solutions", action="store_true", help=argparse.SUPPRESS
    )
    assignments.add_subcommand(sub)
    add_explore_command(sub)
    return parser


def add_explore_command(sub: Any) -> None:
    """Register ``vae-numpy explore`` on the subcommands ``sub`` of :func:`build_parser`."""
    explore = sub.add_parser(
        "explore",
        help="write a live latent-space explorer: one self-contained HTML page",
        description="Write an HTML page that decodes the latent plane in the browser: the test"
        " set's codes coloured by label, the image decoded under the pointer (a click pins"
        " it), sliders for the directions beyond the plane, a label selector for a"
        " conditional model. No server and no network: open the file in any browser.",
    )
    explore.add_argument("--model", required=True, help="model.npz written by 'vae-numpy train'")
    explore.add_argument(
        "--out",
        default=None,
        help="HTML file to write (default: explorer.html beside the model file)",
    )
    explore.add_argument(
        "--dataset",
        default=None,
        choices=DATASETS,
        help="data set whose codes are shown (default: the model's, else digits)",
    )
    explore.add_argument(
        "--split", default="test", choices=("train", "test"), help="which split (default test)"
    )
    explore.add_argument("--data-dir", default=None, metavar="DIR", help=DATA_DIR_HELP)
    explore.add_argument(
        "--dims",
        type=positive_int,
        nargs=2,
        default=None,
        metavar=("I", "J"),
        help="show latent dimensions zI and zJ (numbered from 1) on the plane; default: the"
        " model's two dimensions, or for more the first two principal components of the codes",
    )
    explore.add_argument(
        "--max-points",
        type=positive_int,
        default=5000,
        metavar="N",
        help="scatter the codes of the first N examples at most (default 5000)",
    )


#: The function that runs each command, given the parsed arguments; it returns the exit status.
COMMANDS = {
    "assignments": assignments.run,
    "train": cmd_train,
    "sample": cmd_sample,
    "evaluate": cmd_evaluate,
    "explore": cmd_explore,
    "verify-kl": cmd_verify_kl,
    "notebooks": cmd_notebooks,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``vae-numpy``; returns the exit status."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv  # to print the command that resumes an interrupted run
    try:
        return COMMANDS[args.command](args)
    except (CLIError, ValueError, TypeError, FileNotFoundError, OSError) as exc:
        print(f"vae-numpy {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C outside training (which handles its own)
        print(f"\nvae-numpy {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
