"""The subnormal cliff: M2's step time early and late in a run, with and without the flush.

As M2's classifier grows confident, q(y|x) of the classes it rules out underflows below
float32's normal range (1.2e-38); the row weights w * q(y|x) and the gradients they scale
become subnormal, and on common x86 CPUs a matrix product with subnormal inputs runs up to
~160x slower. :func:`vae_numpy.kernels.flush_negligible` zeroes those weights. This script
trains M2 twice from the same seed on CS236's protocol (784-300-300 ELU, latent 64, 100
labels, alpha 100, batch 97 unlabelled + the 100 labelled rows, dynamic binarisation), once
as the library runs and once with the flush replaced by the identity, and prints the mean
step time of the first and of the last hundred steps of each run and their ratios, and how
many entries of q(y|x) were subnormal in the last step.

A real run reaches the cliff after a few thousand steps (about 3,000 on MNIST). To see it in
seconds, ``--confident-after N`` scales the classifier's last layer after step N so that its
logits spread over about 95 nats (q(y|x) of the unlikely classes near exp(-95) = 5e-42,
subnormal): the state a long run drifts through, reached at once.

Usage::

    nice -n 10 python benchmarks/bench_subnormals.py --iterations 400 --confident-after 200
    nice -n 10 python benchmarks/bench_subnormals.py --iterations 8000      # the real thing
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from _common import load_average, shared_data_dir
from threadpoolctl import threadpool_limits

from vae_numpy import kernels
from vae_numpy.data import binarize, load_dataset
from vae_numpy.optim import Adam
from vae_numpy.ssvae import SemiSupervisedVAE

BATCH = 97
WINDOW = 100


def load(n_labels_per_class: int) -> tuple[np.ndarray, np.ndarray, str]:
    """MNIST when available (else the digits, 8x8), with -1 for all but a few labels per class."""
    folder = shared_data_dir()
    if folder is not None:
        data, name = load_dataset("mnist", "train", data_dir=folder, download=False), "MNIST"
    else:
        data, name = load_dataset("digits"), "digits (MNIST not found)"
    gen = np.random.default_rng(0)
    keep = np.concatenate(
        [
            gen.choice(np.flatnonzero(data.y == c), n_labels_per_class, replace=False)
            for c in range(10)
        ]
    )
    labels = np.full(len(data.y), -1)
    labels[keep] = data.y[keep]
    return data.x, labels, name


def run(
    x: np.ndarray, labels: np.ndarray, iterations: int, confident_after: int | None
) -> tuple[list[float], int]:
    """Step times (seconds) of one M2 run, and the subnormal entries of q(y|x) at its end."""
    gen = np.random.default_rng(0)
    model = SemiSupervisedVAE(x.shape[1], 10, (300, 300), 64, alpha=100.0, activation="elu", rng=0)
    opt = Adam(model.parameters(), lr=1e-3)
    lab, unl = np.flatnonzero(labels >= 0), np.flatnonzero(labels < 0)
    weights = np.concatenate([np.full(BATCH, 1 / BATCH), np.full(len(lab), 1 / len(lab))])
    times: list[float] = []
    q = np.zeros(0)
    while len(times) < iterations:
        order = gen.permutation(unl)
        for lo in range(0, len(order) - BATCH + 1, BATCH):
            if len(times) == confident_after:  # logits spread over ~95 nats: q underflows
                last = model.classifier.layers[-1].params
                logits = model.classifier.forward(x[unl[:1000]])
                factor = 95 / float(np.median(np.ptp(logits, axis=1)))
                last["W"] *= factor
                last["b"] *= factor
            rows = np.concatenate([order[lo : lo + BATCH], lab])
            xb, yb = binarize(x[rows], gen), labels[rows]
            t = time.perf_counter()
            model.zero_grad()
            record = model.forward((xb, yb), model.noise_for((xb, yb), rng=gen))
            model.backward(record, weights.astype(np.float32))
            opt.step(model.gradients())
            times.append(time.perf_counter() - t)
            if len(times) == iterations:
                q = model.predict_proba(xb)
                break
    tiny = np.finfo(np.float32).tiny
    return times, int(np.count_nonzero((q > 0) & (q < tiny)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--iterations", type=int, default=400)
    parser.add_argument(
        "--confident-after",
        type=int,
        default=None,
        help="after this step, scale the logits to spread over ~95 nats (a long run's state)",
    )
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads")
    args = parser.parse_args()
    if args.iterations < 2 * WINDOW:
        parser.error(f"--iterations must be at least {2 * WINDOW}: two windows of {WINDOW} steps")
    x, labels, name = load(10)
    print(f"M2 on {name}: {args.iterations} steps, batch {BATCH} + 100 labelled rows")
    print(f"load average before: {load_average()}")
    real = kernels.flush_negligible
    identity: Callable[..., Any] = lambda w, axis=-1: w  # noqa: E731
    rows = []
    with threadpool_limits(args.threads, user_api="blas"):
        for label, flush in (("flush", real), ("no flush", identity)):
            kernels.flush_negligible = flush
            try:
                times, subnormal_q = run(x, labels, args.iterations, args.confident_after)
            finally:
                kernels.flush_negligible = real
            first = 1e3 * float(np.mean(times[:WINDOW]))
            last = 1e3 * float(np.mean(times[-WINDOW:]))
            rows.append((label, first, last, subnormal_q))
    print(f"load average after:  {load_average()}")
    print(f"{'':10s} {'first 100 ms':>13s} {'last 100 ms':>12s} {'last/first':>11s}"
          f" {'subnormal q(y|x) at the end':>28s}")  # fmt: skip
    for label, first, last, subnormal_q in rows:
        print(f"{label:10s} {first:13.1f} {last:12.1f} {last / first:11.2f} {subnormal_q:28d}")
    print(f"last hundred steps, no flush / flush: {rows[1][2] / rows[0][2]:.2f}x")


if __name__ == "__main__":
    main()
