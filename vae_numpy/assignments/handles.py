"""The judge's handles and the errors it raises: :class:`Handle` (an object that lives in the
student's kernel; using it sends messages there) and :class:`StudentError` with its subclasses.

The connection a handle's messages travel on, :class:`~vae_numpy.assignments.judge.Remote`, and
the rules for what crosses the boundary are in :mod:`~vae_numpy.assignments.judge`.
"""

from __future__ import annotations

import builtins
import weakref
from typing import Any

import numpy as np

__all__ = [
    "Handle",
    "StudentError",
    "StudentValueError",
    "NonFiniteValue",
    "StudentTimeout",
    "KernelGone",
    "named",
    "student_error",
]


class StudentError(Exception):
    """An exception raised by the student's code in the kernel (its type name and message)."""

    def __init__(self, name: str, message: str, where: str) -> None:
        self.name, self.message, self.where = name, message, where
        super().__init__(message)

    def __str__(self) -> str:
        text = self.message
        if self.where:
            text = f"{text} ({self.where})" if text else f"({self.where})"
        return text


class StudentValueError(StudentError, ValueError):
    """Student code returned something that is not a plain value where one was needed."""

    def __init__(self, message: str) -> None:
        super().__init__("ValueError", message, "")


class NonFiniteValue(StudentValueError):
    """Student code returned NaN or infinity where finite numbers were expected."""


class StudentTimeout(StudentError, TimeoutError):
    """A call into student code ran out of time and was interrupted."""


class KernelGone(StudentError, RuntimeError):
    """The student's kernel died or stopped answering; later tests cannot run."""


_ERROR_CLASSES: dict[str, type] = {}


def student_error(name: str, message: str, where: str) -> StudentError:
    """A StudentError that is also the builtin exception called ``name``, when there is one."""
    if name not in _ERROR_CLASSES:
        base = getattr(builtins, name, None)
        if (
            isinstance(base, type)
            and issubclass(base, Exception)
            and not issubclass(base, (StudentError, OSError))
        ):
            _ERROR_CLASSES[name] = type(name, (StudentError, base), {})
        else:
            _ERROR_CLASSES[name] = type(name, (StudentError,), {})
    error: StudentError = _ERROR_CLASSES[name](name, message, where)
    return error


def _arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """A short description of a call's arguments, for a message: numbers as they are, arrays
    by their shape and range."""

    def one(value: Any) -> str:
        if isinstance(value, np.ndarray):
            if value.size == 0 or value.dtype.kind not in "biuf":
                return f"array of shape {value.shape}"
            if value.size <= 4:
                return np.array2string(value, precision=4, separator=", ")
            return f"array of shape {value.shape} in [{value.min():.4g}, {value.max():.4g}]"
        if isinstance(value, (bool, int, float, np.number)):
            return f"{value:.6g}" if isinstance(value, (float, np.floating)) else str(value)
        return type(value).__name__

    parts = [one(a) for a in args] + [f"{k}={one(v)}" for k, v in kwargs.items()]
    return ", ".join(parts)[:300]


def named(value: Any, name: str) -> Any:
    """``value``, and when it is a handle, one that knows the name the test reached it by."""
    if isinstance(value, Handle):
        object.__setattr__(value, "_name", name)  # a fresh handle: each answer makes new ones
    return value


class Handle:
    """An object that lives in the student's kernel; using it sends messages there.

    Supports calls, attribute and item reads and writes, ``len``, iteration, truth value,
    ``isinstance``/``issubclass`` with a handle to a class as the second argument, and
    conversion to a numpy array, float or int (which ask the kernel for a plain value).
    Equality is identity: a student's object cannot claim to equal anything.
    """

    __slots__ = ("_remote", "_id", "_name", "__weakref__")

    def __init__(self, remote: Any, number: int, name: str = "") -> None:
        object.__setattr__(self, "_remote", remote)
        object.__setattr__(self, "_id", number)
        object.__setattr__(self, "_name", name)  # the name the test reached it by
        weakref.finalize(self, remote.free_handles.append, number)

    def _ask(self, op: str, **fields: Any) -> Any:
        return self._remote.request(op, h=self._id, **fields)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return named(self._ask("get", name=name), name)

    def __setattr__(self, name: str, value: Any) -> None:
        self._ask("set", name=name, value=self._remote.send_value(value))

    def __getitem__(self, key: Any) -> Any:
        return self._ask("item", key=self._remote.send_value(key))

    def __setitem__(self, key: Any, value: Any) -> None:
        self._ask("setitem", key=self._remote.send_value(key), value=self._remote.send_value(value))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # a class (capitalised name) takes over the arrays it is given; anything else gets copies
        share = self._name[:1].isupper()
        send = self._remote.send_value
        try:
            return self._ask(
                "call", args=send(list(args), share=share), kwargs=send(kwargs, share=share)
            )
        except NonFiniteValue as exc:  # say which call gave it, with what
            call = f"{self._name or 'your function'}({_arguments(args, kwargs)})"
            raise NonFiniteValue(f"{call}: {exc.message}") from None

    def __len__(self) -> int:
        n = self._ask("len")
        if type(n) is not int or n < 0:
            raise StudentValueError("len() of your object is not a whole number >= 0")
        return n

    def __iter__(self) -> Any:
        items = self._ask("iter")
        if not isinstance(items, list):
            raise StudentValueError("iterating over your object gave no list of values")
        return iter(items)

    def __bool__(self) -> bool:
        return bool(self._ask("bool") is True)

    def __repr__(self) -> str:
        text = self._ask("repr")
        return text if isinstance(text, str) else "<student object>"

    def __str__(self) -> str:
        text = self._ask("str")
        return text if isinstance(text, str) else "<student object>"

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    def __eq__(self, other: object) -> bool:
        return self is other

    def __ne__(self, other: object) -> bool:
        return self is not other

    def __hash__(self) -> int:
        return id(self)

    def _relation(self, op: str, obj: Any) -> bool:
        try:
            sent = self._remote.send_value(obj)
        except TypeError:
            return False  # a judge object is never an instance of a student's class
        return self._ask(op, obj=sent) is True

    def __instancecheck__(self, obj: Any) -> bool:
        return self._relation("isinstance", obj)

    def __subclasscheck__(self, cls: Any) -> bool:
        return self._relation("issubclass", cls)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        value = self._ask("array")
        if not isinstance(value, np.ndarray):
            raise StudentValueError(
                "your object is not an array of numbers (the grader accepts numeric arrays only)"
            )
        return value if dtype is None else value.astype(dtype)

    def __float__(self) -> float:
        value = self._ask("float")
        if not isinstance(value, float):
            raise StudentValueError("your object is not a number")
        return value

    def __int__(self) -> int:
        value = self._ask("int")
        if type(value) is not int:
            raise StudentValueError("your object is not a whole number")
        return value

    __index__ = __int__
