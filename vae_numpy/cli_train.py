"""``vae-numpy train``: build the model that ``--model`` names, train it on a data set, save it,
and draw the lecture's figures that it can draw.

    vae-numpy train --out runs/digits                 # VAE, latent 2, on the bundled digits
    vae-numpy train --model cvae --out runs/cvae      # the conditional VAE, one class per row

Ctrl-C keeps the model of the last completed epoch and prints the command that resumes the run.
The options are those of :func:`vae_numpy.cli.build_parser`; :func:`vae_numpy.cli.main` calls
:func:`cmd_train` with them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .autoencoder import Autoencoder
from .checkpoints import load_checkpoint
from .cli_common import CLIError, data_of, load_data, model_name, prior_text
from .cvae import ConditionalVAE
from .data import Dataset
from .gmvae import GaussianMixtureVAE
from .protocol import LatentModel
from .serialization import atomic_write_bytes
from .ssvae import SemiSupervisedVAE
from .vae import VAE

__all__ = ["cmd_train", "labelled_subset"]

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

#: A run whose final test loss ends this much above the untrained model's (relative to its
#: size) gets a warning that names the learning rate.
DIVERGENCE_MARGIN = 0.1


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


def cmd_train(args: argparse.Namespace) -> int:
    """Run ``vae-numpy train``: write model.npz, history.json and the figures to ``--out``.

    Returns the exit status: 0, or 130 after Ctrl-C (the model of the last completed epoch
    is saved when there is one). A request it cannot carry out raises
    :class:`~vae_numpy.cli_common.CLIError`, which :func:`vae_numpy.cli.main` prints as one line.
    """
    from . import plots  # matplotlib only when figures are drawn

    out = Path(args.out)
    train_set = load_data(args.dataset, "train", args)
    test_set = load_data(args.dataset, "test", args)
    epochs = args.epochs or DEFAULT_EPOCHS[args.dataset]
    model = _build_model(args, train_set)  # below, only what the model can do is asked
    labels = None
    if args.model == "ssvae" and train_set.y is not None:  # (data without labels: refused)
        keep = labelled_subset(train_set.y, args.labels or DEFAULT_LABELS, args.seed)
        labels = np.full(train_set.n_examples, -1)
        labels[keep] = train_set.y[keep]
    train_data = data_of(model, train_set, labels=labels)
    test_data = data_of(model, test_set)  # M2: x alone, the bound on ln p(x)
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
    train_terms = model.evaluate_terms(*data_of(model, train_set))
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
    name = model_name(model, train_set.name)
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
                title=f"{name}: decoder means for {prior_text(model)}",
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


def _write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` to ``path`` as indented JSON, atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode("utf-8"))
