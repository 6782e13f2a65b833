"""Training speed with the BLAS thread policy, 1 thread and all threads, idle and on a busy machine.

Students train on laptops that run a browser and on shared hubs, not on idle machines. This
script starts its own CPU load -- one busy process (a pure-Python loop) per usable core minus
one, stopped by the script when it ends (and by itself after ``--max-load-seconds``) -- and
times training runs of about ``--examples`` examples each for three models:

* the digits model (the CLI's default: 64-128-2 on the bundled 8x8 digits, batch 64; several
  epochs of 1,797 examples make one run);
* the CLI's MNIST model (784-128-2, batch 64);
* 784-400-20, batch 128 (the paper's MNIST model);

all with Adam at lr 1e-3, in four or six settings that alternate round by round: vae_numpy with
the thread policy (``threads="auto"``), with 1 thread, with all usable threads, and PyTorch
(when installed: ``pip install torch==2.13.0``; never a dependency) with 1 and with all
threads (``torch.set_num_threads``), the same sizes and initial weights. It prints the median
seconds per run with their interquartile range and the paired ratios (same round) that answer
the questions: is the policy close to the best fixed count, and how does it compare with
PyTorch under the same load. Then the same without load (``--mode`` picks one). MNIST comes
from the shared data folder; the MNIST models are skipped, saying so, when it is absent.

Usage::

    python benchmarks/bench_contention.py                 # load, then idle; 5 rounds
    python benchmarks/bench_contention.py --mode load --rounds 7
    python benchmarks/bench_contention.py --quick         # 3 rounds of 8,000 examples
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from _common import cpu_load, load_average, make_torch, median_iqr, shared_data_dir

import vae_numpy
from vae_numpy.data import load_dataset
from vae_numpy.optim import Adam
from vae_numpy.threads import BlasThreads, ThreadPolicy, usable_cores
from vae_numpy.vae import VAE


@dataclass
class Case:
    """One model to time: its name, sizes, batch and data."""

    name: str
    hidden: int
    latent: int
    batch: int
    x: np.ndarray
    epochs: int  # per run: enough epochs to reach about --examples examples


@dataclass
class Setting:
    """One way of training a case, and its timings (seconds per run)."""

    label: str
    run: Callable[[int, float], tuple[float, int]]  # (epochs, budget) -> (seconds, examples)
    times: list[float] = field(default_factory=list)
    chose: list[str] = field(default_factory=list)
    cut: int = 0  # runs stopped at the budget (their time is extrapolated)


def numpy_setting(case: Case, threads: int | str, label: str) -> Setting:
    """vae_numpy trained with ``threads``: through ``fit`` for "auto" (all a user gets), and
    through the same steps in a loop that can stop at the budget for a fixed count."""
    model = VAE(case.x.shape[1], (case.hidden,), case.latent, rng=0)
    opt = Adam(model.parameters(), lr=1e-3)
    gen = np.random.default_rng(1)
    setting = Setting(label, lambda epochs, budget: (0.0, 0))

    def run_fit(epochs: int, budget: float) -> tuple[float, int]:
        t = time.perf_counter()
        model.fit(
            case.x,
            epochs=epochs,
            batch_size=case.batch,
            optimizer=opt,
            rng=gen,
            progress=False,
            threads=threads,
        )
        seconds = time.perf_counter() - t
        counts = Counter(int(c) for c in model.history_["threads"])
        setting.chose.append(" ".join(f"{n}x{c}" for c, n in sorted(counts.items())))
        return seconds, epochs * len(case.x)

    def run_loop(epochs: int, budget: float) -> tuple[float, int]:
        t = time.perf_counter()
        done = 0
        with ThreadPolicy(threads) as policy:
            for _ in range(epochs):
                order = gen.permutation(len(case.x))
                for lo in range(0, len(case.x), case.batch):
                    with policy.step():
                        batch = (case.x[order[lo : lo + case.batch]],)
                        model.zero_grad()  # the backward pass adds into the gradients
                        model.loss_and_gradients_for_batch(batch, rng=gen)
                        opt.step(model.gradients())
                    done += len(batch[0])
                    if time.perf_counter() - t > budget:
                        return time.perf_counter() - t, done
        return time.perf_counter() - t, done

    setting.run = run_fit if threads == "auto" else run_loop
    return setting


def torch_settings(case: Case, cores: int) -> list[Setting]:
    """PyTorch with 1 and with all threads (empty when torch is not installed)."""
    try:
        epoch, version = make_torch(VAE(case.x.shape[1], (case.hidden,), case.latent, rng=0), cores)
    except ImportError:
        return []
    gen = np.random.default_rng(1)

    def runner(threads: int) -> Callable[[int, float], tuple[float, int]]:
        def run(epochs: int, budget: float) -> tuple[float, int]:
            seconds, done = 0.0, 0
            for _ in range(epochs):
                s, n = epoch(case.x, gen.permutation(len(case.x)), case.batch, threads, budget)
                seconds, done, budget = seconds + s, done + n, budget - s
                if budget <= 0:
                    break
            return seconds, done

        return run

    return [
        Setting(f"PyTorch {version}, {n} thread{'s' if n > 1 else ''}", runner(n))
        for n in sorted({1, cores})
    ]


def ratio_line(label: str, num: Setting, den: Setting) -> tuple[str, float]:
    """``label: median (IQR)`` of the per-round ratios num / den."""
    med, q1, q3 = median_iqr([a / b for a, b in zip(num.times, den.times, strict=True)])
    return f"  {label:44s} {med:5.2f} (IQR {q1:.2f}-{q3:.2f})", med


def time_case(case: Case, rounds: int, cores: int, budget: float) -> dict[str, float]:
    """Time every setting of ``case`` in alternating rounds; print them; return the ratios."""
    settings = [
        numpy_setting(case, "auto", "vae_numpy, thread policy"),
        numpy_setting(case, 1, "vae_numpy, 1 thread"),
    ]
    if cores > 1:
        settings.append(numpy_setting(case, cores, f"vae_numpy, {cores} threads"))
    settings += torch_settings(case, cores)
    n = case.epochs * len(case.x)
    for s in settings:  # warm-up: allocations, BLAS threads, caches
        s.run(1, 1.0)
        s.chose.clear()
    for r in range(rounds):
        shift = r % len(settings)  # rotate who goes first
        for s in settings[shift:] + settings[:shift]:
            # the policy always runs to the end; a fixed setting stops after `budget` seconds
            seconds, done = s.run(case.epochs, np.inf if s is settings[0] else budget)
            s.times.append(seconds * n / done)
            s.cut += done < n
    print(
        f"\n{case.name}, batch {case.batch}, Adam; {n:,} examples per run"
        f" ({case.epochs} epoch{'s' if case.epochs > 1 else ''} of {len(case.x):,}), {rounds} rounds"
    )
    for s in settings:
        med, q1, q3 = median_iqr(s.times)
        cut = f"  ({s.cut} of {rounds} runs stopped at {budget:g} s, extrapolated)" if s.cut else ""
        print(f"  {s.label:44s} {med:6.3f} s (IQR {q1:.3f}-{q3:.3f}){cut}")
    policy, fixed = settings[0], settings[1 : 2 if cores == 1 else 3]
    best = min(fixed, key=lambda s: median_iqr(s.times)[0])
    print(
        f"  the policy's thread counts (epochs x threads), run by run: {' | '.join(policy.chose)}"
    )
    out: dict[str, float] = {}
    line, out["best fixed"] = ratio_line(f"policy / best fixed ({best.label[11:]})", policy, best)
    print(line)
    for s in fixed:
        line, out[s.label[11:]] = ratio_line(f"policy / {s.label[11:]}", policy, s)
        print(line)
    torch = settings[len(fixed) + 1 :]
    if torch:
        default = torch[-1]  # PyTorch's default: all threads
        best_t = min(torch, key=lambda s: median_iqr(s.times)[0])
        line, out["PyTorch default"] = ratio_line(
            f"policy / {default.label.split(', ')[0]} default ({default.label.split(', ')[1]})",
            policy,
            default,
        )
        print(line)
        line, out["PyTorch best"] = ratio_line(
            f"policy / PyTorch best fixed ({best_t.label.split(', ')[1]})", policy, best_t
        )
        print(line)
    else:
        print("  PyTorch not installed: no comparison (pip install torch==2.13.0)")
    return out


def cases(examples: int) -> dict[str, Case]:
    """The three models by key; the MNIST ones only when MNIST is in the shared data folder."""
    digits = load_dataset("digits").x
    epochs = max(1, math.ceil(examples / len(digits)))
    out = {"digits": Case("digits 64-128-2", 128, 2, 64, digits, epochs)}
    folder = shared_data_dir()
    if folder is None:
        print("MNIST not found (shared data folder absent): only the digits model is timed")
        return out
    mnist = load_dataset("mnist", "train", data_dir=folder, download=False).x[:examples]
    out["cli"] = Case("MNIST 784-128-2 (the CLI's)", 128, 2, 64, mnist, 1)
    out["400-20"] = Case("MNIST 784-400-20", 400, 20, 128, mnist, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("both", "load", "idle"), default="both")
    parser.add_argument("--rounds", type=int, default=5, help="timed runs per setting (default 5)")
    parser.add_argument(
        "--examples", type=int, default=20_000, help="examples per run (default 20000)"
    )
    parser.add_argument(
        "--max-load-seconds",
        type=float,
        default=900,
        help="the busy processes stop by themselves after this long (default 900)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=6.0,
        help="a fixed-thread run stops after this many seconds and its time is extrapolated"
        " linearly (default 6; the policy's runs always finish)",
    )
    parser.add_argument(
        "--models",
        nargs="+",
        choices=("digits", "cli", "400-20"),
        default=["digits", "cli", "400-20"],
        help="which models (default all three)",
    )
    parser.add_argument("--quick", action="store_true", help="3 rounds of 8,000 examples")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.examples = 3, 8_000
    cores = usable_cores()
    blas = BlasThreads.shared()
    print(
        f"vae_numpy {vae_numpy.__version__}, numpy {np.__version__}, Python"
        f" {platform.python_version()}, {platform.machine()}, {cores} usable cores,"
        f" BLAS threads by default {blas.get()}"
    )
    todo = [c for key, c in cases(args.examples).items() if key in args.models]
    summary = []
    for mode in ("load", "idle") if args.mode == "both" else (args.mode,):
        busy = cores - 1 if mode == "load" else 0
        print(
            f"\n=== {mode}: {busy} busy process{'es' if busy != 1 else ''};"
            f" load average before {load_average()} ==="
        )
        with cpu_load(busy, args.max_load_seconds):
            for case in todo:
                blas.last_choice = None  # each case starts its policy from scratch
                summary.append((mode, case.name, time_case(case, args.rounds, cores, args.budget)))
        print(f"=== load average after: {load_average()} ===")
    keys = ["best fixed", "1 thread", f"{cores} threads", "PyTorch default", "PyTorch best"]
    print("\n| machine | model | " + " | ".join(f"policy / {k}" for k in keys) + " |")
    print("|---|---|" + "---|" * len(keys))
    for mode, name, ratios in summary:
        cells = [f"{ratios[k]:.2f}" if k in ratios else "-" for k in keys]
        print(f"| {mode} | {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
