"""Element-wise work split over threads (vae_numpy.parallel) gives the same numbers."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vae_numpy import kernels
from vae_numpy.parallel import ALIGN, WORKERS, SpanWorkers, spans
from vae_numpy.threads import BlasThreads


@given(size=st.integers(0, 5000), parts=st.integers(1, 9))
def test_spans_cover_the_range_once_in_aligned_pieces(size, parts):
    cut = spans(size, parts)
    assert [i for lo, hi in cut for i in range(lo, hi)] == list(range(size))
    assert len(cut) <= parts and all(lo % ALIGN == 0 and hi > lo for lo, hi in cut)
    if size >= parts * ALIGN * 4:  # long ranges: every thread gets a share, nearly equal
        lengths = [hi - lo for lo, hi in cut]
        assert len(cut) == parts and max(lengths) - min(lengths) <= parts * ALIGN


@contextlib.contextmanager
def short_spans(threads: int) -> Iterator[None]:
    """WORKERS on ``threads`` threads, with spans short enough for test-sized arrays."""
    before = WORKERS.threads, kernels.ADAM_MIN_SPAN, WORKERS.split_helps
    WORKERS.set_threads(threads)
    kernels.ADAM_MIN_SPAN = 64
    WORKERS.split_helps = True  # split whatever this machine's calibration says
    try:
        yield
    finally:
        WORKERS.set_threads(before[0])
        kernels.ADAM_MIN_SPAN = before[1]
        WORKERS.split_helps = before[2]


@settings(deadline=None, max_examples=40)
@given(
    size=st.integers(1, 3000),
    threads=st.integers(1, 4),
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_adam_on_spans_equals_the_one_thread_kernel_bit_for_bit(size, threads, seed, dtype):
    """Each element gets the same operations whichever thread runs it."""
    gen = np.random.default_rng(seed)
    theta, g, m = (gen.standard_normal(size).astype(dtype) for _ in range(3))
    v = np.abs(gen.standard_normal(size)).astype(dtype)
    one = [a.copy() for a in (theta, g, m, v)]
    hyper = {"lr": 0.01, "beta1": 0.9, "beta2": 0.99, "eps": 1e-8, "t": 3}
    kernels.adam_update(*one, np.empty_like(theta), **hyper)
    many = [a.copy() for a in (theta, g, m, v)]
    with short_spans(threads):
        kernels.adam_update_spans(*many, np.empty_like(theta), **hyper)
    for a, b in zip(one, many, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(many[0], theta)  # the update did something


def test_work_runs_on_as_many_threads_as_set_and_errors_come_back():
    workers = SpanWorkers()
    seen: dict[tuple[int, int], int] = {}
    barrier = threading.Barrier(3, timeout=10)  # only passes if three spans run at once

    def work(lo: int, hi: int) -> None:
        seen[(lo, hi)] = threading.get_ident()
        barrier.wait()

    workers.set_threads(3)
    workers.split_helps = True
    workers.run(work, 3000, min_span=100)
    assert sorted(seen) == spans(3000, 3) and len(set(seen.values())) == 3
    seen.clear()
    workers.run(lambda lo, hi: seen.__setitem__((lo, hi), 0), 150, min_span=100)
    assert list(seen) == [(0, 150)]  # too short to split

    def fail(lo: int, hi: int) -> None:
        if lo > 0:
            raise RuntimeError(f"span {lo}")

    with pytest.raises(RuntimeError, match="span"):
        workers.run(fail, 3000, min_span=100)
    with pytest.raises(ValueError, match="threads must be a whole number"):
        workers.set_threads(0)


def test_setting_the_blas_threads_sets_the_element_wise_threads():
    blas = BlasThreads.shared()
    before = blas.get()
    try:
        blas.set(2)
        assert WORKERS.threads == 2
        blas.set(1)
        assert WORKERS.threads == 1
    finally:
        blas.set(before)


def test_the_first_switch_to_more_threads_calibrates_outside_any_step():
    """BlasThreads.set calibrates the span workers (in their set_threads) the first time they
    get a second thread, so a policy's first timed step on 2 threads does not carry the
    calibration (it did: a 36 ms step against 4 ms ones made the policy drop 2 threads)."""
    blas = BlasThreads.shared()
    before = blas.get(), WORKERS.split_helps
    WORKERS.split_helps = None
    try:
        blas.set(1)
        assert WORKERS.split_helps is None  # one thread: nothing to decide
        blas.set(2)
        assert WORKERS.split_helps in (True, False)
        WORKERS.split_helps = True  # a decision already made is not measured again
        blas.set(2)
        assert WORKERS.split_helps is True
    finally:
        blas.set(before[0])
        WORKERS.split_helps = before[1]


@settings(deadline=None, max_examples=40)
@given(
    rows=st.integers(1, 70),
    features=st.integers(1, 40),
    threads=st.integers(1, 4),
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_bernoulli_kernel_on_row_spans_equals_one_thread_bit_for_bit(
    rows, features, threads, seed, dtype
):
    gen = np.random.default_rng(seed)
    logits = (8 * gen.standard_normal((rows, features))).astype(dtype)
    x = gen.random((rows, features)).astype(dtype)
    nll, grad = kernels.bernoulli_nll_and_grad(logits, x)
    before = kernels.ROWS_MIN_SPAN
    kernels.ROWS_MIN_SPAN = 1  # one row is enough for a span here
    try:
        with short_spans(threads):
            nll_s, grad_s = kernels.bernoulli_nll_and_grad_spans(logits, x)
    finally:
        kernels.ROWS_MIN_SPAN = before
    assert nll_s.dtype == nll.dtype and grad_s.dtype == grad.dtype
    np.testing.assert_array_equal(nll_s, nll)
    np.testing.assert_array_equal(grad_s, grad)


def test_splitting_is_used_only_where_the_calibration_found_it_faster():
    """calibrate compares the best of five timings; run splits only when split_helps."""
    workers = SpanWorkers()
    workers.set_threads(2)
    times = {1: [1.0, 0.9, 1.2, 1.0, 1.1], 2: [0.5, 0.7, 0.6, 0.8, 0.9]}
    assert workers.calibrate(lambda parts: times[parts].pop()) is True  # 0.5 * 1.25 <= 0.9
    times = {1: [1.0] * 5, 2: [0.85] * 5}
    assert workers.calibrate(lambda parts: times[parts].pop()) is False  # 0.85 * 1.25 > 1.0
    threads: set[int] = set()
    workers.run(lambda lo, hi: threads.add(threading.get_ident()), 4000, min_span=10)
    assert threads == {threading.get_ident()}  # not worth splitting: all on the caller
    fresh = SpanWorkers()
    assert fresh.split_helps is None  # one thread: nothing measured yet
    fresh.set_threads(2)
    fresh.run(lambda lo, hi: None, 4000, min_span=10)
    assert fresh.split_helps in (True, False)  # going above one thread measured this machine


def test_fresh_workers_run_everything_on_the_calling_thread():
    """A new SpanWorkers has one thread: one call over the whole range, on the caller."""
    workers = SpanWorkers()
    assert workers.threads == 1
    calls: list[tuple[int, int, int]] = []
    workers.run(lambda lo, hi: calls.append((lo, hi, threading.get_ident())), 10_000, 10)
    assert calls == [(0, 10_000, threading.get_ident())]
    assert workers.split_helps is None  # nothing to decide on one thread: no calibration


def test_the_pool_persists_between_runs():
    """The second split run uses the pool thread of the first, not a new pool's."""
    workers = SpanWorkers()
    workers.set_threads(2)
    workers.split_helps = True
    seen: list[list[threading.Thread]] = []
    for _ in range(2):
        ran: list[threading.Thread] = []
        barrier = threading.Barrier(2, timeout=10)  # both spans at once: one is a pool thread

        def work(lo: int, hi: int, ran: list = ran, barrier=barrier) -> None:
            ran.append(threading.current_thread())
            barrier.wait()

        workers.run(work, 4000, min_span=10)
        seen.append([t for t in ran if t is not threading.current_thread()])
    # the Thread objects themselves: a new pool's thread could reuse the old one's ident
    assert len(seen[0]) == 1 and seen[1][0] is seen[0][0]


def test_split_exactly_split_gain_times_faster_counts_as_faster():
    """split_helps holds when split * SPLIT_GAIN equals the one-thread time (the boundary)."""
    workers = SpanWorkers()
    workers.set_threads(2)
    assert workers.calibrate(lambda parts: 1.25 if parts == 1 else 1.0) is True
    assert workers.calibrate(lambda parts: 1.25 if parts == 1 else 1.0 + 1e-9) is False


def test_the_calibration_pass_returns_its_duration_in_seconds():
    """_time_one_pass is a wall-clock duration: positive, and far below a second here."""
    workers = SpanWorkers()
    workers.set_threads(2)
    for parts in (1, 2):
        assert 0 < workers._time_one_pass(parts) < 1.0
