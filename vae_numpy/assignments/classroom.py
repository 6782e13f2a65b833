"""Grading a class: every notebook of a folder, in shards on several machines, merged.

:func:`grade_folder` grades every notebook under a class folder (one folder per student), each
in its own process, ``jobs`` at a time, one bad file never stopping the others, and flags
near-identical pairs of submissions. With ``shard=(K, N)`` it grades only the students of the
K-th of N slices (:func:`shard_of`: a hash of the student's folder name, so the slice of a
student never depends on which other students handed in, nor on the machine), so that N
machines, a SLURM array or a CI matrix, grade a large class side by side with nothing shared
but the class folder. :func:`merge_grades` then joins the shards' CSV files and feedback
folders into one, checks that every submission of the class was graded exactly once, and
compares every two submissions of the class for near-identical code (a shard sees only its
own students).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..serialization import atomic_write_bytes
from .grade import DEFAULT_NOTEBOOK_TIMEOUT, DEFAULT_TIMEOUT, compose
from .integrity import (
    DEFAULT_SIMILARITY,
    Fingerprints,
    matched_lines,
    near_identical_pairs,
    own_tokens,
)
from .notebooks import (
    GradingError,
    assignment_from_name,
    find_assignment,
    find_source_dir,
    list_assignments,
    load_source,
    read_notebook,
)
from .report import GradeReport, csv_cell, feedback_paths, student_of
from .sandbox import DEFAULT_MEMORY, scratch_folder

__all__ = [
    "grade_folder",
    "class_submissions",
    "snapshot_submission",
    "usable_cores",
    "parse_shard",
    "shard_of",
    "pair_flags",
    "merge_grades",
    "feedback_dir",
    "CSV_COLUMNS",
]


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` (the K-th of N slices, 1 <= K <= N) as ``(K, N)``; ValueError otherwise."""
    parts = str(text).split("/")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"a shard is K/N, e.g. 3/10 for the third of ten slices, got {text!r}")
    k, n = int(parts[0]), int(parts[1])
    if not 1 <= k <= n:
        raise ValueError(f"a shard K/N needs 1 <= K <= N, got {text!r} (K counts from 1)")
    return k, n


def shard_of(student: str, n: int) -> int:
    """The slice (1 to ``n``) a student belongs to: SHA-256 of the student's name, modulo
    ``n``. The same on every machine and whichever other students are in the folder."""
    digest = hashlib.sha256(student.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % n + 1


def class_submissions(
    root: Path,
    known: dict[str, Path],
    assignment: str | None = None,
    shard: tuple[int, int] | None = None,
) -> tuple[list[Path], dict[Path, str]]:
    """The notebooks under ``root`` to grade, sorted, and a note for each one chosen among
    several: one per student and assignment (:func:`one_per_student`), only the students of
    ``shard`` when given."""
    every = sorted(
        p for p in root.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.relative_to(root).parts
    )
    if shard is not None:
        k, n = shard
        every = [p for p in every if shard_of(student_of(root, p), n) == k]
    return one_per_student(root, every, known, assignment)


def _grade_in_worker(path: Path, options: dict[str, Any]) -> GradeReport | GradingError:
    """Grade one notebook in a separate process, so that nothing it does stops the others."""
    argv = [sys.executable, "-m", "vae_numpy.assignments", "grade", str(path), "--json"]
    for key, flag in (
        ("assignment", "--assignment"),
        ("source_dir", "--source"),
        ("timeout", "--timeout"),
        ("seed", "--seed"),
        ("notebook_timeout", "--notebook-timeout"),
        ("memory_limit", "--memory-limit"),
        ("isolation", "--isolation"),
    ):
        if options.get(key) is not None:
            argv += [flag, str(options[key])]
    limit = float(options.get("notebook_timeout") or DEFAULT_NOTEBOOK_TIMEOUT) + 120
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=limit,
            check=False,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired:
        return GradingError(f"grading took longer than {limit:g} s and was stopped")
    if done.returncode == 0:
        try:
            return GradeReport.from_dict(json.loads(done.stdout.decode("utf-8")))
        except (ValueError, KeyError, TypeError) as exc:
            return GradingError(f"the grading process gave an unreadable report ({exc})")
    err = done.stderr.decode("utf-8", "replace").strip().splitlines()
    why = err[-1] if err else f"exit status {done.returncode}"
    if done.returncode < 0:
        why = f"the grading process was killed by signal {-done.returncode}"
    return GradingError(why.removeprefix("vae-numpy assignments grade: error: "))


def grade_folder(
    folder: str | os.PathLike[str],
    *,
    assignment: str | None = None,
    source_dir: str | os.PathLike[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    jobs: int | None = None,
    seed: int | None = None,
    notebook_timeout: float = DEFAULT_NOTEBOOK_TIMEOUT,
    memory_limit: int = DEFAULT_MEMORY,
    similarity: float = DEFAULT_SIMILARITY,
    isolation: str = "auto",
    shard: tuple[int, int] | None = None,
) -> list[tuple[Path, GradeReport | GradingError]]:
    """Grade every ``.ipynb`` under ``folder`` (recursively, skipping checkpoints), sorted.

    The student of a notebook is its folder relative to ``folder`` (:func:`student_of`), and
    its assignment is ``assignment`` or else its file name. One notebook per student and
    assignment is graded: when a student handed in several for one assignment, the one named
    as released (``04_adam.ipynb``) or else the most recently saved, and its report names the
    others in its problems. Each notebook is graded in its own process, ``jobs`` at a time
    (default: the usable cores), so that a submission that kills its grader, exhausts memory
    or never ends costs only its own row. Returns one ``(path, report)`` per notebook graded,
    or ``(path, error)`` for one that could not be. Pairs of submissions of the same
    assignment whose solution code is near-identical (similarity at least ``similarity``) are
    flagged in both reports.

    ``shard=(K, N)`` grades only the students of the K-th of N slices (:func:`shard_of`) and
    leaves the comparison of pairs to :func:`merge_grades`, which sees the whole class.

    Before any kernel starts, every notebook to grade is copied (with its modification time)
    into a private folder, and the copies are graded: what one submission's code does while
    it is graded cannot change another submission, nor the folder handed in. ``isolation``
    is the kernels' sandbox (see :func:`grade_notebook`).

    Raises
    ------
    GradingError
        ``folder`` is not a folder, the sources cannot be found, or ``assignment`` is unknown.
    """
    root = Path(folder)
    if not root.is_dir():
        raise GradingError(f"{root}: no such folder")
    if jobs is None:
        jobs = usable_cores()
    if not (isinstance(jobs, int) and jobs >= 1):
        raise ValueError(f"jobs must be a whole number >= 1, got {jobs!r}")
    # the sources once, for every worker: a missing folder is one clear error, not one per row
    sources = find_source_dir() if source_dir is None else Path(source_dir)
    known = list_assignments(sources)
    source_dir = sources.resolve()
    fixed = None if assignment is None else find_assignment(assignment, source_dir).stem
    paths, notes = class_submissions(root, known, fixed, shard)
    options = {
        "assignment": assignment,
        "source_dir": source_dir,
        "timeout": timeout,
        "seed": seed,
        "notebook_timeout": notebook_timeout,
        "memory_limit": memory_limit,
        "isolation": isolation,
    }
    with tempfile.TemporaryDirectory(prefix="vae-numpy-class-", dir=scratch_folder()) as tmp:
        snapshot = Path(tmp)
        copies = [snapshot_submission(root, path, snapshot) for path in paths]
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            graded = list(pool.map(lambda p: _grade_in_worker(p, options), copies))
        for result, path in zip(graded, paths, strict=True):
            if isinstance(result, GradeReport):
                result.submission = str(path)  # the notebook handed in, not its copy
        if shard is None:  # a shard sees part of the class: merge_grades compares them all
            graded_copies = [
                (c, r.assignment) for c, r in zip(copies, graded, strict=True)
                if isinstance(r, GradeReport)
            ]  # fmt: skip
            flags = pair_flags(snapshot, graded_copies, source_dir, similarity)
            for copy_path, result in zip(copies, graded, strict=True):
                if isinstance(result, GradeReport):
                    result.flags += flags.get(copy_path, [])
    for index, (path, result) in enumerate(zip(paths, graded, strict=True)):
        if path in notes and isinstance(result, GradeReport):
            result.problems.append(notes[path])
        elif path in notes:
            graded[index] = GradingError(f"{result}; {notes[path]}")
    return list(zip(paths, graded, strict=True))


def snapshot_submission(root: Path, path: Path, snapshot: Path) -> Path:
    """Copy ``path`` (a notebook under ``root``) to the same place under ``snapshot``, keeping
    its modification time, readable by its owner only; the copy's path."""
    copy_path = snapshot / path.relative_to(root)
    copy_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    shutil.copy2(path, copy_path)
    copy_path.chmod(0o600)
    return copy_path


def one_per_student(
    root: Path, paths: Sequence[Path], known: dict[str, Path], assignment: str | None
) -> tuple[list[Path], dict[Path, str]]:
    """The notebooks of ``paths`` to grade, one per student and assignment, and a note for
    each one chosen among several: the one named as released, or else the one saved last. A
    notebook whose assignment its name does not tell is kept (its row will say so)."""
    groups: dict[tuple[str, str], list[Path]] = {}
    chosen: list[Path] = []
    for path in paths:
        found = assignment_from_name(path, known) if assignment is None else None
        name = assignment if assignment is not None else (found.stem if found else None)
        if name is None:
            chosen.append(path)
        else:
            groups.setdefault((student_of(root, path), name), []).append(path)
    notes: dict[Path, str] = {}
    for (_, name), group in groups.items():
        exact = [p for p in group if p.name == f"{name}.ipynb"]
        pick = exact[0] if exact else max(group, key=lambda p: (p.stat().st_mtime, p.name))
        chosen.append(pick)
        if len(group) > 1:
            why = "its name is the released one" if exact else "it was saved last"
            others = ", ".join(p.relative_to(root).as_posix() for p in group if p != pick)
            notes[pick] = (
                f"one notebook per student and assignment is graded: this one ({why});"
                f" not graded: {others}"
            )
    return sorted(chosen), notes


def pair_flags(
    root: Path,
    submissions: Sequence[tuple[Path, str]],
    source_dir: str | os.PathLike[str] | None,
    threshold: float = DEFAULT_SIMILARITY,
) -> dict[Path, list[str]]:
    """A flag for both notebooks of every pair of near-identical submissions.

    ``submissions`` are ``(notebook under root, assignment)``; the flags name the other
    submission by its path relative to ``root``. Only the fingerprints of the code are
    compared (:func:`~vae_numpy.assignments.integrity.near_identical_pairs`): nothing runs.
    """
    sources: dict[str, Any] = {}
    tokens: dict[str, tuple[str, Fingerprints]] = {}
    paths: dict[str, Path] = {}
    for path, assignment in submissions:
        name = path.relative_to(root).as_posix()
        try:
            if assignment not in sources:
                sources[assignment] = load_source(find_assignment(assignment, source_dir))
            source = sources[assignment]
            composed, roles, _ = compose(source, read_notebook(path))
        except (GradingError, ValueError):  # unreadable meanwhile: nothing to compare
            continue
        tokens[name] = (assignment, own_tokens(source, composed, roles))
        paths[name] = path
    flags: dict[Path, list[str]] = {}
    for a, b, ratio in near_identical_pairs(tokens, threshold):
        for one, other in ((a, b), (b, a)):
            mine, theirs = tokens[one][1], tokens[other][1]
            shared = [h for h in mine.hashes if h in theirs.hashes]
            flags.setdefault(paths[one], []).append(
                f"near-identical to {other} ({ratio:.0%} of the solution code); matched "
                f"lines: {matched_lines(mine, shared)}"
            )
    return flags


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def feedback_dir(
    csv_path: str | os.PathLike[str], feedback: str | os.PathLike[str] | None = None
) -> Path:
    """Where ``grade-all`` writes the feedback files: ``feedback`` when given, else beside
    the CSV file, ``grades.csv`` -> ``grades-feedback/``."""
    if feedback is not None:
        return Path(feedback)
    table = Path(csv_path)
    return table.with_name(f"{table.stem}-feedback")


#: The first columns of every ``grade-all`` CSV file; the points of each test follow.
CSV_COLUMNS = (
    "student", "submission", "assignment", "score", "max_score", "error", "problems", "flags",
    "seed",
)  # fmt: skip


def _read_shard(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The test columns and the rows of one shard's CSV file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise GradingError(f"{path}: cannot read this shard's CSV file ({exc})") from exc
    reader = csv.DictReader(io.StringIO(text))
    header = list(reader.fieldnames or [])
    if tuple(header[: len(CSV_COLUMNS)]) != CSV_COLUMNS:
        raise GradingError(
            f"{path}: not a grade-all CSV file (its columns start {header[:3]}, expected"
            f" {list(CSV_COLUMNS[:3])})"
        )
    return header[len(CSV_COLUMNS) :], list(reader)


def merge_grades(
    folder: str | os.PathLike[str],
    shard_csvs: Sequence[str | os.PathLike[str]],
    csv_path: str | os.PathLike[str],
    *,
    feedback: str | os.PathLike[str] | None = None,
    assignment: str | None = None,
    source_dir: str | os.PathLike[str] | None = None,
    similarity: float = DEFAULT_SIMILARITY,
) -> dict[str, Any]:
    """Join the CSV files and feedback folders of ``grade-all --shard K/N`` into one.

    ``folder`` is the class folder the shards graded. Every submission that ``grade-all``
    would grade in it must be in exactly one of ``shard_csvs`` (otherwise a
    :class:`GradingError` names the missing and the doubled ones, and nothing is written).
    The merged CSV (``csv_path``, written atomically) has one row per submission in the
    order of the class folder and the test columns of every shard; every two submissions of
    the class are compared for near-identical code (:func:`pair_flags`) and the flags added
    to both rows. Each shard's feedback files (in the folder beside its CSV, as ``grade-all``
    writes them) are copied into ``feedback`` (default: beside ``csv_path``).

    Returns ``{"rows", "not_graded", "pairs", "feedback_files"}``.
    """
    root = Path(folder)
    if not root.is_dir():
        raise GradingError(f"{root}: no such folder")
    if not shard_csvs:
        raise GradingError("no shard CSV files to merge: give every shard's --csv file")
    sources = find_source_dir() if source_dir is None else Path(source_dir)
    known = list_assignments(sources)
    fixed = None if assignment is None else find_assignment(assignment, sources).stem
    wanted = [p.relative_to(root).as_posix() for p in class_submissions(root, known, fixed)[0]]
    tests: list[str] = []
    rows: dict[str, dict[str, str]] = {}
    origin: dict[str, Path] = {}
    doubled: list[str] = []
    for shard in map(Path, shard_csvs):
        columns, shard_rows = _read_shard(shard)
        tests += [c for c in columns if c not in tests]
        for row in shard_rows:
            name = row["submission"]
            if name in rows:
                doubled.append(f"{name} ({origin[name]} and {shard})")
            rows[name], origin[name] = row, shard
    missing = [name for name in wanted if name not in rows]
    foreign = [name for name in rows if name not in set(wanted)]
    if missing or doubled or foreign:
        parts = []
        if missing:
            parts.append(f"in no shard's CSV: {', '.join(missing[:10])}")
        if doubled:
            parts.append(f"in two shards' CSVs: {', '.join(doubled[:10])}")
        if foreign:
            parts.append(f"not in {root}: {', '.join(foreign[:10])}")
        raise GradingError(
            "the shards do not cover the class exactly once (" + "; ".join(parts) + "): grade "
            "the missing shards, pass every shard's CSV once, with the class folder they graded"
        )
    graded = [(root / name, rows[name]["assignment"]) for name in wanted if not rows[name]["error"]]
    flags = pair_flags(root, graded, sources, similarity)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*CSV_COLUMNS, *tests])
    for name in wanted:
        row = rows[name]
        row["flags"] = "; ".join(f for f in [row["flags"], *flags.get(root / name, [])] if f)
        writer.writerow([csv_cell(row.get(c) or "") for c in (*CSV_COLUMNS, *tests)])
    atomic_write_bytes(csv_path, buffer.getvalue().encode("utf-8"))
    out = feedback_dir(csv_path, feedback)
    copied = 0
    for name in wanted:
        source_folder = feedback_dir(origin[name])
        for src, dst in zip(
            feedback_paths(source_folder, root, root / name),
            feedback_paths(out, root, root / name),
            strict=True,
        ):
            if src.is_file():
                atomic_write_bytes(dst, src.read_bytes())
                copied += 1
    return {
        "rows": len(wanted),
        "not_graded": sum(1 for name in wanted if rows[name]["error"]),
        "pairs": sum(len(v) for v in flags.values()) // 2,
        "feedback_files": copied,
        "feedback": out,
    }
