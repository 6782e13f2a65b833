"""Checks at the public boundary: turn bad input into a clear ValueError/TypeError.

Every public function of the package calls these before it computes anything, so that a
student who passes a list, a 1-D vector, an image scaled to 0..255 or a NaN gets a message
that names the argument, what it got, and how to fix it. Private kernels trust their inputs.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

__all__ = [
    "as_array",
    "as_batch",
    "check_finite",
    "check_positive_int",
    "check_positive_float",
    "check_choice",
    "check_dtype",
    "check_unit_interval",
    "common_float_dtype",
    "check_finite_result",
]

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_dtype(dtype: Any) -> np.dtype:
    """Return ``np.dtype(dtype)`` if it is float32 or float64, else raise TypeError."""
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(
            f"dtype={dtype!r} is not a numpy dtype; use np.float32 or np.float64"
        ) from exc
    if dt not in _FLOAT_DTYPES:
        raise TypeError(f"dtype={dt} is not supported; use np.float32 (default) or np.float64")
    return dt


def common_float_dtype(*values: Any) -> np.dtype:
    """The floating dtype the values combine to, with Python scalars not upcasting (NEP 50).

    ``common_float_dtype(np.float32(1), 0.0)`` is float32; integer-only input gives float64.
    """
    try:
        dt = np.result_type(*values)
    except TypeError as exc:
        raise TypeError(f"expected real numbers, got {[type(v).__name__ for v in values]}") from exc
    return dt if dt.kind == "f" else np.dtype(np.float64)


def as_array(x: Any, name: str, dtype: np.dtype | type | None = None) -> np.ndarray:
    """Convert ``x`` (array, list, scalar) to a floating ndarray without copying when possible.

    Integer and boolean input is converted to ``dtype`` (float32 when None); floating input
    keeps its precision unless ``dtype`` is given. Strings, objects and complex numbers raise
    TypeError.
    """
    if isinstance(x, np.ndarray):
        arr = x
    else:
        try:
            arr = np.asarray(x)
        except (ValueError, TypeError) as exc:
            raise TypeError(
                f"{name} must be an array of numbers, got {type(x).__name__}: {exc}"
            ) from exc
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must hold real numbers, got an array of dtype {arr.dtype}"
            f" (from {type(x).__name__}); convert it with np.asarray({name}, dtype=np.float32)"
        )
    if dtype is not None:
        return arr.astype(dtype, copy=False)
    if arr.dtype.kind != "f":
        return arr.astype(np.float32)
    return arr


def check_finite(arr: np.ndarray, name: str) -> np.ndarray:
    """Raise ValueError if ``arr`` holds NaN or infinity."""
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s); clean the data first")
    return arr


def as_batch(
    x: Any,
    name: str,
    features: int | None = None,
    dtype: np.dtype | type | None = None,
) -> np.ndarray:
    """Validate a ``(batch, features)`` array: 2-D, non-empty, finite, with ``features`` columns."""
    arr = as_array(x, name, dtype)
    if arr.ndim == 1:
        hint = f"; for one example use {name}.reshape(1, -1)"
        raise ValueError(f"{name} must be 2-D (batch, features), got shape {arr.shape}{hint}")
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (batch, features), got shape {arr.shape};"
            f" flatten images with {name}.reshape(len({name}), -1)"
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {arr.shape}); pass at least one example")
    if features is not None and arr.shape[1] != features:
        raise ValueError(
            f"{name} has {arr.shape[1]} features but {features} are expected;"
            " did you load the right dataset?"
        )
    return check_finite(arr, name)


def check_finite_result(arr: Any, what: str, inputs: str) -> Any:
    """Raise ValueError when a computed result overflowed: say which inputs are too extreme."""
    if not np.all(np.isfinite(arr)):
        raise ValueError(
            f"{what} overflowed to inf or NaN: {inputs} are too extreme for"
            f" {np.asarray(arr).dtype}; rescale them"
        )
    return arr


def check_unit_interval(arr: np.ndarray, name: str) -> np.ndarray:
    """Raise ValueError unless every entry lies in [0, 1] (Bernoulli targets)."""
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0.0 or hi > 1.0:
        fix = " - divide by 255" if hi > 1.0 and hi <= 255.0 and lo >= 0.0 else ""
        raise ValueError(
            f"{name} has values in [{lo:g}, {hi:g}]; the Bernoulli likelihood needs values"
            f" in [0, 1]{fix}"
        )
    return arr


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """Return ``value`` as int if it is an integer >= ``minimum``; raise otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_positive_float(value: Any, name: str, allow_zero: bool = False) -> float:
    """Return ``value`` as float if it is a finite number > 0 (or >= 0); raise otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    v = float(value)
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return v


def check_choice(value: Any, name: str, choices: tuple[str, ...] | list[str]) -> str:
    """Return ``value`` if it is one of ``choices``; otherwise list the valid ones."""
    if not isinstance(value, str) or value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise ValueError(f"unknown {name} {value!r}; choose one of {valid}")
    return value
