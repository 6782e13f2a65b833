"""Launcher of the student's kernel: set the limits, cover the package, supervise the kernel.

Run by path (``python -I _launch.py --memory BYTES [--bind SOURCE TARGET]... -- COMMAND ...``) by
:class:`~vae_numpy.assignments.sandbox.Kernel`; standard library only, so that it starts fast.
It starts the kernel as its child and waits: the kernel's parent is this disposable
supervisor, never the grader, so ``os.kill(os.getppid(), ...)`` reaches only the supervisor.
Both die with their parent (``PR_SET_PDEATHSIG``): killing the supervisor kills the kernel,
and inside the namespaces the supervisor is the PID namespace's first process, whose death
kills everything the kernel started.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Sequence

__all__: list[str] = []

_NPROC_EXTRA = 256  # processes (and threads) the kernel may start


def _limit(kind: int, value: int) -> None:
    soft, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    try:
        resource.setrlimit(kind, (value, value if hard == resource.RLIM_INFINITY else hard))
    except (ValueError, OSError):
        pass


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (prctl PR_SET_PDEATHSIG)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="_launch.py")
    parser.add_argument("--memory", type=int, required=True)
    parser.add_argument(
        "--bind", nargs=2, action="append", default=[], metavar=("SOURCE", "TARGET")
    )
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    for source, target in args.bind:  # in order: a later mount may cover an earlier one
        subprocess.run(["mount", "--bind", source, target], check=True)
    _limit(resource.RLIMIT_AS, args.memory)
    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_NPROC, len(os.listdir("/proc")) + _NPROC_EXTRA)
    _die_with_parent()
    child = os.fork()
    if child == 0:
        _die_with_parent()
        # ipykernel exits when its parent pid changes or is 1; this supervisor is its parent
        # (pid 1 inside a PID namespace) and PR_SET_PDEATHSIG covers the parent's death
        env = {k: v for k, v in os.environ.items() if k != "JPY_PARENT_PID"}
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # under bubblewrap it came in ignored
        os.execve(command[0], command, env)
    # the supervisor: interrupts are for the kernel; wait for it and exit as it did
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except InterruptedError:
            continue
    code = os.waitstatus_to_exitcode(status)
    sys.exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":  # pragma: no cover
    main()
