"""Reproduce published numbers with vae_numpy.

Three parts, each printing a table (all numbers in nats per image):

``pytorch``  The protocol of the pytorch/examples VAE (vae/main.py): MNIST grey levels (not
             binarised), 784-400-20 ReLU, Bernoulli decoder, Adam lr 1e-3, batch 128, 10 epochs;
             test loss = summed BCE + KL per test image with one z sampled per image. That
             example reports about 105.6 after 10 epochs.
``iwae``     Dynamically binarised MNIST, the same network, trained for ``--iwae-epochs`` epochs,
             then the importance-weighted bound with k = 5000 on the first ``--iwae-test``
             test images. The IWAE paper's one-stochastic-layer VAE (k = 1 training) reaches
             -86.76 after 3,280 epochs of a larger network: our epoch budget is far smaller,
             so the numbers are not comparable for parity, only for order of magnitude.
``frey``     Frey Face with the Gaussian decoder and a 2-D latent space; saves the learned face
             manifold (Kingma & Welling 2013, Fig. 4 right) to docs/figures/frey_manifold.png.

Real data come from ``shared/data`` beside the checkout or ``$VAE_NUMPY_TEST_DATA``.

Usage::

    python benchmarks/reproduce_pytorch_example.py                 # all three parts
    python benchmarks/reproduce_pytorch_example.py --part pytorch
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _common import HERE, shared_data_dir

from vae_numpy.data import load_dataset
from vae_numpy.evaluate import iwae_log_likelihood
from vae_numpy.vae import VAE

#: Test loss per epoch printed by pytorch/examples vae/main.py (for the README table).
PYTORCH_EXAMPLE_EPOCH_10 = 105.6


def test_loss(model: VAE, x: np.ndarray, seed: int) -> float:
    """Mean over test images of summed BCE + KL with one sampled z per image (the example's)."""
    return -model.score(x, rng=seed)


def part_pytorch(data: Path, epochs: int) -> None:
    x = load_dataset("mnist", "train", data_dir=data, download=False).x
    x_test = load_dataset("mnist", "test", data_dir=data, download=False).x
    model = VAE(784, (400,), 20, rng=1)
    rng = np.random.default_rng(1)
    print("pytorch/examples protocol: MNIST grey levels, 784-400-20, Adam 1e-3, batch 128")
    print(f"{'epoch':>5} {'train loss':>11} {'test loss':>10} {'seconds':>8}")
    for epoch in range(1, epochs + 1):
        t = time.perf_counter()
        model.fit(
            x,
            epochs=1,
            batch_size=128,
            lr=1e-3,
            rng=rng,
            progress=False,
            optimizer=model.optimizer_ or "adam",
        )
        seconds = time.perf_counter() - t
        print(
            f"{epoch:5d} {model.history_['loss'][-1]:11.2f} {test_loss(model, x_test, epoch):10.2f} {seconds:8.1f}",
            flush=True,
        )
    print(f"pytorch/examples after {epochs} epochs: about {PYTORCH_EXAMPLE_EPOCH_10}")


def part_iwae(data: Path, epochs: int, n_test: int) -> None:
    x = load_dataset("mnist", "train", data_dir=data, download=False).x
    x_test = load_dataset("mnist", "test", data_dir=data, download=False).x[:n_test]
    x_test_bin = (np.random.default_rng(123).random(x_test.shape) < x_test).astype(np.float32)
    model = VAE(784, (400,), 20, rng=0)
    t = time.perf_counter()
    model.fit(x, epochs=epochs, batch_size=128, lr=1e-3, rng=0, progress=False, binarize=True)
    train_seconds = time.perf_counter() - t
    t = time.perf_counter()
    iwae = iwae_log_likelihood(model, x_test_bin, k=5000, rng=0)
    elbo = model.score(x_test_bin, rng=0)
    print(
        f"dynamically binarised MNIST, 784-400-20, {epochs} epochs ({train_seconds:.0f} s);"
        f" first {n_test} test images binarised once (seed 123)"
    )
    print(f"  ELBO (1 sample)   {elbo:8.2f}")
    print(
        f"  IWAE k=5000       {iwae.mean():8.2f} ± {iwae.std(ddof=1) / np.sqrt(n_test):.2f}"
        f"  ({time.perf_counter() - t:.0f} s)"
    )
    print("  IWAE paper, VAE with one stochastic layer, k=1, 3,280 epochs: -86.76")


def part_frey(data: Path, epochs: int) -> None:
    from vae_numpy import plots

    train = load_dataset("frey-faces", "train", data_dir=data, download=False)
    test = load_dataset("frey-faces", "test", data_dir=data, download=False)
    model = VAE(560, (200,), 2, likelihood="gaussian", rng=0)
    t = time.perf_counter()
    model.fit(train.x, epochs=epochs, batch_size=100, lr=1e-3, rng=0, progress=False)
    print(
        f"Frey Face, Gaussian decoder, 560-200-2, {epochs} epochs ({time.perf_counter() - t:.0f} s):"
        f" test ELBO {model.score(test.x):.1f} nats per image"
    )
    out = HERE.parent / "docs" / "figures" / "frey_manifold.png"
    plots.plot_manifold(
        model,
        train.image_shape,
        n=12,
        title="Frey Face manifold (Gaussian decoder, 2-D latent)",
        path=out,
    )
    print(f"  wrote {out.relative_to(HERE.parent)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("pytorch", "iwae", "frey", "all"), default="all")
    parser.add_argument(
        "--epochs", type=int, default=10, help="epochs of the pytorch part (default 10)"
    )
    parser.add_argument("--iwae-epochs", type=int, default=30)
    parser.add_argument(
        "--iwae-test", type=int, default=1000, help="test images for IWAE (default 1000)"
    )
    parser.add_argument("--frey-epochs", type=int, default=300)
    args = parser.parse_args()
    data = shared_data_dir()
    if data is None:
        raise SystemExit(
            "real data not found: set VAE_NUMPY_TEST_DATA or place shared/data beside the checkout"
        )
    if args.part in ("pytorch", "all"):
        part_pytorch(data, args.epochs)
    if args.part in ("iwae", "all"):
        part_iwae(data, args.iwae_epochs, args.iwae_test)
    if args.part in ("frey", "all"):
        part_frey(data, args.frey_epochs)


if __name__ == "__main__":
    main()
