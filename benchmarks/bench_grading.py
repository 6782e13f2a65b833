"""Grading speed of a whole class: submissions per minute at ``--jobs 1`` and ``--jobs 2``.

Generates a class of ``--n`` submissions (default 100) in a temporary folder, a mix of

* correct ones (the solution notebooks of the five assignments),
* empty ones (the released student copies, handed in untouched),
* buggy ones (a solution with one of the planted mistakes of ``tests/assignment_mistakes``),
* hostile ones (the red-team corpus of ``tests/redteam``: reference imports, pasted solutions,
  endless loops and output, a memory bomb, killers of the grader, fork storms, ...),

in the proportions of ``--mix``, then grades the same folder with ``python -m
vae_numpy.assignments grade-all --jobs N`` for each N of ``--jobs`` and prints the wall time,
submissions per minute, and the speed-up of each N against the first (measured in the same run).
Every run gets a fresh folder copy, so nothing is cached between them. Per category it also
prints the mean score, as a sanity check that the class was graded as intended. Processes the
hostile submissions leave behind, if any, are counted and killed after each run.

The machine is shared and noisy: quote the ratio, and absolute times only with the load they
were measured under (printed).

Usage::

    python benchmarks/bench_grading.py                     # 100 submissions, --jobs 1 and 2
    python benchmarks/bench_grading.py --n 20 --jobs 2     # a quick look
    python benchmarks/bench_grading.py --mix correct=1     # honest work only
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the red-team corpus lives in tests/redteam

from tests.redteam.corpus import Context, exploits  # noqa: E402
from tests.redteam.notebooks import (  # noqa: E402
    ASSIGNMENTS,
    MISTAKES_DIR,
    RELEASE_DIR,
    SOURCE_DIR,
    plant_mistake,
    write,
)
from tests.redteam.processes import kill_marked, new_token  # noqa: E402

CATEGORIES = ("correct", "empty", "buggy", "hostile")


def parse_mix(text: str) -> dict[str, float]:
    """``correct=40,empty=15,buggy=25,hostile=20`` as fractions that sum to 1."""
    weights: dict[str, float] = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        if name.strip() not in CATEGORIES:
            raise argparse.ArgumentTypeError(f"unknown category {name!r}; use {CATEGORIES}")
        weights[name.strip()] = float(value)
    total = sum(weights.values())
    if total <= 0 or any(w < 0 for w in weights.values()):
        raise argparse.ArgumentTypeError(f"weights must be >= 0 with a positive sum: {text!r}")
    return {name: w / total for name, w in weights.items()}


def counts(n: int, mix: dict[str, float]) -> dict[str, int]:
    """Split ``n`` by ``mix`` (largest remainders), every category with a weight getting its share."""
    raw = {name: n * w for name, w in mix.items()}
    out = {name: int(v) for name, v in raw.items()}
    for name in sorted(raw, key=lambda k: raw[k] - out[k], reverse=True)[: n - sum(out.values())]:
        out[name] += 1
    return out


def write_class(folder: Path, n: int, mix: dict[str, float], token: str) -> dict[str, str]:
    """Write the class into ``folder``, one folder per student holding a notebook named as
    released (``folder/STUDENT/ASSIGNMENT.ipynb``); the category of each by its student."""
    sizes = counts(n, mix)
    mistakes = sorted(MISTAKES_DIR.glob("*.json"))
    hostile = exploits()
    category: dict[str, str] = {}
    for kind in CATEGORIES:
        for i in range(sizes.get(kind, 0)):
            name = f"{kind}_{i:03d}"
            if kind in ("correct", "empty"):
                assignment = ASSIGNMENTS[i % len(ASSIGNMENTS)]
                folder_of = SOURCE_DIR if kind == "correct" else RELEASE_DIR
                (folder / name).mkdir(parents=True)
                shutil.copy(
                    folder_of / f"{assignment}.ipynb", folder / name / f"{assignment}.ipynb"
                )
            elif kind == "buggy":
                assignment, nb = plant_mistake(mistakes[i % len(mistakes)])
                write(nb, folder / name / f"{assignment}.ipynb")
            else:
                exploit = hostile[i * len(hostile) // sizes[kind] % len(hostile)]  # spread
                write(exploit.build(Context(token)), folder / name / f"{exploit.assignment}.ipynb")
            category[name] = kind
    return category


def grade_all(folder: Path, jobs: int, timeout: float, notebook_timeout: float) -> float:
    """Run grade-all on ``folder``; the wall time in seconds."""
    table = folder.parent / f"grades-{jobs}.csv"
    command = [sys.executable, "-m", "vae_numpy.assignments", "grade-all", str(folder)]
    command += ["--csv", str(table), "--jobs", str(jobs), "--timeout", f"{timeout:g}"]
    command += ["--notebook-timeout", f"{notebook_timeout:g}"]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, start_new_session=True)
    seconds = time.perf_counter() - start
    if not table.is_file():
        raise SystemExit(f"grade-all wrote no CSV (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return seconds


def summary(table: Path, category: dict[str, str]) -> str:
    """Mean score / max per category, and the rows without a score."""
    scores: dict[str, list[float]] = defaultdict(list)
    missing = 0
    for row in csv.DictReader(table.open(encoding="utf-8")):
        kind = category.get(Path(row["submission"]).parts[-2], "?")
        if row["score"] and row["max_score"]:
            scores[kind].append(int(row["score"]) / int(row["max_score"]))
        else:
            missing += 1
    parts = [
        f"{kind} {100 * sum(v) / len(v):.0f}% (n={len(v)})"
        for kind in CATEGORIES
        if (v := scores.get(kind))
    ]
    return "mean score: " + ", ".join(parts) + f"; rows without a score: {missing}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100, help="submissions in the class (100)")
    parser.add_argument(
        "--jobs", type=int, nargs="+", default=[1, 2], help="grade-all --jobs values (1 2)"
    )
    parser.add_argument(
        "--mix",
        type=parse_mix,
        default=parse_mix("correct=40,empty=15,buggy=25,hostile=20"),
        help="category=weight,... (correct=40,empty=15,buggy=25,hostile=20)",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per cell (10)")
    parser.add_argument(
        "--notebook-timeout", type=float, default=60.0, help="seconds per notebook (60)"
    )
    args = parser.parse_args(argv)
    if args.n < 1 or any(j < 1 for j in args.jobs):
        parser.error("--n and --jobs must be at least 1")
    token = new_token()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        template = Path(tmp) / "class"
        template.mkdir()
        category = write_class(template, args.n, args.mix, token)
        sizes = {k: list(category.values()).count(k) for k in CATEGORIES}
        print(f"class of {args.n}: {sizes}, --timeout {args.timeout:g}")
        results: list[tuple[int, float]] = []
        for jobs in args.jobs:
            run = Path(tmp) / f"run-{jobs}"
            shutil.copytree(template, run / "class")
            seconds = grade_all(run / "class", jobs, args.timeout, args.notebook_timeout)
            leftovers = kill_marked(token)
            results.append((jobs, seconds))
            rate = 60.0 * args.n / seconds
            print(
                f"--jobs {jobs}: {seconds:7.1f} s, {rate:6.1f} submissions per minute, "
                f"{leftovers} leftover processes killed, load {os.getloadavg()[0]:.1f}"
            )
            print("    " + summary(run / f"grades-{jobs}.csv", category))
    base_jobs, base_seconds = results[0]
    for jobs, seconds in results[1:]:
        print(f"speed-up of --jobs {jobs} over --jobs {base_jobs}: {base_seconds / seconds:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
