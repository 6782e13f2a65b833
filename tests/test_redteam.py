"""The red-team corpus (tests/redteam): every hostile submission earns no more than the empty
student copy of its assignment, or is flagged where flagging is the right answer (a reference
implementation, a pasted solution); the grader survives all of them, leaves no process behind,
keeps a bounded amount of output, and still grades honest work with full marks.

The scores compared are measured in the same run: the empty copies and the solutions are graded
beside the hostile submissions, in one ``grade-all --jobs 2``.
"""

from __future__ import annotations

import csv
import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.redteam.corpus import EXPLOITS, Context, exploits, write_corpus
from tests.redteam.notebooks import RELEASE_DIR, ROOT, SOURCE_DIR, failures_in_process
from tests.redteam.processes import descendants, kill_marked, marked, new_token
from vae_numpy.assignments import GradeReport, grade_notebook
from vae_numpy.assignments.sandbox import bubblewrap_available

# the tests that grade: they start kernels (notebooks), take minutes together (slow) and look
# for leftover processes in /proc
grading = [
    pytest.mark.notebooks,
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux)"),
]

TIMEOUT = 5.0  # seconds per cell; the slowest honest test cell needs about 2.5 s
NOTEBOOK_TIMEOUT = 40.0  # seconds per notebook: caps the endless loops and endless output
ASSIGNMENTS = sorted({e.assignment for e in exploits()})
REFERENCE_FLAG = "reference implementation used"
COPY_FLAG = "near-copy of"  # the published solution, or the library's code of a reference
KEPT_LIMIT = 5_000_000  # characters: a tenth of one 50 MB message of huge_error_kl
KILLERS = [e.name for e in exploits() if e.killer]


def _marks(marks: list[Any]) -> Any:
    def apply(test: Any) -> Any:
        for mark in reversed(marks):
            test = mark(test)
        return test

    return apply


def _settle(token: str, before: set[int], seconds: float = 15.0) -> tuple[list[int], set[int]]:
    """Processes holding ``token``, and new descendants of this process, once they are gone
    or ``seconds`` have passed (a killed kernel takes a moment to be reaped)."""
    deadline = time.monotonic() + seconds
    while True:
        left, new = marked(token), descendants() - before
        if (not left and not new) or time.monotonic() > deadline:
            return left, new
        time.sleep(0.25)


@pytest.fixture(scope="module")
def token() -> Any:
    """The process-name token of this run; whatever still holds it at the end is killed."""
    value = new_token()
    yield value
    kill_marked(value)


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory: pytest.TempPathFactory, token: str) -> dict[str, Any]:
    """The corpus, the empty copies and the solutions, graded by `grade-all --jobs 2` in a
    child process (in its own session, so a grader that dies takes only that process)."""
    folder = tmp_path_factory.mktemp("class")
    written = write_corpus(folder / "hostile", Context(token))
    for name in ASSIGNMENTS:
        (folder / "empty").mkdir(exist_ok=True)
        (folder / "honest").mkdir(exist_ok=True)
        shutil.copy(RELEASE_DIR / f"{name}.ipynb", folder / "empty" / f"{name}.ipynb")
        shutil.copy(SOURCE_DIR / f"{name}.ipynb", folder / "honest" / f"{name}.ipynb")
    before_files = _digests(folder)
    table = folder.parent / "grades.csv"
    command = [sys.executable, "-m", "vae_numpy.assignments", "grade-all", str(folder)]
    command += ["--csv", str(table), "--jobs", "2", "--timeout", f"{TIMEOUT:g}"]
    command += ["--notebook-timeout", f"{NOTEBOOK_TIMEOUT:g}"]
    before = descendants()
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=900, start_new_session=True
    )
    leftovers, new_children = _settle(token, before)
    rows = list(csv.DictReader(table.open(encoding="utf-8"))) if table.is_file() else []
    return {
        "feedback": folder.parent / "grades-feedback",
        "changed_files": sorted(
            name for name, digest in _digests(folder).items() if before_files.get(name) != digest
        ),
        "planted": _planted(token),
        "done": done,
        "rows": {r["submission"]: r for r in rows},
        "files": sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.ipynb")),
        "hostile": written,
        "leftovers": leftovers,
        "new_children": new_children,
        "csv_size": table.stat().st_size if table.is_file() else 0,
    }


def _digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder``, by relative path."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _planted(token: str) -> list[str]:
    """Files named after the run's token (what plant_pth_adam tries to write) in the places a
    later grading process or the grader would pick them up; removed when found."""
    import site

    folders = {*site.getsitepackages(), site.getusersitepackages(), *sys.path, sys.prefix}
    folders |= {str(ROOT), str(Path.home()), "/tmp", "/var/tmp", tempfile.gettempdir()}
    found = []
    for folder in folders:
        for path in Path(folder or ".").glob(f"{token}.*"):
            found.append(str(path))
            path.unlink(missing_ok=True)
    return found


def _row(graded_class: dict[str, Any], submission: str) -> dict[str, str]:
    done = graded_class["done"]
    rows = graded_class["rows"]
    assert submission in rows, (
        f"grade-all wrote no row for {submission} (exit status {done.returncode}):\n"
        f"{done.stderr[-3000:]}"
    )
    return rows[submission]


def _describe(row: dict[str, str]) -> str:
    fixed = ("submission", "assignment", "score", "max_score", "error", "problems", "flags")
    points = {k: v for k, v in row.items() if k not in fixed and k != "seed" and v != ""}
    return (
        f"{row['submission']}: {row['score']} / {row['max_score']}, points {points}, "
        f"flags: {row.get('flags') or '-'}, problems: {(row.get('problems') or '-')[:1500]}, "
        f"error: {row['error'] or '-'}"
    )


def _empty_score(graded_class: dict[str, Any], assignment: str) -> int:
    row = _row(graded_class, f"empty/{assignment}.ipynb")
    assert row["score"] != "", _describe(row)
    return int(row["score"])


@_marks(grading)
def test_grade_all_completes_and_writes_a_row_for_every_submission(graded_class):
    """grade-all over honest, empty, hostile and killer submissions exits 0 and writes one CSV
    row per notebook, each with a score."""
    done = graded_class["done"]
    assert done.returncode == 0, f"grade-all exit status {done.returncode}:\n{done.stderr[-3000:]}"
    rows = graded_class["rows"]
    assert sorted(rows) == graded_class["files"]
    ungraded = [_describe(r) for r in rows.values() if r["score"] == "" or r["error"]]
    assert ungraded == []


@_marks(grading)
def test_honest_solutions_earn_full_marks_beside_hostile_submissions(graded_class):
    """The solutions, graded in the same run as the corpus, earn every point."""
    for name in ASSIGNMENTS:
        row = _row(graded_class, f"honest/{name}.ipynb")
        assert row["score"] == row["max_score"] != "", _describe(row)


@_marks(grading)
@pytest.mark.parametrize("name", sorted(EXPLOITS))
def test_hostile_submission_earns_no_more_than_the_empty_copy_or_is_flagged(graded_class, name):
    """A hostile submission scores at most what the untouched student copy scores; a reference
    import is also flagged as such, a pasted solution is flagged as a copy."""
    exploit = EXPLOITS[name]
    if exploit.sandbox and not bubblewrap_available():
        pytest.skip("defeated by the bubblewrap sandbox, which is not installed here")
    row = _row(graded_class, f"hostile/{name}/{exploit.assignment}.ipynb")
    empty = _empty_score(graded_class, exploit.assignment)
    assert row["score"] != "", _describe(row)
    score, flags = int(row["score"]), row.get("flags", "")
    why = f"{exploit.category} ({exploit.summary}): {_describe(row)}; empty copy scores {empty}"
    if exploit.expect == "copy":
        assert COPY_FLAG in flags, why
    elif exploit.expect == "reference":
        assert score <= empty and REFERENCE_FLAG in flags, why
    elif exploit.expect == "empty-or-flag":
        assert score <= empty or flags, why
    else:
        assert exploit.expect == "empty"
        assert score <= empty, why


@_marks(grading)
def test_a_notebook_is_graded_as_its_name_says_and_other_metadata_is_flagged(graded_class):
    """The published 01 solution handed in as 04_adam.ipynb is graded as 04 (earning nothing)
    and flagged: its metadata, which the student controls, decides nothing."""
    row = _row(graded_class, "hostile/dense_as_adam/04_adam.ipynb")
    assert row["assignment"] == "04_adam" and row["score"] == "0", _describe(row)
    assert "metadata says 01_dense_layer, graded as 04_adam" in row["flags"], _describe(row)


@_marks(grading)
def test_the_csv_holds_no_escape_codes_and_no_spreadsheet_formulas(graded_class, tmp_path):
    """Messages with terminal escape codes and cells that would start a formula (=, +, -, @)
    reach neither the CSV nor the feedback files as escape codes or formulas; the text itself
    is kept, harmless, for the student to read."""
    _row(graded_class, "hostile/escape_codes_kl/03_kl_divergence.ipynb")
    cells = [v or "" for r in graded_class["rows"].values() for v in r.values()]
    assert not any("\x1b" in c or "\x07" in c for c in cells)
    assert not any(c[:1] in ("=", "+", "@") for c in cells), [c for c in cells if c[:1] == "="]
    feedback = graded_class["feedback"] / "hostile" / "escape_codes_kl" / "03_kl_divergence.txt"
    text = feedback.read_text(encoding="utf-8")
    assert "HYPERLINK" in text and "\x1b" not in text and "\x07" not in text


@_marks(grading)
def test_grading_changes_no_submission_and_plants_nothing(graded_class):
    """After grade-all over the corpus (one submission rewrites every notebook it can reach,
    another writes .pth files and markers wherever it can), every submission in the class
    folder is byte for byte what was handed in, and no planted file exists in site-packages,
    the checkout, the home folder or /tmp."""
    if not bubblewrap_available():
        pytest.skip("only the bubblewrap sandbox keeps the kernel from the grader's files")
    assert graded_class["changed_files"] == []
    assert graded_class["planted"] == []


@_marks(grading)
def test_no_process_outlives_grade_all(graded_class):
    """After grade-all, no process a submission started is alive (children, a double-forked
    daemon in its own session, a fork storm) and the test process has no new descendants."""
    assert graded_class["leftovers"] == [], "processes left behind by the corpus"
    assert graded_class["new_children"] == set()


@_marks(grading)
def test_grade_all_keeps_a_bounded_amount_of_output(graded_class):
    """Endless output and 50 MB error messages do not end up in the CSV."""
    assert 0 < graded_class["csv_size"] < KEPT_LIMIT
    longest = max(len(v or "") for r in graded_class["rows"].values() for v in r.values())
    assert longest < KEPT_LIMIT // 10


@_marks(grading)
def test_grader_survives_killers_in_its_own_process_and_then_grades_honest_work(
    graded_class, tmp_path, token
):
    """Submissions that kill the grader's process, exit, fork a storm or bomb the memory are
    graded by grade_notebook in this very process, each to a report scoring no more than the
    empty copy; then an honest submission still earns full marks and nothing is left behind."""
    context = Context(token)
    before = descendants()
    for name in KILLERS:
        exploit = EXPLOITS[name]
        path = tmp_path / f"{name}.ipynb"
        path.write_text(_notebook_json(exploit.build(context)), encoding="utf-8")
        report = grade_notebook(
            path,
            assignment=exploit.assignment,
            timeout=TIMEOUT,
            notebook_timeout=NOTEBOOK_TIMEOUT,
        )
        assert isinstance(report, GradeReport), name
        assert report.score <= _empty_score(graded_class, exploit.assignment), report.format()
    # the published seed: whether every seed suits the tests is checked on its own below
    honest = grade_notebook(SOURCE_DIR / "04_adam.ipynb", timeout=TIMEOUT, seed=0)
    assert honest.score == honest.max_score > 0, honest.format()
    left, new = _settle(token, before)
    assert left == [] and new == set()


@_marks(grading)
def test_a_report_keeps_a_bounded_amount_of_output(tmp_path, capsys):
    """grade --json and --executed on a submission that raises and prints 50 MB messages keep
    a bounded amount of it, in the report and in the executed notebook."""
    from vae_numpy.assignments import main

    path = tmp_path / "03_kl_divergence.ipynb"  # the file name says which assignment
    path.write_text(_notebook_json(EXPLOITS["huge_error_kl"].build(Context(new_token()))))
    executed = tmp_path / "executed.ipynb"
    argv = ["grade", str(path), "--json", "--executed", str(executed)]
    assert main([*argv, "--timeout", f"{TIMEOUT:g}"]) == 0
    out = capsys.readouterr().out
    assert '"score": 0' in out
    assert len(out) < KEPT_LIMIT
    assert executed.stat().st_size < KEPT_LIMIT


def _notebook_json(nb: Any) -> str:
    import nbformat

    return str(nbformat.writes(nb))


def test_corpus_covers_the_categories_of_the_issues():
    """The corpus has at least 30 submissions over 01, 03 and 04 and every category of
    hostile behaviour that issues 11 and 18 list."""
    categories = {e.category for e in exploits()}
    assert len(EXPLOITS) >= 30
    assert set(ASSIGNMENTS) >= {"01_dense_layer", "03_kl_divergence", "04_adam"}
    assert categories >= {
        "reference import",
        "pasted solution",
        "input transformer",
        "custom exception handler",
        "patched numpy",
        "patched vae_numpy helpers",
        "always-equal objects",
        "lookup table",
        "exit",
        "kill the parent",
        "memory bomb",
        "endless output",
        "leftover processes",
        "endless loop",
        "fork storm",
        "do nothing",
        "agent patch",
        "sandbox escape",
        "sabotage",
        "planted .pth",
        "judge limits",
        "library paste",
        "wrong metadata",
        "console and spreadsheet",
    }


def test_every_hostile_notebook_is_valid_python_and_differs_from_the_student_copy(tmp_path):
    """Each generator writes a notebook whose code cells compile and whose solution cells are
    not the student copy's (so each submission really tries something)."""
    import nbformat

    written = write_corpus(tmp_path, Context(new_token()))
    for name, path in written.items():
        nb = nbformat.read(path, 4)
        release = nbformat.read(RELEASE_DIR / f"{EXPLOITS[name].assignment}.ipynb", 4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                compile(cell.source, f"{name}.ipynb", "exec")
        ours = [c.source for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]
        theirs = [c.source for c in release.cells if c.metadata.get("nbgrader", {}).get("solution")]
        assert ours != theirs, name


# seeds per assignment: as many as a few seconds allow (03 integrates, 05 trains)
SEEDS = {
    "01_dense_layer": 30,
    "02_reparameterization": 30,
    "03_kl_divergence": 3,
    "04_adam": 30,
    "05_elbo_training": 1,
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SEEDS))
def test_solutions_pass_their_own_tests_whatever_the_seed(name):
    """The grader draws a fresh TEST_SEED every run, so the solution notebook must pass all of
    its tests for every seed, not only for the published 0: run in-process for many seeds."""
    failed = {s: f for s in range(SEEDS[name]) if (f := failures_in_process(name, s))}
    assert failed == {}, f"the solution of {name} fails its own tests for these seeds: {failed}"
