"""The commands of ``vae-numpy`` besides ``train``: use a trained model, check the KL formula,
copy the notebooks.

    vae-numpy sample --model runs/digits/model.npz -n 64 --out samples.png
    vae-numpy evaluate --model runs/digits/model.npz --iwae-k 100
    vae-numpy explore --model runs/digits/model.npz    # an HTML latent-space explorer
    vae-numpy verify-kl
    vae-numpy notebooks DIR

``sample``, ``evaluate`` and ``explore`` load any saved model and ask what it can do, never
which class it is. The options are those of :func:`vae_numpy.cli.build_parser`.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np

from .cli_common import CLIError, data_of, load_data, model_name, prior_text
from .kl import kl_by_quadrature, kl_monte_carlo, kl_normal
from .models import load_model
from .protocol import DecoderModel, LatentModel
from .resources import SOLUTIONS_NOT_SHIPPED, copy_notebooks

__all__ = ["cmd_sample", "cmd_evaluate", "cmd_explore", "cmd_verify_kl", "cmd_notebooks"]

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


def _load_model(path: str) -> Any:
    """Any saved model, as its own class (the commands ask what it can do, not what it is)."""
    p = Path(path)
    if not p.exists():
        raise CLIError(f"no model file at {p}; train one with 'vae-numpy train --out DIR'")
    return load_model(p)


def _image_shape(model: LatentModel) -> tuple[int, int]:
    """(rows, columns) of the model's images: from its file, else a square of its features."""
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


def cmd_sample(args: argparse.Namespace) -> int:
    """Run ``vae-numpy sample``: a grid of decoded draws from the prior, written to ``--out``."""
    from . import plots

    model = _load_model(args.model)
    if not model.generative:
        raise CLIError(
            f"{args.model} holds an {type(model).__name__}, which has no prior to sample from;"
            " use a model of the VAE family"
        )
    gen = np.random.default_rng(args.seed)
    labels = _sample_labels(model, args, gen)
    name = model_name(model, model.metadata.get("dataset"))
    if labels is None:
        images = model.sample(args.n, rng=gen)
        title = f"{name}: decoder means for {args.n} draws of {prior_text(model)}"
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
    """Run ``vae-numpy evaluate``: print the ELBO and its parts (an autoencoder: its loss)."""
    model = _load_model(args.model)
    name = args.dataset or model.metadata.get("dataset")
    if name is None:
        raise CLIError(
            "the model file does not say which data set it was trained on; pass --dataset"
        )
    dataset = load_data(name, args.split, args)
    if dataset.n_features != model.input_dim:
        raise CLIError(
            f"{args.model} takes {model.input_dim} features but {name} has"
            f" {dataset.n_features}; pass --dataset with the data set the model was trained on"
        )
    data = tuple(a[: args.max_examples] for a in data_of(model, dataset))
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


def cmd_explore(args: argparse.Namespace) -> int:
    """Run ``vae-numpy explore``: write the self-contained HTML latent-space explorer."""
    from .plots.explorer import write_explorer

    model = _load_model(args.model)
    if not callable(getattr(model, "decode", None)):
        raise CLIError(f"{args.model} holds a {type(model).__name__}, which has no decoder")
    name = args.dataset or model.metadata.get("dataset") or "digits"
    data = load_data(name, args.split, args)
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
        title=f"{model_name(model, name)}: latent-space explorer",
        max_points=args.max_points,
    )
    shown = min(args.max_points, data.n_examples)
    print(
        f"wrote {path} ({path.stat().st_size / 1024:.0f} kB): the latent space of"
        f" {model_name(model, name)} with the codes of {shown} {name} {args.split} examples"
    )
    print(f"open it in a web browser: {path.resolve().as_uri()}")
    return 0


def cmd_verify_kl(args: argparse.Namespace) -> int:
    """Run ``vae-numpy verify-kl``: the closed-form KL beside quadrature and Monte Carlo."""
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
    """Run ``vae-numpy notebooks``: copy the lecture notebooks and the student copies."""
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
