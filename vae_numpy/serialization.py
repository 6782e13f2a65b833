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

__all__ = ["FORMAT_VERSION", "save_npz", "load_npz", "atomic_write_bytes", "describe_file"]

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


_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip-compressed file"),
    (b"\x93NUMPY", "a single NumPy array (.npy), not an .npz archive"),
    (b"\x89HDF", "an HDF5 file"),
    (b"MATLAB", "a MATLAB .mat file"),
)


def describe_file(path: str | os.PathLike[str]) -> str:
    """What a file looks like, from its first bytes: "a PNG image", "a text file starting ...".

    Used in the messages of :func:`load_npz`; reads at most 512 bytes and never unpickles.
    """
    path = Path(path)
    if path.is_dir():
        return "a folder"
    with open(path, "rb") as f:
        head = f.read(512)
    if not head:
        return "an empty file (0 bytes)"
    for magic, what in _SIGNATURES:
        if head.startswith(magic):
            return what
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle (vae_numpy never unpickles: it could run code)"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return "a damaged zip archive (truncated?)"
        shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        if names and all(n.endswith(".npy") for n in names):
            arrays = ", ".join(repr(n[: -len(".npy")]) for n in names[:4])
            more = ", ..." if len(names) > 4 else ""
            return f"a NumPy .npz archive of {len(names)} array(s) ({arrays}{more}) without a vae_numpy header"
        return (
            f"a zip archive of {len(names)} file(s) ({shown})" if names else "an empty zip archive"
        )
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "binary data starting with bytes " + head[:8].hex(" ")
    first = text.strip().splitlines()[0][:40] if text.strip() else ""
    return f"a text file starting with {first!r}"


def _not_ours(path: Path, kinds: tuple[str, ...]) -> ValueError:
    what = "checkpoint" if kinds == ("checkpoint",) else "model"
    return ValueError(
        f"{path} is not a vae_numpy {what} file: it looks like {describe_file(path)}."
        f" Pass a {what}.npz written by 'vae-numpy train' (or by .save())"
    )


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
        Not an archive written by vae_numpy (the message says what the file looks like: an
        image, text, a foreign .npz, ...), truncated, pickled content (never unpickled),
        wrong kind or unsupported version; the message names the path and what is wrong.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    kinds = (kind,) if isinstance(kind, str) else kind
    if path.is_dir():
        raise _not_ours(path, kinds)
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic not in (b"PK\x03\x04", b"PK\x05\x06"):  # an .npz is a zip archive
        raise _not_ours(path, kinds)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except ValueError as exc:
        raise ValueError(
            f"{path} is not a vae_numpy file: it holds pickled Python objects, which vae_numpy"
            " never loads (unpickling can run arbitrary code)"
        ) from exc
    except (OSError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise ValueError(
            f"{path}: not a readable .npz archive (truncated or corrupted?): {exc}"
        ) from exc
    blob = arrays.pop(_META_KEY, None)
    if blob is None or blob.dtype != np.uint8:
        raise _not_ours(path, kinds)
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
    if meta.get("kind") == "checkpoint" and "checkpoint" not in kinds:
        raise ValueError(
            f"{path} is a training checkpoint, not a model: use model.npz from the same folder"
            " (written when training ends or is interrupted), or finish the run with"
            " 'vae-numpy train ... --resume'"
        )
    if meta.get("kind") not in kinds:
        raise ValueError(
            f"{path}: holds a {meta.get('kind')!r}, expected {' or '.join(repr(k) for k in kinds)}"
        )
    return arrays, meta
