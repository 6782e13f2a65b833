"""Classroom assignments: solution notebooks, generated student copies and an offline grader.

The assignments live as *source* notebooks in ``notebooks/assignments/source/``: the full
solution, kept green by the test suite, marked up with nbgrader's conventions so that a course
already on nbgrader can use them as they are (nbgrader itself is not needed here):

* solution regions inside student cells::

      ### BEGIN SOLUTION
      ...
      ### END SOLUTION

  which the student copy replaces with ``# YOUR CODE HERE`` / ``raise NotImplementedError()``
  at the marker's indentation (the code around the markers, e.g. ``def forward(self, x):``,
  stays);
* test cells that open with ``# Tests: N points`` and may hold a hidden part::

      ### BEGIN HIDDEN TESTS
      ...
      ### END HIDDEN TESTS

  which the student copy drops;
* nbgrader cell metadata (schema version 3) on every code cell: solution cells
  ``{"solution": true, "grade": false, "locked": false}``, test cells
  ``{"grade": true, "locked": true, "points": N}``, read-only cells ``{"locked": true}``, each
  with a unique ``grade_id``.

:func:`release` writes the student copies (solutions replaced, hidden tests removed, outputs
cleared; byte-for-byte deterministic) and :func:`verify_release` reports copies that are stale,
the way fastbook's ``clean.py --verify-only`` does.

:func:`grade_notebook` grades a submission offline. It builds the notebook to run from the
submission's solution cells, matched by ``grade_id`` (a deleted one is replaced by the empty
stub), interleaved with the *source's* test and read-only cells -- visible and hidden tests
alike, never the student's copies of them -- and keeps any code cells the student added, after
the cell they followed. It runs the result cell by cell in a fresh ``python3`` kernel of this
interpreter, in a temporary working directory, with a time limit per cell: a cell that runs out
of time is interrupted and the grading goes on. A test cell earns its points when it raises no
error; a failing one reports the exception's message, which the tests write to tell the student
what is wrong.

Command line (wired into ``vae-numpy``; also ``python -m vae_numpy.assignments ...``)::

    vae-numpy assignments list
    vae-numpy assignments release --out DIR [--check]
    vae-numpy assignments grade SUBMISSION.ipynb [--assignment NAME] [--json] [--timeout SECONDS]
    vae-numpy assignments grade-all DIR --csv OUT.csv [--assignment NAME] [--timeout SECONDS]

References
----------
nbgrader: https://nbgrader.readthedocs.io (cell metadata, solution and hidden-test markers).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import io
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .serialization import atomic_write_bytes

__all__ = [
    "SOURCE_DIR",
    "DEFAULT_TIMEOUT",
    "CODE_STUB",
    "GradingError",
    "GradedTest",
    "GradeReport",
    "list_assignments",
    "find_assignment",
    "read_notebook",
    "check_source",
    "release_notebook",
    "release",
    "verify_release",
    "grade_notebook",
    "grade_folder",
    "add_subcommand",
    "run",
    "main",
]

SOURCE_DIR = Path(__file__).resolve().parents[1] / "notebooks" / "assignments" / "source"
"""Where the source notebooks are: ``notebooks/assignments/source`` of the repository."""

DEFAULT_TIMEOUT = 60.0
"""Seconds a cell may run before it is interrupted when grading."""

CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
"""What replaces a code solution region in the student copy (nbgrader's default)."""

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"

_POINTS_HEADER = re.compile(r"# Tests: (\d+) points?")
_GRADE_ID = re.compile(r"[A-Za-z0-9_-]+")
_NBGRADER_KEYS = {"grade", "grade_id", "locked", "points", "schema_version", "solution", "task"}
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_MESSAGE_LIMIT = 2000  # characters of a failure message kept in a report
_PROBE_SECONDS = 10  # after an interrupt, how long the kernel may take to answer again
_TIME_LIMIT = "CellTimeLimit"  # the error name nbclient reports for a cell it interrupted
_KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


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


def _nbgrader(cell: Any) -> dict[str, Any]:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def _kind(cell: Any) -> str:
    """``"solution"``, ``"test"``, ``"locked"`` or ``"plain"`` from the nbgrader metadata."""
    meta = _nbgrader(cell)
    if meta.get("solution"):
        return "solution"
    if meta.get("grade"):
        return "test"
    if meta.get("locked"):
        return "locked"
    return "plain"


def _grade_id(cell: Any) -> str | None:
    gid = _nbgrader(cell).get("grade_id")
    return gid if isinstance(gid, str) and gid else None


def _lines(text: str) -> list[str]:
    return text.split("\n")


def _replace_regions(source: str, begin: str, end: str, stub: str | None) -> tuple[str, int]:
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


def _is_hidden(cell: Any) -> bool:
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
        meta = _nbgrader(cell)
        gid = _grade_id(cell)
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
        kind = _kind(cell)
        try:
            _, n_solutions = _replace_regions(cell.source, BEGIN_SOLUTION, END_SOLUTION, None)
            _, n_hidden = _replace_regions(cell.source, BEGIN_HIDDEN, END_HIDDEN, None)
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


# --------------------------------------------------------------------------------------------
# Finding the assignments
# --------------------------------------------------------------------------------------------


def _source_dir(source_dir: str | os.PathLike[str] | None) -> Path:
    folder = SOURCE_DIR if source_dir is None else Path(source_dir)
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


def _detect_assignment(submission: Path, nb: Any, known: dict[str, Path]) -> Path:
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
    ids = {_grade_id(c) for c in nb.cells} - {None}
    overlap = {
        name: len(ids & {_grade_id(c) for c in read_notebook(path).cells})
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


# --------------------------------------------------------------------------------------------
# Release: the student copies
# --------------------------------------------------------------------------------------------


def _release_cell(cell: Any) -> Any:
    """The student's version of one source cell (a new object)."""
    out = copy.deepcopy(cell)
    kind = _kind(cell)
    out.source, _ = _replace_regions(out.source, BEGIN_SOLUTION, END_SOLUTION, CODE_STUB)
    out.source, _ = _replace_regions(out.source, BEGIN_HIDDEN, END_HIDDEN, None)
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
        The assignment's name, recorded in the notebook metadata (``vae_numpy.assignment``)
        so that the grader recognises a renamed submission.
    """
    import nbformat

    out = nbformat.v4.new_notebook()
    out.nbformat, out.nbformat_minor = 4, max(5, int(nb.get("nbformat_minor", 5)))
    out.metadata = {
        "kernelspec": dict(nb.metadata.get("kernelspec", _KERNELSPEC)),
        "language_info": {"name": "python"},
        "vae_numpy": {"assignment": name},
    }
    out.cells = [_release_cell(cell) for cell in nb.cells]
    return out


def _render(nb: Any) -> bytes:
    """Deterministic bytes of a notebook: nbformat's sorted-key JSON and a final newline."""
    import nbformat

    nbformat.validate(nb)
    return (nbformat.writes(nb) + "\n").encode("utf-8")


def _load_source(path: Path) -> Any:
    nb = read_notebook(path)
    problems = check_source(nb)
    if problems:
        raise ValueError(f"{path} is not a valid assignment source:\n  " + "\n  ".join(problems))
    return nb


def _released_bytes(source_dir: str | os.PathLike[str] | None) -> dict[str, bytes]:
    return {
        f"{name}.ipynb": _render(release_notebook(_load_source(path), name))
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


# --------------------------------------------------------------------------------------------
# Grading
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GradedTest:
    """One test cell's result: points earned of ``max_points``, and why it failed."""

    grade_id: str
    points: int
    max_points: int
    passed: bool
    hidden: bool
    message: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "grade_id": self.grade_id,
            "points": self.points,
            "max_points": self.max_points,
            "passed": self.passed,
            "hidden": self.hidden,
            "message": self.message,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class GradeReport:
    """The grade of one submission: every test cell's result and the problems met on the way.

    ``problems`` lists the student's cells that raised an error or ran out of time, solution
    cells missing from the submission, and a kernel that died or could not be stopped.
    """

    assignment: str
    submission: str
    tests: list[GradedTest]
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def score(self) -> int:
        return sum(t.points for t in self.tests)

    @property
    def max_score(self) -> int:
        return sum(t.max_points for t in self.tests)

    def to_dict(self) -> dict[str, Any]:
        """``{"assignment", "score", "max_score", "tests": [...], ...}`` for a JSON report."""
        return {
            "assignment": self.assignment,
            "submission": self.submission,
            "score": self.score,
            "max_score": self.max_score,
            "tests": [t.to_dict() for t in self.tests],
            "problems": list(self.problems),
            "seconds": round(self.seconds, 3),
        }

    def format(self) -> str:
        """A plain-text report: one line per test, the failure messages, the total."""
        width = max([len(t.grade_id) for t in self.tests] + [10])
        lines = [f"{self.assignment}: {self.submission}"]
        for t in self.tests:
            tag = " (hidden)" if t.hidden else ""
            lines.append(
                f"  {t.grade_id:<{width}}  {t.points:>3} / {t.max_points:<3}{tag}".rstrip()
            )
            if not t.passed:
                lines.extend("      " + line for line in t.message.splitlines() or [""])
        if self.problems:
            lines.append("problems:")
            lines.extend(f"  - {p}" for p in self.problems)
        lines.append(f"total: {self.score} / {self.max_score}")
        return "\n".join(lines)


@dataclass(frozen=True)
class _Role:
    kind: str  # "solution", "test", "locked", "extra", "text"
    grade_id: str | None = None
    points: int = 0
    hidden: bool = False


@dataclass
class _Run:
    status: str  # "ok", "error", "timeout", "dead", "not run"
    message: str = ""
    seconds: float = 0.0


def _compose(source: Any, submission: Any) -> tuple[Any, list[_Role], list[str]]:
    """The notebook to execute: the submission's solution cells and added code cells, the
    source's test, read-only and markdown cells, in the source's order."""
    import nbformat

    problems: list[str] = []
    source_ids = {gid for gid in map(_grade_id, source.cells) if gid is not None}
    answers: dict[str, Any] = {}
    extras: dict[str | None, list[str]] = {}
    anchor: str | None = None
    for cell in submission.cells:
        gid = _grade_id(cell)
        if gid is not None and gid in source_ids and gid not in answers:
            answers[gid] = cell
            anchor = gid
            continue
        if cell.cell_type == "code" and cell.source.strip():
            extras.setdefault(anchor, []).append(cell.source)  # the student's own cell

    cells: list[Any] = []
    roles: list[_Role] = []

    def add_extras(after: str | None) -> None:
        for text in extras.get(after, []):
            cells.append(nbformat.v4.new_code_cell(text))
            roles.append(_Role("extra", after))

    add_extras(None)
    for cell in source.cells:
        gid = _grade_id(cell)
        kind = _kind(cell)
        if cell.cell_type != "code":
            cells.append(copy.deepcopy(cell))
            roles.append(_Role("text", gid))
        elif kind == "solution":
            assert gid is not None  # check_source guarantees it
            answer = answers.get(gid)
            if answer is None or answer.cell_type != "code":
                why = "is missing" if answer is None else "is no longer a code cell"
                problems.append(f"solution cell {gid!r} {why}; graded with the empty stub")
                text = _release_cell(cell).source
            else:
                text = answer.source
            cells.append(nbformat.v4.new_code_cell(text))
            roles.append(_Role("solution", gid))
        else:
            cells.append(nbformat.v4.new_code_cell(cell.source))
            if kind == "test":
                points = int(_nbgrader(cell)["points"])
                roles.append(_Role("test", gid, points, _is_hidden(cell)))
            else:
                roles.append(_Role("locked", gid))
        add_extras(gid)
    nb = nbformat.v4.new_notebook(cells=cells, metadata=copy.deepcopy(source.metadata))
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"graded-{index}"
    return nb, roles, problems


def _error_text(output: Any) -> str:
    """``Name: message`` of an error output, made helpful when the message is empty."""
    ename, evalue = str(output.get("ename", "Error")), str(output.get("evalue", "")).strip()
    if ename == "NotImplementedError" and not evalue:
        return (
            "NotImplementedError: not implemented yet "
            "(replace raise NotImplementedError() with your code)"
        )
    text = f"{ename}: {evalue}" if evalue else ename
    if ename == "NameError":
        text += " (a cell that should define it failed or did not run: see the problems)"
    if not evalue:  # e.g. a bare assert: show the line that failed
        frames = [_ANSI.sub("", f) for f in output.get("traceback", [])]
        marked = [
            ln.strip() for f in frames for ln in f.splitlines() if ln.lstrip().startswith("-")
        ]
        if marked:
            text += f" at {marked[-1].lstrip('-> ').strip()}"
    if len(text) > _MESSAGE_LIMIT:
        text = text[: _MESSAGE_LIMIT - 15] + " ... (truncated)"
    return text


def _outcome(reply: dict[str, Any], seconds: float) -> _Run:
    """A cell's result from the kernel's execute reply (more reliable than the outputs)."""
    status = reply.get("status", "ok")
    if status == "error":
        return _Run("error", _error_text(reply), seconds)
    if status == "aborted":
        return _Run("error", "the kernel aborted this cell without running it", seconds)
    return _Run("ok", "", seconds)


def _kernel_manager_class() -> type:
    """An AsyncKernelManager whose ``python3`` kernel is always this interpreter.

    nbclient looks ``python3`` up among the installed kernelspecs, and a user-wide spec may
    point at another Python that lacks vae_numpy; this one launches ``sys.executable``.
    """
    from jupyter_client.kernelspec import KernelSpec
    from jupyter_client.manager import AsyncKernelManager

    class ThisInterpreterKernelManager(AsyncKernelManager):
        @property
        def kernel_spec(self) -> KernelSpec:
            if self._kernel_spec is None:
                self._kernel_spec = KernelSpec(
                    argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                    display_name="Python 3 (ipykernel)",
                    language="python",
                    interrupt_mode="signal",
                    name="python3",
                )
            return self._kernel_spec

    return ThisInterpreterKernelManager


def _execute(nb: Any, labels: Sequence[str], timeout: int, workdir: Path) -> list[_Run]:
    """Run the code cells of ``nb`` one by one in a fresh kernel; one _Run per cell.

    A cell that exceeds ``timeout`` seconds is interrupted (nbclient's ``interrupt_on_timeout``)
    and the next cells still run; if the kernel does not answer a trivial cell after the
    interrupt, or dies, the remaining cells are marked not run. ``labels`` name the cells in
    those messages. Each result comes from the kernel's execute reply.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    replies: dict[int, dict[str, Any]] = {}

    def record(cell: Any, cell_index: int, execute_reply: dict[str, Any]) -> None:
        replies[cell_index] = dict(execute_reply.get("content", {}))

    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        allow_errors=True,
        interrupt_on_timeout=True,
        error_on_timeout={"ename": _TIME_LIMIT, "evalue": "", "traceback": []},
        on_cell_executed=record,
        kernel_manager_class=_kernel_manager_class(),
        resources={"metadata": {"path": str(workdir)}},
        shutdown_kernel="immediate",
        record_timing=False,
    )

    def responsive(index: int) -> bool:
        """After an interrupt: does the kernel run a trivial cell within the probe time?"""
        client.timeout = min(timeout, _PROBE_SECONDS)
        replies.pop(index, None)
        try:
            client.execute_cell(nbformat.v4.new_code_cell("pass"), index)
        except (CellTimeoutError, DeadKernelError):
            return False
        finally:
            client.timeout = timeout
        return replies.get(index, {}).get("status") == "ok"

    runs = [_Run("ok") for _ in nb.cells]
    stopped = ""  # why the remaining cells cannot run
    env = dict(os.environ, MPLBACKEND="Agg")
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}  # the kernel's own logs
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(client.setup_kernel(env=env, **quiet))
        except Exception as exc:
            raise GradingError(
                f"could not start a python3 kernel with {sys.executable} ({exc}); "
                "install ipykernel in this environment"
            ) from exc
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            if stopped:
                runs[index] = _Run("not run", stopped)
                continue
            start = time.monotonic()
            try:
                client.execute_cell(cell, index)
            except DeadKernelError:
                runs[index] = _Run("dead", "the Python kernel died while running this cell", 0.0)
                stopped = f"not run: the kernel died in {labels[index]}"
                continue
            except CellTimeoutError:  # not expected with interrupt_on_timeout; be safe
                replies[index] = {"status": "error", "ename": _TIME_LIMIT}
            seconds = time.monotonic() - start
            reply = replies.pop(index, {})
            if reply.get("ename") == _TIME_LIMIT:
                runs[index] = _Run(
                    "timeout",
                    f"TimeoutError: the cell ran longer than the time limit of {timeout} s"
                    " and was interrupted (an infinite loop?)",
                    seconds,
                )
                if not responsive(index):
                    stopped = (
                        f"not run: the kernel could not be stopped after {labels[index]} ran "
                        "out of time"
                    )
                continue
            runs[index] = _outcome(reply, seconds)
    return runs


def _describe(role: _Role) -> str:
    if role.kind == "extra":
        where = "at the top" if role.grade_id is None else f"after {role.grade_id!r}"
        return f"your added cell {where}"
    kind = {"locked": "read-only", "text": "text"}.get(role.kind, role.kind)
    return f"{kind} cell {role.grade_id!r}"


def grade_notebook(
    submission: str | os.PathLike[str],
    *,
    assignment: str | None = None,
    source_dir: str | os.PathLike[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    executed_path: str | os.PathLike[str] | None = None,
) -> GradeReport:
    """Grade one submitted notebook against its assignment's source tests, offline.

    Parameters
    ----------
    submission : path
        The student's ``.ipynb``.
    assignment : str, optional
        Name, short name or number of the assignment (see :func:`find_assignment`). By
        default it is read from the notebook's metadata, else its file name, else matched by
        the cells' ``grade_id``.
    source_dir : path, optional
        Folder of the source notebooks (default :data:`SOURCE_DIR`).
    timeout : float
        Seconds each cell may run before it is interrupted (rounded up to whole seconds).
    executed_path : path, optional
        Also write the executed notebook, with every cell's output, here.

    Returns
    -------
    GradeReport
        Per-test points and messages; ``score`` and ``max_score``.

    Raises
    ------
    GradingError
        The submission is not a readable notebook, the assignment is unknown or cannot be
        told, or no kernel could be started.
    """
    if not (isinstance(timeout, int | float) and math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")
    start = time.monotonic()
    path = Path(submission)
    nb = read_notebook(path)
    known = list_assignments(source_dir)
    source_path = (
        find_assignment(assignment, source_dir)
        if assignment is not None
        else _detect_assignment(path, nb, known)
    )
    try:
        source = _load_source(source_path)
    except ValueError as exc:
        raise GradingError(str(exc)) from exc
    composed, roles, problems = _compose(source, nb)
    with tempfile.TemporaryDirectory(prefix="vae-numpy-grade-") as workdir:
        labels = [_describe(role) for role in roles]
        runs = _execute(composed, labels, max(1, math.ceil(timeout)), Path(workdir))
    if executed_path is not None:  # for the instructor's eyes: written even if not valid
        import nbformat

        atomic_write_bytes(executed_path, (nbformat.writes(composed) + "\n").encode("utf-8"))
    tests = []
    for role, outcome in zip(roles, runs, strict=True):
        if role.kind == "test":
            assert role.grade_id is not None
            passed = outcome.status == "ok"
            tests.append(
                GradedTest(
                    grade_id=role.grade_id,
                    points=role.points if passed else 0,
                    max_points=role.points,
                    passed=passed,
                    hidden=role.hidden,
                    message=outcome.message,
                    seconds=outcome.seconds,
                )
            )
        elif role.kind != "text" and outcome.status != "ok":
            first = outcome.message.splitlines()[0] if outcome.message else outcome.status
            problems.append(f"{_describe(role)}: {first}")
    return GradeReport(
        assignment=source_path.stem,
        submission=str(path),
        tests=tests,
        problems=problems,
        seconds=time.monotonic() - start,
    )


def grade_folder(
    folder: str | os.PathLike[str],
    *,
    assignment: str | None = None,
    source_dir: str | os.PathLike[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[tuple[Path, GradeReport | GradingError]]:
    """Grade every ``.ipynb`` under ``folder`` (recursively, skipping checkpoints), sorted.

    Returns one ``(path, report)`` per notebook, or ``(path, error)`` for one that could not
    be graded; one bad file never stops the others.
    """
    root = Path(folder)
    if not root.is_dir():
        raise GradingError(f"{root}: no such folder")
    paths = sorted(
        p for p in root.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.relative_to(root).parts
    )
    results: list[tuple[Path, GradeReport | GradingError]] = []
    for path in paths:
        try:
            results.append(
                (
                    path,
                    grade_notebook(
                        path, assignment=assignment, source_dir=source_dir, timeout=timeout
                    ),
                )
            )
        except GradingError as exc:
            results.append((path, exc))
    return results


def _csv_bytes(root: Path, results: Sequence[tuple[Path, GradeReport | GradingError]]) -> bytes:
    """One row per submission: path, assignment, score, max_score, error, points per test."""
    test_ids: list[str] = []
    for _, result in results:
        if isinstance(result, GradeReport):
            test_ids += [t.grade_id for t in result.tests if t.grade_id not in test_ids]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["submission", "assignment", "score", "max_score", "error", *test_ids])
    for path, result in results:
        name = path.relative_to(root).as_posix()
        if isinstance(result, GradingError):
            writer.writerow([name, "", "", "", str(result), *([""] * len(test_ids))])
            continue
        points = {t.grade_id: t.points for t in result.tests}
        writer.writerow(
            [name, result.assignment, result.score, result.max_score, ""]
            + [points.get(gid, "") for gid in test_ids]
        )
    return buffer.getvalue().encode("utf-8")


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text}")
    return value


def _add_actions(sub: Any) -> None:
    source_help = "folder of the source notebooks (default: notebooks/assignments/source)"

    listing = sub.add_parser("list", help="list the assignments and their points")
    listing.add_argument("--source", default=None, metavar="DIR", help=source_help)

    rel = sub.add_parser(
        "release",
        help="write the student copies",
        description="Write the student copy of every source notebook: solutions replaced by "
        "'# YOUR CODE HERE / raise NotImplementedError()', hidden tests removed, outputs cleared.",
    )
    rel.add_argument(
        "--out", required=True, metavar="DIR", help="folder to write the student copies into"
    )
    rel.add_argument("--source", default=None, metavar="DIR", help=source_help)
    rel.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if the copies in --out are stale (for CI)",
    )

    grade = sub.add_parser(
        "grade",
        help="grade a submitted notebook offline",
        description="Run a submission with the source's visible and hidden tests, a time limit "
        "per cell, and print the points of every test. Exit status 0 when grading ran "
        "(whatever the score), 2 when it could not.",
    )
    grade.add_argument("submission", metavar="SUBMISSION.ipynb", help="the student's notebook")
    grade.add_argument(
        "--assignment", default=None, metavar="NAME", help="name or number (default: detected)"
    )
    grade.add_argument("--source", default=None, metavar="DIR", help=source_help)
    grade.add_argument("--json", action="store_true", help="print a JSON report instead")
    grade.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"seconds each cell may run (default {DEFAULT_TIMEOUT:g})",
    )
    grade.add_argument(
        "--executed",
        default=None,
        metavar="PATH",
        help="also write the executed notebook (with outputs) here",
    )

    many = sub.add_parser(
        "grade-all",
        help="grade every notebook in a folder into a CSV file",
        description="Grade every .ipynb under DIR and write one CSV row per submission: "
        "submission, assignment, score, max_score, error, then the points of each test. "
        "Exit status 0 when every notebook was graded, 1 when some could not be.",
    )
    many.add_argument("folder", metavar="DIR", help="folder of submissions (searched recursively)")
    many.add_argument("--csv", required=True, metavar="PATH", help="CSV file to write")
    many.add_argument(
        "--assignment", default=None, metavar="NAME", help="name or number (default: detected)"
    )
    many.add_argument("--source", default=None, metavar="DIR", help=source_help)
    many.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"seconds each cell may run (default {DEFAULT_TIMEOUT:g})",
    )


def add_subcommand(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``assignments`` (with ``list``, ``release``, ``grade``, ``grade-all``) to a CLI.

    ``subparsers`` is what ``ArgumentParser.add_subparsers`` returned; execute the parsed
    arguments with :func:`run`.
    """
    parser = subparsers.add_parser(
        "assignments",
        help="release student copies of the assignments and grade submissions offline",
        description="Classroom assignments: release student copies, grade submissions.",
    )
    actions = parser.add_subparsers(dest="assignments_command", required=True, metavar="ACTION")
    _add_actions(actions)
    return parser


def _cmd_list(args: argparse.Namespace) -> int:
    for name, path in list_assignments(args.source).items():
        nb = _load_source(path)
        tests = [c for c in nb.cells if _kind(c) == "test"]
        hidden = sum(1 for c in tests if _is_hidden(c))
        points = sum(int(_nbgrader(c)["points"]) for c in tests)
        print(f"{name:<28} {points:>3} points, {len(tests)} test cells ({hidden} hidden)")
    return 0


def _cmd_release(args: argparse.Namespace) -> int:
    if args.check:
        stale = verify_release(args.out, args.source)
        for name in stale:
            print(f"stale: {Path(args.out) / name}")
        if stale:
            print("run: vae-numpy assignments release --out " + str(args.out), file=sys.stderr)
            return 1
        print(f"{args.out}: the student copies are up to date")
        return 0
    for path in release(args.out, source_dir=args.source):
        print(f"wrote {path}")
    return 0


def _cmd_grade(args: argparse.Namespace) -> int:
    report = grade_notebook(
        args.submission,
        assignment=args.assignment,
        source_dir=args.source,
        timeout=args.timeout,
        executed_path=args.executed,
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.format())
    return 0


def _cmd_grade_all(args: argparse.Namespace) -> int:
    root = Path(args.folder)
    results = grade_folder(
        root, assignment=args.assignment, source_dir=args.source, timeout=args.timeout
    )
    atomic_write_bytes(args.csv, _csv_bytes(root, results))
    failed = 0
    for path, result in results:
        if isinstance(result, GradingError):
            failed += 1
            print(f"{path}: not graded: {result}", file=sys.stderr)
        else:
            print(f"{path}: {result.score} / {result.max_score}")
    print(f"wrote {args.csv} ({len(results)} submissions, {failed} not graded)")
    return 1 if failed else 0


_ACTIONS = {
    "list": _cmd_list,
    "release": _cmd_release,
    "grade": _cmd_grade,
    "grade-all": _cmd_grade_all,
}


def run(args: argparse.Namespace) -> int:
    """Execute a parsed ``assignments`` command; return the exit status.

    0: done (for ``grade``, whatever the score); 1: ``release --check`` found stale copies or
    ``grade-all`` could not grade some notebooks; 2: the request could not be carried out
    (unreadable notebook, unknown assignment, missing folder, no kernel).
    """
    action = args.assignments_command
    try:
        return _ACTIONS[action](args)
    except (GradingError, ValueError, OSError) as exc:
        print(f"vae-numpy assignments {action}: error: {exc}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vae_numpy.assignments ACTION ...``: the same actions as the sub-command."""
    parser = argparse.ArgumentParser(
        prog="python -m vae_numpy.assignments",
        description="Classroom assignments: release student copies, grade submissions.",
    )
    actions = parser.add_subparsers(dest="assignments_command", required=True, metavar="ACTION")
    _add_actions(actions)
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
