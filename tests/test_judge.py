"""The judge outside the student's process: plain values across, handles for everything else,
linked arrays, refused messages, withheld references, integrity flags, and grading that a
hostile submission cannot steer.

The protocol tests run the kernel-side agent in a thread on one end of a socket pair (no
kernel, milliseconds); the tests marked ``notebooks`` grade real notebooks in kernels.
"""

from __future__ import annotations

import csv
import json
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest

from vae_numpy.assignments import grade_notebook, main
from vae_numpy.assignments._agent import _Agent
from vae_numpy.assignments._wire import WireError, array_to_wire
from vae_numpy.assignments.integrity import (
    DEFAULT_SIMILARITY,
    code_tokens,
    copy_flag,
    own_tokens,
    reference_flags,
    renamed_tokens,
    similarity,
)
from vae_numpy.assignments.judge import Handle, Remote, StudentError, StudentValueError
from vae_numpy.assignments.sandbox import sanitized_package

ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIR = ROOT / "notebooks" / "assignments" / "source"
RELEASE_DIR = ROOT / "notebooks" / "assignments" / "release"


# --- the protocol, with the agent in a thread ---------------------------------------------------


class _Pair:
    """A Remote in this thread talking to an _Agent serving in another."""

    def __init__(self, objects: dict[int, Any]) -> None:
        judge_end, agent_end = socket.socketpair()
        self.agent = _Agent(agent_end)
        self.agent.objects.update(objects)
        self.agent.next_handle = max(objects, default=0) + 1
        self.thread = threading.Thread(target=self.agent.serve, daemon=True)
        self.thread.start()
        self.remote = Remote(judge_end, interrupt=lambda: None, alive=lambda: True)
        self.remote.wait_ready(5.0, lambda: False)

    def handle(self, number: int, name: str = "") -> Handle:
        return Handle(self.remote, number, name)

    def close(self) -> None:
        self.remote.end()
        self.thread.join(5)


@pytest.fixture
def pair():
    made: list[_Pair] = []

    def make(**objects: Any) -> _Pair:
        made.append(_Pair(dict(enumerate(objects.values(), start=1))))
        return made[-1]

    yield make
    for p in made:
        p.close()


def test_calls_return_plain_values_and_arguments_are_copies(pair):
    """A call returns numbers, strings, tuples, dicts and arrays as judge values; an array the
    test passes is a copy: student code changing it in place cannot change the test's array."""

    def scale_in_place(a, factor):
        a *= factor
        return {"sum": float(a.sum()), "shape": a.shape, "label": "done"}

    p = pair(f=scale_in_place)
    f = p.handle(1, "scale_in_place")
    a = np.arange(4.0)
    out = f(a, 2)
    assert out == {"sum": 12.0, "shape": (4,), "label": "done"}
    np.testing.assert_array_equal(a, [0.0, 1.0, 2.0, 3.0])  # the kernel's change stayed there
    a[0] = 100.0
    assert f(a, 1)["sum"] == 106.0  # the judge's array as it is now, sent again


def test_arrays_given_to_a_class_or_read_from_the_kernel_stay_linked_both_ways(pair):
    """Arrays handed to a class (Adam(params)) and arrays read from the student's objects are
    shared: in-place changes on either side reach the other before the next request."""

    class Scaler:
        def __init__(self, params):
            self.params = params

        def step(self, factor):
            for value in self.params.values():
                value *= factor

    p = pair(Scaler=Scaler)
    params = {"w": np.arange(3.0)}
    scaler = p.handle(1, "Scaler")(params)
    scaler.step(2.0)
    np.testing.assert_array_equal(params["w"], [0.0, 2.0, 4.0])  # the update came back
    held = scaler.params["w"]
    assert held is params["w"]
    held[0] = 7.0  # a judge-side change in place reaches the kernel before the next call
    scaler.step(1.0)
    assert float(np.sum(scaler.params["w"])) == 13.0


def test_a_return_value_too_large_is_refused_with_a_message_and_the_next_call_works(
    pair, monkeypatch
):
    """An array over the size limit comes back as a clear "return value too large" error, not
    sent at all, and the connection still answers the next call."""
    monkeypatch.setattr("vae_numpy.assignments._agent.MAX_FRAME", 4000)
    p = pair(big=lambda n: np.zeros(n))
    big = p.handle(1, "big")
    with pytest.raises(StudentError, match="return value too large"):
        big(1000)
    np.testing.assert_array_equal(big(3), np.zeros(3))


def test_objects_stay_handles_and_cannot_claim_equality(pair):
    """A student's object that says it equals everything is a handle in the judge: == is
    identity, and turning it into an array or a number is refused."""

    class AlwaysEqual:
        def __eq__(self, other):
            return True

        def __array__(self, *args, **kwargs):
            return np.array([object()])

        def __float__(self):
            return "not a float"

    p = pair(make=AlwaysEqual)
    obj = p.handle(1)()
    assert isinstance(obj, Handle)
    assert not (obj == 0) and obj != 0
    with pytest.raises((StudentValueError, StudentError)):
        np.asarray(obj)
    with pytest.raises((StudentError, TypeError)):
        float(obj)
    assert not np.allclose(np.zeros(3), np.ones(3))  # the judge's numpy is its own


def test_ndarray_and_float_subclasses_arrive_as_plain_values(pair):
    """An ndarray or float subclass with a lying __eq__ arrives as a plain ndarray or float."""

    class Liar(np.ndarray):
        def __eq__(self, other):
            return np.ones(np.shape(self), dtype=bool)

    class LiarFloat(float):
        def __eq__(self, other):
            return True

    p = pair(a=lambda: np.zeros(3).view(Liar), x=lambda: LiarFloat(1.5))
    a, x = p.handle(1)(), p.handle(2)()
    assert type(a) is np.ndarray and not np.array_equal(a, np.ones(3))
    assert type(x) is float and x != 2.0


def test_non_finite_results_are_refused_with_a_message(pair):
    """NaN or inf from student code is refused, saying so."""
    p = pair(f=lambda: np.array([1.0, np.nan]), g=lambda: float("inf"))
    with pytest.raises(StudentValueError, match="non-finite"):
        p.handle(1)()
    with pytest.raises(StudentValueError, match="finite"):
        p.handle(2)()


def test_student_exceptions_keep_their_builtin_type(pair):
    """A ValueError raised by student code is a ValueError in the judge (and a StudentError),
    so `except ValueError` in a test works; SystemExit does not end the agent."""
    import sys as _sys

    def bad(x):
        raise ValueError(f"shapes do not match: {x}")

    p = pair(bad=bad, leave=lambda: _sys.exit(3), ok=lambda: 7)
    with pytest.raises(ValueError, match="shapes do not match: 1") as info:
        p.handle(1)(1)
    assert isinstance(info.value, StudentError)
    with pytest.raises(StudentError):
        p.handle(2)()
    assert p.handle(3)() == 7


def test_malformed_messages_are_refused():
    """Arrays whose bytes do not fit their shape, object dtypes, unknown tags and links to
    unknown arrays are refused by the judge's decoder."""
    remote = Remote(socket.socket(), interrupt=lambda: None, alive=lambda: True)
    good = array_to_wire(np.arange(3.0))
    for wire in [
        {"nd": ["float64", [4], good[2]], "id": 1},
        {"nd": ["object", [3], good[2]], "id": 2},
        {"nd": good, "id": -1},
        {"ln": 99},
        {"pickle": "gASV"},
        {"d": [[1, 2]]},
    ]:
        with pytest.raises(WireError):
            remote.value(wire)
    with pytest.raises(WireError):
        array_to_wire(np.array([object()]))


def test_the_agent_sends_nothing_but_json(pair):
    """Even a reply the agent cannot encode is an error message, never a pickle."""
    p = pair(f=lambda: {1: "int keys"})
    assert isinstance(p.handle(1)(), Handle)  # a dict with non-string keys stays a handle


# --- references and flags ----------------------------------------------------------------------


def test_sanitized_package_withholds_references_however_reached(tmp_path):
    """In the sanitised copy, the reference raises with a message when called, instantiated,
    subclassed, re-imported after deleting it from sys.modules, or loaded from its file."""
    site = sanitized_package(["vae_numpy.kl.kl_normal", "vae_numpy.optim.Adam"], tmp_path)
    probe = """
import importlib, importlib.util, sys
import vae_numpy.kl as kl
from vae_numpy.optim import Adam
results = []
for attempt in (
    lambda: kl.kl_normal(0.0, 1.0),
    lambda: Adam({}),
    lambda: type("Mine", (Adam,), {}),
    lambda: (sys.modules.pop("vae_numpy.kl"), importlib.import_module("vae_numpy.kl"))[1].kl_normal(0, 1),
):
    try:
        attempt()
        results.append("ran")
    except RuntimeError as exc:
        results.append(str(exc))
spec = importlib.util.spec_from_file_location("vae_numpy.fresh", kl.__file__)
fresh = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fresh)
try:
    fresh.kl_normal(0, 1)
    results.append("ran")
except RuntimeError as exc:
    results.append(str(exc))
print("\\n".join(results))
"""
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert len(lines) == 5 and "ran" not in lines, done.stdout + done.stderr
    assert "vae_numpy.kl.kl_normal is the reference for this assignment" in lines[0]
    assert "vae_numpy.optim.Adam is the reference" in lines[1]


def test_reference_flags_find_imports_attributes_and_strings():
    """The static scan flags `from m import f`, `m.f`, and getattr with the name as a string;
    the student's own function of the same name is not flagged."""
    refs = ["vae_numpy.kl.kl_normal"]
    for code in [
        "from vae_numpy.kl import kl_normal",
        "import vae_numpy.kl\nf = vae_numpy.kl.kl_normal",
        "import importlib\nm = importlib.import_module('vae_numpy.kl')\nf = getattr(m, 'kl_normal')",
        "from vae_numpy import kl as k\nf = k.kl_normal",
    ]:
        assert reference_flags([("cell", code)], refs), code
    own = (
        "import numpy as np\ndef kl_normal(mu, sigma, m=0.0, s=1.0):\n    return np.log(s / sigma)"
    )
    assert reference_flags([("cell", own)], refs) == []


def test_copy_flag_catches_the_published_solution_not_the_stub():
    """The source's own solution is flagged as a near-copy; the released stub is not; token
    similarity ignores layout."""
    from vae_numpy.assignments.grade import compose

    source = nbformat.read(SOURCE_DIR / "03_kl_divergence.ipynb", 4)
    stub = nbformat.read(RELEASE_DIR / "03_kl_divergence.ipynb", 4)
    composed, roles, _ = compose(source, source)
    assert copy_flag(source, composed, roles) is not None
    composed, roles, _ = compose(source, stub)
    assert copy_flag(source, composed, roles) is None
    assert len(own_tokens(source, composed, roles)) < 10
    assert similarity(code_tokens("x = a+b  # sum"), code_tokens("x = a + b # SUM")) == 1.0
    assert similarity(code_tokens("x = sum(a) + b"), code_tokens("y = np.exp(c) - 1")) < 0.5


_PUBLISHED_ADAM = """
self.t += 1
for name, p in self.params.items():
    g = grads[name]
    self.m[name] = self.beta1 * self.m[name] + (1 - self.beta1) * g
    self.v[name] = self.beta2 * self.v[name] + (1 - self.beta2) * g * g
    m_hat = self.m[name] / (1 - self.beta1**self.t)  # bias-corrected
    v_hat = self.v[name] / (1 - self.beta2**self.t)
    p -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)
"""


def test_similarity_sees_through_renamed_variables_but_not_independent_work():
    """The published Adam with its local names changed and comments deleted is still flagged
    as alike; Adam written independently from the paper is not."""
    renamed = _PUBLISHED_ADAM.replace("name", "key").replace("m_hat", "first")
    renamed = renamed.replace("v_hat", "second").replace("  # bias-corrected", "")
    renamed = renamed.replace("g = ", "grad = ").replace("* g", "* grad")
    independent = """
self.t = self.t + 1
b1, b2 = self.beta1, self.beta2
for k in self.params:
    grad = grads[k]
    self.m[k] = b1 * self.m[k] + (1 - b1) * grad
    self.v[k] = b2 * self.v[k] + (1 - b2) * grad ** 2
    mhat = self.m[k] / (1 - b1 ** self.t)
    vhat = self.v[k] / (1 - b2 ** self.t)
    self.params[k] -= self.lr * mhat / (np.sqrt(vhat) + self.eps)
"""
    published = code_tokens(_PUBLISHED_ADAM)
    assert renamed_tokens(code_tokens(renamed)) == renamed_tokens(published)
    assert similarity(code_tokens(renamed), published) >= DEFAULT_SIMILARITY
    assert similarity(code_tokens(independent), published) < DEFAULT_SIMILARITY


# --- grading real notebooks ----------------------------------------------------------------------


def _solution_with(name: str, grade_id: str, code: str, path: Path) -> Path:
    nb = nbformat.read(SOURCE_DIR / f"{name}.ipynb", 4)
    next(
        c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id
    ).source = code
    nbformat.write(nb, path)
    return path


@pytest.mark.notebooks
def test_reference_import_earns_nothing_and_is_flagged(tmp_path):
    """Importing the library's Adam for assignment 04 scores 0: in the kernel it is a stub
    that says why; the report flags it and records seed and isolation."""
    path = _solution_with(
        "04_adam", "adam", "from vae_numpy.optim import Adam", tmp_path / "04_adam.ipynb"
    )
    report = grade_notebook(path, source_dir=SOURCE_DIR, timeout=20)
    assert report.score == 0, report.format()
    assert any("unavailable while grading" in t.message for t in report.tests)
    assert any("reference implementation used: vae_numpy.optim.Adam" in f for f in report.flags)
    assert isinstance(report.seed, int) and report.isolation


@pytest.mark.notebooks
def test_the_seed_reproduces_a_grade_and_tests_never_run_in_the_kernel(tmp_path, capsys):
    """--seed N gives the same report twice; an input transformer that empties every later
    cell (which once scored 10/10) scores 0 because tests run in the judge."""
    path = _solution_with(
        "04_adam",
        "adam",
        "get_ipython().input_transformers_cleanup.append(lambda lines: ['pass\\n'])",
        tmp_path / "04_adam.ipynb",
    )
    reports = []
    for _ in range(2):
        assert (
            main(["grade", str(path), "--source", str(SOURCE_DIR), "--seed", "123", "--json"]) == 0
        )
        reports.append(json.loads(capsys.readouterr().out))
    keys = {"assignment", "score", "max_score", "tests", "problems", "flags", "seed", "isolation"}
    assert keys <= set(reports[0])
    assert reports[0]["seed"] == reports[1]["seed"] == 123
    assert reports[0]["score"] == 0
    assert [t["message"] for t in reports[0]["tests"]] == [
        t["message"] for t in reports[1]["tests"]
    ]


@pytest.mark.notebooks
def test_grade_all_survives_a_submission_that_kills_its_parent(tmp_path, capsys):
    """With --jobs 2, a submission that kills its parent process costs only its own row; the
    CSV has the problems and flags columns and the honest row has full marks."""
    folder = tmp_path / "class"
    for student in ("honest", "killer"):
        (folder / student).mkdir(parents=True)
    name = "02_reparameterization.ipynb"
    (folder / "honest" / name).write_bytes((SOURCE_DIR / name).read_bytes())
    nb = nbformat.read(SOURCE_DIR / "02_reparameterization.ipynb", 4)
    cell = next(
        c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "moment_check"
    )
    cell.source = "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n" + cell.source
    nbformat.write(nb, folder / "killer" / name)
    table = tmp_path / "grades.csv"
    status = main(
        ["grade-all", str(folder), "--csv", str(table), "--source", str(SOURCE_DIR), "--jobs", "2"]
    )
    assert status == 0
    rows = {r["submission"]: r for r in csv.DictReader(table.open(encoding="utf-8"))}
    honest = rows[f"honest/{name}"]
    assert honest["score"] == "11" and honest["student"] == "honest"
    assert {"problems", "flags", "seed"} <= set(honest)
    assert f"near-identical to killer/{name}" in honest["flags"]


@pytest.mark.notebooks
@pytest.mark.parametrize("name", sorted(p.stem for p in SOURCE_DIR.glob("*.ipynb")))
def test_source_notebooks_still_run_in_process_as_under_nbgrader(name, tmp_path):
    """Run top to bottom in one kernel, tests included (as Jupyter or nbgrader would), every
    cell of a source notebook succeeds: the tests call the student's code directly there."""
    from vae_numpy.assignments.sandbox import Kernel

    nb = nbformat.read(SOURCE_DIR / f"{name}.ipynb", 4)
    kernel = Kernel(tmp_path, [])
    try:
        for cell in nb.cells:
            if cell.cell_type == "code":
                result = kernel.run(cell.source, 120)
                assert result.status == "ok", (cell.source[:80], result.ename, result.evalue)
    finally:
        kernel.close()


@pytest.mark.notebooks
def test_without_namespaces_the_session_sandbox_still_grades(tmp_path, monkeypatch):
    """With bubblewrap and namespaces turned off the kernel runs in its own session with
    rlimits, the report says so, and the solution still earns full marks."""
    from vae_numpy.assignments import sandbox

    monkeypatch.setenv("VAE_NUMPY_NO_NAMESPACES", "1")
    monkeypatch.setenv("VAE_NUMPY_NO_BUBBLEWRAP", "1")
    sandbox.namespaces_available.cache_clear()
    sandbox.bubblewrap_available.cache_clear()
    try:
        report = grade_notebook(SOURCE_DIR / "04_adam.ipynb", source_dir=SOURCE_DIR)
    finally:
        sandbox.namespaces_available.cache_clear()
        sandbox.bubblewrap_available.cache_clear()
    assert report.isolation.startswith("session+rlimits"), report.isolation
    assert report.score == report.max_score, report.format()


def test_a_reexported_reference_is_withheld_where_it_is_defined_too(tmp_path):
    """Withholding vae_numpy.data.two_moons (defined in vae_numpy.toy, re-exported by data)
    stubs it in both modules, so neither route reaches the real function."""
    site = sanitized_package(["vae_numpy.data.two_moons"], tmp_path)
    probe = (
        "import vae_numpy.data, vae_numpy.toy\n"
        "for f in (vae_numpy.data.two_moons, vae_numpy.toy.two_moons):\n"
        "    try:\n        f(10)\n        print('ran')\n"
        "    except RuntimeError as exc:\n        print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and all("vae_numpy.data.two_moons is the reference" in x for x in lines)


@pytest.mark.parametrize("name", sorted(p.stem for p in SOURCE_DIR.glob("*.ipynb")))
def test_every_declared_reference_exists_in_the_library(name):
    """Each assignment declares the library's versions of what the student writes, and each
    declared name exists (a refactoring that moves one must update the list)."""
    import importlib

    nb = nbformat.read(SOURCE_DIR / f"{name}.ipynb", 4)
    references = nb.metadata["vae_numpy"]["references"]
    assert references
    for dotted in references:
        module, _, attr = dotted.rpartition(".")
        assert callable(getattr(importlib.import_module(module), attr, None)), dotted


@pytest.mark.notebooks
def test_the_solutions_are_out_of_reach_while_grading(tmp_path):
    """A submission that reads the source notebook, through importlib.resources or by its
    path, and runs its solution earns nothing: bubblewrap shows the kernel neither, and with
    namespaces an empty folder covers them."""
    code = f"""
import importlib.resources, json, pathlib
routes = (
    lambda: importlib.resources.files("vae_numpy._notebooks") / "assignments/source/04_adam.ipynb",
    lambda: pathlib.Path({str(SOURCE_DIR / "04_adam.ipynb")!r}),
)
stolen = None
for route in routes:
    try:
        stolen = json.loads(route().read_text())
        break
    except Exception:
        pass
for cell in (stolen or {{}}).get("cells", []):
    if cell["metadata"].get("nbgrader", {{}}).get("grade_id") == "adam":
        exec("".join(cell["source"]))
"""
    path = _solution_with("04_adam", "adam", code, tmp_path / "04_adam.ipynb")
    report = grade_notebook(path, source_dir=SOURCE_DIR, timeout=20)
    if not report.isolation.startswith(("bubblewrap", "namespaces")):
        pytest.skip("without bubblewrap or namespaces the kernel can read the sources")
    assert report.score == 0, report.format()
