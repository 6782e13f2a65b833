"""Source notebooks of the assignments: reading, finding, and checking their markup.

A source notebook is the full solution of an assignment, marked up the nbgrader way (see
:mod:`vae_numpy.assignments`): solution regions between ``### BEGIN SOLUTION`` and
``### END SOLUTION``, hidden tests between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN
TESTS``, test cells that open with ``# Tests: N points``, and nbgrader cell metadata (schema
version 3) on every code cell. This module reads notebooks (:func:`read_notebook`), tells their
cells apart by that metadata, checks a source (:func:`check_source`), and finds the sources by
name, short name or number (:func:`list_assignments`, :func:`find_assignment`) in
:data:`SOURCE_DIR` or a folder given instead.

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
    "BEGIN_SOLUTION",
    "END_SOLUTION",
    "BEGIN_HIDDEN",
    "END_HIDDEN",
    "GradingError",
    "read_notebook",
    "check_source",
    "list_assignments",
    "find_assignment",
]

SOURCE_DIR = Path(__file__).resolve().parents[2] / "notebooks" / "assignments" / "source"
"""Where the source notebooks are: ``notebooks/assignments/source`` of the repository."""

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


def _source_dir(source_dir: str | os.PathLike[str] | None) -> Path:
    if source_dir is None:  # the sources shipped in the package (wheel or checkout alike)
        from ..resources import assignments_dir

        try:
            return assignments_dir("source")
        except FileNotFoundError as exc:
            raise GradingError(f"{exc}; or pass --source DIR") from exc
    folder = Path(source_dir)
    if not folder.is_dir():
        raise GradingError(
            f"no assignment sources at {folder}; pass --source DIR (the folder "
            "notebooks/assignments/source of the vae_numpy repository)"
        )
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


def detect_assignment(submission: Path, nb: Any, known: dict[str, Path]) -> Path:
    """Which assignment a submission is: its metadata, else its file name, else its cells."""
    declared = nb.metadata.get("vae_numpy", {})
    if isinstance(declared, dict) and declared.get("assignment") in known:
        return known[declared["assignment"]]
    stem = submission.stem.lower()
    by_name = [
        path
        for name, path in known.items()
        if any(alias in stem for alias in _aliases(name) if not alias.isdigit())
    ]
    if len(by_name) == 1:
        return by_name[0]
    ids = {grade_id_of(c) for c in nb.cells} - {None}
    overlap = {
        name: len(ids & {grade_id_of(c) for c in read_notebook(path).cells})
        for name, path in known.items()
    }
    best = max(overlap.values(), default=0)
    winners = [name for name, n in overlap.items() if n == best]
    if best > 0 and len(winners) == 1:
        return known[winners[0]]
    raise GradingError(
        f"{submission}: cannot tell which assignment this is; pass --assignment NAME "
        f"(one of {', '.join(known)})"
    )
