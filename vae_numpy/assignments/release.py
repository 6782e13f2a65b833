"""Student copies of the assignments: solutions replaced, hidden tests removed, outputs cleared.

:func:`release_notebook` turns a source notebook into its student copy: every solution region
becomes :data:`CODE_STUB` at the marker's indentation (the code around the markers stays),
hidden tests are dropped, outputs and execution counts are cleared, and the cells are locked
the way nbgrader's ``LockCells`` does. :func:`release` writes the copies of every source,
byte-for-byte deterministic and atomically; :func:`verify_release` lists the copies that are
stale, the way fastbook's ``clean.py --verify-only`` does, so that CI can insist on them being
up to date.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from ..serialization import atomic_write_bytes
from .notebooks import (
    BEGIN_HIDDEN,
    BEGIN_SOLUTION,
    END_HIDDEN,
    END_SOLUTION,
    cell_kind,
    list_assignments,
    load_source,
    replace_regions,
)

__all__ = ["CODE_STUB", "release_notebook", "release", "verify_release"]

CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
"""What replaces a code solution region in the student copy (nbgrader's default)."""

_KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def release_cell(cell: Any) -> Any:
    """The student's version of one source cell (a new object)."""
    out = copy.deepcopy(cell)
    kind = cell_kind(cell)
    out.source, _ = replace_regions(out.source, BEGIN_SOLUTION, END_SOLUTION, CODE_STUB)
    out.source, _ = replace_regions(out.source, BEGIN_HIDDEN, END_HIDDEN, None)
    metadata: dict[str, Any] = {}
    if "tags" in cell.metadata:
        metadata["tags"] = list(cell.metadata["tags"])
    if "nbgrader" in cell.metadata:
        metadata["nbgrader"] = copy.deepcopy(dict(cell.metadata["nbgrader"]))
    # nbgrader's LockCells: nobody deletes graded cells; tests and read-only cells are not edited
    if kind in ("solution", "test", "locked"):
        metadata["deletable"] = False
    if kind in ("test", "locked"):
        metadata["editable"] = False
    out.metadata = metadata
    if cell.cell_type == "code":
        out.outputs = []
        out.execution_count = None
    return out


def release_notebook(nb: Any, name: str) -> Any:
    """The student copy of a source notebook: solutions replaced, hidden tests gone, no outputs.

    Parameters
    ----------
    nb : nbformat.NotebookNode
        A source notebook that passes :func:`check_source`.
    name : str
        The assignment's name, recorded in the notebook metadata (``vae_numpy.assignment``).
        The grader goes by the file name (or ``--assignment``), never by this, and flags a
        submission whose metadata names another assignment.
    """
    import nbformat

    out = nbformat.v4.new_notebook()
    out.nbformat, out.nbformat_minor = 4, max(5, int(nb.get("nbformat_minor", 5)))
    out.metadata = {
        "kernelspec": dict(nb.metadata.get("kernelspec", _KERNELSPEC)),
        "language_info": {"name": "python"},
        "vae_numpy": {"assignment": name},
    }
    out.cells = [release_cell(cell) for cell in nb.cells]
    return out


def _render(nb: Any) -> bytes:
    """Deterministic bytes of a notebook: nbformat's sorted-key JSON and a final newline."""
    import nbformat

    nbformat.validate(nb)
    return (nbformat.writes(nb) + "\n").encode("utf-8")


def _released_bytes(source_dir: str | os.PathLike[str] | None) -> dict[str, bytes]:
    return {
        f"{name}.ipynb": _render(release_notebook(load_source(path), name))
        for name, path in list_assignments(source_dir).items()
    }


def release(
    out_dir: str | os.PathLike[str], *, source_dir: str | os.PathLike[str] | None = None
) -> list[Path]:
    """Write the student copy of every source notebook into ``out_dir``; return the paths.

    Deterministic: the same sources always give byte-identical files. Files are written
    atomically. Files in ``out_dir`` that no source produces are left alone (see
    :func:`verify_release`).
    """
    out = Path(out_dir)
    written = []
    for filename, data in _released_bytes(source_dir).items():
        atomic_write_bytes(out / filename, data)
        written.append(out / filename)
    return written


def verify_release(
    release_dir: str | os.PathLike[str], source_dir: str | os.PathLike[str] | None = None
) -> list[str]:
    """File names in ``release_dir`` that are stale: missing, different from a fresh release,
    or left over from a source that no longer exists. Empty when the copies are up to date."""
    folder = Path(release_dir)
    fresh = _released_bytes(source_dir)
    stale = [
        filename
        for filename, data in fresh.items()
        if not (folder / filename).is_file() or (folder / filename).read_bytes() != data
    ]
    if folder.is_dir():
        stale += [p.name for p in folder.glob("*.ipynb") if p.name not in fresh]
    return sorted(stale)
