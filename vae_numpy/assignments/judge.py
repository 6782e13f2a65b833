"""The judge's side of the process boundary: handles to the student's objects, plain values back.

Test cells run in the grader's process, in a namespace where every name the student's cells
defined is a :class:`Handle` to an object that lives in the student's kernel, or the plain value
it holds. Calling a handle, reading one of its attributes or items, iterating over it, asking
``isinstance`` of it, all travel as messages to the kernel (:mod:`~vae_numpy.assignments._agent`
answers them); what comes back is a plain value -- ``None``, bool, int, float, str, a numeric
numpy array, a list, tuple or dict (string keys) of those -- or another handle. Anything else
is refused with :class:`StudentValueError`: objects never become values in the judge, so an
"always equal" object or a patched ``np.allclose`` in the kernel cannot decide a comparison;
every comparison uses the judge's own numpy. Non-finite floats from student code are refused
too, with a message saying so.

Arrays the test passes as arguments of a call are copies: what student code does to them in the
kernel never reaches the test's arrays, so a ``forward`` that zeroes its input cannot make the
test compare zeros with zeros. Two kinds of arrays stay *linked* across the boundary (before each
request the judge sends the ones it changed in place, with each answer it receives the ones
student code changed in place): arrays that come from the kernel (``layer.params["W"]``: the
student's own state, e.g. a finite-difference step on a parameter), and arrays the test hands
to a class, a name starting with a capital letter (``Adam(params)``): the object takes them
over as a model's parameters, and its in-place updates are meant to be seen. The rule is the
judge's: a kernel that answers otherwise cannot change an array the test did not share.
An exception raised by student code is raised in the judge as :class:`StudentError` (a
subclass of the builtin exception of the same name when there is one, so that ``except
ValueError`` in a test still works), carrying the line of the student's code where it
happened.

:class:`Handle` and the exceptions are in :mod:`~vae_numpy.assignments.handles` (importable
from here too); this module holds the connection, :class:`Remote`.
"""

from __future__ import annotations

import socket
import time
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from ._wire import (
    FrameTooLarge,
    WireError,
    array_from_wire,
    array_to_wire,
    dtype_from_wire,
    float_from_wire,
    recv_frame,
    send_frame,
)
from .handles import (
    Handle,
    KernelGone,
    NonFiniteValue,
    StudentError,
    StudentTimeout,
    StudentValueError,
    named,
    student_error,
)

__all__ = [
    "Remote",
    "Handle",
    "StudentError",
    "StudentValueError",
    "NonFiniteValue",
    "StudentTimeout",
    "KernelGone",
]


class Remote:
    """The judge's connection to one kernel's agent: requests out, plain values back.

    ``interrupt`` is called when a request runs past ``deadline`` (a ``time.monotonic()``
    instant); ``kill`` when the kernel does not answer within ``grace`` seconds after that.
    """

    def __init__(
        self,
        sock: socket.socket,
        *,
        interrupt: Callable[[], None],
        alive: Callable[[], bool],
        grace: float = 5.0,
    ) -> None:
        self.sock = sock
        self.interrupt, self.alive, self.grace = interrupt, alive, grace
        self.deadline = float("inf")
        self.timeout_seconds = 0.0
        self.links: dict[int, weakref.ReferenceType[np.ndarray]] = {}
        self.link_of: dict[int, int] = {}
        self.snapshots: dict[int, bytes] = {}
        self.next_link = -1
        self.free_links: list[int] = []
        self.free_handles: list[int] = []
        self.dead = ""
        self.requests = 0
        self.interrupted = False

    # -- values to the kernel -------------------------------------------------------------------
    def _forget(self, number: int) -> None:
        self.links.pop(number, None)
        self.snapshots.pop(number, None)
        self.free_links.append(number)

    def _register(self, number: int, array: np.ndarray) -> None:
        def forget(_: Any, n: int = number) -> None:
            self._forget(n)

        self.links[number] = weakref.ref(array, forget)
        self.link_of[id(array)] = number
        self.snapshots[number] = array.tobytes()

    def send_value(self, value: Any, depth: int = 0, *, share: bool = True) -> Any:
        """The wire form of a judge value (plain values and handles only); with ``share``
        False, arrays not already linked go as copies that student code cannot write back."""
        if depth > 30:
            raise TypeError("a value nested too deeply to send to the student's code")
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, Handle):
            if value._remote is not self:
                raise TypeError("a handle from another kernel")
            return {"h": value._id}
        if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
            return int(value)
        if isinstance(value, np.bool_):
            return bool(value)
        if isinstance(value, (float, np.floating)):
            x = float(value)
            return x if np.isfinite(x) else {"f": repr(x)}
        if isinstance(value, np.ndarray):
            number = self.link_of.get(id(value))
            if number is not None:
                ref = self.links.get(number)
                if ref is not None and ref() is value:
                    return {"ln": number}
            if not share:
                return {"nd": array_to_wire(value), "id": 0}
            number, self.next_link = self.next_link, self.next_link - 1
            spec = array_to_wire(value)
            self._register(number, value)
            return {"nd": spec, "id": number}
        if isinstance(value, np.dtype) or (
            isinstance(value, type) and issubclass(value, np.generic)
        ):
            return {"dt": np.dtype(value).name}
        if isinstance(value, list):
            return [self.send_value(v, depth + 1, share=share) for v in value]
        if isinstance(value, tuple):
            return {"t": [self.send_value(v, depth + 1, share=share) for v in value]}
        if isinstance(value, dict) and all(type(k) is str for k in value):
            return {
                "d": [[k, self.send_value(v, depth + 1, share=share)] for k, v in value.items()]
            }
        raise TypeError(
            f"cannot send a {type(value).__name__} to the student's code: only plain values "
            "(numbers, strings, numeric arrays, lists, tuples and dicts of them) and the "
            "student's own objects can cross"
        )

    # -- values from the kernel -----------------------------------------------------------------
    def _array(self, array: np.ndarray) -> np.ndarray:
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            bad = "nan" if np.isnan(array).any() else "inf"
            raise NonFiniteValue(
                f"your code produced an array with non-finite values ({bad}) where finite "
                "numbers were expected"
            )
        return array

    def value(self, wire: Any, depth: int = 0) -> Any:
        """A judge value from its wire form; WireError for anything not allowed."""
        if depth > 32:
            raise WireError("a value nested too deeply")
        if wire is None or isinstance(wire, (bool, str, int)):
            return wire
        if isinstance(wire, float):
            return wire
        if isinstance(wire, list):
            return [self.value(v, depth + 1) for v in wire]
        if not isinstance(wire, dict) or len(wire) not in (1, 2):
            raise WireError("a malformed value")
        if "h" in wire and type(wire["h"]) is int:
            return Handle(self, wire["h"])
        if "ln" in wire and type(wire["ln"]) is int:
            ref = self.links.get(wire["ln"])
            array = ref() if ref is not None else None
            if array is None:
                raise WireError("a link to an array the judge no longer has")
            return self._array(array)
        if "nd" in wire and type(wire.get("id")) is int and wire["id"] > 0:
            if wire["id"] in self.links:
                raise WireError("a new array under a number already in use")
            array = self._array(array_from_wire(wire["nd"]))
            self._register(wire["id"], array)
            return array
        if "t" in wire and isinstance(wire["t"], list):
            return tuple(self.value(v, depth + 1) for v in wire["t"])
        if "d" in wire and isinstance(wire["d"], list):
            out = {}
            for item in wire["d"]:
                if not (isinstance(item, list) and len(item) == 2 and type(item[0]) is str):
                    raise WireError("a malformed dict")
                out[item[0]] = self.value(item[1], depth + 1)
            return out
        if "f" in wire:
            x = float_from_wire(wire["f"])
            raise NonFiniteValue(f"your code returned {x}, where a finite number was expected")
        if "dt" in wire:
            return dtype_from_wire(wire["dt"])
        raise WireError("a malformed value")

    def _changed(self) -> list[Any]:
        out = []
        for number, ref in list(self.links.items()):
            array = ref()
            if array is None:
                continue
            data = array.tobytes()
            if data != self.snapshots[number]:
                self.snapshots[number] = data
                out.append([number, array_to_wire(array)])
        return out

    def _apply(self, updates: Any) -> None:
        if not isinstance(updates, list):
            raise WireError("malformed array updates")
        for item in updates:
            if not (isinstance(item, list) and len(item) == 2 and type(item[0]) is int):
                raise WireError("a malformed array update")
            ref = self.links.get(item[0])
            array = ref() if ref is not None else None
            if array is None:
                continue  # the judge dropped it meanwhile
            new = array_from_wire(item[1])
            if new.shape != array.shape:
                raise WireError("an array update of another shape")
            array[...] = new
            self.snapshots[item[0]] = array.tobytes()
            self._array(array)

    # -- requests -------------------------------------------------------------------------------
    def request(self, op: str, **fields: Any) -> Any:
        """Send one request; return the answer as a judge value, or raise what the student's
        code raised (as a StudentError)."""
        if self.dead:
            raise KernelGone("RuntimeError", self.dead, "")
        message = {"op": op, **fields, "sync": self._changed()}
        if self.free_links or self.free_handles:
            message["free_links"], self.free_links = self.free_links, []
            message["free_handles"], self.free_handles = self.free_handles, []
        self.requests += 1
        self.interrupted = False
        try:
            send_frame(self.sock, message)
            reply = self._receive()
        except (OSError, EOFError) as exc:
            self.dead = f"the student's kernel stopped answering ({exc})"
            raise KernelGone("RuntimeError", self.dead, "") from None
        except FrameTooLarge as exc:  # its bytes are still in the socket: no later answer is read
            self.dead = f"the student's kernel sent too much ({exc})"
            raise KernelGone("RuntimeError", self.dead, "") from None
        if not isinstance(reply, dict):
            raise WireError("a malformed reply")
        self._apply(reply.get("sync", []))
        if "err" in reply:
            err = reply["err"]
            if not (
                isinstance(err, list) and len(err) == 3 and all(isinstance(e, str) for e in err)
            ):
                raise WireError("a malformed error")
            name, message_text, where = err
            if name == "KeyboardInterrupt" and self.interrupted:
                raise StudentTimeout(
                    "TimeoutError",
                    f"your code ran longer than the time limit of {self.timeout_seconds:g} s and "
                    "was interrupted (an infinite loop?)",
                    where,
                )
            raise student_error(name, message_text, where)
        if "ok" not in reply:
            raise WireError("a malformed reply")
        return self.value(reply["ok"])

    def _receive(self) -> Any:
        interrupted_at: float | None = None
        while True:
            now = time.monotonic()
            limit = self.deadline if interrupted_at is None else interrupted_at + self.grace
            self.sock.settimeout(max(0.01, min(limit - now, 1.0)))
            try:
                return recv_frame(self.sock)
            except TimeoutError:
                pass
            finally:
                self.sock.settimeout(None)
            if not self.alive():
                raise EOFError("the kernel died")
            now = time.monotonic()
            if interrupted_at is None and now >= self.deadline:
                self.interrupted = True
                self.interrupt()
                interrupted_at = now
            elif interrupted_at is not None and now >= interrupted_at + self.grace:
                raise EOFError("the kernel did not stop after an interrupt")

    def wait_ready(self, seconds: float, finished: Callable[[], bool]) -> bool:
        """Wait for the agent to start serving; False when the cell ``finished`` without it or
        ``seconds`` pass."""
        limit = time.monotonic() + seconds
        while time.monotonic() < limit:
            self.sock.settimeout(0.05)
            try:
                hello = recv_frame(self.sock)
            except TimeoutError:
                if finished():
                    return False
                continue
            except (OSError, EOFError, WireError):
                return False
            finally:
                self.sock.settimeout(None)
            return hello == {"ready": True}
        return False

    def end(self) -> None:
        """Tell the agent to stop serving (its cell then finishes)."""
        if self.dead:
            return
        try:
            send_frame(self.sock, {"op": "end"})
            reply = self._receive()
            if isinstance(reply, dict):
                self._apply(reply.get("sync", []))
        except Exception as exc:  # whatever the kernel sent, grading goes on to a report
            self.dead = f"the student's kernel stopped answering ({exc})"

    def student_names(self, wanted: set[str] | frozenset[str]) -> dict[str, Any]:
        """The values of the student's global names in ``wanted`` that the kernel defines, as
        handles or plain values. The judge alone chooses ``wanted``; a name the kernel adds to
        its answer is dropped, never applied."""
        names = self.request("globals", names=sorted(wanted))
        if not isinstance(names, dict):
            raise WireError("the list of names is not a dict")
        return {name: named(value, name) for name, value in names.items() if name in wanted}
