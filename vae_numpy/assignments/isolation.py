"""The student's kernel's sandbox, before it starts: which isolation mode the machine offers
(:func:`bubblewrap_available`, :func:`namespaces_available`, :func:`choose_isolation`), the
``bwrap`` and ``unshare`` command lines (:func:`bubblewrap_argv`, :data:`UNSHARE`), the folders
it may read or must not see (:func:`read_only_paths`, :func:`folders_to_hide`) and the
sanitised copy of the package (:func:`sanitized_package`).

Starting the kernel, running cells in it and killing it (:class:`~vae_numpy.assignments.sandbox.Kernel`)
are in :mod:`~vae_numpy.assignments.sandbox`, which also describes the modes.
"""

from __future__ import annotations

import ast
import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "DEFAULT_MEMORY",
    "DEFAULT_OUTPUT_LIMIT",
    "ISOLATION_MODES",
    "SANDBOX_UID",
    "UNSHARE",
    "IsolationUnavailable",
    "bubblewrap_argv",
    "bubblewrap_available",
    "choose_isolation",
    "folders_to_hide",
    "namespaces_available",
    "package_dir",
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

UNSHARE = [
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
"""The ``unshare`` command line of the ``namespaces`` mode."""


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


def choose_isolation(isolation: str) -> str:
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


def bubblewrap_argv(workdir: Path, site: Path, package: Path) -> list[str]:
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
    return _runs([*UNSHARE, "sh", "-c", "mount --bind / /mnt 2>/dev/null || true; exit 0"])


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


def package_dir() -> Path:
    """The folder of the installed ``vae_numpy`` package."""
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
    source = package_dir()
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


def folders_to_hide(hide: Sequence[Path], package: Path, workdir: Path) -> list[Path]:
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
