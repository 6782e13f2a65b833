"""Reproduce the numbers of Stanford CS236's VAE homework (VAE, GMVAE, IWAE bound, M2).

The course's protocol: MNIST, 784-300-300 ELU encoder and decoder, Bernoulli decoder, Adam
lr 1e-3, batch 97, dynamic binarisation of every training batch;

* ``vae``    latent 10, 20,000 iterations; -ELBO, KL and reconstruction on the test set (one z
             per image), then -IWAE with m = 1, 10, 100, 1000 samples;
* ``gmvae``  latent 10, mixture prior with K = 500 components, 20,000 iterations; -ELBO (single
             sample KL) and -IWAE with m = 1000;
* ``m2``     latent 64, 100 labels (10 per class) and the other 59,900 training images
             unlabelled, 30,000 iterations, classification weight 100; each step takes 97
             unlabelled images and the 100 labelled ones (here: 97 of them, cycling, through
             ``SemiSupervisedVAE.fit``'s balanced batches); test accuracy of q(y|x), reported
             at the last five evaluations. Here the learning rate decays linearly from 1e-3 to
             0 over the second half of the run (``--m2-decay-from``): at a constant step Adam
             keeps the weights moving on the scale of the step, and the accuracy swung between
             0.895 and 0.927 from one thousand iterations to the next; decaying the step to zero
             anneals the weights into one point, so the end no longer depends on where it stops.
             Over the same half an exponential moving average of the weights (``EMA_DECAY``)
             is kept and evaluated too; both accuracies are reported;
* ``alone``  the same classifier trained on the 100 labels only (the course's 0.735).

The test set is binarised once with a fixed seed (``--seed``). Each part prints its wall time;
runs append their numbers to ``--results`` (JSON) so that parts can run in separate processes,
and ``--table`` prints the README table from that file beside the course's expected values.
BLAS runs on ``--threads`` threads (1 by default: on a busy 2-core machine the small products
of batch 97 run faster on one thread per process).

Usage::

    nice -n 10 python benchmarks/reproduce_cs236.py --parts vae gmvae
    nice -n 10 python benchmarks/reproduce_cs236.py --parts m2 alone
    python benchmarks/reproduce_cs236.py --table
    python benchmarks/reproduce_cs236.py --parts vae --vae-iterations 2000   # a short run
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from _common import HERE, shared_data_dir
from threadpoolctl import threadpool_limits

from vae_numpy.cvae import one_hot
from vae_numpy.data import binarize, load_dataset
from vae_numpy.evaluate import elbo, iwae_log_likelihood
from vae_numpy.functional import softmax
from vae_numpy.gmvae import GaussianMixtureVAE
from vae_numpy.kl import kl_standard_normal
from vae_numpy.layers import mlp
from vae_numpy.optim import Adam
from vae_numpy.samplers import BalancedBatches
from vae_numpy.ssvae import SemiSupervisedVAE
from vae_numpy.vae import VAE

HIDDEN = (300, 300)
#: M2's weights are also averaged from --m2-decay-from on: ema += (1 - EMA_DECAY) (w - ema),
#: a memory of about 1 / (1 - EMA_DECAY) = 1,000 steps.
EMA_DECAY = 0.999
BATCH = 97
LABELS_PER_CLASS = 10

#: (quantity, the course's expected value, our goal) rows of the README table.
EXPECTED = [
    ("VAE -ELBO", "100 ± 2", "≤ 100", "vae_nelbo"),
    ("VAE KL", "19.5 ± 2", "", "vae_kl"),
    ("VAE reconstruction", "82 ± 2", "", "vae_rec"),
    ("VAE -IWAE m = 1", "99", "≤ 99", "vae_iwae_1"),
    ("VAE -IWAE m = 10", "97", "≤ 97", "vae_iwae_10"),
    ("VAE -IWAE m = 100", "96", "≤ 96", "vae_iwae_100"),
    ("VAE -IWAE m = 1000", "95", "≤ 95", "vae_iwae_1000"),
    ("GMVAE -ELBO", "97 ± 3", "≤ 97", "gmvae_nelbo"),
    ("GMVAE -IWAE m = 1000", "93", "≤ 93", "gmvae_iwae_1000"),
    ("M2 test accuracy, 100 labels", "0.92 ± 0.035", "≥ 0.92", "m2_accuracy"),
    ("M2, weights averaged over the last steps", "", "≥ 0.92", "m2_averaged_accuracy"),
    ("classifier alone, 100 labels", "0.735", "", "classifier_alone_accuracy"),
]


def log(msg: str) -> None:
    print(msg, flush=True)


def train_loop(
    n: int,
    iterations: int,
    gen: np.random.Generator,
    step: Callable[[np.ndarray], float],
    args: argparse.Namespace,
    name: str,
    on_log: Callable[[int], str] | None = None,
) -> tuple[float, int]:
    """Run ``iterations`` steps over epoch-wise shuffled batches of ``BATCH`` row indices.

    Stops early at ``args.train_until`` (a UTC time). Returns the wall time in seconds and the
    number of iterations done. Every ``args.log_every`` steps logs the mean loss since the
    previous log (and ``on_log(iteration)`` if given).
    """
    every = args.log_every
    t0 = time.perf_counter()
    done, running, count = 0, 0.0, 0
    while done < iterations:
        if past_deadline(args):
            log(f"  {name}: stopped at iteration {done} by --train-until {args.train_until}")
            break
        order = gen.permutation(n)
        for lo in range(0, n, BATCH):
            running += step(order[lo : lo + BATCH])
            count += 1
            done += 1
            if done % every == 0 or done == iterations:
                extra = "" if on_log is None else "  " + on_log(done)
                log(
                    f"  {name} it {done:6d}  loss {running / count:8.3f}"
                    f"  {time.perf_counter() - t0:7.0f} s{extra}"
                )
                running, count = 0.0, 0
            if done == iterations or (done % 50 == 0 and past_deadline(args)):
                break
    return time.perf_counter() - t0, done


def save(model: Any, name: str, args: argparse.Namespace) -> None:
    """Save the trained model as ``--save``/name.npz (nothing without ``--save``)."""
    if args.save is not None:
        log(f"  saved {model.save(args.save / f'cs236_{name}.npz')}")


def past_deadline(args: argparse.Namespace) -> bool:
    """True once the UTC clock has passed ``--train-until HH:MM`` (never without it)."""
    if args.train_until is None:
        return False
    now = time.strftime("%H:%M", time.gmtime())
    return bool(now >= args.train_until)


def unsupervised_step(model: Any, x: np.ndarray, gen: np.random.Generator) -> Any:
    """One Adam (lr 1e-3) step on the dynamically binarised rows ``idx`` of ``x``; returns the loss."""
    opt = Adam(model.parameters(), lr=1e-3)

    def step(idx: np.ndarray) -> float:
        loss, grads = model.loss_and_gradients(binarize(x[idx], gen), rng=gen)
        opt.step(grads)
        return float(loss)

    return step


def run_vae(x: np.ndarray, x_test: np.ndarray, args: argparse.Namespace) -> dict[str, Any]:
    gen = np.random.default_rng(args.seed)
    model = VAE(784, HIDDEN, 10, activation="elu", rng=args.seed)
    step = unsupervised_step(model, x, gen)
    log(f"VAE: 784-300-300-10 ELU, {args.vae_iterations} iterations")
    seconds, done = train_loop(len(x), args.vae_iterations, gen, step, args, "VAE")
    save(model, "vae", args)
    t = time.perf_counter()
    bound = elbo(model, x_test, rng=args.seed)  # one z per image
    mu, log_var = model.encode(x_test)
    kl = kl_standard_normal(mu, log_var)
    out = {
        "vae_iterations": done,
        "vae_seconds": seconds,
        "vae_nelbo": float(-bound.mean()),
        "vae_iwae_images": min(args.iwae_images, len(x_test)),
        "vae_kl": float(kl.mean()),
        "vae_rec": float(-bound.mean() - kl.mean()),
    }
    for m in args.iwae:
        bound = iwae_log_likelihood(model, x_test[: args.iwae_images], k=m, rng=args.seed)
        out[f"vae_iwae_{m}"] = float(-bound.mean())
        log(f"  VAE -IWAE m = {m}: {out[f'vae_iwae_{m}']:.2f}")
    out["vae_eval_seconds"] = time.perf_counter() - t
    return out


def run_gmvae(x: np.ndarray, x_test: np.ndarray, args: argparse.Namespace) -> dict[str, Any]:
    gen = np.random.default_rng(args.seed)
    model = GaussianMixtureVAE(784, HIDDEN, 10, n_components=500, activation="elu", rng=args.seed)
    step = unsupervised_step(model, x, gen)
    log(f"GMVAE: 784-300-300-10 ELU, K = 500, {args.gmvae_iterations} iterations")
    seconds, done = train_loop(len(x), args.gmvae_iterations, gen, step, args, "GMVAE")
    save(model, "gmvae", args)
    t = time.perf_counter()
    terms = model.evaluate_terms(x_test, rng=args.seed)
    out = {
        "gmvae_iterations": done,
        "gmvae_seconds": seconds,
        "gmvae_nelbo": terms["loss"],
        "gmvae_iwae_images": min(args.iwae_images, len(x_test)),
        "gmvae_kl": terms["kl"],
        "gmvae_rec": terms["reconstruction"],
    }
    m = max(args.iwae)
    bound = iwae_log_likelihood(model, x_test[: args.iwae_images], k=m, rng=args.seed)
    out[f"gmvae_iwae_{m}"] = float(-bound.mean())
    out["gmvae_eval_seconds"] = time.perf_counter() - t
    return out


def labelled_subset(y: np.ndarray, seed: int) -> np.ndarray:
    """Indices of ``LABELS_PER_CLASS`` training images of each class, drawn with ``seed``."""
    gen = np.random.default_rng(seed)
    return np.concatenate(
        [gen.choice(np.flatnonzero(y == c), LABELS_PER_CLASS, replace=False) for c in range(10)]
    )


class LoggedChunks:
    """M2's balanced batches (a :class:`vae_numpy.samplers.BatchSampler`) in chunks of ``every`` steps.

    ``fit`` sees an "epoch" of ``every`` steps of one continuous stream of
    :class:`~vae_numpy.samplers.BalancedBatches`, so that after each chunk this sampler can log the
    mean loss so far and the test accuracy (``on_log``). It stops after ``iterations`` steps,
    or at ``--train-until``, yielding nothing more.
    """

    def __init__(
        self,
        iterations: int,
        every: int,
        args: argparse.Namespace,
        on_log: Callable[[int], str],
        before_step: Callable[[int], None] = lambda done: None,
    ) -> None:
        self.iterations, self.every, self.args, self.on_log = iterations, every, args, on_log
        self.before_step = before_step
        self.inner = BalancedBatches()
        self.stream: Iterator[Any] | None = None
        self.done = 0
        self.t0 = time.perf_counter()

    def batches(self, data: Any, batch_size: int, rng: np.random.Generator) -> Iterator[Any]:
        for _ in range(min(self.every, self.iterations - self.done)):
            if past_deadline(self.args):
                log(
                    f"  M2: stopped at iteration {self.done} by --train-until {self.args.train_until}"
                )
                self.iterations = self.done
                return
            batch = next(self.stream, None) if self.stream is not None else None
            if batch is None:  # a new pass over the unlabelled rows
                self.stream = self.inner.batches(data, batch_size, rng)
                batch = next(self.stream)
            self.before_step(self.done)
            yield batch
            self.done += 1
        log(
            f"  M2 it {self.done:6d}  {time.perf_counter() - self.t0:7.0f} s  {self.on_log(self.done)}"
        )

    def steps_per_epoch(self, data: Any, batch_size: int) -> int:
        return self.every


def run_m2(
    x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, args: argparse.Namespace
) -> dict[str, Any]:
    """M2 through ``SemiSupervisedVAE.fit``: balanced batches of 97 unlabelled and 97 labelled rows.

    CS236 takes the 100 labelled images whole at every step; the library's balanced batches take
    as many labelled rows as unlabelled ones (97), cycling through the 100.
    """
    lab = labelled_subset(y, args.seed)
    labels = np.full(len(y), -1)
    labels[lab] = y[lab]
    model = SemiSupervisedVAE(784, 10, HIDDEN, 64, alpha=100.0, activation="elu", rng=args.seed)
    evaluations: list[tuple[int, float]] = []
    averaged: list[tuple[int, float]] = []
    ema: dict[str, np.ndarray] = {}  # exponential moving average of the weights, from decay_from

    def accuracy(done: int) -> str:
        evaluations.append((done, float(np.mean(model.predict(x_test) == y_test))))
        text = f"test accuracy {evaluations[-1][1]:.4f}  lr {model.optimizer_.lr:.2e}"
        if ema:
            averaged.append((done, with_weights(model, ema, lambda: accuracy_of(model))))
            text += f"  averaged weights {averaged[-1][1]:.4f}"
        return text

    def accuracy_of(m: SemiSupervisedVAE) -> float:
        return float(np.mean(m.predict(x_test) == y_test))

    def decay(done: int) -> None:  # before `fit` takes step `done`: its learning rate, the average
        model.optimizer_.lr = m2_learning_rate(done, args.m2_iterations, args.m2_decay_from)
        if done == args.m2_decay_from:
            ema.update({k: p.astype(np.float64) for k, p in model.parameters().items()})
        elif done > args.m2_decay_from:
            for k, p in model.parameters().items():
                ema[k] += (1 - EMA_DECAY) * (p - ema[k])

    log(
        f"M2: latent 64, 100 labels, alpha 100, {args.m2_iterations} iterations,"
        f" lr 1e-3 decaying linearly to 0 from iteration {args.m2_decay_from}"
    )
    sampler = LoggedChunks(args.m2_iterations, args.log_every, args, accuracy, decay)
    t0 = time.perf_counter()
    model.fit(
        x, labels, epochs=-(-args.m2_iterations // args.log_every), batch_size=BATCH, lr=1e-3,
        binarize=True, rng=args.seed, progress=False, threads=args.threads, sampler=sampler,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    save(model, "m2", args)
    out: dict[str, Any] = {
        "m2_iterations": sampler.done,
        "m2_seconds": seconds,
        "m2_accuracy": float(np.mean(model.predict(x_test) == y_test)),
        "m2_decay_from": args.m2_decay_from,
        "m2_last_evaluations": evaluations[-5:],
        "m2_averaged_accuracy": averaged[-1][1] if averaged else None,
        "m2_averaged_last_evaluations": averaged[-5:],
        "m2_loss": list(model.history_.get("loss", [])),
    }
    return out


def with_weights(model: Any, weights: dict[str, np.ndarray], f: Callable[[], float]) -> float:
    """``f()`` with the model's parameters set to ``weights`` (in its dtype), then restored."""
    saved = {k: p.copy() for k, p in model.parameters().items()}
    for k, p in model.parameters().items():
        p[...] = weights[k]
    try:
        return f()
    finally:
        for k, p in model.parameters().items():
            p[...] = saved[k]


def m2_learning_rate(done: int, iterations: int, decay_from: int, lr: float = 1e-3) -> float:
    """The learning rate of step ``done`` (0-based): ``lr`` until ``decay_from``, then falling
    linearly to 0 at ``iterations``."""
    if done < decay_from:
        return lr
    return lr * max(0.0, (iterations - done) / max(1, iterations - decay_from))


def run_classifier_alone(
    x: np.ndarray,
    y: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """The 784-300-300-10 ELU classifier trained on the 100 labelled images only (cross-entropy)."""
    lab = labelled_subset(y, args.seed)  # the labels M2 sees
    gen = np.random.default_rng(args.seed)
    net = mlp([784, *HIDDEN, 10], "elu", rng=gen)
    opt = Adam(net.params, lr=1e-3)
    target = one_hot(y[lab], 10)
    t = time.perf_counter()
    for _ in range(args.alone_iterations):
        net.zero_grad()  # backward adds into the gradients
        logits = net.forward(binarize(x[lab], gen))
        net.backward_params((softmax(logits, axis=1) - target) / len(lab))  # cross-entropy
        opt.step(net.grads)
    acc = float(np.mean(np.argmax(net.forward(x_test), axis=1) == y_test))
    log(f"classifier alone: test accuracy {acc:.4f}")
    return {
        "classifier_alone_accuracy": acc,
        "classifier_alone_iterations": args.alone_iterations,
        "classifier_alone_seconds": time.perf_counter() - t,
    }


def print_table(results: dict[str, Any]) -> None:
    print("| quantity | course's expected value | goal | vae_numpy (measured) |")
    print("|---|---|---|---|")
    for name, expected, goal, key in EXPECTED:
        value = results.get(key)
        shown = (
            "not run"
            if value is None
            else (f"{value:.4f}" if "accuracy" in key else f"{value:.2f}")
        )
        print(f"| {name} | {expected} | {goal} | {shown} |")
    print()
    for part in ("vae", "gmvae"):
        if f"{part}_iwae_images" in results:
            print(
                f"{part}: -ELBO on the test images, -IWAE on the first {results[f'{part}_iwae_images']}"
            )
    for part in ("vae", "gmvae", "m2", "classifier_alone"):
        if f"{part}_seconds" in results:
            ev = results.get(f"{part}_eval_seconds")
            evs = "" if ev is None else f", evaluation {ev / 60:.1f} min"
            print(
                f"{part}: {results[f'{part}_iterations']} iterations,"
                f" training {results[f'{part}_seconds'] / 60:.1f} min{evs}"
            )
    for key, what in (("", ""), ("averaged_", ", weights averaged")):
        if results.get(f"m2_{key}last_evaluations"):
            shown = ", ".join(
                f"{acc:.4f} ({it:,})" for it, acc in results[f"m2_{key}last_evaluations"]
            )
            print(f"m2{what}: test accuracy at the last five evaluations (iteration): {shown}")
    print("Kingma et al. 2014, M2 with 100 labels: 11.97% test error (accuracy 0.8803).")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", nargs="*", default=[], choices=["vae", "gmvae", "m2", "alone"])
    parser.add_argument("--vae-iterations", type=int, default=20_000)
    parser.add_argument("--gmvae-iterations", type=int, default=20_000)
    parser.add_argument("--m2-iterations", type=int, default=30_000)
    parser.add_argument(
        "--m2-decay-from",
        type=int,
        default=None,
        help="M2 iteration from which the learning rate decays linearly to 0 (half the run)",
    )
    parser.add_argument("--alone-iterations", type=int, default=2_000)
    parser.add_argument("--iwae", type=int, nargs="*", default=[1, 10, 100, 1000])
    parser.add_argument("--test-images", type=int, default=10_000, help="first N test images")
    parser.add_argument(
        "--iwae-images", type=int, default=10_000, help="first N test images for the IWAE bounds"
    )
    parser.add_argument(
        "--train-until", default=None, help="UTC time HH:MM at which training stops early"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--log-every", type=int, default=1000)
    parser.add_argument("--results", type=Path, default=HERE / "cs236_results.json")
    parser.add_argument(
        "--save", type=Path, default=None, help="folder to save each trained model in (.npz)"
    )
    parser.add_argument("--table", action="store_true", help="print the table from --results")
    args = parser.parse_args()
    if args.m2_decay_from is None:
        args.m2_decay_from = args.m2_iterations // 2
    results = json.loads(args.results.read_text()) if args.results.exists() else {}
    if args.parts:
        folder = shared_data_dir()
        if folder is None:
            raise SystemExit(
                "MNIST not found: set VAE_NUMPY_TEST_DATA or place shared/data beside the checkout"
            )
        train = load_dataset("mnist", "train", data_dir=folder, download=False)
        test = load_dataset("mnist", "test", data_dir=folder, download=False)
        x_test = binarize(test.x[: args.test_images], np.random.default_rng(args.seed))
        y_test = test.y[: args.test_images]
        with threadpool_limits(args.threads, user_api="blas"):
            for part in args.parts:
                t = time.perf_counter()
                if part == "vae":
                    out = run_vae(train.x, x_test, args)
                elif part == "gmvae":
                    out = run_gmvae(train.x, x_test, args)
                elif part == "m2":
                    out = run_m2(train.x, train.y, x_test, y_test, args)
                else:
                    out = run_classifier_alone(train.x, train.y, x_test, y_test, args)
                out[f"{part}_total_seconds"] = time.perf_counter() - t
                log(json.dumps(out, indent=1))
                # re-read: another process may have written its part meanwhile
                results = json.loads(args.results.read_text()) if args.results.exists() else {}
                results.update(out)
                args.results.write_text(json.dumps(results, indent=1, sort_keys=True))
    if args.table or args.parts:
        print_table(results)


if __name__ == "__main__":
    main()
