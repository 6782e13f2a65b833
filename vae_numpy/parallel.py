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

What is computed never depends on the thread count: each element goes through the same
operations whichever thread runs it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

__all__ = ["SpanWorkers", "WORKERS", "spans"]

#: Spans start at multiples of this many items (64-byte cache lines of float32).
ALIGN = 16


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
        self._pool: ThreadPoolExecutor | None = None
        self._pool_size = 0
        self._lock = threading.Lock()

    def set_threads(self, n: int) -> None:
        """Use ``n`` threads (the caller's and ``n - 1`` from the pool) from now on."""
        if not (isinstance(n, int) and n >= 1):
            raise ValueError(f"threads must be a whole number >= 1, got {n!r}")
        self.threads = n

    def _workers(self, n: int) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None or self._pool_size < n:
                if self._pool is not None:
                    self._pool.shutdown(wait=True)
                self._pool = ThreadPoolExecutor(n, thread_name_prefix="vae-numpy-span")
                self._pool_size = n
            return self._pool

    def run(self, work: Callable[[int, int], None], size: int, min_span: int) -> None:
        """Call ``work(lo, hi)`` for contiguous spans covering ``range(size)``, one span per
        thread, each at least ``min_span`` long (one call on this thread when the range is
        short or the count is 1); return when every span is done, raising the first error."""
        parts = min(self.threads, max(1, size // max(1, min_span)))
        if parts == 1:
            work(0, size)
            return
        cut = spans(size, parts)
        pool = self._workers(len(cut) - 1)
        futures: list[Future[None]] = [pool.submit(work, lo, hi) for lo, hi in cut[1:]]
        try:
            work(*cut[0])
        finally:
            for f in futures:
                f.result()


#: The process's span workers; :class:`vae_numpy.threads.BlasThreads` sets their count.
WORKERS = SpanWorkers()
