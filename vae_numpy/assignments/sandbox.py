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

ISOLATION_MODES = ("auto", "strict", "bubblewrap", "namespaces", "rlimits")
"""What ``isolation=`` accepts: ``auto`` takes the strongest sandbox the machine offers,
``strict`` refuses to grade without bubblewrap, the others ask for one mode."""

SANDBOX_UID = 65534
"""The user (and group) the kernel runs as under bubblewrap: ``nobody``."""


class IsolationUnavailable(RuntimeError):
    """The sandbox asked for cannot be had on this machine."""


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


_BWRAP_BASE = [
    "--unshare-all",  # user, PID, mount, IPC, UTS, cgroup and network namespaces
    "--die-with-parent",
    "--uid",
    str(SANDBOX_UID),
    "--gid",
    str(SANDBOX_UID),
    "--cap-drop",
    "ALL",
    "--hostname",
    "sandbox",
]


@functools.cache
def bubblewrap_available() -> bool:
    """Does ``bwrap`` start a process as an unprivileged user without capabilities here?

    Setting the environment variable ``VAE_NUMPY_NO_BUBBLEWRAP=1`` says no.
    """
    if os.environ.get("VAE_NUMPY_NO_BUBBLEWRAP", "") not in ("", "0"):
        return False
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return False
    return _runs([bwrap, *_BWRAP_BASE, "--ro-bind", "/", "/", "--", "true"])


def _runs(argv: list[str]) -> bool:
    """Does ``argv`` run to exit status 0 within 10 s (its output discarded)?"""
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def _choose_isolation(isolation: str) -> str:
    """The mode to run in for ``isolation`` (one of :data:`ISOLATION_MODES`)."""
    if isolation not in ISOLATION_MODES:
        raise ValueError(
            f"isolation must be one of {', '.join(ISOLATION_MODES)}, got {isolation!r}"
        )
    if isolation in ("strict", "bubblewrap"):
        if not bubblewrap_available():
            raise IsolationUnavailable(
                "bubblewrap is not available here (install the Debian package 'bubblewrap', "
                "and check that `bwrap --unshare-user --uid 65534 -- true` runs), so the "
                f"student's code cannot be isolated as --isolation {isolation} requires"
            )
        return "bubblewrap"
    if isolation == "namespaces":
        if not namespaces_available():
            raise IsolationUnavailable("user namespaces (unshare --user) are not available here")
        return "namespaces"
    if isolation == "rlimits":
        return "rlimits"
    if bubblewrap_available():
        return "bubblewrap"
    return "namespaces" if namespaces_available() else "rlimits"


def read_only_paths(package: Path) -> list[Path]:
    """What the kernel must read besides the system: the Python installation, the virtual
    environment and its site-packages -- never a folder that holds the real package (an
    editable install's checkout), since the kernel imports the sanitised copy."""
    checkout = package.parent
    paths = [Path(sys.base_prefix), Path(sys.prefix)]
    paths += [Path(p) for p in sys.path if p]
    paths += [Path(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    out: list[Path] = []
    for path in paths:
        try:
            path = path.resolve()
        except OSError:
            continue
        if not path.is_dir() or path == Path("/"):
            continue
        if path == checkout or checkout.is_relative_to(path) and path != Path(sys.prefix).resolve():
            continue  # the checkout itself, or a folder above it
        out.append(path)
    out = list(dict.fromkeys(out))
    return [p for p in out if not any(p != q and p.is_relative_to(q) for q in out)]


def _bubblewrap_argv(workdir: Path, site: Path, package: Path) -> list[str]:
    """``bwrap`` options for the kernel: see the module docstring."""
    argv = [shutil.which("bwrap") or "bwrap", *_BWRAP_BASE]
    for name in ("usr", "etc", "opt"):
        if Path("/", name).is_dir():
            argv += ["--ro-bind", f"/{name}", f"/{name}"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/", name)
        if path.is_symlink():
            argv += ["--symlink", os.readlink(path), f"/{name}"]
        elif path.is_dir():
            argv += ["--ro-bind", str(path), str(path)]
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    argv += ["--tmpfs", "/home", "--tmpfs", "/run", "--tmpfs", "/var"]  # /home: its own, empty
    for path in read_only_paths(package):
        argv += ["--ro-bind", str(path), str(path)]
    workdir = workdir.resolve()
    argv += ["--ro-bind", str(site.resolve()), str(site.resolve())]
    for name in ("run", "work"):
        argv += ["--bind", str(workdir / name), str(workdir / name)]
    argv += ["--chdir", str(workdir / "work")]
    return argv


def scratch_folder() -> str | None:
    """Where a grading run's private folder goes: ``/var/tmp`` when it is writable, so that
    under bubblewrap the kernel's sockets live outside its (private, empty) ``/tmp``; else the
    default temporary folder (``None``)."""
    return "/var/tmp" if os.path.isdir("/var/tmp") and os.access("/var/tmp", os.W_OK) else None


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
    return _runs([*_UNSHARE, "sh", "-c", "mount --bind / /mnt 2>/dev/null || true; exit 0"])


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
        mode = _choose_isolation(isolation)
        for name in ("run", "work"):
            (workdir / name).mkdir(exist_ok=True)
        if notebook is not None:
            shutil.copyfile(notebook, workdir / "work" / Path(notebook).name)
        site = sanitized_package(references, workdir / "site")
        real = _package_dir()
        launcher = [
            "--memory",
            str(int(memory_limit)),
        ]
        if mode == "namespaces":
            empty = workdir / "hidden"
            empty.mkdir(exist_ok=True)
            for folder in _folders_to_hide(hide, real, workdir):
                launcher += ["--bind", str(empty), str(folder)]
            launcher += ["--bind", str(site / "vae_numpy"), str(real)]
        # the launcher is run from the sanitised copy: under bubblewrap it is all the kernel sees
        script = site / "vae_numpy" / "assignments" / "_launch.py"
        kernel = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        argv = [sys.executable, "-I", str(script), *launcher, "--", *kernel]
        env: dict[str, str] | None = None
        if mode == "namespaces":
            argv = [*_UNSHARE, *argv]
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
                *_bubblewrap_argv(workdir, site, real),
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
