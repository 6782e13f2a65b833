"""How many threads NumPy's matrix products use: measured while training, not guessed.

NumPy hands matrix products to a BLAS library (OpenBLAS, MKL, ...), which by default starts
one thread per core. That is the fastest choice for large products on an idle machine and a
poor one otherwise. Small products are not worth splitting, and when other programs keep a
core busy, BLAS threads wait for it (often spinning), so every step waits for the slowest
thread. On a 2-core machine with one core busy, the CLI's MNIST model (784-128-2, batch 64)
trained 4 times slower on 2 threads than on 1. Idle, 784-400-20 (batch 128) trained 1.4 times
faster on 2.

:class:`ThreadPolicy` decides by measuring. A loop wraps each unit of work (a training step, an
evaluation batch) in ``with policy.step():``. The policy times a few steps at each candidate
count (1, and all usable cores), keeps the fastest and times the others again after 2 s of
work, then 4, 8, ... up to 32 s while the choice holds. A close call (the other count within
1.25 times the chosen one's step time) is timed again after 0.25 s: on a virtual machine a
core that was idle can run the first steps at half speed, and a probe that caught them would
keep the slower count for 2 s. A drift of the chosen count's step time by 1.5 times (other
programs start or stop) re-times them at once. A clearly slower candidate is dropped after
one or two steps.

One step can be very slow, though: with the other core busy, a single 2-thread step of the
CLI's MNIST model took 0.4 s instead of 3 ms. So more threads are tried only when the cores
they need were idle while the current count ran. On Linux the machine's idle time
(``/proc/stat``, for the cores this process may use) says so, plus the time this process's own
BLAS helper threads spent spinning. Elsewhere the policy relies on its measurements alone.

The same count runs the element-wise work outside the products (Adam's update of large
arrays, the Bernoulli loss; :mod:`vae_numpy.parallel`) where splitting it pays on the machine:
one thread when the products run on one.

Only the thread count changes, never what is computed or in which order in this package.
Results equal those of a fixed thread count, up to the rounding of products that BLAS splits
between threads. With a fixed count (e.g. ``threads=1``) they are bit-identical from run to
run.

The choice can be made by hand, and an explicit setting is always respected:

* ``threads=k`` (an int) uses exactly ``k`` threads;
* ``threads="auto"`` (the default) measures, unless the environment already decides:
  ``VAE_NUMPY_THREADS=k`` fixes ``k`` (``VAE_NUMPY_THREADS=auto`` measures); a BLAS variable
  such as ``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS`` keeps the count
  BLAS took from it; BLAS already limited below the usable cores (e.g. inside
  ``threadpoolctl.threadpool_limits``) keeps that limit. A loop run inside another policy's
  loop (the validation inside ``fit``) keeps the outer loop's count.

:attr:`ThreadPolicy.threads` is the count in force, :meth:`ThreadPolicy.describe` says what was
chosen and why. ``fit`` records the count of each epoch in ``history_["threads"]`` and shows
it on the progress bar. The evaluation loops (``score``, :func:`vae_numpy.evaluate.elbo`,
:func:`vae_numpy.evaluate.iwae_log_likelihood`, :func:`vae_numpy.evaluate.exact_log_likelihood`)
use a policy too. A policy that finishes remembers its choice. The next one in the process runs
on it at once and times the other counts only after 2 s of work (0.25 s after a close call), so
that many short loops do not each pay for a probe.

The cores are read, and the BLAS libraries' thread count set, in :mod:`vae_numpy.cpu` (its
:class:`~vae_numpy.cpu.BlasThreads`); this module re-exports the public names of that one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from .cpu import (
    BLAS_ENV_VARS,
    BlasThreads,
    ThreadSetter,
    idle_core_seconds,
    parse_thread_count,
    spare_core_seconds,
    usable_cores,
)

__all__ = [
    "ThreadPolicy",
    "BlasThreads",
    "BLAS_ENV_VARS",
    "usable_cores",
    "idle_core_seconds",
    "spare_core_seconds",
    "parse_thread_count",
]


class _StepTimer:
    """``with policy.step():`` -- times its body and reports the seconds to the policy."""

    __slots__ = ("_policy", "_start")

    def __init__(self, policy: ThreadPolicy) -> None:
        self._policy = policy
        self._start = 0.0

    def __enter__(self) -> int:
        self._start = self._policy._clock()
        return self._policy.threads

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:  # a failed step says nothing about speed
            self._policy.observe(self._policy._clock() - self._start)


class ThreadPolicy:
    """Choose the BLAS thread count for a loop by timing its steps.

    Use it as a context manager around the loop and wrap each step::

        with ThreadPolicy(threads) as policy:
            for batch in batches:
                with policy.step():
                    ...  # one training step or evaluation batch

    On exit the thread count in force before is restored.

    Parameters
    ----------
    threads : int, "auto" or None
        ``k`` threads, or ``"auto"``/None to measure (see the module docstring for how an
        environment setting takes precedence).
    setter : ThreadSetter, optional
        Reads and sets the BLAS thread count; the process's BLAS through threadpoolctl by
        default. Tests pass a fake.
    clock : callable, optional
        Seconds as a float (``time.perf_counter`` by default); tests pass a fake.
    idle : callable, optional
        Cumulative spare core-seconds, or None when unknown
        (:func:`~vae_numpy.cpu.spare_core_seconds` by default: the idle time of the usable cores
        plus the time this process's helper threads spent spinning); tests pass a fake.
    cores : int, optional
        Usable cores (default: this process's CPU affinity).
    environ : mapping, optional
        The environment to read (default ``os.environ``).
    probe_steps, probe_seconds : int, float
        A candidate is timed for at least this many steps and this many seconds (after one
        warm-up step).
    idle_seconds : float
        Before more threads are tried, the current count runs at least this long, so that the
        idle time of the other cores is measured over a window of this length.
    give_up : float
        A candidate whose mean step time exceeds ``give_up`` times the best one measured in the
        same probe is dropped at once (a warm-up step counts against twice that).
    drift : float
        Re-probe when the chosen count's step time moves by this factor, up or down.
    first_interval, max_interval : float
        Seconds of steps between probes: the first interval, doubled each time the choice
        holds, up to the maximum.
    close, confirm_interval : float
        A choice made against a count measured within ``close`` times its step time is a
        close call: the next probe comes after ``confirm_interval`` seconds of steps (then
        doubled while the choice holds) instead of ``first_interval``.
    tie : float
        Counts within this relative margin of the fastest count are equally fast; the fewest
        threads among them wins (they leave cores to other programs).

    Attributes
    ----------
    threads : int
        The count in force.
    mode : str
        ``"auto"`` (measuring) or ``"fixed"``.
    reason : str
        Why the count is fixed, or ``"measured"``.
    candidates : tuple of int
        The counts that may be used (one for a fixed count).
    timings : dict of int to float
        The latest mean seconds per step measured for each count.
    busy : set of int
        Counts not tried in the latest probe because the cores they need were busy.
    probes : int
        Probe rounds completed.
    usage : dict of int to int
        Steps run at each count.
    """

    def __init__(
        self,
        threads: Any = "auto",
        *,
        setter: ThreadSetter | None = None,
        clock: Callable[[], float] = time.perf_counter,
        idle: Callable[[], float | None] = spare_core_seconds,
        cores: int | None = None,
        environ: Mapping[str, str] | None = None,
        probe_steps: int = 3,
        probe_seconds: float = 0.02,
        idle_seconds: float = 0.05,
        give_up: float = 2.0,
        drift: float = 1.5,
        first_interval: float = 2.0,
        max_interval: float = 32.0,
        tie: float = 0.03,
        close: float = 1.25,
        confirm_interval: float = 0.25,
    ) -> None:
        env = os.environ if environ is None else environ
        self._setter = setter if setter is not None else BlasThreads.shared()
        self._clock = clock
        self._idle = idle
        self.probe_steps = probe_steps
        self.probe_seconds = probe_seconds
        self.idle_seconds = idle_seconds
        self.give_up = give_up
        self.drift = drift
        self.first_interval = first_interval
        self.max_interval = max_interval
        self.tie = tie
        self.close = close
        self.confirm_interval = confirm_interval
        self._original = self._setter.get()
        cores = usable_cores() if cores is None else cores
        fixed = parse_thread_count(threads, "threads")
        self.reason = f"threads={fixed}"
        if fixed is None and "VAE_NUMPY_THREADS" in env:
            fixed = parse_thread_count(env["VAE_NUMPY_THREADS"], "the VAE_NUMPY_THREADS variable")
            self.reason = f"VAE_NUMPY_THREADS={fixed}"
        if fixed is None:
            named = [v for v in BLAS_ENV_VARS if env.get(v, "").strip()]
            if self._setter.active:
                fixed, self.reason = self._original, "inside another loop's policy"
            elif named:
                fixed, self.reason = self._original, f"{named[0]}={env[named[0]]}"
            elif self._original < cores:
                fixed, self.reason = self._original, "BLAS was already limited"
            elif cores == 1:
                fixed, self.reason = 1, "one usable core"
        if fixed is not None:
            self.mode = "fixed"
            self.candidates: tuple[int, ...] = (fixed,)
        else:
            self.mode, self.reason = "auto", "measured"
            self.candidates = tuple(sorted({1, cores // 2 if cores >= 4 else 1, cores}))
        self.timings: dict[int, float] = {}
        self.busy: set[int] = set()
        self.probes = 0
        self.usage: dict[int, int] = {}
        self._usage_mark: dict[int, int] = {}
        self._timer = _StepTimer(self)
        # probe state: the counts still to time, and the current trial
        self._queue: list[int] = []
        self._round: dict[int, float] = {}
        self._trial_steps = 0
        self._trial_time = 0.0
        self._warm = False
        # run state: the chosen count, its step time when chosen and lately, the next probe
        self._choice: int | None = None
        self._reference = 0.0
        self._recent: float | None = None
        self._interval = first_interval
        self._run_time = 0.0
        self._chunk_steps = 0
        self._chunk_time = 0.0
        # the window over which the other cores' idle time is measured
        self._mark: tuple[float, float | None] = (0.0, None)
        self._lap_start = 0.0
        self.threads = self.candidates[0]
        self._run_steps = 0
        if self.mode == "auto":
            remembered = self._setter.last_choice
            if remembered in self.candidates:
                # the previous loop's choice: run on it at once and probe the others after
                # first_interval seconds of work, or sooner if that loop would have (a close
                # call); its first pace measured becomes the reference
                self.threads = self._choice = remembered
                self._interval = min(first_interval, self._setter.last_interval or first_interval)
            else:
                self._queue = list(self.candidates)
                self.threads, self._warm = self._queue[0], True  # set on entering the context

    # -- context manager ---------------------------------------------------------------------

    def __enter__(self) -> ThreadPolicy:
        self._setter.set(self.threads)
        self._setter.active += 1
        self._set_mark()
        self._lap_start = self._clock()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.mode == "auto" and self._choice is not None:
            self._setter.last_choice = self._choice
            self._setter.last_interval = self._interval
        self._setter.active -= 1
        self._setter.set(self._original)

    def step(self) -> _StepTimer:
        """Context manager timing one step; it yields the thread count the step runs with."""
        return self._timer

    def start_laps(self) -> None:
        """Start timing from now: the next :meth:`lap` measures the step that begins here."""
        self._lap_start = self._clock()

    def lap(self) -> None:
        """One step ended: observe the time since the previous lap (or :meth:`start_laps`).

        For loops that report the end of each step (a callback) rather than wrap it; the
        policy's own bookkeeping is not counted in the next step.
        """
        self.observe(self._clock() - self._lap_start)
        self._lap_start = self._clock()

    # -- what was chosen ---------------------------------------------------------------------

    def describe(self) -> str:
        """One line: the count in force and why, e.g. ``"1 BLAS thread (measured: 1: 0.41
        ms/step, 2: 1.93 ms/step)"``."""
        plural = "" if self.threads == 1 else "s"
        if self.mode == "fixed":
            return f"{self.threads} BLAS thread{plural} ({self.reason})"
        parts = [f"{c}: {t * 1e3:.3g} ms/step" for c, t in sorted(self.timings.items())]
        parts += [f"{c}: not tried, cores busy" for c in sorted(self.busy)]
        return f"{self.threads} BLAS thread{plural} (measured: {', '.join(parts) or 'not yet'})"

    def most_used(self) -> int:
        """The count that ran the most steps since the previous call (ties: the fewer)."""
        since = {c: n - self._usage_mark.get(c, 0) for c, n in self.usage.items()}
        self._usage_mark = dict(self.usage)
        busy = {c: n for c, n in since.items() if n > 0}
        if not busy:
            return self.threads
        return min(busy, key=lambda c: (-busy[c], c))

    # -- the measurement ---------------------------------------------------------------------

    def observe(self, seconds: float) -> None:
        """Account one step of ``seconds`` run at :attr:`threads`; may change the count."""
        self.usage[self.threads] = self.usage.get(self.threads, 0) + 1
        if self.mode != "auto":
            return
        if self._queue:
            self._observe_probe(seconds)
        else:
            self._observe_run(seconds)

    def _switch(self, n: int) -> None:
        if n != self.threads:
            self._setter.set(n)
            self.threads = n
        self._set_mark()

    def _set_mark(self) -> None:
        self._mark = (self._clock(), self._idle())

    def _free_cores(self) -> float | None:
        """Idle cores (on average) since the mark, or None when unknown."""
        start, idle = self._mark
        now, idle_now = self._clock(), self._idle()
        if idle is None or idle_now is None or now <= start:
            return None
        return (idle_now - idle) / (now - start)

    def _start_probe(self, order: list[int]) -> None:
        """Time the counts in ``order`` (the chosen count, if in ``self._round``, is known)."""
        self._queue = order
        self.busy = set()
        self._begin_trial()

    def _begin_trial(self) -> None:
        """Switch to the next count to time, unless the cores it needs are busy."""
        while self._queue and self._queue[0] > self.threads:
            free = self._free_cores()
            if free is None or free >= 0.5 * (self._queue[0] - self.threads):
                break
            self.busy.add(self._queue.pop(0))  # more threads would wait for busy cores
        if not self._queue:
            self._decide()
            return
        self._switch(self._queue[0])
        self._trial_steps, self._trial_time = 0, 0.0
        self._warm = True

    def _trial_done(self) -> bool:
        seconds = self.probe_seconds
        if len(self._queue) > 1 and self._queue[1] > self.threads and self._mark[1] is not None:
            seconds = max(seconds, self.idle_seconds)  # long enough to measure idle cores
        return self._trial_steps >= self.probe_steps and self._trial_time >= seconds

    def _observe_probe(self, seconds: float) -> None:
        best = min(self._round.values(), default=float("inf"))
        if self._warm:  # the first step after a switch wakes threads and fills caches
            self._warm = False
            if seconds > 2 * self.give_up * best:
                self._end_trial(seconds)
            return
        self._trial_steps += 1
        self._trial_time += seconds
        mean = self._trial_time / self._trial_steps
        if mean > self.give_up * best or self._trial_done():
            self._end_trial(mean)

    def _end_trial(self, mean: float) -> None:
        self._round[self._queue.pop(0)] = mean
        if self._queue:
            self._begin_trial()
        else:
            self._decide()

    def _decide(self) -> None:
        fastest = min(self._round.values())
        choice = min(c for c, t in self._round.items() if t <= fastest * (1 + self.tie))
        held = choice == self._choice
        others = [t for c, t in self._round.items() if c != choice]
        if held:
            self._interval = min(2 * self._interval, self.max_interval)
        elif others and min(others) < self.close * self._round[choice]:
            self._interval = self.confirm_interval  # a close call: measure again soon
        else:
            self._interval = self.first_interval
        self.timings.update(self._round)
        for c in self.busy:
            self.timings.pop(c, None)
        self._choice, self._reference = choice, self._round[choice]
        self._round, self._recent = {}, None
        self._run_time, self._chunk_steps, self._chunk_time = 0.0, 0, 0.0
        self._run_steps = 0
        self.probes += 1
        self._switch(choice)

    def _observe_run(self, seconds: float) -> None:
        self._run_time += seconds
        self._run_steps += 1
        self._chunk_steps += 1
        self._chunk_time += seconds
        drifted = False
        # the chosen count's pace, over windows five times as long as a probe's
        if self._chunk_steps >= self.probe_steps and self._chunk_time >= 5 * self.probe_seconds:
            self._recent = self._chunk_time / self._chunk_steps
            self._chunk_steps, self._chunk_time = 0, 0.0
            if self._reference <= 0:  # started from a remembered count: its first pace
                self._reference = self._recent
            ratio = self._recent / self._reference
            drifted = ratio > self.drift or ratio < 1 / self.drift
        if drifted or self._run_time >= self._interval:
            if drifted:
                self._interval = self.first_interval / 2  # doubled back by _decide if it holds
            pace = self._recent or self._reference or self._run_time / self._run_steps
            self._round = {self.threads: pace}
            self._start_probe([c for c in self.candidates if c != self.threads])
