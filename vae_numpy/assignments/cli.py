"""Command line of the assignments: ``list``, ``release``, ``grade``, ``grade-all``, ``merge``.

:func:`add_subcommand` adds them as ``vae-numpy assignments ACTION`` to another parser and
:func:`run` executes the parsed arguments; :func:`main` is ``python -m vae_numpy.assignments
ACTION``. Exit status 0 when done (for ``grade``, whatever the score), 1 when
``release --check`` finds stale copies or ``grade-all`` (``merge``) could not grade some
notebooks, 2 when the request could not be carried out.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._argtypes import positive_float, positive_int
from ..serialization import atomic_write_bytes
from .classroom import feedback_dir, grade_folder, merge_grades, parse_shard, usable_cores
from .grade import DEFAULT_NOTEBOOK_TIMEOUT, DEFAULT_TIMEOUT, grade_notebook
from .notebooks import (
    GradingError,
    cell_kind,
    is_hidden_cell,
    list_assignments,
    load_source,
    nbgrader_meta,
)
from .release import release, verify_release
from .report import clean_text, csv_bytes, write_feedback
from .sandbox import DEFAULT_MEMORY, ISOLATION_MODES

__all__ = ["add_subcommand", "run", "main", "feedback_dir"]  # feedback_dir: former home


def _add_actions(sub: Any) -> None:
    source_help = (
        "folder of the assignment sources (solutions, hidden tests): notebooks/assignments/source"
        " of a checkout or the sdist (default: found above the current folder or the package;"
        " the wheel does not ship them)"
    )

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
        "--assignment",
        default=None,
        metavar="NAME",
        help="name or number (default: from the file name, e.g. 04_adam.ipynb as released)",
    )
    grade.add_argument("--source", default=None, metavar="DIR", help=source_help)
    grade.add_argument("--json", action="store_true", help="print a JSON report instead")
    grade.add_argument(
        "--timeout",
        type=positive_float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"seconds each cell may run (default {DEFAULT_TIMEOUT:g})",
    )
    _add_limits(grade)
    grade.add_argument(
        "--executed",
        default=None,
        metavar="PATH",
        help="also write the executed notebook (with outputs) here",
    )

    many = sub.add_parser(
        "grade-all",
        help="grade every notebook in a folder into a CSV file",
        description="Grade every .ipynb under DIR (one folder per student, e.g. DIR/alice/"
        "04_adam.ipynb) and write one CSV row per student and assignment: student, submission, "
        "assignment, score, max_score, error, problems, flags, seed, then the points of each "
        "test; and, for the student, a feedback file per submission (text and JSON) with every "
        "test's message. Exit status 0 when every notebook was graded, 1 when some could not be.",
    )
    many.add_argument("folder", metavar="DIR", help="folder of submissions (searched recursively)")
    many.add_argument("--csv", required=True, metavar="PATH", help="CSV file to write")
    many.add_argument(
        "--feedback",
        default=None,
        metavar="DIR",
        help="folder for the feedback files, mirroring DIR: DIR/alice/04_adam.txt and .json "
        "(default: beside the CSV, CSV-NAME-feedback)",
    )
    many.add_argument(
        "--assignment",
        default=None,
        metavar="NAME",
        help="name or number for every notebook (default: from each file name)",
    )
    many.add_argument("--source", default=None, metavar="DIR", help=source_help)
    many.add_argument(
        "--timeout",
        type=positive_float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"seconds each cell may run (default {DEFAULT_TIMEOUT:g})",
    )
    _add_limits(many)
    many.add_argument(
        "--jobs",
        type=positive_int,
        default=None,
        metavar="N",
        help="notebooks graded at once (default: the usable cores)",
    )
    many.add_argument(
        "--shard",
        type=_shard,
        default=None,
        metavar="K/N",
        help="grade only the students of the K-th of N slices (by a hash of the student's "
        "folder name), e.g. on machine K of N or in task K of a SLURM array; join the N CSV "
        "files with `merge`",
    )

    merge = sub.add_parser(
        "merge",
        help="join the CSV files and feedback of grade-all --shard K/N runs",
        description="Join the CSV files written by `grade-all DIR --shard K/N` for K = 1..N "
        "into one, check that every submission of DIR was graded exactly once, flag "
        "near-identical pairs across the whole class (each shard saw only its own students), "
        "and copy each shard's feedback files (in the folder beside its CSV) into one folder.",
    )
    merge.add_argument("folder", metavar="DIR", help="the class folder the shards graded")
    merge.add_argument("shards", nargs="+", metavar="SHARD.csv", help="every shard's CSV file")
    merge.add_argument("--csv", required=True, metavar="PATH", help="merged CSV file to write")
    merge.add_argument(
        "--feedback",
        default=None,
        metavar="DIR",
        help="folder for the merged feedback files (default: beside the CSV, CSV-NAME-feedback)",
    )
    merge.add_argument(
        "--assignment", default=None, metavar="NAME", help="as given to grade-all, if it was"
    )
    merge.add_argument("--source", default=None, metavar="DIR", help=source_help)


def _shard(text: str) -> tuple[int, int]:
    try:
        return parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _seed(text: str) -> int:
    if not (text.strip().isdigit() and int(text) < 2**32):
        raise argparse.ArgumentTypeError(
            f"the seed must be a whole number in [0, 2**32), got {text!r}"
        )
    return int(text)


def _memory(text: str) -> int:
    """``4G``, ``512M`` or a number of bytes."""
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    text = text.strip().lower().removesuffix("ib").removesuffix("b")
    scale = units.get(text[-1:], 1)
    try:
        value = float(text[:-1] if text[-1:] in units else text) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected e.g. 4G or 512M, got {text!r}") from None
    if value < 256 * 1024**2:
        raise argparse.ArgumentTypeError("the memory limit must be at least 256M")
    return int(value)


def _add_limits(parser: Any) -> None:
    parser.add_argument(
        "--seed",
        type=_seed,
        default=None,
        metavar="N",
        help="seed of the tests' inputs (default: a fresh one, printed in the report)",
    )
    parser.add_argument(
        "--notebook-timeout",
        type=positive_float,
        default=DEFAULT_NOTEBOOK_TIMEOUT,
        metavar="SECONDS",
        help=f"seconds for the whole notebook (default {DEFAULT_NOTEBOOK_TIMEOUT:g})",
    )
    parser.add_argument(
        "--memory-limit",
        type=_memory,
        default=DEFAULT_MEMORY,
        metavar="SIZE",
        help=f"memory of the student's kernel, e.g. 2G (default {DEFAULT_MEMORY // 1024**3}G)",
    )
    parser.add_argument(
        "--isolation",
        choices=ISOLATION_MODES,
        default="auto",
        help="sandbox of the student's kernel: auto (the strongest available: bubblewrap, "
        "else namespaces, else rlimits; the report names it), strict (bubblewrap or no "
        "grading), or one by name (default auto)",
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
        nb = load_source(path)
        tests = [c for c in nb.cells if cell_kind(c) == "test"]
        hidden = sum(1 for c in tests if is_hidden_cell(c))
        points = sum(int(nbgrader_meta(c)["points"]) for c in tests)
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
        seed=args.seed,
        notebook_timeout=args.notebook_timeout,
        memory_limit=args.memory_limit,
        isolation=args.isolation,
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.format())
    return 0


def _cmd_grade_all(args: argparse.Namespace) -> int:
    root = Path(args.folder)
    jobs = args.jobs or usable_cores()
    part = "" if args.shard is None else f" (shard {args.shard[0]}/{args.shard[1]})"
    print(
        clean_text(f"grading {root}{part} with {jobs} job{'s' if jobs > 1 else ''}"),
        file=sys.stderr,
    )
    results = grade_folder(
        root,
        assignment=args.assignment,
        source_dir=args.source,
        timeout=args.timeout,
        jobs=jobs,
        seed=args.seed,
        notebook_timeout=args.notebook_timeout,
        memory_limit=args.memory_limit,
        isolation=args.isolation,
        shard=args.shard,
    )
    atomic_write_bytes(args.csv, csv_bytes(root, results))
    feedback = feedback_dir(args.csv, args.feedback)
    write_feedback(feedback, root, results)
    failed = 0
    for path, result in results:
        if isinstance(result, GradingError):
            failed += 1
            print(clean_text(f"{path}: not graded: {result}"), file=sys.stderr)
            continue
        lines = [f"{path}: {result.score} / {result.max_score}"]
        lines += [f"    problem: {problem}" for problem in result.problems]
        lines += [f"    flag: {flag}" for flag in result.flags]
        print(clean_text("\n".join(lines)))
    print(
        clean_text(
            f"wrote {args.csv} ({len(results)} submissions, {failed} not graded)"
            f" and the feedback files in {feedback}"
        )
    )
    return 1 if failed else 0


def _cmd_merge(args: argparse.Namespace) -> int:
    done = merge_grades(
        args.folder,
        args.shards,
        args.csv,
        feedback=args.feedback,
        assignment=args.assignment,
        source_dir=args.source,
    )
    print(
        clean_text(
            f"wrote {args.csv} ({done['rows']} submissions from {len(args.shards)} shards,"
            f" {done['not_graded']} not graded, {done['pairs']} near-identical pairs) and"
            f" {done['feedback_files']} feedback files in {done['feedback']}"
        )
    )
    return 1 if done["not_graded"] else 0


_ACTIONS = {
    "list": _cmd_list,
    "release": _cmd_release,
    "grade": _cmd_grade,
    "grade-all": _cmd_grade_all,
    "merge": _cmd_merge,
}


def run(args: argparse.Namespace) -> int:
    """Execute a parsed ``assignments`` command; return the exit status.

    0: done (for ``grade``, whatever the score); 1: ``release --check`` found stale copies or
    ``grade-all`` (``merge``) could not grade some notebooks; 2: the request could not be carried out
    (unreadable notebook, unknown assignment, missing folder, no kernel).
    """
    action = args.assignments_command
    try:
        return _ACTIONS[action](args)
    except (GradingError, ValueError, OSError) as exc:
        print(clean_text(f"vae-numpy assignments {action}: error: {exc}"), file=sys.stderr)
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
