"""Processes a hostile submission left behind, found through ``/proc`` (Linux).

Every process the corpus's submissions start names itself with a token (``prctl(PR_SET_NAME)``,
visible in ``/proc/PID/comm``) that is unique to one test run, so that it can be found wherever
it went -- reparented to init, in its own session -- and so that the clean-up kills nothing else.
"""

from __future__ import annotations

import os
import secrets
import signal
from pathlib import Path

__all__ = ["new_token", "marked", "kill_marked", "descendants", "PROC"]

PROC = Path("/proc")


def new_token() -> str:
    """A fresh process-name token: ``rt`` and 8 hex digits (fits the 15 bytes of comm)."""
    return "rt" + secrets.token_hex(4)


def _read(path: Path) -> str:
    try:
        return path.read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:  # the process ended meanwhile, or is not ours to read
        return ""


def _pids() -> list[int]:
    return [int(p.name) for p in PROC.iterdir() if p.name.isdigit()]


def marked(token: str) -> list[int]:
    """Live processes (not zombies) whose name or command line holds ``token``."""
    found = []
    for pid in _pids():
        if pid == os.getpid():
            continue
        where = PROC / str(pid)
        if token not in _read(where / "comm") and token not in _read(where / "cmdline"):
            continue
        stat = _read(where / "stat")
        if stat and stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]:
            found.append(pid)
    return found


def kill_marked(token: str) -> int:
    """SIGKILL every process holding ``token``; the number killed."""
    killed = 0
    for pid in marked(token):
        try:
            os.kill(pid, signal.SIGKILL)
            killed += 1
        except OSError:
            pass
    return killed


def descendants(pid: int | None = None) -> set[int]:
    """Live descendants (children, grandchildren, ...) of ``pid`` (default: this process)."""
    root = os.getpid() if pid is None else pid
    children: dict[int, list[int]] = {}
    for child in _pids():
        stat = _read(PROC / str(child) / "stat")
        if not stat:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(child)
    out: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out
