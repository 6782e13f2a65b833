"""The message format between the judge and the student's kernel: JSON, never pickle.

Both sides of :mod:`~vae_numpy.assignments.judge` use these functions, so the module imports
only the standard library and numpy. A message is one JSON document in a frame (an 8-byte
big-endian length, then UTF-8 bytes). Values travel as JSON with a few tagged objects:

* ``{"nd": [dtype, shape, base64]}`` -- a new numeric array (bool, int, uint or float dtype
  only; raw little-endian bytes), which both sides keep *linked* under a number;
* ``{"ln": n}`` -- an array linked earlier (the receiver uses its own copy);
* ``{"h": n}`` -- a handle: an object that lives in the kernel and stays there;
* ``{"t": [...]}`` a tuple, ``{"d": [[key, value], ...]}`` a dict with string keys,
  ``{"f": "nan" | "inf" | "-inf"}`` a non-finite float, ``{"dt": "float64"}`` a numpy dtype.

The judge decodes with :meth:`Remote.value <vae_numpy.assignments.judge.Remote.value>`:
anything that is not one of these shapes, an array whose bytes do not match its dtype and
shape, or a message nested too deep, raises :class:`WireError`.
"""

from __future__ import annotations

import base64
import json
import math
import socket
import struct
from typing import Any

import numpy as np

__all__ = [
    "WireError",
    "FrameTooLarge",
    "DTYPES",
    "MAX_FRAME",
    "MAX_VALUES",
    "MAX_ELEMENTS",
    "send_frame",
    "recv_frame",
    "decode_frame",
    "array_to_wire",
    "array_from_wire",
]

DTYPES = frozenset(
    ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
    + ["float16", "float32", "float64"]
)
"""The dtypes an array may have to cross the boundary."""

MAX_FRAME = 1 << 25
"""Bytes one message may have (32 MiB): larger ones are refused unread."""

MAX_VALUES = 1_000_000
"""JSON values (numbers, strings, lists, dicts) one message may hold; counted on the raw bytes
(commas and opening brackets) before it is parsed, so a flood of tiny values cannot make the
judge build millions of Python objects."""

MAX_ELEMENTS = 1 << 22
"""Elements one array may have (4,194,304: 32 MiB of float64); the shape is checked against
it before any memory is allocated for the array."""

MAX_DEPTH = 32  # nesting of lists, tuples and dicts in one value
_HEADER = struct.Struct(">Q")


class WireError(ValueError):
    """A message that is not one the protocol allows (the judge refuses it)."""


class FrameTooLarge(WireError):
    """A message over :data:`MAX_FRAME` bytes: refused before it is sent, or, received, its
    bytes are left unread, so the connection cannot be used any more."""


def send_frame(sock: socket.socket, message: Any) -> None:
    """Send one JSON document, length-prefixed."""
    data = json.dumps(message, allow_nan=False, separators=(",", ":")).encode("utf-8")
    if len(data) > MAX_FRAME:
        raise FrameTooLarge(
            f"return value too large: {len(data)} bytes to send, the grader accepts at most "
            f"{MAX_FRAME} bytes per answer"
        )
    sock.sendall(_HEADER.pack(len(data)) + data)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            raise EOFError("the other side closed the connection")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _refuse_constant(name: str) -> Any:
    raise WireError(f"a raw {name} in a message (non-finite numbers travel as {{'f': ...}})")


def decode_frame(data: bytes) -> Any:
    """The JSON document ``data`` under the caps: at most :data:`MAX_VALUES` values (checked
    before parsing), no ``NaN``/``Infinity`` literals, nesting the parser can follow;
    WireError for anything else."""
    values = data.count(b",") + data.count(b"[") + data.count(b"{")
    if values > MAX_VALUES:
        raise WireError(f"a message with about {values} values (the limit is {MAX_VALUES})")
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_refuse_constant)
    except RecursionError:
        raise WireError("a message nested too deeply") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WireError(f"a message that is not JSON ({exc})") from exc


def recv_frame(sock: socket.socket) -> Any:
    """Receive one JSON document; WireError when it is too large, too many values, nested
    too deep, holds a raw NaN or Infinity, or is not JSON (see :func:`decode_frame`)."""
    (size,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size))
    if size > MAX_FRAME:
        raise FrameTooLarge(
            f"return value too large: a message of {size} bytes, the limit is {MAX_FRAME}"
        )
    return decode_frame(_recv_exact(sock, size))


def array_to_wire(array: np.ndarray) -> list[Any]:
    """``[dtype, shape, base64]`` of a numeric array (little-endian, C order)."""
    name = array.dtype.name
    if name not in DTYPES:
        raise WireError(f"an array of dtype {array.dtype} (only numbers and bools can cross)")
    data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    return [name, list(array.shape), base64.b64encode(data).decode("ascii")]


def array_from_wire(spec: Any) -> np.ndarray:
    """A new writable array from ``[dtype, shape, base64]``; WireError if malformed."""
    if not (isinstance(spec, list) and len(spec) == 3):
        raise WireError("a malformed array")
    name, shape, data = spec
    if name not in DTYPES or not isinstance(data, str) or not isinstance(shape, list):
        raise WireError(f"an array of dtype {name!r} (only numbers and bools can cross)")
    if not all(type(n) is int and 0 <= n for n in shape) or len(shape) > 32:
        raise WireError("an array with a malformed shape")
    count = math.prod(shape)
    if count > MAX_ELEMENTS:
        raise WireError(
            f"an array of shape {tuple(shape)} ({count} elements; the grader accepts at most "
            f"{MAX_ELEMENTS})"
        )
    dtype = np.dtype(name).newbyteorder("<")
    if len(data) != 4 * ((count * dtype.itemsize + 2) // 3):  # before decoding anything
        raise WireError(f"an array whose data does not fill shape {tuple(shape)}")
    try:
        raw = base64.b64decode(data.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as exc:
        raise WireError("an array whose data is not base64") from exc
    if count * dtype.itemsize != len(raw):
        raise WireError(f"an array whose {len(raw)} bytes do not fill shape {tuple(shape)}")
    return np.frombuffer(raw, dtype=dtype).astype(np.dtype(name)).reshape(shape)


def float_to_wire(x: float) -> Any:
    return (
        x if math.isfinite(x) else {"f": "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")}
    )


def float_from_wire(tag: Any) -> float:
    if tag not in ("nan", "inf", "-inf"):
        raise WireError(f"a malformed float {tag!r}")
    return float(tag)


def dtype_from_wire(name: Any) -> Any:
    if name not in DTYPES:
        raise WireError(f"a dtype {name!r} that cannot cross")
    return np.dtype(name).type
