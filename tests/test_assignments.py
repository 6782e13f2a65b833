"""Classroom assignments: the solutions grade full marks, the student copies grade zero, planted
mistakes lose exactly the points of the tests that catch them, and bad submissions are still
graded (or refused with a non-zero exit status) without crashing the grader.

These tests start Jupyter kernels: about a second per grading run.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest

from vae_numpy.assignments import (
    CODE_STUB,
    GradingError,
    add_subcommand,
    check_source,
    find_source_dir,
    grade_notebook,
    list_assignments,
    main,
    release,
    run,
    verify_release,
)

pytestmark = pytest.mark.notebooks

ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIR = ROOT / "notebooks" / "assignments" / "source"
RELEASE_DIR = ROOT / "notebooks" / "assignments" / "release"
MISTAKES = sorted((Path(__file__).resolve().parent / "assignment_mistakes").glob("*.json"))
NAMES = sorted(p.stem for p in SOURCE_DIR.glob("*.ipynb"))


def grade_id_of(cell: Any) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def _cell(nb: Any, grade_id: str) -> Any:
    return next(c for c in nb.cells if grade_id_of(c) == grade_id)


def _source(name: str) -> Any:
    return nbformat.read(SOURCE_DIR / f"{name}.ipynb", as_version=4)


def _write(nb: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def _plant(nb: Any, cell_id: str, replacements: list[list[str]]) -> Any:
    """Apply code substitutions to one cell; each old text must occur exactly once."""
    cell = _cell(nb, cell_id)
    for old, new in replacements:
        assert cell.source.count(old) == 1, f"{old!r} not found once in cell {cell_id!r}"
        cell.source = cell.source.replace(old, new)
    return nb


def _points(nb: Any) -> dict[str, int]:
    return {
        grade_id_of(c): c.metadata["nbgrader"]["points"]
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("grade")
    }


def _lost(report: Any) -> dict[str, str]:
    return {t.grade_id: t.message for t in report.tests if not t.passed}


# --- the source notebooks ----------------------------------------------------------------


def test_sources_are_six_valid_assignments_with_visible_and_hidden_tests():
    """The six lecture assignments exist, pass check_source, and each has solutions, visible
    and hidden test cells."""
    assert NAMES == [
        "01_dense_layer",
        "02_reparameterization",
        "03_kl_divergence",
        "04_adam",
        "05_elbo_training",
        "06_importance_weighted_bound",
    ]
    assert list(list_assignments(SOURCE_DIR)) == NAMES
    for name in NAMES:
        nb = _source(name)
        assert check_source(nb) == [], name
        kinds = [c.metadata.get("nbgrader", {}) for c in nb.cells if c.cell_type == "code"]
        tests = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
        hidden = [c for c in tests if "### BEGIN HIDDEN TESTS" in c.source]
        assert any(k.get("solution") for k in kinds), name
        assert hidden and len(hidden) < len(tests), name
        assert all(
            c.outputs == [] and c.execution_count is None for c in nb.cells if "outputs" in c
        )


def test_check_source_reports_broken_markup():
    """check_source names unbalanced markers, a wrong points header and a duplicate grade_id."""
    nb = _source("04_adam")
    _cell(nb, "adam").source += "\n### BEGIN SOLUTION"
    _cell(nb, "test_adam_moments").source = "# Tests: 3 points\npass"
    _cell(nb, "test_adam_minimises").metadata["nbgrader"]["grade_id"] = "test_adam_first_step"
    problems = "\n".join(check_source(nb))
    assert "never closed" in problems
    assert "# Tests: 1 point" in problems
    assert "duplicate grade_id 'test_adam_first_step'" in problems


@pytest.mark.parametrize("name", NAMES)
def test_every_source_notebook_grades_full_marks(name):
    """The solution notebook earns every point, with no problem reported."""
    report = grade_notebook(SOURCE_DIR / f"{name}.ipynb", source_dir=SOURCE_DIR)
    assert report.assignment == name
    assert report.max_score == sum(_points(_source(name)).values()) > 0
    assert report.score == report.max_score, report.format()
    assert report.problems == [], report.format()


# --- the student copies --------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_every_released_copy_grades_zero_without_crashing(name):
    """The student copy (all stubs) scores 0 and every test explains why it failed."""
    report = grade_notebook(RELEASE_DIR / f"{name}.ipynb", source_dir=SOURCE_DIR)
    assert report.assignment == name
    assert report.max_score > 0 and report.score == 0, report.format()
    assert all(not t.passed and t.message for t in report.tests)
    messages = " ".join(t.message for t in report.tests)
    assert "NotImplementedError" in messages


def test_committed_release_copies_are_up_to_date():
    """notebooks/assignments/release holds exactly what a fresh release writes."""
    assert verify_release(RELEASE_DIR, SOURCE_DIR) == [], (
        "stale student copies: run vae-numpy assignments release --out notebooks/assignments/release"
    )


def test_release_is_deterministic(tmp_path):
    """Two releases, into different folders or twice into one, give identical bytes."""
    first = release(tmp_path / "a", source_dir=SOURCE_DIR)
    second = release(tmp_path / "b", source_dir=SOURCE_DIR)
    snapshot = {p.name: p.read_bytes() for p in first}
    assert [p.name for p in first] == [p.name for p in second] == [f"{n}.ipynb" for n in NAMES]
    assert snapshot == {p.name: p.read_bytes() for p in second}
    release(tmp_path / "a", source_dir=SOURCE_DIR)
    assert snapshot == {p.name: p.read_bytes() for p in first}
    assert not list((tmp_path / "a").glob(".*.tmp"))  # atomic writes leave no temp files


def test_release_replaces_solutions_keeps_surrounding_code_and_drops_hidden_tests():
    """Solution blocks become the indented stub, the code around them stays, hidden tests and
    outputs are gone, and every cell keeps its id and nbgrader metadata."""
    for name in NAMES:
        source, student = _source(name), nbformat.read(RELEASE_DIR / f"{name}.ipynb", 4)
        assert student.metadata["vae_numpy"] == {"assignment": name}
        assert [c.id for c in student.cells] == [c.id for c in source.cells]
        for src, out in zip(source.cells, student.cells, strict=True):
            assert out.metadata.get("nbgrader") == src.metadata.get("nbgrader")
            for marker in ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS"):
                assert marker not in out.source
            if out.cell_type != "code":
                assert out.source == src.source
                continue
            assert out.outputs == [] and out.execution_count is None
            kind = src.metadata["nbgrader"]
            if kind["grade"]:
                assert out.source.splitlines()[0] == src.source.splitlines()[0]
                assert out.metadata["editable"] is False
            if not kind["solution"] and "### BEGIN HIDDEN TESTS" not in src.source:
                assert out.source == src.source
    dense = _cell(nbformat.read(RELEASE_DIR / "01_dense_layer.ipynb", 4), "dense_layer").source
    assert "    def forward(self, x):" in dense and "    def backward(self, grad_y):" in dense
    assert dense.count("\n        " + CODE_STUB.replace("\n", "\n        ")) == 2
    assert "x.T @ grad_y" not in dense and "return x @" not in dense
    hidden = _cell(nbformat.read(RELEASE_DIR / "04_adam.ipynb", 4), "test_adam_matches_paper")
    assert hidden.source.startswith("# Tests: 2 points") and "ReferenceAdam" not in hidden.source


def test_verify_release_reports_stale_missing_and_leftover_copies(tmp_path, capsys):
    """A changed, a deleted and a left-over copy are reported, and release --check exits 1."""
    out = tmp_path / "release"
    release(out, source_dir=SOURCE_DIR)
    assert verify_release(out, SOURCE_DIR) == []
    changed = out / "03_kl_divergence.ipynb"
    changed.write_text(changed.read_text().replace("YOUR CODE HERE", "my answer"))
    (out / "04_adam.ipynb").unlink()
    (out / "old_assignment.ipynb").write_text("{}")
    stale = ["03_kl_divergence.ipynb", "04_adam.ipynb", "old_assignment.ipynb"]
    assert verify_release(out, SOURCE_DIR) == stale
    assert main(["release", "--out", str(out), "--source", str(SOURCE_DIR), "--check"]) == 1
    assert "stale" in capsys.readouterr().out


# --- planted mistakes ------------------------------------------------------------------------


@pytest.mark.parametrize("mistake", MISTAKES, ids=[p.stem for p in MISTAKES])
def test_planted_mistake_loses_exactly_the_points_of_the_tests_that_catch_it(mistake, tmp_path):
    """A classic mistake planted in the solution fails exactly the tests meant to catch it,
    each with a message that names the mistake (and, where the spec says, not another one)."""
    spec = json.loads(mistake.read_text(encoding="utf-8"))
    nb = _plant(_source(spec["assignment"]), spec["cell"], spec["replace"])
    report = grade_notebook(
        _write(nb, tmp_path / "submission.ipynb"),
        assignment=spec["assignment"],
        source_dir=SOURCE_DIR,
        seed=spec.get("seed"),  # a spec whose hint depends on the drawn inputs fixes them
    )
    lost = _lost(report)
    assert set(lost) == set(spec["lost"]), report.format()
    for grade_id, hint in spec["lost"].items():
        assert hint in lost[grade_id], f"{grade_id}: {lost[grade_id]!r} lacks {hint!r}"
    for grade_id, wrong in spec.get("absent", {}).items():
        assert wrong not in lost[grade_id], f"{grade_id}: {lost[grade_id]!r} talks of {wrong!r}"
    points = _points(nb)
    assert report.score == report.max_score - sum(points[g] for g in spec["lost"])


def test_deleted_hidden_test_and_edited_visible_test_are_graded_from_the_source(tmp_path):
    """A submission that deletes a hidden-test cell and turns a visible test into `pass` is
    graded with the source's tests: its mistake still loses both tests' points."""
    spec = json.loads(
        (MISTAKES[0].parent / "02_reparameterization_std_is_exp_log_var.json").read_text()
    )
    nb = _plant(_source("02_reparameterization"), spec["cell"], spec["replace"])
    nb.cells.remove(_cell(nb, "test_moments_hidden"))
    _cell(nb, "test_moments").source = "# Tests: 2 points\npass"
    report = grade_notebook(
        _write(nb, tmp_path / "02_reparameterization-sneaky.ipynb"), source_dir=SOURCE_DIR
    )
    assert set(_lost(report)) == {"test_moments", "test_moments_hidden"}
    assert "exp(log_var / 2)" in _lost(report)["test_moments"]
    assert report.score == report.max_score - 4


def test_added_cells_renamed_file_and_deleted_solution_cell(tmp_path):
    """Cells the student added run after the cell they follow; a renamed file is graded with
    --assignment (its metadata alone is not trusted); a deleted solution cell is graded as the
    empty stub and reported."""
    nb = _source("02_reparameterization")
    nb.metadata["vae_numpy"] = {"assignment": "02_reparameterization"}
    helper = nbformat.v4.new_code_cell(
        "def my_standard_error(var, n):\n    return np.sqrt(var / n)"
    )
    nb.cells.insert(nb.cells.index(_cell(nb, "setup")) + 1, helper)
    _plant(nb, "moment_check", [["np.sqrt(var / n)", "my_standard_error(var, n)"]])
    nb.cells.remove(_cell(nb, "reparameterize_backward"))
    renamed = _write(nb, tmp_path / "homework (1).ipynb")
    with pytest.raises(GradingError, match="its metadata says 02_reparameterization"):
        grade_notebook(renamed, source_dir=SOURCE_DIR)
    report = grade_notebook(renamed, assignment="2", source_dir=SOURCE_DIR)
    assert report.assignment == "02_reparameterization" and report.flags == []
    lost = _lost(report)
    assert set(lost) == {"test_backward", "test_backward_hidden"}, report.format()
    assert all("NotImplementedError" in m for m in lost.values())
    assert any("'reparameterize_backward' is missing" in p for p in report.problems)


# --- time limits and a stubborn kernel --------------------------------------------------------


def test_infinite_loop_times_out_and_the_rest_is_graded(tmp_path, capsys):
    """An endless loop is interrupted after --timeout seconds; the cells after it still run,
    and --json reports {"assignment", "score", "max_score", "tests"}."""
    nb = _source("02_reparameterization")
    cell = _cell(nb, "reparameterize_backward")
    cell.source = "while True:\n    pass\n\n" + cell.source
    path = _write(nb, tmp_path / "02_reparameterization.ipynb")
    status = main(["grade", str(path), "--source", str(SOURCE_DIR), "--timeout", "5", "--json"])
    assert status == 0
    report = json.loads(capsys.readouterr().out)
    assert {"assignment", "score", "max_score", "tests"} <= set(report)
    assert report["assignment"] == "02_reparameterization"
    assert (report["score"], report["max_score"]) == (8, 11), json.dumps(report, indent=1)
    for test in report["tests"]:
        assert {"grade_id", "points", "max_points", "passed", "hidden", "message"} <= set(test)
        assert isinstance(test["points"], int) and isinstance(test["passed"], bool)
    lost = {t["grade_id"]: t["message"] for t in report["tests"] if not t["passed"]}
    assert set(lost) == {"test_backward", "test_backward_hidden"}
    assert all("reparameterize_backward" in m for m in lost.values())
    assert any("time limit of 5 s" in p for p in report["problems"])


def test_a_kernel_that_ignores_interrupts_is_stopped_and_reported(tmp_path):
    """A loop that swallows KeyboardInterrupt cannot be interrupted: the remaining cells are
    reported as not run, the kernel is killed, and grading still returns a report."""
    nb = _source("04_adam")
    _cell(nb, "adam").source += (
        "\n\nimport time\n\nwhile True:\n    try:\n        time.sleep(0.05)\n"
        "    except KeyboardInterrupt:\n        pass\n"
    )
    # the time limit leaves the cells before the loop room on a busy machine: an interrupt
    # that lands before the loop starts would stop the cell (timing, not the grader)
    report = grade_notebook(
        _write(nb, tmp_path / "04_adam.ipynb"), source_dir=SOURCE_DIR, timeout=15
    )
    assert report.score == 0 and report.max_score == 10
    stopped = "not run: the kernel could not be stopped after solution cell 'adam'"
    assert all(t.message.startswith(stopped) for t in report.tests), report.format()
    assert any("time limit" in p for p in report.problems)


def test_a_kernel_that_dies_is_reported_and_the_rest_marked_not_run(tmp_path):
    """A solution cell that kills the Python process ends the run: the tests after it are
    reported as not run, and grading still returns a report."""
    nb = _source("04_adam")
    _cell(nb, "adam").source += "\n\nimport os\n\nos._exit(1)\n"
    report = grade_notebook(_write(nb, tmp_path / "04_adam.ipynb"), source_dir=SOURCE_DIR)
    assert report.score == 0 and report.max_score == 10
    died = "not run: the kernel died in solution cell 'adam'"
    assert all(t.message == died for t in report.tests), report.format()
    assert any("kernel died" in p for p in report.problems)


# --- the command line -------------------------------------------------------------------------


def test_unreadable_notebook_exits_nonzero(tmp_path, capsys):
    """A file that is not a notebook, or no file at all, gives exit status 2 and one line."""
    broken = tmp_path / "broken.ipynb"
    broken.write_text('{"cells": [')
    assert main(["grade", str(broken), "--source", str(SOURCE_DIR)]) == 2
    assert "not a readable Jupyter notebook" in capsys.readouterr().err
    assert main(["grade", str(tmp_path / "missing.ipynb"), "--source", str(SOURCE_DIR)]) == 2
    assert "no such notebook" in capsys.readouterr().err


def test_unknown_or_undetectable_assignment_exits_nonzero(tmp_path, capsys):
    """--assignment with an unknown name, or a notebook that matches no assignment, gives exit
    status 2 and a message listing the known assignments."""
    copy = RELEASE_DIR / "04_adam.ipynb"
    assert main(["grade", str(copy), "--source", str(SOURCE_DIR), "--assignment", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown assignment 'nope'" in err and "04_adam" in err
    stranger = _write(nbformat.v4.new_notebook(), tmp_path / "essay.ipynb")
    assert main(["grade", str(stranger), "--source", str(SOURCE_DIR)]) == 2
    assert "cannot tell which assignment" in capsys.readouterr().err


def test_subcommand_wires_into_a_parent_cli(tmp_path, capsys):
    """add_subcommand adds `assignments list|release|grade|grade-all` to another parser and
    run() executes it."""
    parser = argparse.ArgumentParser(prog="vae-numpy")
    add_subcommand(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["assignments", "list", "--source", str(SOURCE_DIR)])
    assert run(args) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in NAMES) and "14 points" in listing
    out = tmp_path / "copies"
    args = parser.parse_args(
        ["assignments", "release", "--out", str(out), "--source", str(SOURCE_DIR)]
    )
    assert run(args) == 0 and sorted(p.stem for p in out.glob("*.ipynb")) == NAMES
    with pytest.raises(SystemExit):
        parser.parse_args(["assignments", "grade", "x.ipynb", "--timeout", "-1"])


def test_grade_all_writes_a_row_per_student_and_assignment_and_their_feedback(tmp_path, capsys):
    """grade-all grades a class folder into a CSV with a student column, one row per student
    and assignment, a column per test, and a feedback file per submission (text and JSON);
    an unreadable file gets an error row and exit status 1; a notebook whose metadata names
    another assignment is graded by its file name and flagged; an untouched copy's problems
    say "nothing written", not errors of read-only cells."""
    folder = tmp_path / "submissions"
    (folder / "alice").mkdir(parents=True)
    (folder / "alice" / "04_adam.ipynb").write_bytes((SOURCE_DIR / "04_adam.ipynb").read_bytes())
    old = _write(
        nbformat.read(RELEASE_DIR / "04_adam.ipynb", 4), folder / "alice" / "adam_v1.ipynb"
    )
    (folder / "bob").mkdir()
    (folder / "bob" / "adam.ipynb").write_bytes((RELEASE_DIR / "04_adam.ipynb").read_bytes())
    (folder / "carol.ipynb").write_text("not json")
    dense = _source("01_dense_layer")  # a 01 solution handed in as 04 (it scored 14/14 as 01)
    dense.metadata["vae_numpy"] = {"assignment": "01_dense_layer"}
    _write(dense, folder / "dave" / "04_adam.ipynb")
    table = tmp_path / "grades.csv"
    argv = ["grade-all", str(folder), "--csv", str(table), "--source", str(SOURCE_DIR)]
    assert main(argv) == 1
    printed = capsys.readouterr()
    rows = list(csv.DictReader(table.open(encoding="utf-8")))
    assert [(r["student"], r["submission"]) for r in rows] == [
        ("alice", "alice/04_adam.ipynb"),
        ("bob", "bob/adam.ipynb"),
        ("carol", "carol.ipynb"),
        ("dave", "dave/04_adam.ipynb"),
    ]
    alice, bob, carol, dave = rows
    assert (alice["assignment"], alice["score"], alice["max_score"]) == ("04_adam", "10", "10")
    assert f"not graded: alice/{old.name}" in alice["problems"]
    assert (bob["score"], bob["max_score"], bob["test_adam_first_step"]) == ("0", "10", "0")
    assert alice["test_adam_first_step"] == "2" and alice["error"] == ""
    assert "solution cell 'adam': nothing written" in bob["problems"]
    assert "read-only" not in bob["problems"] and "NotImplementedError" not in bob["problems"]
    assert carol["score"] == "" and "not a readable" in carol["error"]
    assert (dave["assignment"], dave["score"]) == ("04_adam", "0")
    assert "metadata says 01_dense_layer, graded as 04_adam from its file name" in dave["flags"]
    assert "1 not graded" in printed.out

    feedback = tmp_path / "grades-feedback"
    assert sorted(p.relative_to(feedback).as_posix() for p in feedback.rglob("*.*")) == [
        "alice/04_adam.json",
        "alice/04_adam.txt",
        "bob/adam.json",
        "bob/adam.txt",
        "carol.json",
        "carol.txt",
        "dave/04_adam.json",
        "dave/04_adam.txt",
    ]
    text = (feedback / "bob" / "adam.txt").read_text(encoding="utf-8")
    data = json.loads((feedback / "bob" / "adam.json").read_text(encoding="utf-8"))
    assert (data["score"], data["max_score"]) == (0, 10) and "flags" not in data
    for test in data["tests"]:  # every test with its message, in both files
        assert test["message"] and test["message"].splitlines()[0] in text
        assert f"{test['grade_id']}" in text
    assert "Total: 0 / 10 points" in text and "nothing written" in text
    assert "metadata says" not in (feedback / "dave" / "04_adam.txt").read_text()  # a flag
    assert "not a readable" in (feedback / "carol.txt").read_text()


def test_grading_kernel_runs_this_interpreter(tmp_path):
    """The grading kernel is the interpreter running the grader (sys.executable), and
    --executed writes the notebook that ran, with its outputs."""
    nb = nbformat.read(RELEASE_DIR / "04_adam.ipynb", 4)
    nb.cells.append(nbformat.v4.new_code_cell("import sys\nprint(sys.executable)"))
    executed = tmp_path / "executed.ipynb"
    submission = _write(nb, tmp_path / "04_adam.ipynb")
    grade_notebook(submission, source_dir=SOURCE_DIR, executed_path=executed)
    ran = nbformat.read(executed, 4)
    printed = [o["text"].strip() for c in ran.cells for o in c.get("outputs", []) if "text" in o]
    assert sys.executable in printed


def test_sources_are_found_from_a_checkout_or_named_with_source(tmp_path, monkeypatch, capsys):
    """find_source_dir finds notebooks/assignments/source above the current folder or the
    package; a folder without sources is refused with a message naming --source DIR."""
    from vae_numpy.assignments import SOURCE_DIR as DEFAULT

    assert DEFAULT == SOURCE_DIR and DEFAULT.is_dir()
    assert find_source_dir(SOURCE_DIR / "deep" / "below") == SOURCE_DIR
    monkeypatch.chdir(tmp_path)
    assert find_source_dir() == SOURCE_DIR  # from the package's own location (a checkout)
    elsewhere = tmp_path / "course" / "notebooks" / "assignments" / "source"
    elsewhere.mkdir(parents=True)
    (elsewhere / "01_dense_layer.ipynb").write_bytes(
        (SOURCE_DIR / "01_dense_layer.ipynb").read_bytes()
    )
    assert find_source_dir(tmp_path / "course" / "notebooks") == elsewhere
    assert main(["list", "--source", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no .ipynb in it" in err and "--source DIR" in err
    assert "notebooks/assignments/source" in err
