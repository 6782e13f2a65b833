"""Where an epoch's time goes, and the peak memory of training on full MNIST.

Wraps the pieces of one training step with timers (no profiler overhead) and trains one epoch
of the 784-400-20 VAE (batch 128, Adam), then prints the share of:

* matrix products (the Dense layers' forward and backward),
* the Adam update,
* element-wise work (activations, the Bernoulli likelihood and its gradient, the KL term,
  the reparameterisation, noise),
* data shuffling (the permutation and the gathering of each minibatch),

and the process's peak resident memory after loading MNIST and training (VmHWM of
/proc/self/status: ru_maxrss would carry over the peak of the process that started this one,
such as bench_training.py with PyTorch loaded).

Usage::

    python benchmarks/profile_epoch.py            # one epoch of 60,000 examples
    python benchmarks/profile_epoch.py --examples 12800
"""

from __future__ import annotations

import argparse
import resource
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np
from _common import mnist_or_random

import vae_numpy.layers as layers
import vae_numpy.optim as optim
from vae_numpy.vae import VAE

TIMES: dict[str, float] = defaultdict(float)


def timed(owner: Any, name: str, bucket: str) -> None:
    original: Callable[..., Any] = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            TIMES[bucket] += time.perf_counter() - t

    setattr(owner, name, wrapper)


def peak_resident_kib() -> float:
    """This process's peak resident memory in KiB: VmHWM, which starts anew when a program is
    executed, or ru_maxrss where there is no /proc (it keeps the peak across exec on Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1])
    except OSError:
        pass
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=60_000)
    parser.add_argument(
        "--threads",
        type=lambda v: v if v == "auto" else int(v),
        default="auto",
        help="BLAS threads: 'auto' (the thread policy, fit's default) or a number",
    )
    args = parser.parse_args()
    x, source = mnist_or_random(args.examples)
    model = VAE(784, (400,), 20, rng=0)
    # warm-up
    model.fit(x[:2560], epochs=1, batch_size=128, rng=0, progress=False, threads=args.threads)
    timed(layers.Dense, "forward", "matrix products")
    timed(layers.Dense, "backward", "matrix products")
    timed(optim.Adam, "step", "Adam update")
    t0 = time.perf_counter()
    model.fit(x, epochs=1, batch_size=128, rng=0, progress=False, threads=args.threads)
    total = time.perf_counter() - t0
    # data shuffling measured separately: the permutation and the gather of every batch
    t = time.perf_counter()
    order = np.random.default_rng(0).permutation(len(x))
    for lo in range(0, len(x), 128):
        x[order[lo : lo + 128]]
    TIMES["data shuffling"] = time.perf_counter() - t
    TIMES["element-wise and the rest"] = (
        total - sum(v for k, v in TIMES.items() if k != "data shuffling") - TIMES["data shuffling"]
    )
    print(
        f"one epoch of VAE 784-400-20 on {len(x):,} examples ({source}), batch 128, Adam: {total:.2f} s"
        f" on BLAS threads: {model.history_['threads'][0]:.0f} (threads={args.threads})"
    )
    for k in ("matrix products", "Adam update", "element-wise and the rest", "data shuffling"):
        print(f"  {k:28s} {TIMES[k]:6.3f} s  {TIMES[k] / total:6.1%}")
    peak_mib = peak_resident_kib() / 1024
    print(f"peak resident memory: {peak_mib:.0f} MiB (data {x.nbytes / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()
