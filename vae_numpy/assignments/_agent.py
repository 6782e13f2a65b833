"""The student's side of the judge: runs in the student's kernel and answers the judge's requests.

The judge (:mod:`~vae_numpy.assignments.judge`, in the grader's process) sends requests over a
Unix socket while the kernel runs :func:`serve` in a cell: read an attribute, an item, call,
iterate, test ``isinstance``, list the user's names. Every answer is a plain value or a handle
(see :mod:`~vae_numpy.assignments._wire`); nothing the student wrote runs in the judge. Arrays
that cross stay *linked*: after every request the agent sends the new contents of linked
arrays that student code changed in place, and applies the judge's changes before the next.

Nothing here is trusted by the judge: student code may replace this module, and then the
judge simply receives wrong or malformed answers, which it rejects or scores as wrong.
"""

from __future__ import annotations

import builtins
import linecache
import socket
import sys
import traceback
from typing import Any

import numpy as np

from ._wire import (
    DTYPES,
    MAX_ELEMENTS,
    MAX_FRAME,
    FrameTooLarge,
    array_from_wire,
    array_to_wire,
    dtype_from_wire,
    float_from_wire,
    float_to_wire,
    recv_frame,
    send_frame,
)

__all__ = ["connect", "serve", "reached"]

_HIDDEN_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}

_REACHED: list[str] = []  # withheld references that student code reached, in order


def reached(dotted: str) -> None:
    """Record that student code reached the withheld reference ``dotted`` (the stand-ins of
    :func:`~vae_numpy.assignments.sandbox.sanitized_package` call this before raising)."""
    if dotted not in _REACHED:
        _REACHED.append(dotted)


class _Agent:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.objects: dict[int, Any] = {}
        self.next_handle = 1
        self.links: dict[int, np.ndarray] = {}
        self.link_of: dict[int, int] = {}  # id(array) -> link number
        self.snapshots: dict[int, bytes] = {}
        self.next_link = 1

    # -- values out ---------------------------------------------------------------------------
    def handle(self, obj: Any) -> dict[str, int]:
        number = self.next_handle
        self.next_handle += 1
        self.objects[number] = obj
        return {"h": number}

    def link(self, array: np.ndarray) -> Any:
        number = self.link_of.get(id(array))
        if number is not None and self.links.get(number) is array:
            return {"ln": number}
        size = np.ndarray.nbytes.__get__(array)
        count = np.ndarray.size.__get__(array)
        if size > MAX_FRAME // 2 or count > MAX_ELEMENTS:  # base64 makes it 4/3 larger
            raise FrameTooLarge(
                f"return value too large: an array of {count} elements ({size} bytes), the "
                f"grader accepts at most {MAX_ELEMENTS} elements and {MAX_FRAME // 2} bytes "
                "per array"
            )
        number = self.next_link
        self.next_link += 1
        self.links[number], self.link_of[id(array)] = array, number
        spec = array_to_wire(np.ndarray.view(array, np.ndarray))
        self.snapshots[number] = np.ndarray.tobytes(array)
        return {"nd": spec, "id": number}

    def out(self, obj: Any, depth: int = 0) -> Any:
        if depth > 30:
            return self.handle(obj)
        if obj is None or obj is True or obj is False:
            return obj
        if isinstance(obj, np.bool_):
            return bool(obj)
        if isinstance(obj, int):
            return int.__index__(obj)
        if isinstance(obj, np.integer):
            return int(obj)
        if isinstance(obj, float):
            return float_to_wire(float.__float__(obj))
        if isinstance(obj, np.floating):
            return float_to_wire(float(obj))
        if isinstance(obj, str):
            return str.__str__(obj)
        if isinstance(obj, np.ndarray) and obj.dtype.name in DTYPES:
            return self.link(obj)
        if isinstance(obj, np.dtype) and obj.name in DTYPES:
            return {"dt": obj.name}
        if isinstance(obj, type) and issubclass(obj, np.generic):
            name = np.dtype(obj).name
            if name in DTYPES:
                return {"dt": name}
        if isinstance(obj, list):
            return [self.out(x, depth + 1) for x in list.__iter__(obj)]
        if isinstance(obj, tuple):
            return {"t": [self.out(x, depth + 1) for x in tuple.__iter__(obj)]}
        if isinstance(obj, dict) and all(type(k) is str for k in dict.keys(obj)):
            return {"d": [[k, self.out(v, depth + 1)] for k, v in dict.items(obj)]}
        return self.handle(obj)

    # -- values in ----------------------------------------------------------------------------
    def into(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.into(x) for x in value]
        if not isinstance(value, dict):
            return value
        if "h" in value:
            return self.objects[value["h"]]
        if "ln" in value:
            return self.links[value["ln"]]
        if "nd" in value:
            array = array_from_wire(value["nd"])
            number = value["id"]
            if number == 0:
                return array  # a copy the judge does not share
            self.links[number], self.link_of[id(array)] = array, number
            self.snapshots[number] = array.tobytes()
            return array
        if "t" in value:
            return tuple(self.into(x) for x in value["t"])
        if "d" in value:
            return {k: self.into(v) for k, v in value["d"]}
        if "f" in value:
            return float_from_wire(value["f"])
        if "dt" in value:
            return dtype_from_wire(value["dt"])
        raise ValueError(f"unknown value {value!r}")

    def apply(self, updates: list[Any]) -> None:
        for number, spec in updates:
            array = self.links[number]
            array[...] = array_from_wire(spec)
            self.snapshots[number] = np.ndarray.tobytes(array)

    def changes(self) -> list[Any]:
        out = []
        for number, array in self.links.items():
            data = np.ndarray.tobytes(array)
            if data != self.snapshots[number]:
                self.snapshots[number] = data
                out.append([number, array_to_wire(np.ndarray.view(array, np.ndarray))])
        return out

    def free(self, links: list[int], handles: list[int]) -> None:
        for number in links:
            array = self.links.pop(number, None)
            self.snapshots.pop(number, None)
            if array is not None and self.link_of.get(id(array)) == number:
                del self.link_of[id(array)]
        for number in handles:
            self.objects.pop(number, None)

    # -- requests -----------------------------------------------------------------------------
    def answer(self, request: dict[str, Any]) -> Any:
        op = request["op"]
        if op == "reached":
            return list(_REACHED)
        if op == "globals":  # the values of the names the judge asks for, those defined
            user = _user_namespace()
            return {
                "d": [
                    [name, self.out(user[name])]
                    for name in request["names"]
                    if type(name) is str and name in user and name not in _HIDDEN_NAMES
                ]
            }
        target = self.objects[request["h"]]
        if op == "get":
            return self.out(getattr(target, request["name"]))
        if op == "set":
            setattr(target, request["name"], self.into(request["value"]))
            return None
        if op == "item":
            return self.out(target[self.into(request["key"])])
        if op == "setitem":
            target[self.into(request["key"])] = self.into(request["value"])
            return None
        if op == "call":
            args = self.into(request["args"])
            kwargs = self.into(request["kwargs"])
            return self.out(target(*args, **kwargs))
        if op == "len":
            return len(target)
        if op == "iter":
            return [self.out(x) for x in target]
        if op == "bool":
            return bool(target)
        if op == "repr":
            return str.__str__(repr(target))
        if op == "str":
            return str.__str__(str(target))
        if op == "isinstance":
            return bool(isinstance(self.into(request["obj"]), target))
        if op == "issubclass":
            return bool(issubclass(self.into(request["obj"]), target))
        if op == "array":
            return self.out(np.asarray(target))
        if op == "float":
            return float_to_wire(float.__float__(float(target)))
        if op == "int":
            return int.__index__(int(target))
        raise ValueError(f"unknown request {op!r}")

    def serve(self) -> None:
        send_frame(self.sock, {"ready": True})
        while True:
            request = recv_frame(self.sock)
            if request.get("op") == "end":
                send_frame(self.sock, {"ok": None, "sync": self.changes()})
                return
            try:
                self.apply(request.get("sync", []))
                self.free(request.get("free_links", []), request.get("free_handles", []))
                reply = {"ok": self.answer(request)}
            except BaseException as exc:  # SystemExit and KeyboardInterrupt from student code too
                reply = {"err": _describe(exc)}
            try:
                reply["sync"] = self.changes()
                send_frame(self.sock, reply)
            except (OSError, EOFError):
                raise
            except BaseException as exc:  # an answer that cannot be sent
                send_frame(self.sock, {"err": _describe(exc), "sync": []})


def _user_namespace() -> dict[str, Any]:
    shell = getattr(builtins, "get_ipython", lambda: None)()
    if shell is not None:
        return dict(shell.user_ns)
    return dict(vars(sys.modules["__main__"]))


def _describe(exc: BaseException) -> list[str]:
    """``[type name, message, where]``: where is the last line of notebook code in the trace."""
    where = ""
    for frame in traceback.extract_tb(exc.__traceback__):
        name = frame.filename
        if "ipykernel_" in name or name.startswith("<ipython-input") or name.startswith("<cell"):
            line = frame.line or linecache.getline(name, frame.lineno or 0).strip()
            where = f"line {frame.lineno} of your code, in {frame.name}: {line}"
    try:
        message = str(exc)
    except Exception:  # a student's exception whose __str__ fails
        message = ""
    return [type(exc).__name__, message[:2000], where[:500]]


_AGENT: _Agent | None = None


def connect(path: str) -> None:
    """Connect to the judge listening on the Unix socket ``path`` (run once, before any student code)."""
    global _AGENT
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    _AGENT = _Agent(sock)


def serve() -> None:
    """Answer the judge's requests until it says it is done (run in a cell by the judge)."""
    if _AGENT is None:
        raise RuntimeError("the judge is not connected")
    _AGENT.serve()
