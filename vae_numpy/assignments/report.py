"""Grading results: one test cell's points, one submission's report, a class's CSV table.

:class:`GradedTest` holds the points a test cell earned and, when it failed, the message the
test wrote for the student. :class:`GradeReport` gathers them for one submission, with the
problems met on the way, and prints as text (:meth:`GradeReport.format`) or JSON
(:meth:`GradeReport.to_dict`). ``grade-all`` writes one CSV row per student and assignment
(:func:`csv_bytes`) and a feedback file per submission for the student, as text and as JSON
(:func:`write_feedback`).

Everything a report holds may come from the student (an exception's message, a file name, a
notebook's metadata), so every text leaves this module through :func:`clean_text`: terminal
escape sequences and other control characters (all but newline and tab) are removed, so that
no message can rewrite the grader's console. A CSV cell that a spreadsheet would read as a
formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return) gets a leading
``'``, as OWASP recommends against CSV injection.

References
----------
OWASP, "CSV Injection": https://owasp.org/www-community/attacks/CSV_Injection
ECMA-48 (control functions, the escape sequences of terminals).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..serialization import atomic_write_bytes
from .notebooks import GradingError

__all__ = [
    "GradedTest",
    "GradeReport",
    "clean_text",
    "csv_cell",
    "csv_bytes",
    "student_of",
    "feedback_paths",
    "write_feedback",
]

# ECMA-48: CSI (ESC [ or 0x9b) parameters, intermediates, a final byte; OSC, DCS, SOS, PM, APC
# strings (ESC ] P X ^ _ or 0x9d 0x90 0x98 0x9e 0x9f) up to BEL or ST (ESC \ or 0x9c); any other
# escape (ESC, intermediates, a final byte).
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[\x20-\x2f]*[\x30-\x7e]?"
)
# what is left: C0 but newline and tab, DEL, C1, and the bidirectional overrides and isolates
# that make text display in another order than it runs (Trojan Source)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def clean_text(text: object) -> str:
    """``text`` as a string without escape sequences or control characters (newline and tab
    stay); a carriage return before a newline is dropped, any other becomes a newline."""
    text = str(text).replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROLS.sub("", _ESCAPES.sub("", text))


def csv_cell(value: object) -> object:
    """A value as a safe CSV cell: text cleaned, and a leading ``'`` when it would start a
    formula in a spreadsheet (``=``, ``+``, ``-``, ``@``, tab, carriage return). Numbers
    (never negative here) are kept as they are."""
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    text = clean_text(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


@dataclass(frozen=True)
class GradedTest:
    """One test cell's result: points earned of ``max_points``; ``message`` says why it failed
    (or, for a test that passed, what it printed, e.g. a margin)."""

    grade_id: str
    points: int
    max_points: int
    passed: bool
    hidden: bool
    message: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "grade_id": clean_text(self.grade_id),
            "points": self.points,
            "max_points": self.max_points,
            "passed": self.passed,
            "hidden": self.hidden,
            "message": clean_text(self.message),
            "seconds": round(self.seconds, 3),
        }


@dataclass
class GradeReport:
    """The grade of one submission: every test cell's result and the problems met on the way.

    ``problems`` lists the student's cells that raised an error or ran out of time, solution
    cells missing from the submission, and a kernel that died or could not be stopped.
    ``flags`` are integrity flags for the instructor (references used, a copied solution,
    near-identical submissions); they never change the score. ``seed`` is the seed of the
    tests' inputs (grade again with it to reproduce the grade) and ``isolation`` says how the
    student's code was sandboxed.
    """

    assignment: str
    submission: str
    tests: list[GradedTest]
    problems: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    seed: int | None = None
    isolation: str = ""
    seconds: float = 0.0

    @property
    def score(self) -> int:
        return sum(t.points for t in self.tests)

    @property
    def max_score(self) -> int:
        return sum(t.max_points for t in self.tests)

    def to_dict(self) -> dict[str, Any]:
        """``{"assignment", "score", "max_score", "tests": [...], ...}`` for a JSON report
        (every text cleaned by :func:`clean_text`)."""
        return {
            "assignment": clean_text(self.assignment),
            "submission": clean_text(self.submission),
            "score": self.score,
            "max_score": self.max_score,
            "tests": [t.to_dict() for t in self.tests],
            "problems": [clean_text(p) for p in self.problems],
            "flags": [clean_text(f) for f in self.flags],
            "seed": self.seed,
            "isolation": clean_text(self.isolation),
            "seconds": round(self.seconds, 3),
        }

    def feedback_dict(self) -> dict[str, Any]:
        """What the student gets back, as JSON: every test's points and message and the
        problems met; not the integrity flags, the seed or the sandbox (the instructor's)."""
        data = self.to_dict()
        return {
            key: data[key]
            for key in ("assignment", "submission", "score", "max_score", "tests", "problems")
        }

    def feedback(self) -> str:
        """What the student gets back, as text: every test with its points and its message
        (a passing test's too), the problems met, the total; no integrity flags."""
        data = self.feedback_dict()
        lines = [f"{data['assignment']}: {data['submission']}", ""]
        for t in data["tests"]:
            tag = " (hidden test)" if t["hidden"] else ""
            verdict = "passed" if t["passed"] else "failed"
            lines.append(
                f"{t['grade_id']}{tag}: {t['points']} / {t['max_points']} points, {verdict}"
            )
            lines.extend("    " + line for line in t["message"].splitlines())
        if data["problems"]:
            lines += ["", "Problems met while running your notebook:"]
            lines.extend(f"  - {p}" for p in data["problems"])
        lines += ["", f"Total: {data['score']} / {data['max_score']} points"]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GradeReport:
        """The report that :meth:`to_dict` gave (for reports from a grading process)."""
        tests = [
            GradedTest(
                grade_id=str(t["grade_id"]),
                points=int(t["points"]),
                max_points=int(t["max_points"]),
                passed=bool(t["passed"]),
                hidden=bool(t["hidden"]),
                message=str(t["message"]),
                seconds=float(t.get("seconds", 0.0)),
            )
            for t in data["tests"]
        ]
        return cls(
            assignment=str(data["assignment"]),
            submission=str(data["submission"]),
            tests=tests,
            problems=[str(p) for p in data.get("problems", [])],
            flags=[str(f) for f in data.get("flags", [])],
            seed=data.get("seed"),
            isolation=str(data.get("isolation", "")),
            seconds=float(data.get("seconds", 0.0)),
        )

    def format(self) -> str:
        """A plain-text report: one line per test, the failure messages, the total (every text
        cleaned by :func:`clean_text`)."""
        width = max([len(t.grade_id) for t in self.tests] + [10])
        lines = [f"{self.assignment}: {self.submission}"]
        for t in self.tests:
            tag = " (hidden)" if t.hidden else ""
            lines.append(
                f"  {t.grade_id:<{width}}  {t.points:>3} / {t.max_points:<3}{tag}".rstrip()
            )
            if not t.passed or t.message:  # a passing test may say how well it passed
                lines.extend("      " + line for line in t.message.splitlines() or [""])
        if self.problems:
            lines.append("problems:")
            lines.extend(f"  - {p}" for p in self.problems)
        if self.flags:
            lines.append("flags (for the instructor; the score is unchanged):")
            lines.extend(f"  - {f}" for f in self.flags)
        lines.append(f"total: {self.score} / {self.max_score}")
        lines.append(f"seed: {self.seed} (grade again with --seed {self.seed} to reproduce)")
        lines.append(f"isolation: {self.isolation}")
        return clean_text("\n".join(lines))


def student_of(root: Path, path: Path) -> str:
    """Whose submission ``path`` is: its folder relative to the class folder ``root``
    (``alice`` for ``root/alice/04_adam.ipynb``), or, for a notebook directly in ``root``,
    its file name without ``.ipynb``."""
    folder = path.parent.relative_to(root).as_posix()
    return path.stem if folder == "." else folder


def csv_bytes(root: Path, results: Sequence[tuple[Path, GradeReport | GradingError]]) -> bytes:
    """One row per submission graded (``grade-all`` grades one per student and assignment):
    student, submission (relative to ``root``), assignment, score, max_score, error,
    problems, flags, seed, then the points of each test. Every cell passes :func:`csv_cell`."""
    test_ids: list[str] = []
    for _, result in results:
        if isinstance(result, GradeReport):
            test_ids += [t.grade_id for t in result.tests if t.grade_id not in test_ids]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["student", "submission", "assignment", "score", "max_score", "error"]
    writer.writerow([csv_cell(c) for c in [*header, "problems", "flags", "seed", *test_ids]])
    for path, result in results:
        name = path.relative_to(root).as_posix()
        who = student_of(root, path)
        if isinstance(result, GradingError):
            row: list[object] = [who, name, "", "", "", str(result), "", "", ""]
            row += [""] * len(test_ids)
        else:
            points = {t.grade_id: t.points for t in result.tests}
            row = [who, name, result.assignment, result.score, result.max_score, ""]
            row += ["; ".join(result.problems), "; ".join(result.flags), result.seed]
            row += [points.get(gid, "") for gid in test_ids]
        writer.writerow([csv_cell(c) for c in row])
    return buffer.getvalue().encode("utf-8")


def feedback_paths(folder: Path, root: Path, path: Path) -> tuple[Path, Path]:
    """Where the feedback on ``path`` (a submission under ``root``) goes inside ``folder``:
    ``folder/<submission's path without .ipynb>.txt`` and ``.json``, mirroring the class
    folder (``feedback/alice/04_adam.txt``)."""
    relative = path.relative_to(root).with_suffix("")
    base = folder / relative
    return base.with_name(base.name + ".txt"), base.with_name(base.name + ".json")


def write_feedback(
    folder: str | Path,
    root: Path,
    results: Sequence[tuple[Path, GradeReport | GradingError]],
) -> list[Path]:
    """Write a feedback file per submission into ``folder``, as text and as JSON.

    Each report gives :meth:`GradeReport.feedback` and :meth:`GradeReport.feedback_dict`
    (every test's message, the problems; no integrity flags); a submission that could not be
    graded gets why. Files are written atomically; returns the paths written.
    """
    out = Path(folder)
    written: list[Path] = []
    for path, result in results:
        text_path, json_path = feedback_paths(out, root, path)
        name = clean_text(path.relative_to(root).as_posix())
        if isinstance(result, GradeReport):
            text, data = result.feedback(), result.feedback_dict()
        else:
            why = clean_text(result)
            text = f"{name}: not graded\n\n{why}\n"
            data = {"submission": name, "error": why}
        atomic_write_bytes(text_path, text.encode("utf-8"))
        atomic_write_bytes(json_path, (json.dumps(data, indent=2) + "\n").encode("utf-8"))
        written += [text_path, json_path]
    return written
