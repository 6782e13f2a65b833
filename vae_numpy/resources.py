"""The notebooks that ship inside the package: the lecture notebooks and the student copies.

In the repository they live at the top, in ``notebooks/`` (lecture notebooks) and
``notebooks/assignments/release/`` (the student copies of the assignments); the wheel installs
those as the package ``vae_numpy._notebooks`` (``package_dir`` in setup.cfg), so a ``pip
install`` without a checkout has them too. This module finds them with
:mod:`importlib.resources`, for a wheel and an editable install alike, and copies them out of the
package (:func:`copy_notebooks`, the command ``vae-numpy notebooks DIR``).

The assignment sources (``notebooks/assignments/source``: the solutions and the hidden tests)
are not package data: they stay in the repository and the sdist, for instructors, and the
grader finds them there (:func:`vae_numpy.assignments.find_source_dir`) or is given them with
``--source DIR``. Everything a student installs is free of answers.
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

from .serialization import atomic_write_bytes

__all__ = [
    "SOLUTIONS_NOT_SHIPPED",
    "notebooks_dir",
    "lecture_notebooks",
    "assignments_dir",
    "copy_notebooks",
]

_PACKAGE = "vae_numpy._notebooks"
_KINDS = ("release",)
SOLUTIONS_NOT_SHIPPED = (
    "the assignment sources (solutions and hidden tests) are not shipped in the vae_numpy"
    " package, so that no student installs the answers; instructors find them in a checkout of"
    " the vae_numpy repository or in its sdist (vae_numpy-VERSION.tar.gz), in the folder"
    " notebooks/assignments/source"
)
"""Why there is no ``--solutions`` and no ``assignments_dir("source")``; where the sources are."""


def notebooks_dir() -> Path:
    """The installed ``notebooks`` folder (``vae_numpy._notebooks``).

    Returns
    -------
    pathlib.Path
        A folder on disk: the lecture notebooks, and ``assignments/release`` (the student
        copies) below it.

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


def assignments_dir(kind: str = "release") -> Path:
    """The folder of the assignments' student copies inside the installed package.

    Parameters
    ----------
    kind : {"release"}
        ``"release"``: the student copies, the only kind the package holds. The sources
        (``"source"``) are not shipped: see :data:`SOLUTIONS_NOT_SHIPPED`.

    Returns
    -------
    pathlib.Path
        ``notebooks/assignments/release`` inside the installed package.

    Raises
    ------
    ValueError
        ``kind`` is not ``"release"``; for ``"source"`` the message says where the sources are.
    """
    if kind == "source":
        raise ValueError(
            f"{SOLUTIONS_NOT_SHIPPED}; vae_numpy.assignments.find_source_dir() finds that folder"
            " from a checkout"
        )
    if kind not in _KINDS:
        raise ValueError(f"kind must be {_KINDS[0]!r}, got {kind!r}")
    return notebooks_dir() / "assignments" / kind


def copy_notebooks(dest: str | os.PathLike[str], *, force: bool = False) -> list[Path]:
    """Copy the lecture notebooks and the assignments' student copies into ``dest``.

    The lecture notebooks go to ``dest/``, the student copies to ``dest/assignments/``. Each
    file is written atomically. The solutions are not in the package (see
    :data:`SOLUTIONS_NOT_SHIPPED`).

    Parameters
    ----------
    dest : str or path
        Folder to copy into; created if missing.
    force : bool
        Overwrite notebooks that already exist in ``dest``. Without it nothing is written when
        any of them exists.

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
