"""Grade every hostile submission of the corpus and print what each one earned.

``python -m tests.redteam.table [--timeout S] [--jobs N] [--json OUT] [NAME ...]`` writes the
corpus into a temporary folder and grades each submission, together with the empty student copy
and the solution of its assignment, with ``python -m vae_numpy.assignments grade --json``, each
in its own process and session, so that a submission that kills its grader takes only that one
run down (the table then says so). Every grading process runs under a 12 GiB address-space limit
as a safety net for the machine. After each run, processes the submission left behind are
counted and killed. The table has one row per submission: its score against the empty copy's and
the maximum, the flags of the report, the leftover processes, and what went wrong.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .corpus import Context, corpus_path, exploits
from .notebooks import RELEASE_DIR, ROOT, SOURCE_DIR, write
from .processes import kill_marked, new_token

__all__ = ["grade_in_subprocess", "main"]

_SAFETY_NET = 12 * 2**30  # bytes of address space per grading process


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (_SAFETY_NET, _SAFETY_NET))


def grade_in_subprocess(
    path: Path, assignment: str, *, timeout: float, token: str, extra: list[str] | None = None
) -> dict[str, Any]:
    """Grade one notebook with the CLI in a new session; the JSON report plus what happened.

    Returns the report (``score``, ``max_score``, ``flags``, ...) with ``"exit"`` (the CLI's
    exit status), ``"error"`` (why there is no report, if there is none), ``"leftovers"``
    (processes holding ``token`` afterwards, all killed) and ``"wall"`` (seconds).
    """
    command = [sys.executable, "-m", "vae_numpy.assignments", "grade", str(path)]
    command += ["--assignment", assignment, "--json", "--timeout", f"{timeout:g}"]
    command += extra or []
    start = time.monotonic()
    try:
        done = subprocess.run(
            command,
            cwd=ROOT,
            capture_output=True,
            timeout=max(600.0, 40 * timeout),
            start_new_session=True,
            preexec_fn=_limit_memory,
        )
        out, status, error = done.stdout, done.returncode, ""
    except subprocess.TimeoutExpired as exc:
        out, status, error = exc.stdout or b"", None, "the grader did not finish"
    wall = time.monotonic() - start
    time.sleep(0.5)  # let orphans settle before counting them
    leftovers = kill_marked(token)
    try:
        report = json.loads(out)
    except ValueError:
        report = {}
        if not error:
            why = "killed by signal " + str(-status) if status and status < 0 else f"exit {status}"
            error = f"no report ({why})"
    report.update(exit=status, error=error, leftovers=leftovers, wall=wall, stdout=len(out))
    return report


def _flags(report: dict[str, Any]) -> str:
    flags = report.get("flags")
    if flags is None:
        return "(no flags field)"
    texts = [f if isinstance(f, str) else json.dumps(f) for f in flags]
    return "; ".join(t[:80] for t in texts) or "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.redteam.table", description=__doc__)
    parser.add_argument("names", nargs="*", help="exploits to grade (default: all)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per cell")
    parser.add_argument("--jobs", type=int, default=2, help="gradings at a time")
    parser.add_argument("--json", default=None, metavar="OUT", help="also write the rows here")
    args = parser.parse_args(argv)
    chosen = [e for e in exploits() if not args.names or e.name in args.names]
    context = Context(new_token())
    with tempfile.TemporaryDirectory(prefix="redteam-") as tmp:
        jobs: list[tuple[str, str, str, Path]] = []
        for assignment in sorted({e.assignment for e in chosen}):
            jobs.append(("(empty copy)", assignment, "", RELEASE_DIR / f"{assignment}.ipynb"))
            jobs.append(("(solution)", assignment, "", SOURCE_DIR / f"{assignment}.ipynb"))
        for e in chosen:
            path = write(e.build(context), corpus_path(Path(tmp), e))
            jobs.append((e.name, e.assignment, e.expect, path))

        def run(job: tuple[str, str, str, Path]) -> dict[str, Any]:
            name, assignment, expect, path = job
            report = grade_in_subprocess(
                path, assignment, timeout=args.timeout, token=context.token
            )
            report.update(name=name, assignment=assignment, expect=expect)
            print(f"graded {name}: {report.get('score')} / {report.get('max_score')}", flush=True)
            return report

        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            rows = list(pool.map(run, jobs))
    empty = {r["assignment"]: r.get("score") for r in rows if r["name"] == "(empty copy)"}
    print()
    print("| exploit | assignment | expect | score | empty copy | flags | leftovers | problem |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        score = f"{r['score']} / {r['max_score']}" if "score" in r else "-"
        print(
            f"| {r['name']} | {r['assignment']} | {r['expect']} | {score} "
            f"| {empty.get(r['assignment'])} | {_flags(r)} | {r['leftovers']} "
            f"| {r['error'] or ''} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
