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

from . import assignments
from ._argtypes import non_negative_float, positive_float, positive_int
from .autoencoder import Autoencoder
from .data import DATASETS, FOLDERS, Dataset, MissingDataError, get_data_dir, load_dataset
from .kl import kl_by_quadrature, kl_monte_carlo, kl_normal
from .models import load_model
from .protocol import LatentModel
from .resources import SOLUTIONS_NOT_SHIPPED, copy_notebooks
from .serialization import atomic_write_bytes
from .train import load_checkpoint
from .vae import VAE

__all__ = ["main", "build_parser"]

#: Epochs used when --epochs is not given: enough for good pictures in well under a minute on
#: the bundled digits, a reasonable first run elsewhere.
DEFAULT_EPOCHS = {"digits": 100, "mnist": 10, "fashion-mnist": 10, "frey-faces": 200}

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
        help="train a VAE or autoencoder and write its figures",
        description="Train a model, then write model.npz, history.json and PNG figures to --out.",
    )
    train.add_argument(
        "--dataset", default="digits", choices=DATASETS, help="data set (default: digits, bundled)"
    )
    train.add_argument("--data-dir", default=None, metavar="DIR", help=DATA_DIR_HELP)
    train.add_argument(
        "--model", default="vae", choices=("vae", "ae"), help="VAE or plain autoencoder"
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
    train.add_argument("--beta", type=non_negative_float, default=1.0, help="KL weight (default 1)")
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

    sample = sub.add_parser("sample", help="draw new images from a trained VAE")
    sample.add_argument("--model", required=True, help="model.npz written by 'vae-numpy train'")
    sample.add_argument("-n", type=positive_int, default=64, help="number of samples (default 64)")
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


def cmd_train(args: argparse.Namespace) -> int:
    from . import plots  # matplotlib only when figures are drawn

    out = Path(args.out)
    train_set = _load_data(args.dataset, "train", args)
    test_set = _load_data(args.dataset, "test", args)
    epochs = args.epochs or DEFAULT_EPOCHS[args.dataset]
    model: Any  # VAE or Autoencoder: below, only what the model can do is asked
    if args.model == "vae":
        likelihood = args.likelihood or (
            "gaussian" if args.dataset == "frey-faces" else "bernoulli"
        )
        model = VAE(
            train_set.n_features,
            args.hidden,
            args.latent_dim,
            likelihood=likelihood,
            beta=args.beta,
            rng=args.seed,
        )
    else:
        model = Autoencoder(train_set.n_features, args.hidden, args.latent_dim, rng=args.seed)
    model.metadata = {"dataset": args.dataset, "image_shape": list(train_set.image_shape)}
    untrained = model.evaluate_terms(test_set.x, rng=0)["loss"]
    checkpoint = out / "checkpoint.npz"
    before = checkpoint.stat().st_mtime_ns if checkpoint.exists() else None
    try:  # from the announcement on, Ctrl-C ends in the messages of _stopped
        print(
            f"training {model!r}\n  on {args.dataset}: {train_set.n_examples} train, "
            f"{test_set.n_examples} test examples; {epochs} epochs, batch {args.batch_size}",
            flush=True,
        )
        t0 = time.perf_counter()
        model.fit(
            train_set.x,
            epochs=epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            optimizer=args.optimizer,
            rng=args.seed,
            validation_data=test_set.x,
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
    train_terms = model.evaluate_terms(train_set.x)
    test_terms = model.evaluate_terms(test_set.x)
    unit = "-ELBO" if "kl" in test_terms else "reconstruction loss"
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
    if test_terms["loss"] > untrained + DIVERGENCE_MARGIN * abs(untrained):
        print(
            f"warning: the test {unit} ended at {test_terms['loss']:.4g}, above the"
            f" {untrained:.4g} of the untrained model: training diverged. The learning rate"
            f" --lr {args.lr:g} is probably too large for {args.optimizer}; try"
            f" --lr {args.lr / 10:g} or smaller (the default is 1e-3)",
            file=sys.stderr,
        )
    shape = train_set.image_shape
    x_show = test_set.x[:10]
    written = [out / "model.npz", out / "history.json"]
    name = _model_name(model, args.dataset)

    def figure(filename: str, draw: Any) -> None:
        draw(path=out / filename)
        written.append(out / filename)

    figure(
        "loss.png",
        lambda path: plots.plot_history(
            model.history_, path=path, title=f"{name}: training curves"
        ),
    )
    figure(
        "reconstructions.png",
        lambda path: plots.plot_reconstructions(
            x_show,
            model.reconstruct(x_show),
            shape,
            path=path,
            title=f"{name}: test images and their reconstructions",
        ),
    )
    codes = model.code(test_set.x)  # a VAE's code is the mean of q(z|x)
    figure(
        "latent.png",
        lambda path: plots.plot_latent_scatter(
            codes, test_set.y, path=path, title=f"{name}: means of q(z|x), test set"
        ),
    )
    if model.generative:
        figure(
            "samples.png",
            lambda path: plots.plot_image_grid(
                model.sample(64, rng=args.seed),
                shape,
                title=f"{name}: decoder means for z ~ N(0, I)",
                path=path,
            ),
        )
        kl_dims = model.loss_parts(test_set.x, rng=0)["kl_per_dim"]
        figure(
            "kl_per_dim.png",
            lambda path: plots.plot_kl_per_dimension(
                kl_dims, path=path, title=f"{name}: KL per latent dimension, test set"
            ),
        )
        if model.latent_dim == 2:
            figure(
                "manifold.png",
                lambda path: plots.plot_manifold(
                    model, shape, path=path, title=f"{name}: decoded latent plane"
                ),
            )
    checkpoint.unlink(missing_ok=True)  # training finished: the final model replaces it
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from . import plots

    model = _load_model(args.model)
    if not model.generative:
        raise CLIError(
            f"{args.model} holds an {type(model).__name__}, which has no prior to sample from;"
            " use a VAE"
        )
    images = model.sample(args.n, rng=args.seed)
    name = _model_name(model, model.metadata.get("dataset"))
    plots.plot_image_grid(
        images,
        _image_shape(model),
        title=f"{name}: decoder means for {args.n} draws of z ~ N(0, I)",
        path=Path(args.out),
    )
    print(f"wrote {args.out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    model = _load_model(args.model)
    name = args.dataset or model.metadata.get("dataset")
    if name is None:
        raise CLIError(
            "the model file does not say which data set it was trained on; pass --dataset"
        )
    x = _load_data(name, args.split, args).x[: args.max_examples]
    terms = model.evaluate_terms(x, rng=args.seed)
    print(f"{model!r}\non {name} {args.split} ({len(x)} examples), nats per example:")
    if not model.generative:
        print(f"  reconstruction loss {terms['loss']:10.3f}")
        return 0
    print(f"  ELBO           {-terms['loss']:10.3f}   (-ELBO = {terms['loss']:.3f})")
    print(f"  reconstruction {terms['reconstruction']:10.3f}   E_q[-ln p(x|z)], one sample")
    print(f"  KL             {terms['kl']:10.3f}   KL(q(z|x) || N(0, I))")
    if args.iwae_k:
        from .evaluate import exact_log_likelihood, iwae_log_likelihood

        iwae = iwae_log_likelihood(model, x, k=args.iwae_k, rng=args.seed).mean()
        print(f"  IWAE (k={args.iwae_k}) {iwae:10.3f}   importance-weighted bound on ln p(x)")
        if model.latent_dim == 2:
            exact = exact_log_likelihood(model, x).mean()
            print(f"  exact ln p(x)  {exact:10.3f}   quadrature over the latent plane")
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
