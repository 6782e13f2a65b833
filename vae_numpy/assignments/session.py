"""The student's kernel during grading: one submission's sandboxed kernel, its agent
connection and the judge's namespace (:class:`KernelSession`), and what a run of the composed
notebook's cells records (:class:`Role`, :class:`Run`, :class:`Limits`).

:meth:`KernelSession.run_cells` runs the cells in order, each where its :class:`Role` says:
solution, added and read-only cells in the kernel, read-only cells tagged ``judge`` also in the
judge's namespace, test cells only in the judge, with the kernel answering requests about the
student's names. Composing the notebook, telling unfilled stubs apart and building the report
(:func:`~vae_numpy.assignments.grade.grade_notebook`) are in
:mod:`~vae_numpy.assignments.grade`.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import re
import socket
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._wire import WireError
from .judge import KernelGone, Remote, StudentError
from .notebooks import GradingError
from .sandbox import IsolationUnavailable, Kernel

__all__ = ["KernelSession", "Role", "Run", "Limits", "describe", "nbformat_output"]

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_MESSAGE_LIMIT = 2000  # characters of a failure message kept in a report
_PROBE_SECONDS = 10  # after an interrupt, how long the kernel may take to answer again


@dataclass(frozen=True)
class Role:
    """What a cell of the composed notebook is and where it runs (kernel, judge or both)."""

    kind: str  # "solution", "test", "locked", "extra", "text"
    grade_id: str | None = None
    points: int = 0
    hidden: bool = False
    judge: bool = False  # a read-only cell that also runs in the judge (tagged "judge")
    kernel: bool = True  # False for a "judge-only" cell (test helpers): never in the kernel
    unwritten: bool = False  # a solution cell the student left as the stub (or deleted)


@dataclass
class Run:
    """How a cell or a test ran: its status, message and seconds."""

    status: str  # "ok", "error", "timeout", "dead", "not run"
    message: str = ""
    seconds: float = 0.0


def describe(role: Role) -> str:
    """How a report names a cell: ``your added cell after 'x'``, ``read-only cell 'y'``."""
    if role.kind == "extra":
        where = "at the top" if role.grade_id is None else f"after {role.grade_id!r}"
        return f"your added cell {where}"
    kind = {"locked": "read-only", "text": "text"}.get(role.kind, role.kind)
    return f"{kind} cell {role.grade_id!r}"


@dataclass(frozen=True)
class Limits:
    """The time, memory and output limits of one grading run."""

    cell: float  # seconds per cell
    notebook: float  # seconds for the whole notebook
    memory: int  # bytes of address space for the kernel
    output: int  # characters of output kept per cell


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


class KernelSession:
    """One submission's kernel, its agent connection and the judge's namespace."""

    def __init__(
        self,
        workdir: Path,
        references: Sequence[str],
        seed: int,
        limits: Limits,
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

    def run_kernel_cell(self, code: str, deadline: float, label: str) -> tuple[Run, Any]:
        """Run a cell in the student's kernel."""
        result = self.kernel.finish(self.kernel.start(code), deadline)
        timeout = self.limits.cell
        if result.status == "ok":
            return Run("ok", "", result.seconds), result
        if result.status == "timeout":
            return (
                Run(
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
                return Run("dead", "the Python kernel died while running this cell"), result
            self.stopped = f"not run: the kernel could not be stopped after {label} ran out of time"
            return Run(
                "timeout",
                f"TimeoutError: {label} ran past the time limit of "
                f"{timeout:g} s and could not be interrupted",
                result.seconds,
            ), result
        return (
            Run(
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

    def run_test(self, code: str, gid: str, deadline: float) -> Run:
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
            return Run("error", self.stopped.removeprefix("not run: "), time.monotonic() - start)
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
            run = Run("ok", _clip(printed.getvalue().strip()))
        except KernelGone as exc:
            self.stopped = (
                "not run: the kernel died or stopped answering"
                if self.kernel.alive() is False
                else "not run: the kernel stopped answering the grader"
            )
            run = Run("error", f"the student's kernel stopped answering: {exc.message}")
        except WireError as exc:
            run = Run("error", f"ValueError: your code sent something the grader refuses ({exc})")
        except Exception as exc:
            run = Run("error", _test_failure(exc, code, filename))
        self._collect_reached()
        self.remote.end()
        self.remote.deadline = float("inf")
        result = self.kernel.finish(msg_id, time.monotonic() + _PROBE_SECONDS, probe=5.0)
        if result.status == "dead" or self.remote.dead:
            self.stopped = self.stopped or "not run: the kernel stopped answering the grader"
        elif result.status == "error" and run.status == "ok":
            run = Run(
                "error",
                "the grader's cell did not run in your kernel "
                f"({result.ename}: {result.evalue}): does your code change how cells run?",
            )
        run.seconds = time.monotonic() - start
        return run

    def run_cells(self, nb: Any, roles: Sequence[Role], runs: list[Run], end: float) -> None:
        """Run the composed notebook's code cells in order, each where its role says (kernel,
        judge or both), filling ``runs`` and the cells' outputs; after ``end`` (a
        ``time.monotonic()`` instant), or once the kernel is gone, the rest is "not run"."""
        for index, (cell, role) in enumerate(zip(nb.cells, roles, strict=True)):
            if cell.cell_type != "code":
                continue
            label = describe(role)
            now = time.monotonic()
            if not self.stopped and now >= end:
                self.stopped = (
                    f"not run: the notebook ran past its time limit of {self.limits.notebook:g} s"
                )
            if self.stopped:
                runs[index] = Run("not run", self.stopped)
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
                runs[index] = Run("error", self.stopped.removeprefix("not run: "))
                continue
            if role.judge:
                try:
                    self.run_judge_cell(cell.source, label)
                except Exception as exc:
                    raise GradingError(f"{label} of the source fails in the judge: {exc}") from exc


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
