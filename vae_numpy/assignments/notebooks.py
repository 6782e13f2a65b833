"""Source notebooks of the assignments: reading, finding, and checking their markup.

A source notebook is the full solution of an assignment, marked up the nbgrader way (see
:mod:`vae_numpy.assignments`): solution regions between ``### BEGIN SOLUTION`` and
``### END SOLUTION``, hidden tests between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN
TESTS``, test cells that open with ``# Tests: N points``, and nbgrader cell metadata (schema
version 3) on every code cell. This module reads notebooks (:func:`read_notebook`), tells their
cells apart by that metadata, checks a source (:func:`check_source`), and finds the sources by
name, short name or number (:func:`list_assignments`, :func:`find_assignment`) in the folder
given (``--source DIR``) or else the one :func:`find_source_dir` finds in a checkout.

The sources hold the solutions and the hidden tests, so they are not in the wheel that students
install: they live in the repository and its sdist, in ``notebooks/assignments/source``.
:func:`find_source_dir` looks for that folder above the current folder and above the package's
own location (an editable install, a checkout, an unpacked sdist).

Which assignment a submission is comes from ``--assignment`` or else its file name, never from
what the notebook says about itself (:func:`detect_assignment`): a notebook whose metadata names
another assignment is graded by its file name and flagged.

References
----------
nbgrader: https://nbgrader.readthedocs.io (cell metadata, solution and hidden-test markers).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

__all__ = [
    "SOURCE_DIR",
    "SOURCE_HINT",
    "BEGIN_SOLUTION",
    "END_SOLUTION",
    "BEGIN_HIDDEN",
    "END_HIDDEN",
    "GradingError",
    "read_notebook",
    "check_source",
    "list_assignments",
    "find_assignment",
    "find_source_dir",
    "assignment_from_name",
    "detect_assignment",
]

_SOURCE_PARTS = ("notebooks", "assignments", "source")
SOURCE_DIR = Path(__file__).resolve().parents[2].joinpath(*_SOURCE_PARTS)
"""Where the source notebooks are in a checkout (or an editable install):
``notebooks/assignments/source`` beside the package. It does not exist beside an installed wheel,
which holds no sources; :func:`find_source_dir` says so."""

SOURCE_HINT = (
    "pass --source DIR, the folder notebooks/assignments/source of a checkout of the vae_numpy"
    " repository or of its sdist: it must hold the assignments' source notebooks"
    " (NN_name.ipynb, with their solutions and hidden tests)"
)
"""What to do when the sources cannot be found: the end of every such message."""

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"

_POINTS_HEADER = re.compile(r"# Tests: (\d+) points?")
_GRADE_ID = re.compile(r"[A-Za-z0-9_-]+")
_NBGRADER_KEYS = {"grade", "grade_id", "locked", "points", "schema_version", "solution", "task"}


class GradingError(Exception):
    """The submission could not be graded (unreadable notebook, unknown assignment, no kernel)."""


# --------------------------------------------------------------------------------------------
# Reading notebooks and telling their cells apart
# --------------------------------------------------------------------------------------------


def read_notebook(path: str | os.PathLike[str]) -> Any:
    """Read an ``.ipynb`` file as an nbformat 4 notebook; GradingError when it is not one."""
    import nbformat

    path = Path(path)
    if not path.is_file():
        raise GradingError(f"{path}: no such notebook")
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:  # JSON, encoding, schema or conversion errors alike
        raise GradingError(f"{path}: not a readable Jupyter notebook ({exc})") from exc
    if not isinstance(nb.get("cells"), list):
        raise GradingError(f"{path}: not a readable Jupyter notebook (no list of cells)")
    return nb


def nbgrader_meta(cell: Any) -> dict[str, Any]:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def cell_kind(cell: Any) -> str:
    """``"solution"``, ``"test"``, ``"locked"`` or ``"plain"`` from the nbgrader metadata."""
    meta = nbgrader_meta(cell)
    if meta.get("solution"):
        return "solution"
    if meta.get("grade"):
        return "test"
    if meta.get("locked"):
        return "locked"
    return "plain"


def grade_id_of(cell: Any) -> str | None:
    gid = nbgrader_meta(cell).get("grade_id")
    return gid if isinstance(gid, str) and gid else None


def _lines(text: str) -> list[str]:
    return text.split("\n")


def replace_regions(source: str, begin: str, end: str, stub: str | None) -> tuple[str, int]:
    """Replace every ``begin`` ... ``end`` block (marker lines included).

    Each block becomes ``stub`` indented like its ``begin`` line, or nothing when ``stub`` is
    None. Returns the new text and the number of blocks; raises ValueError on nested or
    unbalanced markers.
    """
    out: list[str] = []
    inside, count = False, 0
    for number, line in enumerate(_lines(source), start=1):
        stripped = line.strip()
        if stripped == begin:
            if inside:
                raise ValueError(f"line {number}: {begin!r} inside another {begin!r} block")
            inside, count = True, count + 1
            if stub is not None:
                indent = line[: len(line) - len(line.lstrip())]
                out.extend(indent + s for s in _lines(stub))
        elif stripped == end:
            if not inside:
                raise ValueError(f"line {number}: {end!r} without a {begin!r} before it")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{begin!r} is never closed by {end!r}")
    return "\n".join(out), count


def _points_from_header(source: str) -> int | None:
    first = source.lstrip("\n").split("\n", 1)[0].strip()
    match = _POINTS_HEADER.fullmatch(first)
    return int(match.group(1)) if match else None


def is_hidden_cell(cell: Any) -> bool:
    return any(line.strip() == BEGIN_HIDDEN for line in _lines(cell.source))


def check_source(nb: Any) -> list[str]:
    """Everything wrong with a source notebook as an assignment (empty list: it is fine).

    Checks the nbgrader metadata (schema 3, unique ``grade_id``, points on test cells), that
    every code cell is a solution, test or read-only cell, that the markers are balanced and
    in the right kind of cell, that every test cell opens with ``# Tests: N points`` matching
    its metadata, and that every cell has an id (nbformat 4.5).
    """
    problems: list[str] = []
    seen: set[str] = set()
    n_tests = 0
    for index, cell in enumerate(nb.cells):
        where = f"cell {index}"
        if not cell.get("id"):
            problems.append(f"{where} has no id; save the notebook with Jupyter (nbformat 4.5)")
        meta = nbgrader_meta(cell)
        gid = grade_id_of(cell)
        if gid:
            where = f"cell {index} ({gid})"
        if cell.cell_type != "code":
            if meta:
                problems.append(f"{where}: only code cells may carry nbgrader metadata here")
            for marker in (BEGIN_SOLUTION, BEGIN_HIDDEN):
                if marker in cell.source:
                    problems.append(f"{where}: {marker!r} in a {cell.cell_type} cell")
            continue
        if not meta:
            problems.append(f"{where}: a code cell without nbgrader metadata")
            continue
        unknown = set(meta) - _NBGRADER_KEYS
        if unknown:
            problems.append(f"{where}: unknown nbgrader keys {sorted(unknown)}")
        if meta.get("schema_version") != 3:
            problems.append(f"{where}: nbgrader schema_version should be 3")
        if gid is None or not _GRADE_ID.fullmatch(gid):
            problems.append(f"{where}: grade_id must be letters, digits, '_' or '-'")
        elif gid in seen:
            problems.append(f"{where}: duplicate grade_id {gid!r}")
        else:
            seen.add(gid)
        kind = cell_kind(cell)
        try:
            _, n_solutions = replace_regions(cell.source, BEGIN_SOLUTION, END_SOLUTION, None)
            _, n_hidden = replace_regions(cell.source, BEGIN_HIDDEN, END_HIDDEN, None)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if kind == "solution":
            if meta.get("grade") or meta.get("locked"):
                problems.append(f"{where}: a solution cell must have grade and locked false")
            if n_solutions == 0:
                problems.append(f"{where}: a solution cell without {BEGIN_SOLUTION!r}")
            if n_hidden:
                problems.append(f"{where}: hidden tests belong in test cells")
        elif kind == "test":
            n_tests += 1
            points = meta.get("points")
            header = _points_from_header(cell.source)
            if not meta.get("locked"):
                problems.append(f"{where}: a test cell must be locked")
            if not isinstance(points, int) or isinstance(points, bool) or points <= 0:
                problems.append(f"{where}: points must be a whole number > 0, got {points!r}")
            elif header != points:
                problems.append(
                    f"{where}: the first line must be '# Tests: {points} point"
                    f"{'' if points == 1 else 's'}' (the metadata says {points} points)"
                )
            if n_solutions:
                problems.append(f"{where}: solution markers in a test cell")
        else:
            if kind != "locked":
                problems.append(f"{where}: set solution, grade or locked in its nbgrader metadata")
            if n_solutions or n_hidden:
                problems.append(f"{where}: markers in a read-only cell")
    if n_tests == 0:
        problems.append("the notebook has no test cells")
    return problems


def load_source(path: Path) -> Any:
    nb = read_notebook(path)
    problems = check_source(nb)
    if problems:
        raise ValueError(f"{path} is not a valid assignment source:\n  " + "\n  ".join(problems))
    return nb


# --------------------------------------------------------------------------------------------
# Finding the assignments
# --------------------------------------------------------------------------------------------


def _holds_sources(folder: Path) -> bool:
    return folder.is_dir() and any(folder.glob("*.ipynb"))


def find_source_dir(start: str | os.PathLike[str] | None = None) -> Path:
    """The assignment sources of a checkout: ``notebooks/assignments/source``.

    Looks in ``start`` (default: the current folder) and every folder above it, then beside
    the package and above it (a checkout, an unpacked sdist or an editable install); the first
    folder ``notebooks/assignments/source`` that holds notebooks wins.

    Parameters
    ----------
    start : path, optional
        Where to start looking; the current folder by default.

    Returns
    -------
    pathlib.Path
        The folder of the source notebooks.

    Raises
    ------
    GradingError
        No such folder was found (e.g. the package was installed from its wheel, which holds
        no sources); the message says to pass ``--source DIR`` and what that folder holds.
    """
    here = Path.cwd() if start is None else Path(start)
    roots = [here.resolve(), Path(__file__).resolve().parent]
    tried: list[Path] = []
    for root in roots:
        for folder in (root, *root.parents):
            candidate = folder.joinpath(*_SOURCE_PARTS)
            if candidate in tried:
                continue
            tried.append(candidate)
            if _holds_sources(candidate):
                return candidate
    raise GradingError(
        f"no assignment sources found in {here} or the folders above it, nor beside the installed"
        " package (the wheel does not ship them: they hold the solutions and hidden tests); "
        + SOURCE_HINT
    )


def _source_dir(source_dir: str | os.PathLike[str] | None) -> Path:
    if source_dir is None:
        return find_source_dir()
    folder = Path(source_dir)
    if not folder.is_dir():
        raise GradingError(f"no assignment sources at {folder}: no such folder; " + SOURCE_HINT)
    if not _holds_sources(folder):
        raise GradingError(f"no assignment sources at {folder}: no .ipynb in it; " + SOURCE_HINT)
    return folder


def list_assignments(source_dir: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """The source notebooks by assignment name (the file name without ``.ipynb``), sorted."""
    folder = _source_dir(source_dir)
    return {p.stem: p for p in sorted(folder.glob("*.ipynb"))}


def _aliases(name: str) -> set[str]:
    """``01_dense_layer`` is also ``dense_layer``, ``01`` and ``1`` (all lower case)."""
    name = name.lower()
    out = {name}
    match = re.fullmatch(r"(\d+)[_-](.+)", name)
    if match:
        out |= {match.group(2), match.group(1), str(int(match.group(1)))}
    return out


def find_assignment(name: str, source_dir: str | os.PathLike[str] | None = None) -> Path:
    """The source notebook of an assignment given its name, short name or number.

    ``"01_dense_layer"``, ``"dense_layer"``, ``"01"``, ``"1"`` and ``"01_dense_layer.ipynb"``
    all find ``01_dense_layer.ipynb``. Raises GradingError listing the known names.
    """
    known = list_assignments(source_dir)
    wanted = name.strip().removesuffix(".ipynb").lower()
    for stem, path in known.items():
        if wanted in _aliases(stem):
            return path
    raise GradingError(
        f"unknown assignment {name!r}; known assignments: {', '.join(known) or '(none)'}"
    )


def assignment_from_name(submission: str | os.PathLike[str], known: dict[str, Path]) -> Path | None:
    """The assignment a submission's file name tells, or None when it tells none or several.

    A name that starts with an assignment's full name (``04_adam.ipynb`` as released,
    ``04_adam-Copy1.ipynb``, ``04_adam_alice.ipynb``) is that assignment; otherwise a name that
    holds the full or short name of exactly one assignment (``alice_adam.ipynb``).
    """
    stem = Path(submission).stem.lower()
    prefixed = [path for name, path in known.items() if stem.startswith(name.lower())]
    if len(prefixed) == 1:
        return prefixed[0]
    by_name = [
        path
        for name, path in known.items()
        if any(alias in stem for alias in _aliases(name) if not alias.isdigit())
    ]
    return by_name[0] if len(by_name) == 1 else None


def _declared(nb: Any) -> str | None:
    """The assignment a notebook's metadata names (released copies carry it), clipped."""
    declared = nb.get("metadata", {}).get("vae_numpy", {})
    name = declared.get("assignment") if isinstance(declared, dict) else None
    if not isinstance(name, str) or not name.strip():
        return None
    name = "".join(ch if ch.isprintable() else "?" for ch in name.strip())
    return name if len(name) <= 60 else name[:57] + "..."


def detect_assignment(
    submission: str | os.PathLike[str],
    nb: Any,
    known: dict[str, Path],
    assignment: str | None = None,
) -> tuple[Path, list[str]]:
    """Which assignment a submission is graded as, and the flags that choice raises.

    The assignment comes from ``assignment`` (``--assignment``) when given, else from the file
    name (:func:`assignment_from_name`), never from the notebook's metadata, which the student
    controls: a notebook whose metadata names another assignment is graded as the one its name
    or ``--assignment`` says, and flagged.

    Returns
    -------
    (pathlib.Path, list of str)
        The source notebook, and ``["metadata says A, graded as B from its file name"]`` when
        the metadata disagrees (else an empty list).

    Raises
    ------
    GradingError
        ``assignment`` is unknown, or neither it nor the file name tells the assignment.
    """
    declared = _declared(nb)
    if assignment is not None:
        wanted = assignment.strip().removesuffix(".ipynb").lower()
        matches = [path for stem, path in known.items() if wanted in _aliases(stem)]
        if not matches:
            raise GradingError(
                f"unknown assignment {assignment!r}; known assignments: "
                f"{', '.join(known) or '(none)'}"
            )
        path, how = matches[0], "--assignment"
    else:
        found = assignment_from_name(submission, known)
        if found is None:
            said = f" (its metadata says {declared}, which is not trusted)" if declared else ""
            raise GradingError(
                f"{Path(submission).name}: cannot tell which assignment this is from its file"
                f" name{said}; name it as released (e.g. {next(iter(known), 'NN_name')}.ipynb)"
                f" or pass --assignment NAME (one of {', '.join(known) or '(none)'})"
            )
        path, how = found, "its file name"
    flags = []
    if declared is not None and declared.lower() not in _aliases(path.stem):
        flags.append(f"metadata says {declared}, graded as {path.stem} from {how}")
    return path, flags
