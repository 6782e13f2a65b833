"""The student's kernel: started in a sandbox, with limits, and killed with all it started.

:class:`Kernel` starts an IPython kernel of this interpreter for one submission and runs cells
in it. Whatever the machine offers, the kernel gets:

* its own session and process group (``setsid``) and resource limits: address space
  (``--memory-limit``, default :data:`DEFAULT_MEMORY`), processes, no core files;
* a copy of the ``vae_numpy`` package first on its path in which the assignment's reference
  implementations are replaced by stubs that raise, so ``import``, ``importlib.reload``,
  attribute access and subclassing all meet the stub (:func:`sanitized_package`).

When unprivileged user namespaces work (:func:`namespaces_available`; ``unshare`` from
util-linux; ``VAE_NUMPY_NO_NAMESPACES=1`` turns them off), the kernel also runs in new user,
PID, mount and network namespaces: it sees
only its own processes (it cannot signal the grader or another submission), has no network,
the real package directory is covered by the sanitised copy (so reading the reference's
source file finds the stub too), and when the kernel exits every process it started dies
with it. :attr:`Kernel.isolation` says which of the two was in force.

``python .../assignments/_launch.py [options] -- COMMAND`` is the small launcher (standard
library only, run by path so that it starts fast) that sets the limits (and the bind mount)
and then executes the kernel.
"""

from __future__ import annotations

import ast
import functools
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

__all__ = [
    "DEFAULT_MEMORY",
    "DEFAULT_OUTPUT_LIMIT",
    "Kernel",
    "CellResult",
    "namespaces_available",
    "sanitized_package",
    "unavailable_message",
]

DEFAULT_MEMORY = 4 * 1024**3
"""Bytes of address space the student's kernel may use (``--memory-limit``)."""

DEFAULT_OUTPUT_LIMIT = 100_000
"""Characters of a cell's output kept; the rest is dropped (and said so)."""

_UNSHARE = [
    "unshare",
    "--user",
    "--map-root-user",
    "--pid",
    "--fork",
    "--kill-child",
    "--mount-proc",
    "--mount",
    "--net",
]


@functools.cache
def namespaces_available() -> bool:
    """Does ``unshare`` start a process in new user, PID, mount and network namespaces here?

    Setting the environment variable ``VAE_NUMPY_NO_NAMESPACES=1`` says no (for a machine
    where they misbehave).
    """
    if os.environ.get("VAE_NUMPY_NO_NAMESPACES", "") not in ("", "0"):
        return False
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return False
    try:
        done = subprocess.run(
            [*_UNSHARE, "sh", "-c", "mount --bind / /mnt 2>/dev/null || true; exit 0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def unavailable_message(dotted: str) -> str:
    """What a blocked reference says when student code reaches it."""
    return (
        f"{dotted} is the reference for this assignment and is unavailable while grading: "
        "write your own"
    )


def _stub(node: ast.FunctionDef | ast.ClassDef, dotted: str) -> ast.stmt:
    message = unavailable_message(dotted)
    # the stand-in records that it was reached (the judge collects the records) and raises
    record = f"__import__('vae_numpy.assignments._agent', fromlist=['_']).reached({dotted!r})"
    if isinstance(node, ast.ClassDef):
        text = (
            f"class {node.name}:\n"
            f"    def __init_subclass__(cls, **kwargs):\n"
            f"        {record}\n"
            f"        raise RuntimeError({message!r})\n"
            f"    def __init__(self, *args, **kwargs):\n"
            f"        {record}\n"
            f"        raise RuntimeError({message!r})\n"
        )
    else:
        text = f"def {node.name}(*args, **kwargs):\n    {record}\n    raise RuntimeError({message!r})\n"
    return ast.parse(text).body[0]


def _package_dir() -> Path:
    import vae_numpy

    return Path(vae_numpy.__file__).resolve().parent


def _module_file(package: Path, parts: Sequence[str]) -> Path:
    """The file of module ``vae_numpy.<parts>`` inside the copied package."""
    module = package.joinpath(*parts).with_suffix(".py")
    return module if module.is_file() else package.joinpath(*parts, "__init__.py")


def _imported_from(node: ast.stmt, name: str, module: Path, package: Path) -> Path | None:
    """The file a relative ``from .x import name`` in ``module`` takes ``name`` from."""
    if not (isinstance(node, ast.ImportFrom) and node.level >= 1):
        return None
    if not any(alias.name == name and alias.asname in (None, name) for alias in node.names):
        return None
    base = module.parent
    for _ in range(node.level - 1):
        base = base.parent
    parts = list(base.relative_to(package).parts) + (node.module or "").split(".")
    return _module_file(package, [p for p in parts if p])


def sanitized_package(references: Sequence[str], dest: Path) -> Path:
    """Copy the ``vae_numpy`` package into ``dest`` with every reference replaced by a stub.

    ``references`` are dotted names ``vae_numpy.module.name`` of functions and classes. Each
    top-level definition of the name is replaced by a stub: a function that raises
    RuntimeError saying the name is the assignment's reference, or a class that raises it
    when instantiated or subclassed. A name the module imports from another module of the
    package (``from ._kernels import name``) is withheld there too, and the module's own
    binding is replaced as well. Returns the folder to put first on ``sys.path`` (it holds
    ``vae_numpy/``).
    """
    source = _package_dir()
    target = dest / "vae_numpy"
    ignore = shutil.ignore_patterns("*.so", "_notebooks", "*.ipynb")  # no solutions in the copy
    shutil.copytree(source, target, ignore=ignore, dirs_exist_ok=True)
    pending: list[tuple[Path, str, str]] = []
    for dotted in references:
        parts = dotted.split(".")
        if len(parts) < 3 or parts[0] != "vae_numpy":
            raise ValueError(f"a reference must be vae_numpy.MODULE.NAME, got {dotted!r}")
        pending.append((_module_file(target, parts[1:-1]), parts[-1], dotted))
    done: set[tuple[Path, str]] = set()
    while pending:
        module, name, dotted = pending.pop()
        if (module, name) in done or not module.is_file():
            continue
        done.add((module, name))
        tree = ast.parse(module.read_text(encoding="utf-8"))
        defined = False
        for index, node in enumerate(tree.body):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
                tree.body[index] = _stub(node, dotted)
                defined = True
            origin = _imported_from(node, name, module, target)
            if origin is not None:
                pending.append((origin, name, dotted))
        if not defined:  # imported or assigned: rebind the name at the end of the module
            tree.body.append(_stub(ast.FunctionDef(name=name), dotted))  # type: ignore[call-arg]
        module.write_text(ast.unparse(tree) + "\n", encoding="utf-8")
    return dest


def _folders_to_hide(hide: Sequence[Path], package: Path, workdir: Path) -> list[Path]:
    """The existing folders to cover: ``hide`` and the package's notebooks, except those inside
    the package folder (the sanitised copy covers it whole) or inside another one, and those
    the kernel needs (holding its working folder, the interpreter or the package)."""
    folders = [Path(h).resolve() for h in hide]
    try:
        from ..resources import notebooks_dir

        folders.append(notebooks_dir().resolve())
    except (FileNotFoundError, ImportError):
        pass
    needed = [package, workdir.resolve(), Path(sys.executable).resolve()]
    folders = [
        f
        for f in dict.fromkeys(folders)
        if f.is_dir() and not any(n.is_relative_to(f) for n in needed)
    ]
    return [f for f in folders if not any(f != g and f.is_relative_to(g) for g in folders)]


@dataclass
class CellResult:
    """What running one cell in the kernel gave."""

    status: str  # "ok", "error", "timeout", "dead"
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
        A private temporary folder: the kernel's working directory, its sockets, the
        sanitised package.
    references : sequence of str
        Dotted names withheld from the kernel (see :func:`sanitized_package`).
    memory_limit : int
        Bytes of address space.
    output_limit : int
        Characters of output kept per cell.
    hide : sequence of Path
        Folders the kernel must not read (the assignment sources, i.e. the solutions): with
        namespaces an empty folder is mounted over each. The notebooks shipped in the package
        (``vae_numpy._notebooks``) are always hidden, and never copied into the sanitised
        package.
    """

    def __init__(
        self,
        workdir: Path,
        references: Sequence[str],
        *,
        memory_limit: int = DEFAULT_MEMORY,
        output_limit: int = DEFAULT_OUTPUT_LIMIT,
        hide: Sequence[Path] = (),
    ) -> None:
        self.workdir = workdir
        self.output_limit = output_limit
        self.isolation = "namespaces" if namespaces_available() else "session+rlimits"
        site = sanitized_package(references, workdir / "site")
        real = _package_dir()
        launcher = [
            sys.executable,
            "-I",
            str(Path(__file__).with_name("_launch.py")),
            "--memory",
            str(int(memory_limit)),
        ]
        if self.isolation == "namespaces":
            empty = workdir / "hidden"
            empty.mkdir(exist_ok=True)
            for folder in _folders_to_hide(hide, real, workdir):
                launcher += ["--bind", str(empty), str(folder)]
            launcher += ["--bind", str(site / "vae_numpy"), str(real)]
        argv = [
            *launcher,
            "--",
            sys.executable,
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}",
        ]
        if self.isolation == "namespaces":
            argv = [*_UNSHARE, *argv]
        self.isolation += f", memory limit {memory_limit / 1024**3:g} GiB"
        self._start(argv, site)

    def _start(self, argv: list[str], site: Path) -> None:
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
        # another checkout with the published solutions
        env = {k: v for k, v in os.environ.items() if k != "OLDPWD"}
        env = dict(
            env,
            PWD=str(self.workdir),
            MPLBACKEND="Agg",
            PYTHONPATH=os.pathsep.join(paths),
            OPENBLAS_NUM_THREADS="1",
            OMP_NUM_THREADS="1",
            MKL_NUM_THREADS="1",
            PYDEVD_DISABLE_FILE_VALIDATION="1",
        )
        self.km.start_kernel(
            env=env,
            cwd=str(self.workdir),
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
                result.status = "dead"
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
                result.status = "dead"
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
