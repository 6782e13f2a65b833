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
Grading a whole class (``grade-all``, shards, merging) is in
:mod:`~vae_numpy.assignments.classroom`.

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
import io
import math
import os
import re
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..serialization import atomic_write_bytes
from ._wire import WireError
from .integrity import (
    copy_flag,
    reference_flags,
    student_code,
)
from .judge import KernelGone, Remote, StudentError
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
    IsolationUnavailable,
    Kernel,
    scratch_folder,
)

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


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_MESSAGE_LIMIT = 2000  # characters of a failure message kept in a report
_PROBE_SECONDS = 10  # after an interrupt, how long the kernel may take to answer again


@dataclass(frozen=True)
class _Role:
    kind: str  # "solution", "test", "locked", "extra", "text"
    grade_id: str | None = None
    points: int = 0
    hidden: bool = False
    judge: bool = False  # a read-only cell that also runs in the judge (tagged "judge")
    kernel: bool = True  # False for a "judge-only" cell (test helpers): never in the kernel
    unwritten: bool = False  # a solution cell the student left as the stub (or deleted)


@dataclass
class _Run:
    status: str  # "ok", "error", "timeout", "dead", "not run"
    message: str = ""
    seconds: float = 0.0


def compose(source: Any, submission: Any) -> tuple[Any, list[_Role], list[str]]:
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
    roles: list[_Role] = []

    def add_extras(after: str | None) -> None:
        for text in extras.get(after, []):
            cells.append(nbformat.v4.new_code_cell(text))
            roles.append(_Role("extra", after))

    add_extras(None)
    for cell in source.cells:
        gid = grade_id_of(cell)
        kind = cell_kind(cell)
        if cell.cell_type != "code":
            cells.append(copy.deepcopy(cell))
            roles.append(_Role("text", gid))
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
            roles.append(_Role("solution", gid, unwritten=unwritten))
        else:
            cells.append(nbformat.v4.new_code_cell(cell.source))
            if kind == "test":
                points = int(nbgrader_meta(cell)["points"])
                roles.append(_Role("test", gid, points, is_hidden_cell(cell)))
            else:
                tags = cell.get("metadata", {}).get("tags", [])
                judge_only = "judge-only" in tags
                roles.append(
                    _Role("locked", gid, judge="judge" in tags or judge_only, kernel=not judge_only)
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


def _caused_by_a_stub(role: _Role, run: _Run, stub_before: bool) -> bool:
    """Whether a cell's error is only the consequence of a solution cell left empty: the stub's
    own NotImplementedError, or a read-only cell after an empty solution cell failing on a
    name it did not define or on the stub's NotImplementedError. Such errors are reported once,
    as "nothing written", not as errors of the cells that met them."""
    if role.kind == "solution" and role.unwritten:
        return True
    consequence = run.message.startswith(("NotImplementedError", "NameError"))
    return role.kind == "locked" and stub_before and consequence


def _kernel_error_text(ename: str, evalue: str, traceback_lines: Sequence[str]) -> str:
    """``Name: message`` of an error in a kernel cell, made helpful when the message is empty."""
    evalue = evalue.strip()
    if ename == "NotImplementedError" and not evalue:
        return (
            "NotImplementedError: not implemented yet "
            "(replace raise NotImplementedError() with your code)"
        )
    text = f"{ename}: {evalue}" if evalue else ename
    frames = [_ANSI.sub("", f) for f in traceback_lines]
    marked = [ln.strip() for f in frames for ln in f.splitlines() if ln.lstrip().startswith("-")]
    if marked:
        text += f" (at {marked[-1].lstrip('-> ').strip()})"
    return _clip(text)


def _clip(text: str) -> str:
    if len(text) > _MESSAGE_LIMIT:
        text = text[: _MESSAGE_LIMIT - 15] + " ... (truncated)"
    return text


def _test_failure(exc: BaseException, code: str, filename: str) -> str:
    """The message of a test that raised ``exc`` in the judge."""
    if isinstance(exc, StudentError):
        message = exc.message.strip()
        if exc.name == "NotImplementedError" and not message:
            text = (
                "NotImplementedError: not implemented yet "
                "(replace raise NotImplementedError() with your code)"
            )
        else:
            text = f"{exc.name}: {message}" if message else exc.name
        if exc.where:
            text += f"\n  raised at {exc.where}"
        return _clip(text)
    name = type(exc).__name__
    message = str(exc).strip()
    text = f"{name}: {message}" if message else name
    if isinstance(exc, NameError):
        text += " (a cell that should define it failed or did not run: see the problems)"
    if not message:  # e.g. a bare assert: show the line of the test that failed
        lines = code.splitlines()
        for frame in reversed(traceback.extract_tb(exc.__traceback__)):
            if frame.filename == filename and frame.lineno and frame.lineno <= len(lines):
                text += f" at {lines[frame.lineno - 1].strip()}"
                break
    return _clip(text)


class _Session:
    """One submission's kernel, its agent connection and the judge's namespace."""

    def __init__(
        self,
        workdir: Path,
        references: Sequence[str],
        seed: int,
        limits: _Limits,
        hide: Sequence[Path] = (),
        solution_names: set[str] | frozenset[str] = frozenset(),
        isolation: str = "auto",
        notebook: Path | None = None,
    ):
        self.limits, self.references = limits, list(references)
        self.solution_names = frozenset(solution_names)
        self.seed = seed
        (workdir / "run").mkdir(exist_ok=True)  # the kernel's sockets: all it may write to
        path = str(workdir / "run" / "judge.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(1)
        listener.settimeout(60)
        try:
            self.kernel = Kernel(
                workdir,
                references,
                memory_limit=limits.memory,
                output_limit=limits.output,
                hide=hide,
                isolation=isolation,
                notebook=notebook,
            )
        except IsolationUnavailable as exc:
            listener.close()
            raise GradingError(str(exc)) from exc
        except Exception as exc:
            listener.close()
            raise GradingError(
                f"could not start a python3 kernel with {sys.executable} ({exc}); "
                "install ipykernel in this environment"
            ) from exc
        boot = self.kernel.run(
            f"import vae_numpy.assignments._agent as _vae_numpy_agent\n"
            f"_vae_numpy_agent.connect({path!r})\ndel _vae_numpy_agent",
            60,
        )
        try:
            if boot.status != "ok":
                raise GradingError(f"the grading kernel did not start: {boot.ename} {boot.evalue}")
            sock, _ = listener.accept()
        except (OSError, GradingError) as exc:
            self.kernel.close()
            raise GradingError(f"the grading kernel did not connect to the judge ({exc})") from exc
        finally:
            listener.close()
        self.remote = Remote(sock, interrupt=self.kernel.interrupt, alive=self.kernel.alive)
        self.namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
        self.owned = set(self.namespace) | set(dir(builtins))
        self.student: set[str] = set()
        self.stopped = ""
        self.reached: list[str] = []  # withheld references student code reached at run time

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.remote.sock.close()
        self.kernel.close()

    def run_kernel_cell(self, code: str, deadline: float, label: str) -> tuple[_Run, Any]:
        """Run a cell in the student's kernel."""
        result = self.kernel.finish(self.kernel.start(code), deadline)
        timeout = self.limits.cell
        if result.status == "ok":
            return _Run("ok", "", result.seconds), result
        if result.status == "timeout":
            return (
                _Run(
                    "timeout",
                    f"TimeoutError: the cell ran longer than the time limit of {timeout:g} s"
                    " and was interrupted (an infinite loop?)",
                    result.seconds,
                ),
                result,
            )
        if result.status == "dead":
            # died by itself, or killed by the grader after ignoring the interrupt: told by what
            # happened, not by asking afterwards (a killed kernel is not alive either)
            if not result.killed:
                self.stopped = f"not run: the kernel died in {label}"
                return _Run("dead", "the Python kernel died while running this cell"), result
            self.stopped = f"not run: the kernel could not be stopped after {label} ran out of time"
            return _Run(
                "timeout",
                f"TimeoutError: {label} ran past the time limit of "
                f"{timeout:g} s and could not be interrupted",
                result.seconds,
            ), result
        return (
            _Run(
                "error",
                _kernel_error_text(result.ename, result.evalue, result.traceback),
                result.seconds,
            ),
            result,
        )

    def _collect_reached(self) -> None:
        """Ask the kernel which withheld references its stand-ins saw reached; only names of
        this assignment's references are kept (the answer is the kernel's word, a plain list)."""
        if self.remote.dead:
            return
        try:
            names = self.remote.request("reached")
        except Exception:  # a kernel that will not say: the static scan still flags
            return
        if isinstance(names, list):
            self.reached += [n for n in names if n in self.references and n not in self.reached]

    def run_judge_cell(self, code: str, label: str) -> None:
        """Run a trusted cell (setup, helpers) in the judge's namespace."""
        exec(compile(code, f"<{label}>", "exec"), self.namespace)
        self.namespace["TEST_SEED"] = self.seed
        self.owned |= set(self.namespace)

    def run_test(self, code: str, gid: str, deadline: float) -> _Run:
        """Run a test cell in the judge while the kernel answers requests about its names."""
        start = time.monotonic()
        msg_id = self.kernel.start(
            "import vae_numpy.assignments._agent as _vae_numpy_agent\n_vae_numpy_agent.serve()"
        )
        self.remote.deadline = deadline
        filename = f"<test {gid}>"
        if not self.remote.wait_ready(_PROBE_SECONDS, self.kernel.kc.shell_channel.msg_ready):
            result = self.kernel.finish(msg_id, time.monotonic() + 1.0, probe=2.0)
            self.stopped = (
                "not run: the kernel did not run the grader's cell"
                + (f" ({result.ename}: {result.evalue})" if result.ename else "")
                + ": does your code change how cells run (input transformers, exec hooks)?"
            )
            self.remote.dead = self.stopped
            return _Run("error", self.stopped.removeprefix("not run: "), time.monotonic() - start)
        try:
            # the judge decides which names are the student's: those the source's solution
            # cells define, never one the judge owns (its imports, helpers, builtins, tests)
            wanted = {n for n in self.solution_names - self.owned if not n.startswith("_")}
            names = self.remote.student_names(wanted)
            for name in self.student - set(names):
                self.namespace.pop(name, None)
            self.namespace.update(names)
            self.student = set(names)
            before = set(self.namespace)
            printed = io.StringIO()
            try:
                with contextlib.redirect_stdout(printed):
                    exec(compile(code, filename, "exec"), self.namespace)
            finally:  # names a test defines are the judge's, even when it fails
                self.owned |= set(self.namespace) - before
            run = _Run("ok", _clip(printed.getvalue().strip()))
        except KernelGone as exc:
            self.stopped = (
                "not run: the kernel died or stopped answering"
                if self.kernel.alive() is False
                else "not run: the kernel stopped answering the grader"
            )
            run = _Run("error", f"the student's kernel stopped answering: {exc.message}")
        except WireError as exc:
            run = _Run("error", f"ValueError: your code sent something the grader refuses ({exc})")
        except Exception as exc:
            run = _Run("error", _test_failure(exc, code, filename))
        self._collect_reached()
        self.remote.end()
        self.remote.deadline = float("inf")
        result = self.kernel.finish(msg_id, time.monotonic() + _PROBE_SECONDS, probe=5.0)
        if result.status == "dead" or self.remote.dead:
            self.stopped = self.stopped or "not run: the kernel stopped answering the grader"
        elif result.status == "error" and run.status == "ok":
            run = _Run(
                "error",
                "the grader's cell did not run in your kernel "
                f"({result.ename}: {result.evalue}): does your code change how cells run?",
            )
        run.seconds = time.monotonic() - start
        return run

    def run_cells(self, nb: Any, roles: Sequence[_Role], runs: list[_Run], end: float) -> None:
        """Run the composed notebook's code cells in order, each where its role says (kernel,
        judge or both), filling ``runs`` and the cells' outputs; after ``end`` (a
        ``time.monotonic()`` instant), or once the kernel is gone, the rest is "not run"."""
        for index, (cell, role) in enumerate(zip(nb.cells, roles, strict=True)):
            if cell.cell_type != "code":
                continue
            label = _describe(role)
            now = time.monotonic()
            if not self.stopped and now >= end:
                self.stopped = (
                    f"not run: the notebook ran past its time limit of {self.limits.notebook:g} s"
                )
            if self.stopped:
                runs[index] = _Run("not run", self.stopped)
                continue
            deadline = min(now + self.limits.cell, end)
            if role.kind == "test":
                assert role.grade_id is not None
                runs[index] = run = self.run_test(cell.source, role.grade_id, deadline)
                verdict = "passed" if run.status == "ok" else "failed"
                text = f"[judge] {verdict}" + (f": {run.message}" if run.message else "")
                cell.outputs = [
                    nbformat_output(
                        {"output_type": "stream", "name": "stdout", "text": text + "\n"}
                    )
                ]
                continue
            try:
                if role.kernel:
                    runs[index], result = self.run_kernel_cell(cell.source, deadline, label)
                    cell.outputs = [nbformat_output(o) for o in result.outputs]
            except Exception as exc:  # whatever the kernel sent: a problem, never a crash
                self.stopped = f"not run: the grader could not run {label} ({exc!r:.300})"
                runs[index] = _Run("error", self.stopped.removeprefix("not run: "))
                continue
            if role.judge:
                try:
                    self.run_judge_cell(cell.source, label)
                except Exception as exc:
                    raise GradingError(f"{label} of the source fails in the judge: {exc}") from exc


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


def _describe(role: _Role) -> str:
    if role.kind == "extra":
        where = "at the top" if role.grade_id is None else f"after {role.grade_id!r}"
        return f"your added cell {where}"
    kind = {"locked": "read-only", "text": "text"}.get(role.kind, role.kind)
    return f"{kind} cell {role.grade_id!r}"


@dataclass(frozen=True)
class _Limits:
    cell: float  # seconds per cell
    notebook: float  # seconds for the whole notebook
    memory: int  # bytes of address space for the kernel
    output: int  # characters of output kept per cell


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
    limits = _Limits(float(timeout), float(notebook_timeout), memory_limit, output_limit)
    runs = [_Run("ok") for _ in composed.cells]
    isolation_used = ""
    end_of_time = start + limits.notebook
    with tempfile.TemporaryDirectory(prefix="vae-numpy-grade-", dir=scratch_folder()) as workdir:
        session = _Session(
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
            problems.append(f"{_describe(role)}: {first}")
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


def nbformat_output(output: dict[str, Any]) -> Any:
    """An nbformat output node from a kernel message's content."""
    import nbformat

    kind = output.get("output_type")
    if kind == "stream":
        return nbformat.v4.new_output("stream", name=output["name"], text=output["text"])
    if kind == "error":
        return nbformat.v4.new_output(
            "error",
            ename=output.get("ename", ""),
            evalue=output.get("evalue", ""),
            traceback=output.get("traceback", []),
        )
    data = output.get("data", {})
    if kind == "execute_result":
        return nbformat.v4.new_output("execute_result", data=data, execution_count=None)
    return nbformat.v4.new_output("display_data", data=data)
