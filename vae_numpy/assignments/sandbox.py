"""The student's kernel: started in a sandbox, with limits, and killed with all it started.

:class:`Kernel` starts an IPython kernel of this interpreter for one submission and runs cells
in it, in the strongest sandbox the machine offers (:attr:`Kernel.isolation` says which was in
force; ``isolation="strict"`` refuses to start without the first):

``bubblewrap``
    ``bwrap`` (Debian's package ``bubblewrap``, Flatpak's sandbox): the kernel runs as uid
    65534 with no capabilities in new user, PID, mount, IPC, UTS and network namespaces (so
    its mounts are locked: it cannot unmount or remount anything), on a read-only view of the
    system (``/usr``, ``/etc``, the Python installation and its site-packages), with a private
    empty ``/tmp`` and home (nothing of the host's is there but, when the grader's Python
    environment itself lives under ``/tmp``, the read-only path to it, at its own path so that
    the absolute paths its ``.pth`` files hold stay valid), no network, and a working folder
    holding only its own notebook.
    It sees neither the grader's checkout nor its ``.git`` or ``build/``, the assignment
    sources, other submissions, nor any path of the grader's environment it could write to;
    the ``vae_numpy`` it imports is the sanitised copy (read-only). Only the folder of its
    sockets is writable, and it holds nothing but them.
``namespaces``
    ``unshare`` (util-linux): new user, PID, mount and network namespaces, the package and the
    sources covered by bind mounts. The kernel is root *inside* its namespace, with every
    capability there, on a writable view of the host's files: it can undo the covering
    mounts, read the checkout and write wherever the grader can. It cannot signal processes
    outside its namespace nor reach the network.
``rlimits``
    Its own session and process group and resource limits only: the kernel has the grader's
    permissions.

Whatever the mode, the kernel gets resource limits (address space ``--memory-limit``, default
:data:`DEFAULT_MEMORY`; processes; no core files) and a copy of the ``vae_numpy`` package first
on its path in which the assignment's reference implementations are replaced by stubs that
raise, so ``import``, ``importlib.reload``, attribute access and subclassing all meet the stub
(:func:`sanitized_package`). ``VAE_NUMPY_NO_BUBBLEWRAP=1`` and ``VAE_NUMPY_NO_NAMESPACES=1``
turn the first two off (for a machine where they misbehave, and for the tests of the
fallbacks).

``python .../assignments/_launch.py [options] -- COMMAND`` is the small launcher (standard
library only, run by path so that it starts fast) that sets the limits (and the bind mounts of
the namespaces mode) and then executes the kernel.

What is decided before the kernel starts (the mode, the ``bwrap`` and ``unshare`` command
lines, the folders to hide, the sanitised package) is in :mod:`~vae_numpy.assignments.isolation`;
its public names are importable from here too.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .isolation import (
    DEFAULT_MEMORY,
    DEFAULT_OUTPUT_LIMIT,
    ISOLATION_MODES,
    SANDBOX_UID,
    UNSHARE,
    IsolationUnavailable,
    bubblewrap_argv,
    bubblewrap_available,
    choose_isolation,
    folders_to_hide,
    namespaces_available,
    package_dir,
    read_only_paths,
    sanitized_package,
    scratch_folder,
    unavailable_message,
)

__all__ = [
    "DEFAULT_MEMORY",
    "DEFAULT_OUTPUT_LIMIT",
    "ISOLATION_MODES",
    "IsolationUnavailable",
    "Kernel",
    "CellResult",
    "bubblewrap_available",
    "namespaces_available",
    "read_only_paths",
    "sanitized_package",
    "scratch_folder",
    "unavailable_message",
]


@dataclass
class CellResult:
    """What running one cell in the kernel gave."""

    status: str  # "ok", "error", "timeout", "dead"
    killed: bool = False  # "dead" because the kernel ignored the interrupt and was killed
    ename: str = ""
    evalue: str = ""
    traceback: list[str] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


class Kernel:
    """An IPython kernel for one submission, in the strongest sandbox the machine offers.

    Parameters
    ----------
    workdir : Path
        A private temporary folder: it holds the kernel's working folder ``work/`` (with a copy
        of ``notebook``), its sockets ``run/`` and the sanitised package ``site/``.
    references : sequence of str
        Dotted names withheld from the kernel (see :func:`sanitized_package`).
    memory_limit : int
        Bytes of address space.
    output_limit : int
        Characters of output kept per cell.
    hide : sequence of Path
        Folders the kernel must not read (the assignment sources, i.e. the solutions). Under
        bubblewrap the kernel sees none of the host's folders but the system's and Python's;
        with namespaces an empty folder is mounted over each. The notebooks shipped in the
        package (``vae_numpy._notebooks``) are always hidden, and never copied into the
        sanitised package.
    isolation : str
        One of :data:`ISOLATION_MODES` (default ``"auto"``).
    notebook : Path, optional
        The submission, copied into the kernel's working folder (the only file it finds there).

    Raises
    ------
    IsolationUnavailable
        ``isolation`` asks for a sandbox this machine cannot give.
    """

    def __init__(
        self,
        workdir: Path,
        references: Sequence[str],
        *,
        memory_limit: int = DEFAULT_MEMORY,
        output_limit: int = DEFAULT_OUTPUT_LIMIT,
        hide: Sequence[Path] = (),
        isolation: str = "auto",
        notebook: Path | None = None,
    ) -> None:
        self.workdir = workdir
        self.output_limit = output_limit
        mode = choose_isolation(isolation)
        for name in ("run", "work"):
            (workdir / name).mkdir(exist_ok=True)
        if notebook is not None:
            shutil.copyfile(notebook, workdir / "work" / Path(notebook).name)
        site = sanitized_package(references, workdir / "site")
        real = package_dir()
        launcher = [
            "--memory",
            str(int(memory_limit)),
        ]
        if mode == "namespaces":
            empty = workdir / "hidden"
            empty.mkdir(exist_ok=True)
            for folder in folders_to_hide(hide, real, workdir):
                launcher += ["--bind", str(empty), str(folder)]
            launcher += ["--bind", str(site / "vae_numpy"), str(real)]
        # the launcher is run from the sanitised copy: under bubblewrap it is all the kernel sees
        script = site / "vae_numpy" / "assignments" / "_launch.py"
        kernel = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        argv = [sys.executable, "-I", str(script), *launcher, "--", *kernel]
        env: dict[str, str] | None = None
        if mode == "namespaces":
            argv = [*UNSHARE, *argv]
        elif mode == "bubblewrap":
            env = {
                "HOME": "/home",
                "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"]),
                "LANG": "C.UTF-8",
                "TMPDIR": "/tmp",
            }
            # SIGINT (the judge's interrupt, sent to the process group) is for the kernel:
            # bwrap itself would die of it, so it starts with SIGINT ignored (inherited
            # through exec) and the launcher restores it for the kernel
            argv = [
                "/bin/sh",
                "-c",
                'trap \'\' INT; exec "$0" "$@"',
                *bubblewrap_argv(workdir, site, real),
                "--",
                *argv,
            ]
        self.mode = mode
        self.isolation = {
            "bubblewrap": f"bubblewrap (uid {SANDBOX_UID}, no capabilities, read-only system, "
            "no network)",
            "namespaces": "namespaces (root inside its own user namespace, no network)",
            "rlimits": "session+rlimits (the grader's own permissions)",
        }[mode]
        self.isolation += f", memory limit {memory_limit / 1024**3:g} GiB"
        self._start(argv, site, env)

    def _start(self, argv: list[str], site: Path, clean_env: dict[str, str] | None) -> None:
        from jupyter_client.kernelspec import KernelSpec
        from jupyter_client.manager import KernelManager

        spec = KernelSpec(
            argv=argv,
            display_name="vae_numpy grading sandbox",
            language="python",
            interrupt_mode="signal",
            name="python3",
        )

        class SandboxKernelManager(KernelManager):
            @property
            def kernel_spec(self) -> KernelSpec:
                return spec

        runtime = self.workdir / "run"
        runtime.mkdir(exist_ok=True)
        self.km = SandboxKernelManager(
            transport="ipc",
            ip=str(runtime / "k"),
            connection_file=str(runtime / "kernel.json"),
        )
        paths = [str(site)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        # the grader's own folders (PWD, OLDPWD) are not the kernel's business: they may hold
        # another checkout with the published solutions; under bubblewrap the kernel gets
        # only the variables it needs
        if clean_env is None:
            env = {k: v for k, v in os.environ.items() if k != "OLDPWD"}
        else:
            env = dict(clean_env)
        env = dict(
            env,
            PWD=str(self.workdir / "work"),
            MPLBACKEND="Agg",
            PYTHONPATH=os.pathsep.join(paths),
            OPENBLAS_NUM_THREADS="1",
            OMP_NUM_THREADS="1",
            MKL_NUM_THREADS="1",
            PYDEVD_DISABLE_FILE_VALIDATION="1",
        )
        self.km.start_kernel(
            env=env,
            cwd=str(self.workdir / "work"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.pgid = os.getpgid(self.km.provisioner.process.pid)  # type: ignore[union-attr]
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    def alive(self) -> bool:
        try:
            return bool(self.km.is_alive())
        except Exception:
            return False

    def interrupt(self) -> None:
        try:
            os.killpg(self.pgid, signal.SIGINT)
        except OSError:
            pass

    def start(self, code: str) -> str:
        """Send ``code`` to run; return the message id (see :meth:`finish`)."""
        return str(
            self.kc.execute(code, store_history=False, allow_stdin=False, stop_on_error=False)
        )

    def finish(self, msg_id: str, deadline: float, *, probe: float = 10.0) -> CellResult:
        """Collect the outputs and reply of the cell ``msg_id``; interrupt it at ``deadline``.

        A cell still running ``probe`` seconds after the interrupt, or a kernel that dies,
        gives status ``"dead"`` (the kernel is then shut down).
        """
        start = time.monotonic()
        result = CellResult("ok")
        kept = 0
        dropped = False
        interrupted_at: float | None = None
        idle = False
        while not idle:
            now = time.monotonic()
            if interrupted_at is None and now >= deadline:
                self.interrupt()
                interrupted_at = now
                result.status = "timeout"
            if interrupted_at is not None and now >= interrupted_at + probe:
                result.status, result.killed = "dead", True
                self.kill()
                break
            try:
                msg = self.kc.get_iopub_msg(timeout=0.5)
            except queue.Empty:
                if not self.alive():
                    result.status = "dead"
                    break
                continue
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "status" and content.get("execution_state") == "idle":
                idle = True
            elif kind in ("stream", "display_data", "execute_result", "error"):
                size = len(str(content))
                if kept + size <= self.output_limit:
                    kept += size
                    out = {"output_type": kind, **content}
                    if kind == "stream":
                        out = {
                            "output_type": "stream",
                            "name": content.get("name", "stdout"),
                            "text": content.get("text", ""),
                        }
                    result.outputs.append(out)
                elif not dropped:
                    dropped = True
                    result.outputs.append(
                        {
                            "output_type": "stream",
                            "name": "stderr",
                            "text": f"[output beyond {self.output_limit} characters dropped by the grader]\n",
                        }
                    )
        if result.status != "dead":
            try:
                reply = self.kc.get_shell_msg(timeout=probe)
                while reply.get("parent_header", {}).get("msg_id") != msg_id:
                    reply = self.kc.get_shell_msg(timeout=probe)
                content = reply["content"]
                if content.get("status") == "error" and result.status == "ok":
                    result.status = "error"
                result.ename = str(content.get("ename", ""))
                result.evalue = str(content.get("evalue", ""))
                result.traceback = [str(t) for t in content.get("traceback", [])][-20:]
            except queue.Empty:
                result.status, result.killed = "dead", True
                self.kill()
        result.seconds = time.monotonic() - start
        return result

    def run(self, code: str, timeout: float) -> CellResult:
        """Run one cell with a time limit (see :meth:`finish`)."""
        return self.finish(self.start(code), time.monotonic() + timeout)

    def kill(self) -> None:
        """Kill the kernel and every process in its group (its namespace, when there is one)."""
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except OSError:
            pass

    def close(self) -> None:
        """Stop the channels and kill everything the kernel started."""
        try:
            self.kc.stop_channels()
        except Exception:
            pass
        self.kill()
        try:
            self.km.shutdown_kernel(now=True)
        except Exception:
            pass
        self.kill()
        try:
            self.km.cleanup_resources()
        except Exception:
            pass
