"""Shared pieces of the benchmark scripts: data, FLOP counts, statistics, thread counts,
the PyTorch twin of the VAE, and a CPU load."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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


def machine_description() -> str:
    """The CPU model (from /proc/cpuinfo where there is one), the usable cores, and numpy's
    BLAS: library, version, the kernel it chose for this CPU and its default threads."""
    import platform

    from threadpoolctl import threadpool_info

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    kernel = (
        f"{blas[0].get('internal_api')} {blas[0].get('version')}, kernel"
        f" {blas[0].get('architecture') or 'unknown'}, {blas[0].get('num_threads')} threads"
        if blas
        else "no BLAS found"
    )
    forced = os.environ.get("OPENBLAS_CORETYPE")
    if blas and blas[0].get("internal_api") == "openblas" and forced is not None:
        kernel += (
            f" (set by OPENBLAS_CORETYPE={forced}; OpenBLAS's own choice for this CPU:"
            f" {openblas_own_kernel()})"
        )
    return f"CPU {cpu} ({cores} usable cores); BLAS {kernel}"


def openblas_own_kernel() -> str:
    """The kernel set numpy's OpenBLAS picks for this CPU when ``OPENBLAS_CORETYPE`` does not
    choose for it (asked of a fresh Python without the variable; it is read at load only)."""
    import subprocess
    import sys

    code = (
        "import numpy\nfrom threadpoolctl import threadpool_info\n"
        "print(next((i.get('architecture') for i in threadpool_info()"
        " if i.get('internal_api') == 'openblas'), 'unknown'))"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    return (done.stdout.strip().splitlines() or ["unknown"])[-1]


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


def load_average() -> str:
    """The 1-, 5- and 15-minute load averages, as ``uptime`` prints them."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _spin(deadline: float) -> None:
    """Keep one core busy with pure Python until ``deadline`` (time.time()) passes, or until
    the parent process is gone."""
    parent = os.getppid()
    while time.time() < deadline and os.getppid() == parent:
        for _ in range(100_000):
            pass


@contextlib.contextmanager
def cpu_load(processes: int, max_seconds: float) -> Iterator[None]:
    """``processes`` busy processes (pure-Python loops) for the duration of the block.

    Each also stops by itself after ``max_seconds``, or when this process has gone, should it
    die without cleaning up. SIGTERM is turned into SystemExit meanwhile, so that the block's
    clean-up runs.
    """
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    ctx = multiprocessing.get_context("spawn")
    workers = [
        ctx.Process(target=_spin, args=(time.time() + max_seconds,), daemon=True)
        for _ in range(processes)
    ]
    try:
        for w in workers:
            w.start()
        time.sleep(0.5)  # let them start spinning
        yield
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.join()
        signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(f"stopped by signal {signum}")


def make_torch(model: Any, threads: int) -> tuple[Callable[..., float], str]:  # pragma: no cover
    """The PyTorch twin of a one-hidden-layer Bernoulli ``VAE`` and its epoch function.

    Same sizes and initial weights; the fused mu | log_var head as ours; Adam at lr 1e-3. The
    epoch function ``epoch(x, order, batch, threads=None, budget=inf)`` runs the batches in
    ``order`` with ``torch.set_num_threads(threads)`` (when given), stopping early once
    ``budget`` seconds have passed, and returns ``(seconds, examples trained on)``.
    ImportError when torch is not installed.
    """
    import torch

    torch.set_num_threads(threads)
    params = model.parameters()
    n_in, hidden = params["encoder.0.W"].shape
    latent = model.latent_dim

    class TorchVAE(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc1 = torch.nn.Linear(n_in, hidden)
            self.enc2 = torch.nn.Linear(hidden, 2 * latent)  # fused mu | log_var head, as ours
            self.dec1 = torch.nn.Linear(latent, hidden)
            self.dec2 = torch.nn.Linear(hidden, n_in)
            with torch.no_grad():
                for layer, name in (
                    (self.enc1, "encoder.0"),
                    (self.enc2, "encoder.2"),
                    (self.dec1, "decoder.0"),
                    (self.dec2, "decoder.2"),
                ):
                    layer.weight.copy_(torch.from_numpy(params[f"{name}.W"].T.copy()))
                    layer.bias.copy_(torch.from_numpy(params[f"{name}.b"].copy()))

        def loss(self, x: torch.Tensor) -> torch.Tensor:
            h = self.enc2(torch.relu(self.enc1(x)))
            mu, log_var = h[:, :latent], h[:, latent:]
            z = mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)
            logits = self.dec2(torch.relu(self.dec1(z)))
            rec = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="sum")
            kl = 0.5 * torch.sum(torch.exp(log_var) - 1 - log_var + mu * mu)
            return (rec + kl) / len(x)

    net = TorchVAE()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def epoch(
        x: np.ndarray,
        order: np.ndarray,
        batch: int,
        threads: int | None = None,
        budget: float = float("inf"),
    ) -> tuple[float, int]:
        if threads is not None:
            torch.set_num_threads(threads)
        xt = torch.from_numpy(x)
        idx = torch.from_numpy(order)
        t = time.perf_counter()
        done = 0
        for lo in range(0, len(x), batch):
            loss = net.loss(xt[idx[lo : lo + batch]])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += min(batch, len(x) - lo)
            if time.perf_counter() - t > budget:
                break
        return time.perf_counter() - t, done

    return epoch, torch.__version__
