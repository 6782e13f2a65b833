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

How grading works (the trust model). :func:`grade_notebook` grades a submission offline. It
builds the notebook to run from the submission's solution cells, matched by ``grade_id`` (a
deleted one is replaced by the empty stub), the source's read-only cells and any code cells the
student added, and runs them -- and only them -- in a fresh IPython kernel started in a sandbox
(:mod:`~vae_numpy.assignments.sandbox`: own session, memory and process limits, and when the
machine allows it user, PID, mount and network namespaces). The *source's* test cells, visible
and hidden alike, never run in that kernel: they run in the grader's process, the judge
(:mod:`~vae_numpy.assignments.judge`), in a namespace where the student's names are handles to
objects in the kernel. Calls, attribute and item reads travel as messages; only plain values
come back (numbers, strings, numeric arrays, lists/tuples/dicts of them; JSON, never pickle),
so every comparison and the pass/fail decision use the judge's own numpy. A test cell earns its
points when it raises nothing in the judge. Read-only cells tagged ``judge`` (setup, test
helpers) run in both places. The test cells use ``TEST_SEED`` (0 in the notebook) for their
inputs; the judge sets it to a fresh seed each run. The functions and classes the assignment
asks for, listed in the source's metadata ``vae_numpy.references``, are replaced by stubs that
raise in the kernel's copy of the package while grading (:mod:`~vae_numpy.assignments.integrity`
flags code that refers to them). :func:`grade_folder` grades each notebook in its own process,
``jobs`` at a time, and flags near-identical pairs; with a shard, one of N slices of the class,
and :func:`merge_grades` joins the slices (:mod:`~vae_numpy.assignments.classroom`).

The report's fields, for scripts and tests, are listed in :mod:`~vae_numpy.assignments.grade`.

The package has one module per step: :mod:`~vae_numpy.assignments.notebooks` (reading and
finding the source notebooks, the markers, the nbgrader metadata, :func:`check_source`),
:mod:`~vae_numpy.assignments.release` (the student copies), :mod:`~vae_numpy.assignments.grade`
(running a submission and scoring it), :mod:`~vae_numpy.assignments.session` (its kernel
session: the cells run in the kernel, the tests in the judge),
:mod:`~vae_numpy.assignments.classroom` (a class folder, its shards and their merge),
:mod:`~vae_numpy.assignments.sandbox` (the student's kernel and its limits),
:mod:`~vae_numpy.assignments.isolation` (its sandbox: the mode, the command lines, the sanitised
package),
:mod:`~vae_numpy.assignments.judge` (the connection and plain values; its handles and errors
are in :mod:`~vae_numpy.assignments.handles`, its kernel-side partner is
``_agent``, the message format ``_wire``),
:mod:`~vae_numpy.assignments.integrity` (the flags; its code comparison normalises
with :mod:`~vae_numpy.assignments.canonical`, :mod:`~vae_numpy.assignments.normalize` and
:mod:`~vae_numpy.assignments.tokens`, and fingerprints with
:mod:`~vae_numpy.assignments.fingerprints`), :mod:`~vae_numpy.assignments.report` (the
results and the CSV table) and :mod:`~vae_numpy.assignments.cli` (the command line). Every
public name of the first steps is importable from ``vae_numpy.assignments`` itself.

Command line (wired into ``vae-numpy``; also ``python -m vae_numpy.assignments ...``)::

    vae-numpy assignments list
    vae-numpy assignments release --out DIR [--check]
    vae-numpy assignments grade SUBMISSION.ipynb [--assignment NAME] [--json] [--timeout SECONDS]
        [--seed N] [--notebook-timeout SECONDS] [--memory-limit SIZE] [--executed PATH]
    vae-numpy assignments grade-all DIR --csv OUT.csv [--assignment NAME] [--jobs N] [...]

References
----------
nbgrader: https://nbgrader.readthedocs.io (cell metadata, solution and hidden-test markers).
"""

from __future__ import annotations

from .classroom import grade_folder, merge_grades, usable_cores
from .cli import add_subcommand, main, run
from .grade import DEFAULT_NOTEBOOK_TIMEOUT, DEFAULT_TIMEOUT, grade_notebook
from .notebooks import (
    BEGIN_HIDDEN,
    BEGIN_SOLUTION,
    END_HIDDEN,
    END_SOLUTION,
    SOURCE_DIR,
    GradingError,
    check_source,
    find_assignment,
    find_source_dir,
    list_assignments,
    read_notebook,
)
from .release import CODE_STUB, release, release_notebook, verify_release
from .report import GradedTest, GradeReport
from .sandbox import DEFAULT_MEMORY

__all__ = [
    "SOURCE_DIR",
    "DEFAULT_TIMEOUT",
    "DEFAULT_NOTEBOOK_TIMEOUT",
    "DEFAULT_MEMORY",
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
    "find_source_dir",
    "read_notebook",
    "check_source",
    "release_notebook",
    "release",
    "verify_release",
    "grade_notebook",
    "grade_folder",
    "merge_grades",
    "usable_cores",
    "add_subcommand",
    "run",
    "main",
]
