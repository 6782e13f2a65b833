"""Element-wise work on every core the matrix products use: contiguous spans, one per thread.

NumPy's matrix products run on the BLAS library's threads, but every other operation of a
training step (Adam's update, the loss and its gradient, the activations) runs on the calling
thread while the other cores wait. NumPy releases the GIL inside a ufunc's loop over a large
array, so Python threads can share such work: each thread takes one contiguous span of the
arrays and runs the same ufuncs on it, and the spans run at the same time.

:data:`WORKERS` holds the thread count and a small persistent pool. The thread policy of
:mod:`vae_numpy.threads` sets the count whenever it sets the BLAS threads (the count that
measured fastest for the products is the count the cores can give), so element-wise work
runs on one thread exactly when the products do. :meth:`SpanWorkers.run` splits a range into
spans (of at least ``min_span`` items, so that small arrays stay on one thread: starting a
span costs a few microseconds) and waits for all of them.

Whether splitting pays is measured, not assumed: on some machines a single core already takes
all the memory bandwidth the others could add (seen on a 2-core AMD EPYC virtual machine: a
4-million-element ``tanh`` took 1.07 ms on one thread and 1.05 ms on two, and Adam's update got
slower), on others two threads run such a ufunc 1.9 times faster (a 2-core Intel Xeon). The
first :meth:`SpanWorkers.set_threads` above one (the thread policy's first switch to more
threads, between two steps) times one large element-wise pass on one thread and split
(:meth:`SpanWorkers.calibrate`, a few milliseconds, once per process), and splits from then on
only when that was at least :data:`SPLIT_GAIN` times faster.

What is computed never depends on the thread count: each element goes through the same
operations whichever thread runs it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

__all__ = ["SpanWorkers", "WORKERS", "spans"]

#: Spans start at multiples of this many items (64-byte cache lines of float32).
ALIGN = 16
#: Splitting is used when the calibration pass ran at least this many times faster split.
SPLIT_GAIN = 1.25
#: float32 values of the calibration pass (8 MiB read and written).
CALIBRATION_SIZE = 1 << 21


def spans(size: int, parts: int, align: int = ALIGN) -> list[tuple[int, int]]:
    """``range(size)`` cut into at most ``parts`` contiguous ``(lo, hi)`` spans of nearly equal
    length, each starting at a multiple of ``align``; empty spans are left out."""
    if size <= 0:
        return []
    parts = max(1, min(parts, -(-size // align)))
    step = -(-size // parts)
    step = -(-step // align) * align
    return [(lo, min(lo + step, size)) for lo in range(0, size, step)]


class SpanWorkers:
    """A thread count and a persistent pool that run a function over spans of a range."""

    def __init__(self) -> None:
        self.threads = 1
        #: Whether splitting pays on this machine: None until measured (:meth:`calibrate`).
        self.split_helps: bool | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._pool_size = 0
        self._lock = threading.Lock()

    def set_threads(self, n: int) -> None:
        """Use ``n`` threads (the caller's and ``n - 1`` from the pool) from now on; the first
        time ``n`` is above one, :meth:`calibrate` decides whether splitting pays. Here, not in
        :meth:`run`: a thread policy changes the count between two steps, so the calibration's
        few milliseconds are not timed as part of a step (they were: a 36 ms step among 4-6 ms
        ones made the policy drop two threads at once)."""
        if not (isinstance(n, int) and n >= 1):
            raise ValueError(f"threads must be a whole number >= 1, got {n!r}")
        self.threads = n
        if n > 1 and self.split_helps is None:
            self.calibrate()

    def _workers(self, n: int) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None or self._pool_size < n:
                if self._pool is not None:
                    self._pool.shutdown(wait=True)
                self._pool = ThreadPoolExecutor(n, thread_name_prefix="vae-numpy-span")
                self._pool_size = n
            return self._pool

    def calibrate(self, measure: Callable[[int], float] | None = None) -> bool:
        """Decide :attr:`split_helps`: the best of five timings of one element-wise pass
        (``measure(parts)`` seconds; by default a multiply over :data:`CALIBRATION_SIZE`
        float32 values) on one thread against split over :attr:`threads`."""
        timed = self._time_one_pass if measure is None else measure
        one = min(timed(1) for _ in range(5))
        split = min(timed(self.threads) for _ in range(5))
        self.split_helps = split * SPLIT_GAIN <= one
        return self.split_helps

    def _time_one_pass(self, parts: int) -> float:
        """Seconds of one multiply over :data:`CALIBRATION_SIZE` float32 values in ``parts``."""
        data = np.ones(CALIBRATION_SIZE, np.float32)
        out = data.copy()  # written once already: no page faults inside the timed pass

        def scale(lo: int, hi: int) -> None:
            np.multiply(data[lo:hi], 1.5, out=out[lo:hi])

        t = time.perf_counter()
        self._run_spans(scale, spans(data.size, parts))
        return time.perf_counter() - t

    def run(self, work: Callable[[int, int], None], size: int, min_span: int) -> None:
        """Call ``work(lo, hi)`` for contiguous spans covering ``range(size)``, one span per
        thread, each at least ``min_span`` long; return when every span is done, raising the
        first error. One call on this thread when the range is short, the count is 1, or
        splitting does not pay on this machine (:attr:`split_helps`)."""
        parts = min(self.threads, max(1, size // max(1, min_span)))
        if parts == 1 or not self.split_helps:
            work(0, size)
            return
        self._run_spans(work, spans(size, parts))

    def _run_spans(self, work: Callable[[int, int], None], cut: list[tuple[int, int]]) -> None:
        if len(cut) == 1:
            work(*cut[0])
            return
        pool = self._workers(len(cut) - 1)
        futures: list[Future[None]] = [pool.submit(work, lo, hi) for lo, hi in cut[1:]]
        try:
            work(*cut[0])
        finally:
            for f in futures:
                f.result()


#: The process's span workers; :class:`vae_numpy.cpu.BlasThreads` sets their count.
WORKERS = SpanWorkers()
