"""The judge owns its namespace and its memory, and the kernel owns nothing.

* The names a test sees from the student are the ones the source's solution cells define,
  chosen by the judge; whatever else a (patched) agent sends back is dropped.
* Messages from the kernel are decoded under caps -- bytes, values, nesting, array elements,
  no NaN literals -- before anything is built from them, and the judge's own address space is
  capped while it grades.
* Under bubblewrap the kernel runs as an unprivileged user with no capabilities, on a
  read-only system with a private /tmp and home, no network, and a working folder holding only
  its own notebook (these tests grade a probe notebook and read what it saw).
"""

from __future__ import annotations

import json
import resource
import socket
import struct
import threading
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest

from vae_numpy.assignments import GradingError, grade_notebook
from vae_numpy.assignments._agent import _Agent
from vae_numpy.assignments._wire import (
    MAX_ELEMENTS,
    MAX_VALUES,
    WireError,
    array_from_wire,
    decode_frame,
    recv_frame,
)
from vae_numpy.assignments.grade import defined_names, judge_memory_limit, solution_names
from vae_numpy.assignments.judge import Remote
from vae_numpy.assignments.sandbox import bubblewrap_available

ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIR = ROOT / "notebooks" / "assignments" / "source"

needs_bubblewrap = pytest.mark.skipif(
    not bubblewrap_available(),
    reason="bubblewrap (Debian package 'bubblewrap') is not installed or cannot start here",
)


# --- which names are the student's ---------------------------------------------------------------


def test_defined_names_are_the_top_level_bindings_of_a_cell():
    """Functions, classes, imports, assignment, loop and with targets and `global` names bind;
    a function's locals, comprehension variables and attribute assignments do not."""
    code = """
import numpy as np
from os import path as p
class Dense:
    def forward(self, x):
        y = x + 1
        return y
def helper():
    global counter
    local = 3
a, (b, c) = 1, (2, 3)
for i in range(3):
    pass
with open("f") as handle:
    pass
squares = [k * k for k in range(3)]
obj.attr = 5
"""
    assert defined_names(code) == {
        "np", "p", "Dense", "helper", "counter", "a", "b", "c", "i", "handle", "squares"
    }  # fmt: skip
    assert defined_names("def broken(:") == set()


def test_solution_names_of_the_sources_are_the_functions_students_write():
    """The names the grader takes from a kernel are those the solution cells define, without
    builtins or private names."""
    expected = {
        "01_dense_layer": {"Dense", "layer", "x", "report"},
        "03_kl_divergence": {
            "kl_normal",
            "kl_by_quad",
            "kl_standard_normal",
            "kl_standard_normal_grad",
        },
        "04_adam": {"Adam"},
        "06_importance_weighted_bound": {"log_mean_exp", "log_weights", "importance_weights"},
    }
    for name, names in expected.items():
        assert solution_names(nbformat.read(SOURCE_DIR / f"{name}.ipynb", 4)) == names, name


class _ForgingAgent(_Agent):
    """An agent patched as a student would: it adds names of its own to every answer."""

    def answer(self, request: dict[str, Any]) -> Any:
        result = super().answer(request)
        if request.get("op") == "globals":
            result["d"] += [["np", self.out(object())], ["check_layer", self.out(len)]]
            result["d"] += [["_secret", 1], ["TEST_SEED", 0]]
        return result


def test_the_judge_applies_only_the_names_it_asked_for(monkeypatch):
    """A patched agent that adds np, a test helper, a private name and TEST_SEED to its answer
    gets none of them applied: the judge keeps only the names it asked for."""
    import vae_numpy.assignments._agent as agent_module

    monkeypatch.setattr(agent_module, "_user_namespace", lambda: {"Dense": int, "extra": 3})
    judge_end, agent_end = socket.socketpair()
    agent = _ForgingAgent(agent_end)
    thread = threading.Thread(target=agent.serve, daemon=True)
    thread.start()
    remote = Remote(judge_end, interrupt=lambda: None, alive=lambda: True)
    assert remote.wait_ready(5.0, lambda: False)
    try:
        names = remote.student_names({"Dense", "missing"})
        assert set(names) == {"Dense"}  # not np, check_layer, _secret, TEST_SEED, extra
    finally:
        remote.end()
        thread.join(5)


# --- decoding under caps -----------------------------------------------------------------------


def test_a_raw_nan_or_infinity_literal_is_refused():
    """JSON's NaN, Infinity and -Infinity literals are refused (non-finite numbers travel
    tagged, and student code may not send them where numbers are expected)."""
    for literal in (b"NaN", b"Infinity", b"-Infinity", b"[1, NaN]"):
        with pytest.raises(WireError, match="raw"):
            decode_frame(b'{"ok": ' + literal + b"}")
    assert decode_frame(b'{"ok": [1.5, {"f": "nan"}]}') == {"ok": [1.5, {"f": "nan"}]}


def test_a_message_nested_200000_deep_is_refused_without_a_recursion_error():
    """A reply nested 200,000 deep is a WireError, not a RecursionError that ends grading."""
    with pytest.raises(WireError, match="nested too deeply"):
        decode_frame(b"[" * 200_000 + b"]" * 200_000)


def test_a_flood_of_tiny_values_is_refused_before_it_is_parsed():
    """More than MAX_VALUES values in one message are refused from a count of the raw bytes,
    before a Python object is built (parsing would make one per value)."""
    flood = b"[" + b"0," * MAX_VALUES + b"0]"
    with pytest.raises(WireError, match="values"):
        decode_frame(flood)
    assert len(decode_frame(b"[" + b"0," * 999 + b"0]")) == 1000


def test_an_array_over_the_element_cap_is_refused_before_memory_is_allocated():
    """An array message claiming 10^10 elements is refused by its shape alone; one whose data
    does not fill its shape is refused before its base64 is decoded."""
    with pytest.raises(WireError, match="elements"):
        array_from_wire(["float64", [100_000, 100_000], "AAAA"])
    with pytest.raises(WireError, match="does not fill"):
        array_from_wire(["float64", [1000, 1000], "AAAA"])
    side = int(MAX_ELEMENTS**0.5)
    with pytest.raises(WireError, match="elements"):
        array_from_wire(["uint8", [side + 1, side + 1], ""])
    ok = array_from_wire(["float64", [2], "AAAAAAAA8D8AAAAAAAAAQA=="])
    np.testing.assert_array_equal(ok, [1.0, 2.0])


def test_a_frame_over_the_byte_cap_is_refused_unread():
    """A frame header announcing more than MAX_FRAME bytes is refused before reading them."""
    a, b = socket.socketpair()
    try:
        a.sendall(struct.pack(">Q", 1 << 40))
        with pytest.raises(WireError, match="too large"):
            recv_frame(b)
    finally:
        a.close()
        b.close()


def test_the_judge_memory_limit_turns_a_huge_allocation_into_memory_error_then_lifts():
    """Inside judge_memory_limit a 6 GiB allocation raises MemoryError (it would otherwise be
    granted); afterwards the previous limit is back."""
    before = resource.getrlimit(resource.RLIMIT_AS)
    with judge_memory_limit(512 * 1024**2):
        with pytest.raises(MemoryError):
            np.empty((6 * 1024**3) // 8)
    assert resource.getrlimit(resource.RLIMIT_AS) == before


# --- the sandbox -------------------------------------------------------------------------------

_PROBE = r"""
import json, os, site, socket, subprocess, sys
seen = {}
status = open("/proc/self/status").read()
seen["uid"] = os.getuid()
seen["cap_eff"] = status.split("CapEff:")[1].split()[0]
seen["cwd"] = sorted(os.listdir("."))
seen["tmp"] = sorted(os.listdir("/tmp"))
seen["home"] = sorted(os.listdir(os.path.expanduser("~")))
seen["paths"] = {p: os.path.exists(p) for p in PATHS}
writes = {}
for folder in [*site.getsitepackages(), sys.prefix, "/usr", "/etc"]:
    try:
        with open(os.path.join(folder, "probe.pth"), "w") as f:
            f.write("# probe\n")
        writes[folder] = True
    except OSError:
        writes[folder] = False
seen["writes"] = writes
seen["umount"] = subprocess.run(["umount", "/usr"], capture_output=True).returncode
try:
    socket.create_connection(("127.0.0.1", PORT), timeout=2).close()
    seen["network"] = True
except OSError:
    seen["network"] = False
print("PROBE " + json.dumps(seen))
"""


def _probe(tmp_path: Path, paths: list[str], port: int, isolation: str) -> dict[str, Any]:
    nb = nbformat.read(SOURCE_DIR / "04_adam.ipynb", 4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "adam")
    cell.source = _PROBE.replace("PATHS", repr(paths)).replace("PORT", str(port)) + cell.source
    submission = tmp_path / "04_adam.ipynb"
    nbformat.write(nb, submission)
    executed = tmp_path / "executed.ipynb"
    report = grade_notebook(
        submission, source_dir=SOURCE_DIR, executed_path=executed, isolation=isolation
    )
    text = "".join(
        o.get("text", "")
        for c in nbformat.read(executed, 4).cells
        for o in c.get("outputs", [])
        if c.cell_type == "code"
    )
    line = next(x for x in text.splitlines() if x.startswith("PROBE "))
    return {"report": report, **json.loads(line.removeprefix("PROBE "))}


@pytest.mark.notebooks
@needs_bubblewrap
def test_under_bubblewrap_the_kernel_owns_nothing(tmp_path):
    """Graded under bubblewrap, student code runs as uid 65534 with no capabilities, cannot
    unmount or write to the system, Python or site-packages, has an empty /tmp and home, a
    working folder with only its notebook, sees neither the checkout, its .git, the sources nor
    the submission's folder, and reaches no address on the grader's network."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    # the checkout's folder may exist as the parent of a virtual environment inside it (CI's
    # .venv); its files may not
    hidden = [ROOT / "README.md", ROOT / ".git", ROOT / "vae_numpy", SOURCE_DIR, tmp_path]
    hidden = [str(p) for p in hidden]
    try:
        seen = _probe(tmp_path, hidden, port, "strict")
    finally:
        listener.close()
    report = seen["report"]
    assert report.isolation.startswith("bubblewrap"), report.isolation
    assert report.score == report.max_score, report.format()
    assert seen["uid"] == 65534 and int(seen["cap_eff"], 16) == 0
    assert seen["cwd"] == ["04_adam.ipynb"]
    # /tmp is private: it holds nothing of the host's but, where the grader's Python
    # environment itself lives under /tmp (CI's clone), the read-only path to it
    from vae_numpy.assignments import sandbox

    python_paths = sandbox.read_only_paths(Path(sandbox.__file__).resolve().parents[1])
    allowed = {p.relative_to("/tmp").parts[0] for p in python_paths if p.is_relative_to("/tmp")}
    assert set(seen["tmp"]) <= allowed, (seen["tmp"], allowed)
    assert set(seen["home"]) <= {".ipython", ".cache", ".config", ".local"}, seen["home"]
    assert seen["paths"] == {p: False for p in hidden}
    assert not any(seen["writes"].values()), seen["writes"]
    assert seen["umount"] != 0
    assert seen["network"] is False


@pytest.mark.notebooks
def test_strict_isolation_refuses_to_grade_without_bubblewrap(monkeypatch):
    """--isolation strict on a machine without bubblewrap stops with a message that names the
    package, instead of grading in a weaker sandbox."""
    from vae_numpy.assignments import sandbox

    monkeypatch.setenv("VAE_NUMPY_NO_BUBBLEWRAP", "1")
    sandbox.bubblewrap_available.cache_clear()
    try:
        with pytest.raises(GradingError, match="bubblewrap"):
            grade_notebook(SOURCE_DIR / "04_adam.ipynb", source_dir=SOURCE_DIR, isolation="strict")
    finally:
        sandbox.bubblewrap_available.cache_clear()


@pytest.mark.notebooks
@pytest.mark.parametrize("mode", ["namespaces", "rlimits"])
def test_the_fallback_sandboxes_still_grade_and_say_which_was_in_force(mode):
    """Without bubblewrap the grader falls back to namespaces, then rlimits; the report names
    the one in force and an honest solution still earns full marks."""
    from vae_numpy.assignments import sandbox

    if mode == "namespaces" and not sandbox.namespaces_available():
        pytest.skip("user namespaces (unshare) are not available here")
    report = grade_notebook(SOURCE_DIR / "04_adam.ipynb", source_dir=SOURCE_DIR, isolation=mode)
    assert report.isolation.startswith({"namespaces": "namespaces", "rlimits": "session"}[mode])
    assert report.score == report.max_score, report.format()


def _wait_for_output(kernel: Any, msg_id: str, text: str, seconds: float = 120.0) -> None:
    """Read the kernel's output messages until cell ``msg_id`` prints ``text`` (an event, with
    a generous bound only for a kernel that never gets there)."""
    import queue
    import time

    limit = time.monotonic() + seconds
    while time.monotonic() < limit:
        try:
            msg = kernel.kc.get_iopub_msg(timeout=1.0)
        except queue.Empty:
            continue
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream" and text in msg["content"].get("text", ""):
            return
    raise AssertionError(f"the cell never printed {text!r}")


@pytest.mark.notebooks
def test_a_kernel_that_swallows_interrupts_is_declared_dead_and_killed(tmp_path):
    """Once a cell that swallows KeyboardInterrupt is running (it says so), an interrupt at its
    deadline does not stop it; after the probe time the kernel is reported dead and killed.
    Event-driven: nothing depends on how fast the machine starts the kernel or the cell."""
    import time

    from vae_numpy.assignments.sandbox import Kernel

    kernel = Kernel(tmp_path, [])
    try:
        # it says it is looping from inside the try, so no interrupt can land before it
        code = (
            "import time\nfirst = True\nwhile True:\n    try:\n        if first:\n"
            "            first = False\n            print('looping', flush=True)\n"
            "        time.sleep(0.05)\n    except KeyboardInterrupt:\n        pass\n"
        )
        msg_id = kernel.start(code)
        _wait_for_output(kernel, msg_id, "looping")
        result = kernel.finish(msg_id, time.monotonic(), probe=1.0)
        assert result.status == "dead" and result.killed
        limit = time.monotonic() + 60
        while kernel.alive() and time.monotonic() < limit:
            time.sleep(0.1)
        assert not kernel.alive()
    finally:
        kernel.close()


@pytest.mark.notebooks
def test_a_looping_cell_that_honours_interrupts_times_out_and_the_kernel_lives(tmp_path):
    """A running cell that honours KeyboardInterrupt is interrupted at its deadline: status
    "timeout", and the same kernel then runs the next cell."""
    import time

    from vae_numpy.assignments.sandbox import Kernel

    kernel = Kernel(tmp_path, [])
    try:
        msg_id = kernel.start(
            "import time\nprint('looping', flush=True)\nwhile True: time.sleep(0.05)"
        )
        _wait_for_output(kernel, msg_id, "looping")
        assert kernel.finish(msg_id, time.monotonic(), probe=60.0).status == "timeout"
        after = kernel.run("print(6 * 7)", 120)
        assert after.status == "ok" and after.outputs[0]["text"] == "42\n"
    finally:
        kernel.close()


def test_a_non_finite_result_names_the_function_and_its_input(monkeypatch):
    """A call that returns NaN or infinity fails with a message naming the function, the input
    it was given, and what was wrong."""
    from vae_numpy.assignments.judge import Handle, StudentValueError

    def kl_normal(mu, sigma):
        return np.where(sigma < 1.0, np.nan, sigma) + mu  # NaN for sigma < 1

    judge_end, agent_end = socket.socketpair()
    agent = _Agent(agent_end)
    agent.objects[1] = kl_normal
    agent.next_handle = 2
    thread = threading.Thread(target=agent.serve, daemon=True)
    thread.start()
    remote = Remote(judge_end, interrupt=lambda: None, alive=lambda: True)
    assert remote.wait_ready(5.0, lambda: False)
    try:
        with pytest.raises(StudentValueError) as caught:
            Handle(remote, 1, "kl_normal")(np.array([0.0, 1.0]), 0.5)
        message = str(caught.value)
        assert "kl_normal([0., 1.], 0.5)" in message and "nan" in message, message
    finally:
        remote.end()
        thread.join(5)
