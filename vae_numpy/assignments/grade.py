"""Offline grading: the student's cells in a sandboxed kernel, the tests in the judge.

:func:`grade_notebook` builds the notebook to run from the submission's solution cells, matched
by ``grade_id`` (a deleted one is replaced by the empty stub), the source's read-only cells and
any code cells the student added (after the cell they followed). It starts a kernel for it
(:class:`~vae_numpy.assignments.sandbox.Kernel`) and goes through the cells in order: solution,
added and read-only cells run in the kernel; read-only cells tagged ``judge`` (setup, test
helpers) also run in the judge's namespace; the *source's* test cells, visible and hidden,
run only in the judge (this process), where the student's names are handles
(:mod:`~vae_numpy.assignments.judge`), with ``TEST_SEED`` set to the run's seed. A test earns
its points when it raises nothing. Cells and tests have a time limit each (:data:`DEFAULT_TIMEOUT`),
the notebook as a whole another (:data:`DEFAULT_NOTEBOOK_TIMEOUT`); a kernel that dies or
cannot be interrupted ends the run and the remaining tests are reported as not run.
The student's kernel and the running of the cells
(:class:`~vae_numpy.assignments.session.KernelSession`) are in
:mod:`~vae_numpy.assignments.session`; grading a whole class (``grade-all``, shards, merging)
is in :mod:`~vae_numpy.assignments.classroom`.

Report fields (``GradeReport.to_dict()``, ``grade --json``; ``grade-all`` writes the same per
row of its CSV) that tests and scripts may rely on:

* ``assignment`` (str), ``submission`` (str), ``score`` and ``max_score`` (int);
* ``tests``: one dict per test cell, ``{"grade_id", "points", "max_points", "passed", "hidden",
  "message", "seconds"}`` -- ``message`` is the failure message (with the student's line when
  their code raised), or what a passing test printed;
* ``problems`` (list of str): cells that raised, timed out, a dead kernel ("kernel died"),
  missing solution cells, cells not run;
* ``flags`` (list of str): ``"reference implementation used: ..."`` (the static scan, or a
  withheld stand-in reached at run time), ``"near-copy of the
  published solution: ..."``, and in ``grade-all`` ``"near-identical to OTHER ..."``;
* ``seed`` (int): the tests' seed (``--seed`` reproduces the grade);
* ``isolation`` (str): the sandbox in force, e.g. ``"bubblewrap (uid 65534, ...), memory limit 4 GiB"``,
  ``"namespaces (...), ..."`` or ``"session+rlimits (...), ..."``;
* ``seconds`` (float).
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import copy
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from ..serialization import atomic_write_bytes
from .integrity import (
    copy_flag,
    reference_flags,
    student_code,
)
from .notebooks import (
    GradingError,
    cell_kind,
    detect_assignment,
    grade_id_of,
    is_hidden_cell,
    list_assignments,
    load_source,
    nbgrader_meta,
    read_notebook,
)
from .release import release_cell
from .report import GradedTest, GradeReport
from .sandbox import (
    DEFAULT_MEMORY,
    DEFAULT_OUTPUT_LIMIT,
    scratch_folder,
)
from .session import KernelSession, Limits, Role, Run, describe
from .session import nbformat_output as nbformat_output  # importable from here, as before

__all__ = [
    "DEFAULT_TIMEOUT",
    "DEFAULT_NOTEBOOK_TIMEOUT",
    "DEFAULT_MEMORY",
    "DEFAULT_JUDGE_MEMORY",
    "judge_memory_limit",
    "defined_names",
    "solution_names",
    "compose",
    "grade_notebook",
]

DEFAULT_TIMEOUT = 60.0
"""Seconds a cell (or a test) may run before it is interrupted when grading."""

DEFAULT_NOTEBOOK_TIMEOUT = 600.0
"""Seconds the whole notebook may take; the cells after that are not run."""

DEFAULT_JUDGE_MEMORY = 2 * 1024**3
"""Bytes of address space the judge may add to its own while it grades a notebook: a test
that builds an array of a shape the student's code chose fails with MemoryError instead of
taking the grader's machine."""


@contextlib.contextmanager
def judge_memory_limit(extra: int) -> Any:
    """Cap this process's address space at its current size plus ``extra`` bytes (the soft
    RLIMIT_AS) while the block runs, then restore the previous limit. Does nothing where the
    limit cannot be read or set (not Linux)."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        with open("/proc/self/statm", encoding="ascii") as statm:
            size = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        limit = size + extra
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        if soft != resource.RLIM_INFINITY:
            limit = min(limit, soft)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, OSError, ValueError):
        yield
        return
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def compose(source: Any, submission: Any) -> tuple[Any, list[Role], list[str]]:
    """The notebook to execute: the submission's solution cells and added code cells, the
    source's test, read-only and markdown cells, in the source's order."""
    import nbformat

    problems: list[str] = []
    source_ids = {gid for gid in map(grade_id_of, source.cells) if gid is not None}
    answers: dict[str, Any] = {}
    extras: dict[str | None, list[str]] = {}
    anchor: str | None = None
    for cell in submission.cells:
        gid = grade_id_of(cell)
        if gid is not None and gid in source_ids and gid not in answers:
            answers[gid] = cell
            anchor = gid
            continue
        if cell.cell_type == "code" and cell.source.strip():
            extras.setdefault(anchor, []).append(cell.source)  # the student's own cell

    cells: list[Any] = []
    roles: list[Role] = []

    def add_extras(after: str | None) -> None:
        for text in extras.get(after, []):
            cells.append(nbformat.v4.new_code_cell(text))
            roles.append(Role("extra", after))

    add_extras(None)
    for cell in source.cells:
        gid = grade_id_of(cell)
        kind = cell_kind(cell)
        if cell.cell_type != "code":
            cells.append(copy.deepcopy(cell))
            roles.append(Role("text", gid))
        elif kind == "solution":
            assert gid is not None  # check_source guarantees it
            answer = answers.get(gid)
            stub = release_cell(cell).source
            unwritten = True
            if answer is None or answer.cell_type != "code":
                why = "is missing" if answer is None else "is no longer a code cell"
                problems.append(f"solution cell {gid!r} {why}; graded with the empty stub")
                text = stub
            elif _nothing_written(answer.source, stub):
                problems.append(
                    f"solution cell {gid!r}: nothing written (it is still the stub), so the"
                    " tests that use it cannot pass"
                )
                text = answer.source
            else:
                text, unwritten = answer.source, False
            cells.append(nbformat.v4.new_code_cell(text))
            roles.append(Role("solution", gid, unwritten=unwritten))
        else:
            cells.append(nbformat.v4.new_code_cell(cell.source))
            if kind == "test":
                points = int(nbgrader_meta(cell)["points"])
                roles.append(Role("test", gid, points, is_hidden_cell(cell)))
            else:
                tags = cell.get("metadata", {}).get("tags", [])
                judge_only = "judge-only" in tags
                roles.append(
                    Role("locked", gid, judge="judge" in tags or judge_only, kernel=not judge_only)
                )
        add_extras(gid)
    nb = nbformat.v4.new_notebook(cells=cells, metadata=copy.deepcopy(source.metadata))
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"graded-{index}"
    return nb, roles, problems


_STUB_LINES = {"raise NotImplementedError()", "raise NotImplementedError", "pass", "..."}


def _code_lines(text: str) -> list[str]:
    """The lines of a cell that do something: stripped, without blank, comment and stub lines
    (``raise NotImplementedError()``, ``pass``, ``...``)."""
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#") and line not in _STUB_LINES]


def _nothing_written(answer: str, stub: str) -> bool:
    """True when a solution cell holds nothing of the student's: empty, or the released stub
    give or take comments, blank lines and the ``raise NotImplementedError()`` line."""
    mine = _code_lines(answer)
    return not mine or mine == _code_lines(stub)


def _caused_by_a_stub(role: Role, run: Run, stub_before: bool) -> bool:
    """Whether a cell's error is only the consequence of a solution cell left empty: the stub's
    own NotImplementedError, or a read-only cell after an empty solution cell failing on a
    name it did not define or on the stub's NotImplementedError. Such errors are reported once,
    as "nothing written", not as errors of the cells that met them."""
    if role.kind == "solution" and role.unwritten:
        return True
    consequence = run.message.startswith(("NotImplementedError", "NameError"))
    return role.kind == "locked" and stub_before and consequence


def defined_names(code: str) -> set[str]:
    """The names a cell binds at its top level: functions, classes, imports, assignments, loop
    and ``with`` targets, and names a function declares ``global``. Code that does not parse
    binds nothing."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return set()
    names: set[str] = set()
    scopes = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
    comprehensions = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)

    def visit(node: ast.AST) -> None:
        if isinstance(node, scopes):
            if not isinstance(node, ast.Lambda):
                names.add(node.name)
            for inner in ast.walk(node):  # `global x` inside binds the module's x
                if isinstance(inner, ast.Global):
                    names.update(inner.names)
            return
        if isinstance(node, comprehensions):
            return  # their loop variables are their own
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update(
                (a.asname or a.name.partition(".")[0]) for a in node.names if a.name != "*"
            )
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


def solution_names(source: Any) -> set[str]:
    """The names the source notebook's solution cells define: the only names of the student's
    kernel that its tests see when grading (the judge's own names and builtins excepted)."""
    names: set[str] = set()
    for cell in source.cells:
        if cell.cell_type == "code" and cell_kind(cell) == "solution":
            names |= defined_names(cell.source)
    return {n for n in names if not n.startswith("_") and not hasattr(builtins, n)}


def _references(source: Any) -> list[str]:
    declared = source.metadata.get("vae_numpy", {})
    refs = declared.get("references", []) if isinstance(declared, dict) else []
    return [str(r) for r in refs]


def grade_notebook(
    submission: str | os.PathLike[str],
    *,
    assignment: str | None = None,
    source_dir: str | os.PathLike[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    executed_path: str | os.PathLike[str] | None = None,
    seed: int | None = None,
    notebook_timeout: float = DEFAULT_NOTEBOOK_TIMEOUT,
    memory_limit: int = DEFAULT_MEMORY,
    output_limit: int = DEFAULT_OUTPUT_LIMIT,
    isolation: str = "auto",
    judge_memory: int = DEFAULT_JUDGE_MEMORY,
) -> GradeReport:
    """Grade one submitted notebook against its assignment's source tests, offline.

    Parameters
    ----------
    submission : path
        The student's ``.ipynb``.
    assignment : str, optional
        Name, short name or number of the assignment (see :func:`find_assignment`). By
        default the file name tells it (``04_adam.ipynb`` as released); the notebook's
        metadata is never followed, and flagged when it names another assignment.
    source_dir : path, optional
        Folder of the source notebooks (default: the checkout's, see
        :func:`~vae_numpy.assignments.notebooks.find_source_dir`).
    timeout : float
        Seconds each cell (and each test) may run before it is interrupted.
    executed_path : path, optional
        Also write the notebook that ran in the kernel, with every cell's output, here.
    seed : int, optional
        Seed of the tests' inputs (``TEST_SEED`` in the test cells); a fresh one by default.
        The report records it: pass it again to reproduce a grade.
    notebook_timeout : float
        Seconds for the whole notebook; cells after that are not run.
    memory_limit : int
        Bytes of address space the student's kernel may use.
    output_limit : int
        Characters of output kept per cell.
    isolation : str
        The sandbox of the student's kernel (:data:`~vae_numpy.assignments.sandbox.ISOLATION_MODES`):
        ``"auto"`` (the strongest the machine offers, named in the report's ``isolation``),
        ``"strict"`` (bubblewrap or no grading), or one mode by name.
    judge_memory : int
        Bytes of address space this process (the judge) may add to its own while it grades
        (:func:`judge_memory_limit`).

    Returns
    -------
    GradeReport
        Per-test points and messages; ``score``, ``max_score``, ``flags``, ``seed``,
        ``isolation``.

    Raises
    ------
    GradingError
        The submission is not a readable notebook, the assignment is unknown or cannot be
        told, or no kernel could be started.
    """
    for name, value in (("timeout", timeout), ("notebook_timeout", notebook_timeout)):
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a number of seconds > 0, got {value!r}")
    if not (isinstance(memory_limit, int) and memory_limit >= 256 * 1024**2):
        raise ValueError(
            f"memory_limit must be a whole number of bytes >= 256 MiB, got {memory_limit!r}"
        )
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "little")
    if not (isinstance(seed, int) and 0 <= seed < 2**32):
        raise ValueError(f"seed must be a whole number in [0, 2**32), got {seed!r}")
    start = time.monotonic()
    path = Path(submission)
    nb = read_notebook(path)
    known = list_assignments(source_dir)
    # --assignment, else the file name; metadata that disagrees is flagged, never followed
    source_path, name_flags = detect_assignment(path, nb, known, assignment)
    try:
        source = load_source(source_path)
    except ValueError as exc:
        raise GradingError(str(exc)) from exc
    composed, roles, problems = compose(source, nb)
    references = _references(source)
    flags = name_flags + reference_flags(student_code(composed, roles), references)
    copied = copy_flag(source, composed, roles)
    if copied:
        flags.append(copied)
    limits = Limits(float(timeout), float(notebook_timeout), memory_limit, output_limit)
    runs = [Run("ok") for _ in composed.cells]
    isolation_used = ""
    end_of_time = start + limits.notebook
    with tempfile.TemporaryDirectory(prefix="vae-numpy-grade-", dir=scratch_folder()) as workdir:
        session = KernelSession(
            Path(workdir),
            references,
            seed,
            limits,
            hide=[source_path.parent],
            solution_names=solution_names(source),
            isolation=isolation,
            notebook=path,
        )
        isolation_used = session.kernel.isolation
        try:
            with judge_memory_limit(judge_memory):
                session.run_cells(composed, roles, runs, end_of_time)
        finally:
            session.close()
    for dotted in session.reached:
        if not any(flag.startswith(f"reference implementation used: {dotted} ") for flag in flags):
            flags.append(
                f"reference implementation used: {dotted} was reached while grading (its "
                "withheld stand-in was called)"
            )
    if executed_path is not None:  # for the instructor's eyes: written even if not valid
        import nbformat

        atomic_write_bytes(executed_path, (nbformat.writes(composed) + "\n").encode("utf-8"))
    tests = []
    stub_before = False  # a solution cell left empty came before: its consequences are known
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
        elif role.kind != "text" and outcome.status not in ("ok", "not run"):
            if _caused_by_a_stub(role, outcome, stub_before):
                continue  # already reported as "nothing written"
            first = outcome.message.splitlines()[0] if outcome.message else outcome.status
            problems.append(f"{describe(role)}: {first}")
        stub_before = stub_before or role.unwritten
    if any(run.status == "not run" for run in runs):
        reason = next(run.message for run in runs if run.status == "not run")
        problems.append(reason.removeprefix("not run: "))
    return GradeReport(
        assignment=source_path.stem,
        submission=str(path),
        tests=tests,
        problems=problems,
        flags=flags,
        seed=seed,
        isolation=isolation_used,
        seconds=time.monotonic() - start,
    )
