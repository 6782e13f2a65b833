"""The notebooks that ship inside the package: lecture notebooks, assignment sources, student copies.

In the repository they live at the top, in ``notebooks/`` (lecture notebooks) and
``notebooks/assignments/{source,release}/``; the wheel installs that folder as the package
``vae_numpy._notebooks`` (``package_dir`` in setup.cfg), so a ``pip install`` without a
checkout has them too. This module finds them with :mod:`importlib.resources`, for a wheel and
an editable install alike, and copies what a student needs out of the package
(:func:`copy_notebooks`, the command ``vae-numpy notebooks DIR``).
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

from .serialization import atomic_write_bytes

__all__ = ["notebooks_dir", "lecture_notebooks", "assignments_dir", "copy_notebooks"]

_PACKAGE = "vae_numpy._notebooks"
_KINDS = ("source", "release")


def notebooks_dir() -> Path:
    """The installed ``notebooks`` folder (``vae_numpy._notebooks``).

    Returns
    -------
    pathlib.Path
        A folder on disk: the lecture notebooks, and ``assignments/source`` and
        ``assignments/release`` below it.

    Raises
    ------
    FileNotFoundError
        The package was installed without its notebooks (or from a zip file).
    """
    try:
        root = importlib.resources.files(_PACKAGE)
    except ModuleNotFoundError as exc:
        raise FileNotFoundError(
            "this installation of vae_numpy has no notebooks (vae_numpy._notebooks is missing);"
            " reinstall it with `pip install vae_numpy` or from a checkout with `pip install .`"
        ) from exc
    if not isinstance(root, Path) or not root.is_dir():
        raise FileNotFoundError(
            f"the notebooks of vae_numpy are not a folder on disk ({root}); install the package"
            " from its wheel or a checkout instead of a zip file"
        )
    return root


def lecture_notebooks() -> list[Path]:
    """The lecture notebooks (``01_….ipynb`` to ``05_….ipynb``), sorted by name."""
    return sorted(notebooks_dir().glob("*.ipynb"))


def assignments_dir(kind: str) -> Path:
    """The folder of the assignment notebooks of one kind.

    Parameters
    ----------
    kind : {"source", "release"}
        ``"source"``: the solutions with their hidden tests (for instructors and the grader);
        ``"release"``: the student copies.

    Returns
    -------
    pathlib.Path
        ``notebooks/assignments/<kind>`` inside the installed package.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    return notebooks_dir() / "assignments" / kind


def copy_notebooks(
    dest: str | os.PathLike[str], *, force: bool = False, solutions: bool = False
) -> list[Path]:
    """Copy the lecture notebooks and the assignments' student copies into ``dest``.

    The lecture notebooks go to ``dest/``, the student copies to ``dest/assignments/``, and,
    only when asked, the solutions (the assignment sources, with hidden tests) to
    ``dest/solutions/``. Each file is written atomically.

    Parameters
    ----------
    dest : str or path
        Folder to copy into; created if missing.
    force : bool
        Overwrite notebooks that already exist in ``dest``. Without it nothing is written when
        any of them exists.
    solutions : bool
        Also copy the source notebooks, for instructors (e.g. to use them with nbgrader).

    Returns
    -------
    list of pathlib.Path
        The files written, lecture notebooks first.

    Raises
    ------
    FileExistsError
        ``force`` is False and some of the files exist; the message names them.
    """
    folder = Path(dest).expanduser()
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file, not a folder; choose another destination")
    plan = [(p, folder / p.name) for p in lecture_notebooks()]
    plan += [
        (p, folder / "assignments" / p.name)
        for p in sorted(assignments_dir("release").glob("*.ipynb"))
    ]
    if solutions:
        plan += [
            (p, folder / "solutions" / p.name)
            for p in sorted(assignments_dir("source").glob("*.ipynb"))
        ]
    existing = [target for _, target in plan if target.exists()]
    if existing and not force:
        names = ", ".join(str(p) for p in existing[:3]) + (" ..." if len(existing) > 3 else "")
        raise FileExistsError(
            f"{len(existing)} notebook(s) already exist ({names}); nothing was written."
            " Choose another folder, or pass --force (force=True) to overwrite them"
        )
    for source, target in plan:
        atomic_write_bytes(target, source.read_bytes())
    return [target for _, target in plan]
