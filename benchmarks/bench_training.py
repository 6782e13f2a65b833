"""Training speed of vae_numpy, against the GEMM bound and (when installed) PyTorch.

Times whole epochs of ``VAE`` (784-400-20 and 784-400-2, batch 128, Adam) on MNIST from the
shared data folder (random binary data of the same shape when it is absent), after a warm-up,
over several rounds, and prints medians with their spread:

* seconds per epoch and examples per second;
* GFLOP/s achieved by the epoch's matrix products, next to the float32 GEMM peak of numpy's
  BLAS measured in the same run, and the fraction of the GEMM-bound limit reached
  (limit = matrix-product FLOPs / peak);
* when ``torch`` is importable (not a dependency: ``pip install torch==2.13.0``), the same
  model in PyTorch (same sizes, same initial weights, same batch order, the same number of
  threads as numpy's BLAS), timed in rounds that alternate with vae_numpy's in this process,
  and the paired ratio vae_numpy / PyTorch (median and interquartile range). The machine is
  noisy: quote this ratio, never an absolute time from another run;
* what a new user feels (``--fresh N``, 5 by default): N pairs of one epoch each in a fresh
  process per framework, the order alternating, no warm-up (a first ``fit``), and their
  ratio;
* the CPU model, the usable cores and the BLAS library with the kernel it runs (and, when
  ``OPENBLAS_CORETYPE`` sets that kernel, the one OpenBLAS would choose itself), and at the
  end where one epoch's time goes (``profile_epoch.py`` in a child process; ``--no-profile``
  skips it).

Usage::

    python benchmarks/bench_training.py            # 5 rounds of one epoch each
    python benchmarks/bench_training.py --rounds 9 --examples 60000
    python benchmarks/bench_training.py --quick    # 2 rounds on 12,800 examples
    python benchmarks/bench_training.py --rounds 0 --fresh 9 --no-profile   # fresh only
    env -u OPENBLAS_CORETYPE python benchmarks/bench_training.py   # OpenBLAS's own kernel
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _common import (
    blas_threads,
    gemm_peak_gflops,
    load_average,
    machine_description,
    make_torch,
    matmul_flops_per_example,
    median_iqr,
    mnist_or_random,
)

import vae_numpy
from vae_numpy.optim import Adam
from vae_numpy.threads import ThreadPolicy
from vae_numpy.vae import VAE


def numpy_epoch(
    model: VAE,
    opt: Adam,
    x: np.ndarray,
    order: np.ndarray,
    batch: int,
    rng: np.random.Generator,
    threads: int | str = "auto",
) -> tuple[float, int]:
    """One epoch in the given batch order under a thread policy, as ``fit`` runs it.

    Returns the seconds and the BLAS thread count of most steps.
    """
    t = time.perf_counter()
    with ThreadPolicy(threads) as policy:
        for lo in range(0, len(x), batch):
            with policy.step():
                model.zero_grad()  # the backward pass adds into the gradients
                model.loss_and_gradients_for_batch((x[order[lo : lo + batch]],), rng=rng)
                opt.step(model.gradients())
    return time.perf_counter() - t, policy.most_used()


def child_epoch(args: argparse.Namespace) -> None:
    """``--child numpy|torch``: one epoch of a new model in this fresh process, no warm-up;
    prints ``{"seconds": ...}``."""
    x, _ = mnist_or_random(args.examples)
    order = np.random.default_rng(args.order_seed).permutation(len(x))
    t = time.perf_counter()
    model = VAE(784, (400,), args.latent[0], rng=0)
    if args.child == "numpy":
        opt = Adam(model.parameters(), lr=1e-3)
        numpy_epoch(model, opt, x, order, 128, np.random.default_rng(0), args.threads)
    else:
        torch_epoch, _ = make_torch(model, args.torch_threads or blas_threads())
        torch_epoch(x, order, 128)
    print(json.dumps({"seconds": time.perf_counter() - t}))


def fresh_ratios(latent: int, args: argparse.Namespace, threads: int) -> None:
    """``args.fresh`` pairs of one epoch per framework, each in a new process, alternating."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--latent", str(latent)]
    argv += ["--examples", str(args.examples), "--threads", str(args.threads)]
    argv += ["--torch-threads", str(threads)]

    def epoch(framework: str, seed: int) -> float:
        done = subprocess.run(
            [*argv, "--child", framework, "--order-seed", str(seed)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])

    ours, theirs = [], []
    for r in range(args.fresh):
        first, second = ("numpy", "torch") if r % 2 == 0 else ("torch", "numpy")
        times = {first: epoch(first, r), second: epoch(second, r)}
        ours.append(times["numpy"])
        theirs.append(times["torch"])
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    (om, oq1, oq3), (tm, tq1, tq3) = median_iqr(ours), median_iqr(theirs)
    rm, rq1, rq3 = median_iqr(ratios)
    print(f"  fresh process, first epoch, {args.fresh} alternated pairs:")
    print(
        f"    vae_numpy {om:6.3f} s (IQR {oq1:.3f}-{oq3:.3f})   PyTorch {tm:6.3f} s (IQR {tq1:.3f}-{tq3:.3f})"
    )
    print(f"    ratio vae_numpy / PyTorch: median {rm:.3f} (IQR {rq1:.3f}-{rq3:.3f})")


def run(latent: int, x: np.ndarray, args: argparse.Namespace, peak: float, threads: int) -> None:
    batch, hidden = 128, 400
    model = VAE(784, (hidden,), latent, rng=0)
    opt = Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    torch_epoch = None
    try:
        torch_epoch, torch_version = make_torch(model, threads)
    except ImportError:
        torch_version = None
    orders = [np.random.default_rng(r).permutation(len(x)) for r in range(args.rounds + 1)]
    # warm-up on part of an epoch (allocations, BLAS threads, caches)
    warm = orders[0][: 20 * batch]
    numpy_epoch(model, opt, x[warm], np.arange(len(warm)), batch, rng, args.threads)
    if torch_epoch:
        torch_epoch(x[warm], np.arange(len(warm)), batch)
    ours, theirs, ratios, counts = [], [], [], []
    for r in range(1, args.rounds + 1):
        first_numpy = r % 2 == 1  # alternate which framework goes first
        t_np = t_pt = None
        for turn in (0, 1):
            if (turn == 0) == first_numpy:
                t_np, used = numpy_epoch(model, opt, x, orders[r], batch, rng, args.threads)
                counts.append(used)
            elif torch_epoch:
                t_pt = torch_epoch(x, orders[r], batch)[0]
        ours.append(t_np)
        if t_pt is not None:
            theirs.append(t_pt)
            ratios.append(t_np / t_pt)
    print(
        f"\nVAE 784-{hidden}-{latent}, batch {batch}, Adam, {len(x):,} examples per epoch, {args.rounds} rounds"
    )
    if args.fresh and torch_epoch:
        fresh_ratios(latent, args, threads)
    if not ours:
        return
    flops = matmul_flops_per_example(784, hidden, latent) * len(x)
    med, q1, q3 = median_iqr(ours)
    limit = flops / (peak * 1e9)
    print("  in one process, paired rounds after a warm-up:")
    print(
        f"  vae_numpy   {med:6.3f} s/epoch (IQR {q1:.3f}-{q3:.3f})   {len(x) / med:9,.0f} examples/s"
        f"   {flops / med / 1e9:6.1f} GFLOP/s in matrix products"
    )
    print(f"  BLAS threads per epoch: {' '.join(map(str, counts))} (threads={args.threads})")
    print(
        f"  GEMM-bound limit {limit:.3f} s/epoch ({flops / 1e9:.1f} GFLOP at {peak:.0f} GFLOP/s):"
        f" {limit / med:.0%} of the limit reached"
    )
    if ratios:
        tm, tq1, tq3 = median_iqr(theirs)
        rm, rq1, rq3 = median_iqr(ratios)
        print(
            f"  PyTorch {torch_version}  {tm:6.3f} s/epoch (IQR {tq1:.3f}-{tq3:.3f})   {len(x) / tm:9,.0f} examples/s"
            f"   ({threads} thread{'s' if threads > 1 else ''})"
        )
        print(f"  paired ratio vae_numpy / PyTorch: median {rm:.3f} (IQR {rq1:.3f}-{rq3:.3f})")
    else:
        print("  PyTorch not installed: no paired ratio (pip install torch==2.13.0 to compare)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rounds", type=int, default=5, help="timed epochs per framework (default 5)"
    )
    parser.add_argument(
        "--examples", type=int, default=60_000, help="examples per epoch (default 60000)"
    )
    parser.add_argument(
        "--latent", type=int, nargs="+", default=[20, 2], help="latent sizes (default 20 2)"
    )
    parser.add_argument(
        "--threads",
        type=lambda v: v if v == "auto" else int(v),
        default="auto",
        help="vae_numpy's BLAS threads: 'auto' (the thread policy, as fit) or a number",
    )
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help="PyTorch's threads (default: as many as numpy's BLAS has by default)",
    )
    parser.add_argument("--quick", action="store_true", help="2 rounds of 12,800 examples")
    parser.add_argument(
        "--fresh", type=int, default=5, help="pairs of fresh-process epochs (default 5; 0: none)"
    )
    parser.add_argument("--no-profile", action="store_true", help="skip profile_epoch.py")
    parser.add_argument("--child", choices=["numpy", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--order-seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.examples, args.fresh = 2, 12_800, 2
    if args.child:
        child_epoch(args)
        return
    load_before = load_average()
    x, source = mnist_or_random(args.examples)
    threads = blas_threads()
    peak = gemm_peak_gflops()
    print(
        f"vae_numpy {vae_numpy.__version__}, numpy {np.__version__}, Python {platform.python_version()},"
        f" {platform.machine()}, BLAS threads {threads}"
    )
    print(machine_description())
    print(f"data: {source}; numpy float32 GEMM peak (2048^3): {peak:.0f} GFLOP/s")
    for latent in args.latent:
        run(latent, x, args, peak, args.torch_threads or threads)
    if not args.no_profile:
        print()
        profile = [sys.executable, str(Path(__file__).with_name("profile_epoch.py"))]
        profile += ["--examples", str(args.examples), "--threads", str(args.threads)]
        sys.stdout.flush()
        subprocess.run(profile, check=True)
    print(f"\nload average before: {load_before}, after: {load_average()}")


if __name__ == "__main__":
    main()
