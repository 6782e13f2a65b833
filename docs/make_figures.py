"""Draw the README's figures: one PNG per lecture notebook, and the Quick start's run.

Each figure in ``docs/figures/`` is the notebook's key picture, drawn by the package's own plot
functions from models trained exactly as in the notebook (the bundled 8x8 digits, the same
sizes, seeds and epochs), so the README shows what a student sees. ``docs/cli/`` holds the
figures that the Quick start's ``vae-numpy train --out runs/digits`` writes, made by running
that very command. Takes about a minute on two cores::

    python docs/make_figures.py                      # writes docs/figures/*.png and docs/cli/*.png
    python docs/make_figures.py --out DIR --cli-out DIR2  # somewhere else

Every file is written atomically (``vae_numpy.plots.save_figure``) and checked to stay below
150 KB, so that the README stays light.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from vae_numpy import cli
from vae_numpy.autoencoder import Autoencoder
from vae_numpy.data import load_dataset
from vae_numpy.evaluate import elbo, exact_log_likelihood, exact_posterior
from vae_numpy.plots import (
    plot_histories,
    plot_kl_surface,
    plot_latent_comparison,
    plot_manifold,
    plot_posterior_comparison,
    save_figure,
)
from vae_numpy.vae import VAE

FIGURES = Path(__file__).resolve().parent / "figures"
CLI_FIGURES = Path(__file__).resolve().parent / "cli"
CLI_PNGS = (
    "loss.png",
    "latent.png",
    "manifold.png",
    "reconstructions.png",
    "samples.png",
    "kl_per_dim.png",
)
MAX_BYTES = 150 * 1024
DPI = 100

# The notebooks' settings: 64-128-2 networks, Adam 1e-3, batches of 64, seed 0.
HIDDEN, LATENT = (128,), 2
TRAIN: dict[str, Any] = dict(epochs=60, batch_size=64, lr=1e-3, rng=0, progress=False)


def _digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    x_train, y_train, image_shape = load_dataset("digits", "train")
    x_test, y_test, _ = load_dataset("digits", "test")
    return x_train, y_train, x_test, y_test, image_shape


def figure_01() -> Figure:
    """Notebook 01: autoencoder codes beside VAE codes (test set, coloured by digit)."""
    x_train, _, x_test, y_test, _ = _digits()
    ae = Autoencoder(64, HIDDEN, LATENT, rng=0).fit(x_train, **TRAIN)
    vae = VAE(64, HIDDEN, LATENT, rng=0).fit(x_train, **TRAIN)
    return plot_latent_comparison(
        ae.encode(x_test),
        vae.encode(x_test)[0],
        y_test,
        title="Autoencoder and VAE on digits: codes of the test set",
    )


def figure_02() -> Figure:
    """Notebook 02: the true posterior and q(z|x) for the test image with the loosest ELBO."""
    x_train, _, x_test, y_test, _ = _digits()
    vae = VAE(64, HIDDEN, LATENT, rng=0).fit(x_train, **TRAIN)
    x_eval = x_test[:20]
    gap = exact_log_likelihood(vae, x_eval) - elbo(vae, x_eval, n_samples=20_000, rng=0)
    k = int(np.argmax(gap))
    mu, log_var = vae.encode(x_eval[k : k + 1])
    z1, z2, posterior = exact_posterior(vae, x_eval[k])
    return plot_posterior_comparison(
        z1,
        z2,
        posterior,
        mu,
        log_var,
        title=f"VAE on digits, test image {k} (a {y_test[k]})\nln p(x) - ELBO = {gap[k]:.2f} nats",
    )


def figure_03() -> Figure:
    """Notebook 03: KL(N(mu, sigma^2) || N(0, 1)) over (mu, sigma), and the reverse direction."""
    return plot_kl_surface(asymmetry=True)


def figure_04() -> Figure:
    """Notebook 04: -ELBO per epoch for Adam, SGD and Adagrad (and SGD at Adam's rate)."""
    x_train, _, x_test, _, _ = _digits()
    settings = {
        "Adam, lr 1e-3": ("adam", 1e-3),
        "SGD, lr 0.05": ("sgd", 0.05),
        "Adagrad, lr 0.01": ("adagrad", 0.01),
        "SGD, lr 1e-3": ("sgd", 1e-3),
    }
    runs = {
        label: VAE(64, HIDDEN, LATENT, rng=0).fit(
            x_train,
            epochs=40,
            batch_size=64,
            lr=lr,
            optimizer=optimizer,
            rng=0,
            validation_data=x_test,
            progress=False,
        )
        for label, (optimizer, lr) in settings.items()
    }
    return plot_histories(runs, title="VAE on digits: -ELBO per epoch (dashed: test set)")


def figure_05() -> Figure:
    """Notebook 05: the decoded latent plane on a grid of N(0, 1) quantiles."""
    x_train, _, _, _, image_shape = _digits()
    vae = VAE(64, HIDDEN, LATENT, rng=0).fit(x_train, **TRAIN)
    return plot_manifold(vae, image_shape, n=15, title="VAE on digits: decoded latent plane")


FIGURE_FUNCTIONS: dict[str, Callable[[], Figure]] = {
    "01_latent_codes.png": figure_01,
    "02_true_posterior.png": figure_02,
    "03_kl_surface.png": figure_03,
    "04_optimizers.png": figure_04,
    "05_manifold.png": figure_05,
}


def cli_figures(out: Path) -> list[Path]:
    """Run the Quick start's `vae-numpy train` and copy its figures into ``out``."""
    with tempfile.TemporaryDirectory() as tmp:
        if cli.main(["train", "--out", tmp, "--no-progress"]) != 0:
            raise RuntimeError("vae-numpy train failed")
        out.mkdir(parents=True, exist_ok=True)
        return [Path(shutil.copy(Path(tmp) / name, out / name)) for name in CLI_PNGS]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=FIGURES, help="folder for the PNG files")
    parser.add_argument(
        "--cli-out", type=Path, default=CLI_FIGURES, help="folder for the Quick start's figures"
    )
    parser.add_argument("--dpi", type=float, default=DPI, help="resolution (dots per inch)")
    args = parser.parse_args(argv)
    too_big = []
    for path in cli_figures(args.cli_out):
        size = path.stat().st_size
        print(f"{path}  {size / 1024:5.1f} KB")
        if size > MAX_BYTES:
            too_big.append(f"{path} is {size / 1024:.0f} KB")
    for name, make in FIGURE_FUNCTIONS.items():
        start = time.perf_counter()
        path = save_figure(make(), args.out / name, dpi=args.dpi)
        size = path.stat().st_size
        print(f"{path}  {size / 1024:5.1f} KB  {time.perf_counter() - start:4.1f} s")
        if size > MAX_BYTES:
            too_big.append(f"{path} is {size / 1024:.0f} KB")
    if too_big:
        print("over the 150 KB budget (lower --dpi):", "; ".join(too_big), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
