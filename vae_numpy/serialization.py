"""Safe files: ``.npz`` archives of plain arrays plus a JSON header, written atomically.

Every file the package writes (models, training checkpoints) goes through :func:`save_npz`:
the archive is written to a temporary file in the destination folder, flushed and fsynced, then
moved over the destination with ``os.replace``. A crash or Ctrl-C in the middle leaves the old
file intact. :func:`load_npz` opens archives with ``allow_pickle=False`` — an archive that holds
pickled objects is refused, never unpickled — and checks the header's kind and format version.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FORMAT_VERSION", "save_npz", "load_npz", "atomic_write_bytes"]

FORMAT_VERSION = 1
_META_KEY = "__meta__"


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, os.replace)."""
    _atomic_write(Path(path), lambda f: f.write(data))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic_write(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_npz(
    path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]
) -> Path:
    """Save plain numeric arrays and a JSON-serialisable header to ``path`` atomically.

    Parameters
    ----------
    path : str or PathLike
        Destination; ``.npz`` is appended when missing.
    arrays : mapping of str to ndarray
        Numeric arrays only (no object dtype).
    meta : mapping
        JSON-serialisable header; must contain ``"kind"``. ``"format_version"`` is added.

    Returns
    -------
    Path
        The path written.
    """
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    for name, arr in arrays.items():
        if name == _META_KEY or np.asarray(arr).dtype.kind not in "biuf":
            raise TypeError(f"array {name!r} must be numeric, got dtype {np.asarray(arr).dtype}")
    header = dict(meta, format_version=FORMAT_VERSION)
    blob = np.frombuffer(json.dumps(header, sort_keys=True).encode("utf-8"), dtype=np.uint8)
    payload = {**{k: np.asarray(v) for k, v in arrays.items()}, _META_KEY: blob}
    savez: Any = np.savez  # numpy's stub types **kwds too narrowly for mypy
    _atomic_write(path, lambda f: savez(f, **payload))
    return path


def load_npz(
    path: str | os.PathLike[str], *, kind: str | tuple[str, ...]
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Load an archive written by :func:`save_npz`, refusing anything that is not one.

    Parameters
    ----------
    path : str or PathLike
    kind : str or tuple of str
        Expected ``meta["kind"]`` value(s).

    Returns
    -------
    arrays : dict of str to ndarray
    meta : dict

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Truncated, corrupted, pickled content, wrong kind or unsupported version; the message
        names the path and what is wrong.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    kinds = (kind,) if isinstance(kind, str) else kind
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except ValueError as exc:
        raise ValueError(f"{path}: refusing to load pickled (object) data: {exc}") from exc
    except (OSError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise ValueError(
            f"{path}: not a readable .npz archive (truncated or corrupted?): {exc}"
        ) from exc
    blob = arrays.pop(_META_KEY, None)
    if blob is None or blob.dtype != np.uint8:
        raise ValueError(f"{path}: no vae_numpy header; this .npz was not written by vae_numpy")
    try:
        meta = json.loads(blob.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: corrupted header: {exc}") from exc
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: corrupted header (not a JSON object)")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{path}: format version {version!r} is not supported (this vae_numpy reads {FORMAT_VERSION})"
        )
    if meta.get("kind") not in kinds:
        raise ValueError(
            f"{path}: holds a {meta.get('kind')!r}, expected {' or '.join(repr(k) for k in kinds)}"
        )
    return arrays, meta
