"""The machine's cores and the BLAS libraries' threads: what the thread policy reads and sets.

:func:`usable_cores` counts the cores this process may run on, :func:`idle_core_seconds` the time
they have spent idle (``/proc/stat`` on Linux), and :func:`spare_core_seconds` adds the CPU time
of this process's BLAS helper threads, which spin while they wait. :class:`BlasThreads` reads and
sets the thread count of every BLAS library loaded in the process (through threadpoolctl), and
the element-wise work's count with it (:data:`vae_numpy.parallel.WORKERS`); :data:`BLAS_ENV_VARS`
names the environment variables a BLAS takes its count from at start-up, and
:func:`parse_thread_count` reads a count as a user gives it.

The policy that chooses the count by timing steps, :class:`~vae_numpy.threads.ThreadPolicy`, is
in :mod:`vae_numpy.threads`, which re-exports every public name of this module.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Protocol

from .parallel import WORKERS

__all__ = [
    "BlasThreads",
    "BLAS_ENV_VARS",
    "usable_cores",
    "idle_core_seconds",
    "spare_core_seconds",
    "parse_thread_count",
]

#: Environment variables through which BLAS libraries take their thread count at start-up.
BLAS_ENV_VARS = (
    "OPENBLAS_NUM_THREADS",
    "GOTO_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)


class ThreadSetter(Protocol):
    """What :class:`~vae_numpy.threads.ThreadPolicy` needs from a BLAS: read and set its count.

    ``last_choice`` is the count the last auto policy settled on and ``last_interval`` the
    seconds of work after which it would have measured again; ``active`` counts the policies
    inside whose context the program is (a loop inside another loop follows the outer one).
    """

    last_choice: int | None
    last_interval: float | None
    active: int

    def get(self) -> int: ...

    def set(self, n: int) -> None: ...


def _clock_ticks() -> int:
    try:
        return int(os.sysconf("SC_CLK_TCK"))
    except (AttributeError, ValueError, OSError):
        return 100


_CLK_TCK = _clock_ticks()


def idle_core_seconds() -> float | None:
    """Seconds the usable cores have spent idle since boot (Linux), or None where unknown.

    Read from ``/proc/stat`` (idle and iowait, in clock ticks of 10 ms), summed over the
    cores in this process's CPU affinity.
    """
    try:
        with open("/proc/stat", "rb") as f:
            lines = f.read().split(b"\n")
        mine = (
            {f"cpu{c}".encode() for c in os.sched_getaffinity(0)}
            if hasattr(os, "sched_getaffinity")
            else None
        )
        ticks = 0
        for line in lines:
            fields = line.split()
            if fields and fields[0].startswith(b"cpu") and fields[0] != b"cpu":
                if mine is None or fields[0] in mine:
                    ticks += int(fields[4]) + int(fields[5])
        return ticks / _CLK_TCK
    except (OSError, ValueError, IndexError):
        return None


def spare_core_seconds() -> float | None:
    """Core-seconds this process could have had more of: idle time, plus the CPU time of its
    threads other than the calling one (BLAS helper threads spin for a while after a
    multi-threaded product, waiting for the next one). None where idle time is unknown.
    """
    idle = idle_core_seconds()
    if idle is None:
        return None
    return idle + time.process_time() - time.thread_time()


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports it)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def parse_thread_count(value: Any, source: str) -> int | None:
    """A thread count as a user gives it (an int, a string from the environment, or "auto"):
    a positive int, or None for "auto"; ValueError/TypeError naming ``source`` otherwise."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise ValueError(
                f"{source} must be a positive integer or 'auto', got {value!r}"
            ) from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{source} must be a positive integer or 'auto', got {value!r}")
    if value < 1:
        raise ValueError(f"{source} must be at least 1 (or 'auto'), got {value}")
    return value


class BlasThreads:
    """The BLAS libraries loaded in this process, through threadpoolctl.

    Setting the count costs a few microseconds (a direct call into each library), so it can
    change between training steps. ``last_choice`` remembers the count the last auto policy
    settled on, so that the next loop in this process tries it first, and ``last_interval``
    when that policy would have measured again (soon after a close call).
    """

    _shared: BlasThreads | None = None

    def __init__(self) -> None:
        self._libs: list[Any] = []
        self._modules = -1
        self.last_choice: int | None = None
        self.last_interval: float | None = None
        self.active = 0
        self.refresh()

    def refresh(self) -> None:
        """Find the BLAS libraries again if modules were imported since the last search
        (a new module may have loaded another BLAS, e.g. scipy's); it takes milliseconds."""
        if len(sys.modules) != self._modules:
            from threadpoolctl import ThreadpoolController

            self._libs = ThreadpoolController().select(user_api="blas").lib_controllers
            self._modules = len(sys.modules)

    @classmethod
    def shared(cls) -> BlasThreads:
        """One instance per process, its library list brought up to date."""
        if cls._shared is None:
            cls._shared = cls()
        cls._shared.refresh()
        return cls._shared

    def get(self) -> int:
        """The largest thread count among the BLAS libraries (1 when there is none)."""
        return max((int(lib.get_num_threads() or 1) for lib in self._libs), default=1)

    def set(self, n: int) -> None:
        """Make every BLAS library use ``n`` threads, and the element-wise work too
        (:data:`vae_numpy.parallel.WORKERS`)."""
        for lib in self._libs:
            lib.set_num_threads(n)
        WORKERS.set_threads(max(1, int(n)))
