"""Grading results: one test cell's points, one submission's report, a class's CSV table.

:class:`GradedTest` holds the points a test cell earned and, when it failed, the message the
test wrote for the student. :class:`GradeReport` gathers them for one submission, with the
problems met on the way, and prints as text (:meth:`GradeReport.format`) or JSON
(:meth:`GradeReport.to_dict`). ``grade-all`` writes one CSV row per submission.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .notebooks import GradingError

__all__ = ["GradedTest", "GradeReport"]


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
        """``{"assignment", "score", "max_score", "tests": [...], ...}`` for a JSON report."""
        return {
            "assignment": self.assignment,
            "submission": self.submission,
            "score": self.score,
            "max_score": self.max_score,
            "tests": [t.to_dict() for t in self.tests],
            "problems": list(self.problems),
            "flags": list(self.flags),
            "seed": self.seed,
            "isolation": self.isolation,
            "seconds": round(self.seconds, 3),
        }

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
        """A plain-text report: one line per test, the failure messages, the total."""
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
        return "\n".join(lines)


def csv_bytes(root: Path, results: Sequence[tuple[Path, GradeReport | GradingError]]) -> bytes:
    """One row per submission: path, assignment, score, max_score, error, problems, flags,
    seed, then the points of each test."""
    test_ids: list[str] = []
    for _, result in results:
        if isinstance(result, GradeReport):
            test_ids += [t.grade_id for t in result.tests if t.grade_id not in test_ids]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["submission", "assignment", "score", "max_score", "error", "problems", "flags"]
    writer.writerow([*header, "seed", *test_ids])
    for path, result in results:
        name = path.relative_to(root).as_posix()
        if isinstance(result, GradingError):
            writer.writerow([name, "", "", "", str(result), "", "", "", *([""] * len(test_ids))])
            continue
        points = {t.grade_id: t.points for t in result.tests}
        writer.writerow(
            [name, result.assignment, result.score, result.max_score, ""]
            + ["; ".join(result.problems), "; ".join(result.flags), result.seed]
            + [points.get(gid, "") for gid in test_ids]
        )
    return buffer.getvalue().encode("utf-8")
