"""The ``vae-numpy`` command: train a model and draw the lecture's pictures, sample, evaluate,
and check the KL formula.

    vae-numpy train --out runs/digits            # VAE, latent 2, on the bundled digits
    vae-numpy sample --model runs/digits/model.npz -n 64 --out samples.png
    vae-numpy evaluate --model runs/digits/model.npz
    vae-numpy verify-kl

Bad arguments give a one-line error and exit status 2, not a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import assignments
from ._argtypes import non_negative_float, positive_float, positive_int
from .autoencoder import Autoencoder
from .cvae import ConditionalVAE
from .data import DATASETS, FOLDERS, Dataset, MissingDataError, get_data_dir, load_dataset
from .gmvae import GaussianMixtureVAE
from .kl import kl_by_quadrature, kl_monte_carlo, kl_normal
from .layers import ACTIVATIONS
from .models import load_model
from .protocol import DecoderModel, LatentModel
from .resources import SOLUTIONS_NOT_SHIPPED, copy_notebooks
from .serialization import atomic_write_bytes
from .ssvae import SemiSupervisedVAE
from .train import load_checkpoint
from .vae import VAE

__all__ = ["main", "build_parser"]

#: Epochs used when --epochs is not given: enough for good pictures in well under a minute on
#: the bundled digits, a reasonable first run elsewhere.
DEFAULT_EPOCHS = {"digits": 100, "mnist": 10, "fashion-mnist": 10, "frey-faces": 200}

#: ``--model`` of ``vae-numpy train``: the model each name builds.
MODEL_CHOICES = {
    "vae": "VAE",
    "ae": "plain autoencoder",
    "cvae": "conditional VAE (given the label)",
    "gmvae": "VAE with a mixture-of-Gaussians prior",
    "ssvae": "semi-supervised M2 (a few labels)",
}
#: Mixture components of ``--model gmvae`` when --components is not given.
DEFAULT_COMPONENTS = 10
#: Labelled training examples of ``--model ssvae`` when --labels is not given.
DEFAULT_LABELS = 100

#: The KL cases printed by ``verify-kl``: (mu, sigma, m, s), standard deviations.
KL_CASES = [
    (0.0, 1.0, 0.0, 1.0),
    (1.0, 1.0, 0.0, 1.0),
    (0.0, 2.0, 0.0, 1.0),
    (0.0, 1.0, 0.0, 2.0),
    (1.0, 0.5, -1.0, 2.0),
    (3.0, 0.1, 0.0, 5.0),
    (-2.0, 3.0, 1.0, 0.5),
]


#: Help of --data-dir, shared by train and evaluate.
DATA_DIR_HELP = (
    "folder holding mnist/, fashion_mnist/ or frey_face/ (default: $VAE_NUMPY_DATA, else the"
    " cache ~/.cache/vae_numpy, where missing files are downloaded)"
)

#: A run whose final test loss ends this much above the untrained model's (relative to its
#: size) gets a warning that names the learning rate.
DIVERGENCE_MARGIN = 0.1


class CLIError(Exception):
    """A problem with the user's request, reported as one line."""


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


# --- helpers ------------------------------------------------------------------------------


def _load_model(path: str) -> Any:
    """Any saved model, as its own class (the commands ask what it can do, not what it is)."""
    p = Path(path)
    if not p.exists():
        raise CLIError(f"no model file at {p}; train one with 'vae-numpy train --out DIR'")
    return load_model(p)


def _load_data(name: str, split: str, args: argparse.Namespace) -> Dataset:
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


def _image_shape(model: LatentModel) -> tuple[int, int]:
    shape = model.metadata.get("image_shape")
    if shape:
        return int(shape[0]), int(shape[1])
    side = math.isqrt(model.input_dim)
    if side * side != model.input_dim:
        raise CLIError(
            f"cannot tell the image shape of {model.input_dim} features; "
            "the model file has no image_shape"
        )
    return side, side


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode("utf-8"))


def _model_name(model: LatentModel, dataset: str | None) -> str:
    """ "VAE on digits": the model and data set that every figure title names."""
    return f"{type(model).__name__} on {dataset}" if dataset else type(model).__name__


def _stopped(
    args: argparse.Namespace, model: LatentModel, checkpoint: Path, saved: bool, why: str
) -> int:
    """After Ctrl-C: keep a loadable model of the last completed epoch, say what to run next."""
    out = Path(args.out)
    command = [a for a in args.argv if a != "--resume"]
    if not saved:
        print(
            "\nstopped before the first epoch ended: nothing was saved."
            f"\nstart again with: vae-numpy {' '.join(command)}",
            file=sys.stderr,
        )
        return 130
    arrays, meta = load_checkpoint(checkpoint)  # the last completed epoch
    for name, param in model.parameters().items():
        param[...] = arrays[f"param/{name}"]
    model.history_ = {k: list(v) for k, v in meta["history"].items()}
    model.save(out / "model.npz")
    _write_json(out / "history.json", model.history_)
    sample = (
        f"\nsample from it with: vae-numpy sample --model {out / 'model.npz'}"
        if model.generative
        else ""
    )
    print(
        f"\nstopped: {why}."
        f"\nsaved the model of epoch {meta['epoch']}, the last one completed, to"
        f" {out / 'model.npz'}{sample}"
        f"\nresume with: vae-numpy {' '.join(command + ['--resume'])}",
        file=sys.stderr,
    )
    return 130


# --- commands -----------------------------------------------------------------------------


def _build_model(args: argparse.Namespace, train_set: Dataset) -> Any:
    """The model ``--model`` names, with the options that apply to it (others are refused)."""
    only = {
        "--importance-samples": ("vae", args.importance_samples != 1),
        "--components": ("gmvae", args.components is not None),
        "--labels": ("ssvae", args.labels is not None),
        "--likelihood": ("vae", args.likelihood is not None),
    }
    for flag, (owner, given) in only.items():
        if given and args.model != owner:
            raise CLIError(f"{flag} applies to --model {owner} only, not --model {args.model}")
    if args.beta != 1.0 and args.model in ("ae", "ssvae"):
        raise CLIError(f"--beta weights a KL term: --model {args.model} has none to weight")
    d, hidden, latent = train_set.n_features, args.hidden, args.latent_dim
    common = {"activation": args.activation, "rng": args.seed}
    if args.model in ("cvae", "ssvae") and train_set.y is None:
        raise CLIError(f"--model {args.model} learns from labels, and {args.dataset} has none")
    n_classes = 0 if train_set.y is None else int(train_set.y.max()) + 1
    if args.model == "vae":
        likelihood = args.likelihood or (
            "gaussian" if args.dataset == "frey-faces" else "bernoulli"
        )
        return VAE(
            d, hidden, latent, likelihood=likelihood, beta=args.beta,
            k=args.importance_samples, **common,
        )  # fmt: skip
    if args.model == "ae":
        return Autoencoder(d, hidden, latent, **common)
    if args.model == "cvae":
        return ConditionalVAE(d, n_classes, hidden, latent, beta=args.beta, **common)
    if args.model == "gmvae":
        components = args.components or DEFAULT_COMPONENTS
        return GaussianMixtureVAE(
            d, hidden, latent, n_components=components, beta=args.beta, **common
        )
    return SemiSupervisedVAE(d, n_classes, hidden, latent, **common)


def labelled_subset(y: Any, n: int, seed: int) -> Any:
    """Indices of ``n`` rows of ``y`` to keep labelled: the classes in turn, rows drawn at random.

    Row r of class c is taken before row r + 1 of any class, so the classes get n // C labels
    each (plus one for some when C does not divide n).
    """
    y = np.asarray(y)
    if n > len(y):
        raise CLIError(f"--labels {n}: the training set has only {len(y)} examples")
    order = np.random.default_rng(seed).permutation(len(y))
    rank = np.empty(len(y), dtype=np.int64)  # how many rows of the same class come before
    for c in np.unique(y):
        rows = order[y[order] == c]
        rank[rows] = np.arange(len(rows))
    return order[np.argsort(rank[order], kind="stable")[:n]]


def _data_of(model: Any, data: Dataset, *, labels: Any = None) -> tuple[Any, ...]:
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


def cmd_train(args: argparse.Namespace) -> int:
    from . import plots  # matplotlib only when figures are drawn

    out = Path(args.out)
    train_set = _load_data(args.dataset, "train", args)
    test_set = _load_data(args.dataset, "test", args)
    epochs = args.epochs or DEFAULT_EPOCHS[args.dataset]
    model = _build_model(args, train_set)  # below, only what the model can do is asked
    labels = None
    if args.model == "ssvae" and train_set.y is not None:  # (data without labels: refused)
        keep = labelled_subset(train_set.y, args.labels or DEFAULT_LABELS, args.seed)
        labels = np.full(train_set.n_examples, -1)
        labels[keep] = train_set.y[keep]
    train_data = _data_of(model, train_set, labels=labels)
    test_data = _data_of(model, test_set)  # M2: x alone, the bound on ln p(x)
    classifies = callable(getattr(model, "predict", None)) and test_set.y is not None
    model.metadata = {"dataset": args.dataset, "image_shape": list(train_set.image_shape)}
    untrained = model.evaluate_terms(*test_data, rng=0)["loss"]
    checkpoint = out / "checkpoint.npz"
    before = checkpoint.stat().st_mtime_ns if checkpoint.exists() else None
    try:  # from the announcement on, Ctrl-C ends in the messages of _stopped
        print(
            f"training {model!r}\n  on {args.dataset}: {train_set.n_examples} train, "
            f"{test_set.n_examples} test examples; {epochs} epochs, batch {args.batch_size}"
            + ("" if labels is None else f"; {int((labels >= 0).sum())} labelled"),
            flush=True,
        )
        t0 = time.perf_counter()
        model.fit(
            *train_data,
            epochs=epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            optimizer=args.optimizer,
            rng=args.seed,
            validation_data=test_data if len(test_data) > 1 else test_data[0],
            validation_labels=test_set.y if classifies else None,  # M2: val_accuracy
            progress=not args.no_progress,
            kl_warmup_epochs=args.kl_warmup,
            binarize=args.binarize,
            checkpoint=checkpoint,
            resume=args.resume,
        )
    except KeyboardInterrupt as exc:  # TrainingInterrupted, or Ctrl-C before fit took over
        saved = checkpoint.exists() and (args.resume or checkpoint.stat().st_mtime_ns != before)
        return _stopped(args, model, checkpoint, saved, str(exc) or "interrupted")
    except FloatingPointError as exc:
        raise CLIError(f"{exc} On the command line: --lr {args.lr / 10:g}") from exc
    seconds = time.perf_counter() - t0
    model.save(out / "model.npz")
    _write_json(out / "history.json", model.history_)
    train_terms = model.evaluate_terms(*_data_of(model, train_set))
    test_terms = model.evaluate_terms(*test_data)
    unit = "-ELBO" if model.generative else "reconstruction loss"
    print(f"trained in {seconds:.1f} s")
    print(f"final train {unit}: {train_terms['loss']:.2f} nats per example")
    print(
        f"final test  {unit}: {test_terms['loss']:.2f} nats per example"
        + (
            f" (reconstruction {test_terms['reconstruction']:.2f} + KL {test_terms['kl']:.2f})"
            if "kl" in test_terms
            else ""
        )
    )
    if callable(getattr(model, "predict", None)):
        accuracy = float((model.predict(test_set.x) == test_set.y).mean())
        print(f"test accuracy of q(y|x): {accuracy:.4f}")
    if test_terms["loss"] > untrained + DIVERGENCE_MARGIN * abs(untrained):
        print(
            f"warning: the test {unit} ended at {test_terms['loss']:.4g}, above the"
            f" {untrained:.4g} of the untrained model: training diverged. The learning rate"
            f" --lr {args.lr:g} is probably too large for {args.optimizer}; try"
            f" --lr {args.lr / 10:g} or smaller (the default is 1e-3)",
            file=sys.stderr,
        )
    written = [out / "model.npz", out / "history.json"]

    def figure(filename: str, draw: Any) -> None:
        draw(path=out / filename)
        written.append(out / filename)

    _training_figures(model, plots, train_set, test_set, args.seed, figure)
    checkpoint.unlink(missing_ok=True)  # training finished: the final model replaces it
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _training_figures(
    model: Any, plots: Any, train_set: Dataset, test_set: Dataset, seed: int, figure: Any
) -> None:
    """The lecture's figures that ``model`` can draw: asked by capability, never by class."""
    shape = train_set.image_shape
    name = _model_name(model, train_set.name)
    x_show = test_set.x[:10]
    y_show = None if test_set.y is None else test_set.y[:10]
    figure(
        "loss.png",
        lambda path: plots.plot_history(
            model.history_, path=path, title=f"{name}: training curves"
        ),
    )
    if callable(getattr(model, "predict", None)) and test_set.y is not None:  # M2's q(y|x)
        predicted = model.predict(test_set.x)
        figure(
            "accuracy.png",
            lambda path: plots.plot_accuracy(
                model.history_, path=path, title=f"{name}: test accuracy over training"
            ),
        )
        figure(
            "confusion.png",
            lambda path: plots.plot_confusion_matrix(
                test_set.y, predicted, getattr(model, "n_classes", None), path=path,
                title=f"{name}: confusion matrix, test set",
            ),
        )  # fmt: skip
    if callable(getattr(model, "reconstruct", None)):
        recon = (
            model.reconstruct(x_show, y_show) if model.conditional else model.reconstruct(x_show)
        )
        figure(
            "reconstructions.png",
            lambda path: plots.plot_reconstructions(
                x_show, recon, shape, path=path,
                title=f"{name}: test images and their reconstructions",
            ),
        )  # fmt: skip
    if callable(getattr(model, "code", None)):
        codes = model.code(test_set.x)  # a VAE's code is the mean of q(z|x)
        figure(
            "latent.png",
            lambda path: plots.plot_latent_scatter(
                codes, test_set.y, path=path, title=f"{name}: means of q(z|x), test set"
            ),
        )
    if not model.generative:
        return
    n_classes = getattr(model, "n_classes", None)
    if model.labelled and n_classes:  # CVAE, M2: one class per row
        per_row = 8
        labels = np.repeat(np.arange(n_classes), per_row)
        figure(
            "samples.png",
            lambda path: plots.plot_image_grid(
                model.sample(len(labels), y=labels, rng=seed), shape, nrows=n_classes,
                title=f"{name}: row c decodes z ~ N(0, I) with label c", path=path,
            ),
        )  # fmt: skip
    else:
        figure(
            "samples.png",
            lambda path: plots.plot_image_grid(
                model.sample(64, rng=seed), shape, path=path,
                title=f"{name}: decoder means for {_prior_text(model)}",
            ),
        )  # fmt: skip
    if callable(getattr(model, "analogies", None)) and y_show is not None:  # CVAE: every class
        grid = model.analogies(x_show[:8], y_show[:8])  # (8, C, input_dim)
        figure(
            "analogies.png",
            lambda path: plots.plot_image_grid(
                grid.reshape(-1, grid.shape[-1]), shape, nrows=len(grid), path=path,
                title=f"{name}: each row keeps a test image's code, decoded as every class",
            ),
        )  # fmt: skip
    means = model.parameters().get("prior.mean")
    if means is not None:  # the mixture prior: its component means decoded
        figure(
            "components.png",
            lambda path: plots.plot_image_grid(
                model.decode(means[:64]), shape, path=path,
                title=f"{name}: decoded means of the prior's components",
            ),
        )  # fmt: skip
    if not model.labelled and callable(getattr(model, "loss_parts", None)):
        kl_dims = model.loss_parts(test_set.x, rng=0).get("kl_per_dim")
        if kl_dims is not None:
            figure(
                "kl_per_dim.png",
                lambda path: plots.plot_kl_per_dimension(
                    kl_dims, path=path, title=f"{name}: KL per latent dimension, test set"
                ),
            )
    if model.latent_dim == 2 and not model.labelled:
        figure(
            "manifold.png",
            lambda path: plots.plot_manifold(
                model, shape, path=path, title=f"{name}: decoded latent plane"
            ),
        )


def _sample_labels(model: Any, args: argparse.Namespace, gen: Any) -> Any:
    """The class of every sample of a labelled model: ``--label``, or drawn uniformly."""
    n_classes = getattr(model, "n_classes", None)
    if not (model.labelled and n_classes):
        if args.label is not None:
            raise CLIError(
                f"--label chooses the class of a conditional model; {args.model} holds a"
                f" {type(model).__name__}, which takes no label"
            )
        return None
    if args.label is None:
        return gen.integers(0, n_classes, args.n)
    if not 0 <= args.label < n_classes:
        raise CLIError(f"--label {args.label}: the model's classes are 0 .. {n_classes - 1}")
    return np.full(args.n, args.label)


def _prior_text(model: Any) -> str:
    """What a sample is drawn from, for a figure's title: the lecture's N(0, I), or the
    model's own mixture prior."""
    components = getattr(model, "n_components", None)
    if components:
        return f"z ~ p(z), a mixture of {components} Gaussians"
    return "z ~ N(0, I)"


def cmd_sample(args: argparse.Namespace) -> int:
    from . import plots

    model = _load_model(args.model)
    if not model.generative:
        raise CLIError(
            f"{args.model} holds an {type(model).__name__}, which has no prior to sample from;"
            " use a model of the VAE family"
        )
    gen = np.random.default_rng(args.seed)
    labels = _sample_labels(model, args, gen)
    name = _model_name(model, model.metadata.get("dataset"))
    if labels is None:
        images = model.sample(args.n, rng=gen)
        title = f"{name}: decoder means for {args.n} draws of {_prior_text(model)}"
    else:
        images = model.sample(args.n, y=labels, rng=gen)
        which = f"label {args.label}" if args.label is not None else "labels drawn uniformly"
        title = f"{name}: {args.n} draws of z ~ N(0, I), {which}"
    plots.plot_image_grid(images, _image_shape(model), title=title, path=Path(args.out))
    if labels is not None:
        cols = math.ceil(args.n / min(math.ceil(math.sqrt(args.n)), args.n))
        rows = [labels[i : i + cols] for i in range(0, len(labels), cols)]
        print("labels of the samples, row by row as in the grid:")
        for row in rows:
            print("  " + " ".join(str(int(v)) for v in row))
    print(f"wrote {args.out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    model = _load_model(args.model)
    name = args.dataset or model.metadata.get("dataset")
    if name is None:
        raise CLIError(
            "the model file does not say which data set it was trained on; pass --dataset"
        )
    dataset = _load_data(name, args.split, args)
    if dataset.n_features != model.input_dim:
        raise CLIError(
            f"{args.model} takes {model.input_dim} features but {name} has"
            f" {dataset.n_features}; pass --dataset with the data set the model was trained on"
        )
    data = tuple(a[: args.max_examples] for a in _data_of(model, dataset))
    terms = model.evaluate_terms(*data, rng=args.seed)
    print(f"{model!r}\non {name} {args.split} ({len(data[0])} examples), nats per example:")
    if not model.generative:
        print(f"  reconstruction loss {terms['loss']:10.3f}")
        return 0
    y_ = ", y" if model.conditional else ""  # a model of p(x|y) is evaluated given y
    what = f"ln p(x{'|y' if model.conditional else ''})"
    print(f"  ELBO           {-terms['loss']:10.3f}   (-ELBO = {terms['loss']:.3f}), bounds {what}")
    if "reconstruction" in terms:
        print(f"  reconstruction {terms['reconstruction']:10.3f}   E_q[-ln p(x|z{y_})], one sample")
    if "kl" in terms:
        print(f"  KL             {terms['kl']:10.3f}   KL(q(z|x{y_}) || p(z))")
    if callable(getattr(model, "predict", None)) and dataset.y is not None:
        hits = model.predict(data[0]) == dataset.y[: args.max_examples]
        print(f"  accuracy       {hits.mean():10.4f}   of the classifier q(y|x)")
    if args.iwae_k:
        from .evaluate import exact_log_likelihood, iwae_log_likelihood

        iwae = iwae_log_likelihood(model, *data, k=args.iwae_k, rng=args.seed).mean()
        print(f"  IWAE (k={args.iwae_k}) {iwae:10.3f}   importance-weighted bound on {what}")
        if model.latent_dim == 2 and not model.conditional and isinstance(model, DecoderModel):
            exact = exact_log_likelihood(model, data[0]).mean()
            print(f"  exact ln p(x)  {exact:10.3f}   quadrature over the latent plane")
    return 0


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


def cmd_explore(args: argparse.Namespace) -> int:
    from .plots.explorer import write_explorer

    model = _load_model(args.model)
    if not callable(getattr(model, "decode", None)):
        raise CLIError(f"{args.model} holds a {type(model).__name__}, which has no decoder")
    name = args.dataset or model.metadata.get("dataset") or "digits"
    data = _load_data(name, args.split, args)
    if data.n_features != model.input_dim:
        raise CLIError(
            f"{args.model} takes {model.input_dim} features but {name} has {data.n_features};"
            " pass --dataset with the data set the model was trained on"
        )
    if args.dims is not None and max(args.dims) > model.latent_dim:
        raise CLIError(
            f"--dims {args.dims[0]} {args.dims[1]}: the model has {model.latent_dim} latent"
            f" dimensions, numbered 1 .. {model.latent_dim}"
        )
    out = Path(args.out) if args.out else Path(args.model).parent / "explorer.html"
    path = write_explorer(
        model,
        out,
        data=data.x,
        labels=data.y,
        image_shape=data.image_shape,
        dims=None if args.dims is None else (args.dims[0] - 1, args.dims[1] - 1),
        title=f"{_model_name(model, name)}: latent-space explorer",
        max_points=args.max_points,
    )
    shown = min(args.max_points, data.n_examples)
    print(
        f"wrote {path} ({path.stat().st_size / 1024:.0f} kB): the latent space of"
        f" {_model_name(model, name)} with the codes of {shown} {name} {args.split} examples"
    )
    print(f"open it in a web browser: {path.resolve().as_uri()}")
    return 0


def cmd_verify_kl(args: argparse.Namespace) -> int:
    print("KL(N(mu, sigma^2) || N(m, s^2)) in nats: the lecture's closed form")
    print("  1/2 [ln(s^2/sigma^2) - 1 + (sigma^2 + (mu - m)^2) / s^2]")
    print("against scipy.integrate.quad of p ln(p/q) and a Monte Carlo average (200,000 draws).\n")
    header = f"{'mu':>5} {'sigma':>6} {'m':>5} {'s':>5} | {'closed form':>12} {'quadrature':>12} {'|diff|':>8} | {'Monte Carlo':>18}"
    print(header)
    print("-" * len(header))
    worst = 0.0
    for i, (mu, sigma, m, s) in enumerate(KL_CASES):
        closed = float(kl_normal(mu, sigma, m, s))
        quad = float(kl_by_quadrature(mu, sigma, m, s))
        est, se = kl_monte_carlo(mu, sigma, m, s, n=200_000, rng=i)
        worst = max(worst, abs(closed - quad))
        print(
            f"{mu:5.1f} {sigma:6.2f} {m:5.1f} {s:5.1f} | {closed:12.8f} {quad:12.8f} {abs(closed - quad):8.1e}"
            f" | {est:9.5f} ± {2 * se:.5f}"
        )
    print(f"\nlargest |closed form - quadrature| = {worst:.1e} nats")
    return 0


def cmd_notebooks(args: argparse.Namespace) -> int:
    if args.solutions:
        raise CLIError(
            f"--solutions is gone: {SOLUTIONS_NOT_SHIPPED}. Nothing was written; run"
            " `vae-numpy notebooks DIR` without --solutions for the student copies"
        )
    try:
        written = copy_notebooks(args.dir, force=args.force)
    except FileExistsError as exc:
        raise CLIError(str(exc).replace(" (force=True)", "")) from exc
    student = [p for p in written if p.parent.name == "assignments"]
    lecture = len(written) - len(student)
    for p in written:
        print(f"wrote {p}")
    print(
        f"{lecture} lecture notebooks and {len(student)} assignments (student copies)"
        f" in {args.dir}; open them with: jupyter lab {args.dir}"
    )
    return 0


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
