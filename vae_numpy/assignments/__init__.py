"""Classroom assignments: solution notebooks, generated student copies and an offline grader.

The assignments live as *source* notebooks in ``notebooks/assignments/source/``: the full
solution, kept green by the test suite, marked up with nbgrader's conventions so that a course
already on nbgrader can use them as they are (nbgrader itself is not needed here):

* solution regions inside student cells::

      ### BEGIN SOLUTION
      ...
      ### END SOLUTION

  which the student copy replaces with ``# YOUR CODE HERE`` / ``raise NotImplementedError()``
  at the marker's indentation (the code around the markers, e.g. ``def forward(self, x):``,
  stays);
* test cells that open with ``# Tests: N points`` and may hold a hidden part::

      ### BEGIN HIDDEN TESTS
      ...
      ### END HIDDEN TESTS

  which the student copy drops;
* nbgrader cell metadata (schema version 3) on every code cell: solution cells
  ``{"solution": true, "grade": false, "locked": false}``, test cells
  ``{"grade": true, "locked": true, "points": N}``, read-only cells ``{"locked": true}``, each
  with a unique ``grade_id``.

:func:`release` writes the student copies (solutions replaced, hidden tests removed, outputs
cleared; byte-for-byte deterministic) and :func:`verify_release` reports copies that are stale,
the way fastbook's ``clean.py --verify-only`` does.

:func:`grade_notebook` grades a submission offline. It builds the notebook to run from the
submission's solution cells, matched by ``grade_id`` (a deleted one is replaced by the empty
stub), interleaved with the *source's* test and read-only cells -- visible and hidden tests
alike, never the student's copies of them -- and keeps any code cells the student added, after
the cell they followed. It runs the result cell by cell in a fresh ``python3`` kernel of this
interpreter, in a temporary working directory, with a time limit per cell: a cell that runs out
of time is interrupted and the grading goes on. A test cell earns its points when it raises no
error; a failing one reports the exception's message, which the tests write to tell the student
what is wrong.

The package has one module per step: :mod:`~vae_numpy.assignments.notebooks` (reading and
finding the source notebooks, the markers, the nbgrader metadata, :func:`check_source`),
:mod:`~vae_numpy.assignments.release` (the student copies), :mod:`~vae_numpy.assignments.grade`
(running a submission in a kernel and scoring it), :mod:`~vae_numpy.assignments.report` (the
results and the CSV table) and :mod:`~vae_numpy.assignments.cli` (the command line). Every
public name is importable from ``vae_numpy.assignments`` itself.

Command line (wired into ``vae-numpy``; also ``python -m vae_numpy.assignments ...``)::

    vae-numpy assignments list
    vae-numpy assignments release --out DIR [--check]
    vae-numpy assignments grade SUBMISSION.ipynb [--assignment NAME] [--json] [--timeout SECONDS]
    vae-numpy assignments grade-all DIR --csv OUT.csv [--assignment NAME] [--timeout SECONDS]

References
----------
nbgrader: https://nbgrader.readthedocs.io (cell metadata, solution and hidden-test markers).
"""

from __future__ import annotations

from .cli import add_subcommand, main, run
from .grade import DEFAULT_TIMEOUT, grade_folder, grade_notebook
from .notebooks import (
    BEGIN_HIDDEN,
    BEGIN_SOLUTION,
    END_HIDDEN,
    END_SOLUTION,
    SOURCE_DIR,
    GradingError,
    check_source,
    find_assignment,
    list_assignments,
    read_notebook,
)
from .release import CODE_STUB, release, release_notebook, verify_release
from .report import GradedTest, GradeReport

__all__ = [
    "SOURCE_DIR",
    "DEFAULT_TIMEOUT",
    "CODE_STUB",
    "BEGIN_SOLUTION",
    "END_SOLUTION",
    "BEGIN_HIDDEN",
    "END_HIDDEN",
    "GradingError",
    "GradedTest",
    "GradeReport",
    "list_assignments",
    "find_assignment",
    "read_notebook",
    "check_source",
    "release_notebook",
    "release",
    "verify_release",
    "grade_notebook",
    "grade_folder",
    "add_subcommand",
    "run",
    "main",
]
