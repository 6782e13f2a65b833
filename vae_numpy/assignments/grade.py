"""Offline grading: run a submission with the source's tests in a fresh kernel, cell by cell.

:func:`grade_notebook` builds the notebook to run from the submission's solution cells, matched
by ``grade_id`` (a deleted one is replaced by the empty stub), interleaved with the *source's*
test and read-only cells -- visible and hidden tests alike, never the student's copies of them
-- and keeps any code cells the student added, after the cell they followed. It runs the result
with nbclient in a fresh ``python3`` kernel of this interpreter, in a temporary working
directory, with a time limit per cell (:data:`DEFAULT_TIMEOUT`): a cell that runs out of time is
interrupted and the grading goes on. A test cell earns its points when it raises no error; a
failing one reports the exception's message. :func:`grade_folder` grades every notebook in a
folder, one bad file never stopping the others.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..serialization import atomic_write_bytes
from .notebooks import (
    GradingError,
    _detect_assignment,
    _grade_id,
    _is_hidden,
    _kind,
    _load_source,
    _nbgrader,
    find_assignment,
    list_assignments,
    read_notebook,
)
from .release import _release_cell
from .report import GradedTest, GradeReport

__all__ = ["DEFAULT_TIMEOUT", "grade_notebook", "grade_folder"]

DEFAULT_TIMEOUT = 60.0
"""Seconds a cell may run before it is interrupted when grading."""

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_MESSAGE_LIMIT = 2000  # characters of a failure message kept in a report
_PROBE_SECONDS = 10  # after an interrupt, how long the kernel may take to answer again
_TIME_LIMIT = "CellTimeLimit"  # the error name nbclient reports for a cell it interrupted


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
