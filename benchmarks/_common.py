"""Shared pieces of the benchmark scripts: data, FLOP counts, statistics, thread counts."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vae_numpy.data import load_dataset

HERE = Path(__file__).resolve().parent


def shared_data_dir() -> Path | None:
    """``VAE_NUMPY_TEST_DATA`` or ``shared/data`` beside the checkout, when it exists."""
    env = os.environ.get("VAE_NUMPY_TEST_DATA")
    path = Path(env) if env else HERE.parents[1] / "shared" / "data"
    return path if (path / "mnist").is_dir() else None


def mnist_or_random(n: int = 60_000, *, split: str = "train") -> tuple[np.ndarray, str]:
    """Real MNIST (grey levels in [0, 1]) when available, else random binary data of that shape."""
    folder = shared_data_dir()
    if folder is not None:
        return load_dataset("mnist", split, data_dir=folder, download=False).x[:n], "MNIST"
    x = (np.random.default_rng(0).random((n, 784)) < 0.13).astype(np.float32)
    return x, "random binary data (MNIST not found)"


def matmul_flops_per_example(input_dim: int, hidden: int, latent: int) -> int:
    """Multiply-adds x2 of one training example's matrix products in a 1-hidden-layer VAE.

    Forward: encoder (input->hidden, hidden->2*latent) and decoder (latent->hidden,
    hidden->input). Backward: two products per layer (weights and inputs), except the first
    encoder layer, whose input gradient is not needed.
    """
    forward = 2 * (input_dim * hidden + hidden * 2 * latent + latent * hidden + hidden * input_dim)
    return 3 * forward - 2 * input_dim * hidden


def blas_threads() -> int:
    """Threads numpy's BLAS uses (threadpoolctl comes with scikit-learn)."""
    from threadpoolctl import threadpool_info

    infos = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    return int(infos[0]["num_threads"]) if infos else 1


def gemm_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best float32 GFLOP/s of an n x n x n matrix product (numpy, this process)."""
    import time

    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    a @ b  # warm-up
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def median_iqr(values: list[float]) -> tuple[float, float, float]:
    """Median and the 25th and 75th percentiles."""
    q1, med, q3 = np.percentile(values, [25, 50, 75])
    return float(med), float(q1), float(q3)
