"""Submissions built from the assignments' notebooks: the student copy with some cells rewritten.

A submission starts as the released student copy (``notebooks/assignments/release``) and has
some of its solution cells, found by their nbgrader ``grade_id``, replaced -- what a student
hands in. :func:`solution_text` is the published solution of a cell as a student would paste
it, :func:`fill_stubs` fills the ``# YOUR CODE HERE`` stubs of a template cell (a class whose
methods are stubs) and :func:`plant_mistake` applies one of ``tests/assignment_mistakes``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nbformat

from vae_numpy.assignments import BEGIN_SOLUTION, CODE_STUB, END_SOLUTION

__all__ = [
    "ROOT",
    "SOURCE_DIR",
    "RELEASE_DIR",
    "MISTAKES_DIR",
    "ASSIGNMENTS",
    "source_notebook",
    "release_copy",
    "solution_ids",
    "solution_text",
    "template_text",
    "fill_stubs",
    "submission",
    "plant_mistake",
    "write",
    "failures_in_process",
]

ROOT = Path(__file__).resolve().parents[2]
SOURCE_DIR = ROOT / "notebooks" / "assignments" / "source"
RELEASE_DIR = ROOT / "notebooks" / "assignments" / "release"
MISTAKES_DIR = ROOT / "tests" / "assignment_mistakes"
ASSIGNMENTS = sorted(p.stem for p in SOURCE_DIR.glob("*.ipynb"))

_STUB = CODE_STUB.split("\n")


def _read(path: Path) -> Any:
    return nbformat.read(path, as_version=4)


def nbgrader_meta(cell: Any) -> dict[str, Any]:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def _cell(nb: Any, grade_id: str) -> Any:
    for cell in nb.cells:
        if nbgrader_meta(cell).get("grade_id") == grade_id:
            return cell
    raise KeyError(f"no cell with grade_id {grade_id!r}")


def source_notebook(assignment: str) -> Any:
    """The solution notebook of an assignment (what the instructor wrote)."""
    return _read(SOURCE_DIR / f"{assignment}.ipynb")


def release_copy(assignment: str) -> Any:
    """The student copy of an assignment, as released (stubs, no hidden tests)."""
    return _read(RELEASE_DIR / f"{assignment}.ipynb")


def solution_ids(assignment: str) -> list[str]:
    """The ``grade_id`` of every solution cell, in notebook order."""
    return [
        nbgrader_meta(c)["grade_id"]
        for c in release_copy(assignment).cells
        if nbgrader_meta(c).get("solution")
    ]


def solution_text(assignment: str, grade_id: str) -> str:
    """The published solution of one cell with the marker lines removed: a pasted solution."""
    lines = _cell(source_notebook(assignment), grade_id).source.split("\n")
    return "\n".join(ln for ln in lines if ln.strip() not in (BEGIN_SOLUTION, END_SOLUTION))


def template_text(assignment: str, grade_id: str) -> str:
    """The student copy's text of one solution cell (the template with its stubs)."""
    return str(_cell(release_copy(assignment), grade_id).source)


def fill_stubs(template: str, *bodies: str) -> str:
    """``template`` with its stubs, in order, replaced by ``bodies`` at the stubs' indentation.

    Each body is dedented first, so it can be written as an indented triple-quoted string.
    Raises ValueError when the number of bodies is not the number of stubs.
    """
    lines, out, used, i = template.split("\n"), [], 0, 0
    while i < len(lines):
        if [ln.strip() for ln in lines[i : i + len(_STUB)]] == _STUB:
            if used == len(bodies):
                raise ValueError(f"the template has more than {len(bodies)} stubs")
            indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
            body = textwrap.dedent(bodies[used]).strip("\n").split("\n")
            out.extend(indent + ln if ln.strip() else "" for ln in body)
            used, i = used + 1, i + len(_STUB)
        else:
            out.append(lines[i])
            i += 1
    if used != len(bodies):
        raise ValueError(f"the template has {used} stubs, {len(bodies)} bodies were given")
    return "\n".join(out)


def submission(assignment: str, cells: Mapping[str, str]) -> Any:
    """The student copy with the solution cells named in ``cells`` (grade_id -> code) rewritten.

    Code is dedented, so it can be written as an indented triple-quoted string. Raises
    KeyError for a grade_id that is not a solution cell of the assignment.
    """
    nb = release_copy(assignment)
    for grade_id, code in cells.items():
        cell = _cell(nb, grade_id)
        if not nbgrader_meta(cell).get("solution"):
            raise KeyError(f"{assignment}: {grade_id!r} is not a solution cell")
        cell.source = textwrap.dedent(code).strip("\n")
    return nb


def plant_mistake(spec_path: str | os.PathLike[str]) -> tuple[str, Any]:
    """The assignment and the solution notebook with one planted mistake applied.

    A spec (``tests/assignment_mistakes/*.json``) names the assignment, the cell and the text
    substitutions; each old text must occur exactly once in that cell.
    """
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    nb = source_notebook(spec["assignment"])
    cell = _cell(nb, spec["cell"])
    for old, new in spec["replace"]:
        if cell.source.count(old) != 1:
            raise ValueError(f"{spec_path}: {old!r} does not occur once in {spec['cell']!r}")
        cell.source = cell.source.replace(old, new)
    return spec["assignment"], nb


def write(nb: Any, path: str | os.PathLike[str]) -> Path:
    """Write a notebook (creating its folder) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def failures_in_process(assignment: str, seed: int) -> list[tuple[str, str]]:
    """Run the solution notebook in this process, its tests drawing inputs from ``seed``.

    Every code cell runs in order in one namespace, as in Jupyter (nbgrader's way), with
    ``TEST_SEED`` set to ``seed`` right after the cell that defines it -- what the grader does
    with a fresh seed. Returns ``(grade_id, error)`` for every cell that raised.
    """
    namespace: dict[str, Any] = {}
    failures = []
    for cell in source_notebook(assignment).cells:
        if cell.cell_type != "code":
            continue
        grade_id = nbgrader_meta(cell).get("grade_id", "?")
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(cell.source, f"{assignment}:{grade_id}", "exec"), namespace)
        except Exception as exc:
            failures.append((grade_id, f"{type(exc).__name__}: {str(exc)[:300]}"))
        if "TEST_SEED" in namespace and "TEST_SEED =" in cell.source:
            namespace["TEST_SEED"] = seed
    return failures
