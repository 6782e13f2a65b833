"""Launcher of the student's kernel: set the limits, cover the package, execute the kernel.

Run by path (``python -I _launch.py --memory BYTES [--bind SOURCE TARGET] -- COMMAND ...``) by
:class:`~vae_numpy.assignments.sandbox.Kernel`; standard library only, so that it starts fast.
Inside the namespaces it is the new PID namespace's first process and replaces itself with the
kernel, so that when the kernel exits every process it started is killed.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
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


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="_launch.py")
    parser.add_argument("--memory", type=int, required=True)
    parser.add_argument("--bind", nargs=2, default=None, metavar=("SOURCE", "TARGET"))
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if args.bind:
        subprocess.run(["mount", "--bind", *args.bind], check=True)
    _limit(resource.RLIMIT_AS, args.memory)
    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_NPROC, len(os.listdir("/proc")) + _NPROC_EXTRA)
    os.execv(command[0], command)


if __name__ == "__main__":  # pragma: no cover
    main()
