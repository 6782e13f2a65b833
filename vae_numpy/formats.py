"""Readers for the datasets' file formats: IDX (MNIST, Fashion-MNIST) and Frey Face (.mat / .npy).

:func:`read_idx` reads the IDX format in which MNIST and Fashion-MNIST are published, gzipped
or not; :func:`load_idx_split` checks one MNIST-format split (images and labels that belong
together); :func:`read_frey_mat` and :func:`read_frey_npy` read the Frey Face frames from
``frey_rawface.mat`` (variable ``ff``) or from ``frey_faces.npy`` (its transpose, saved without
pickle). Every reader checks what it reads and
raises ValueError naming the file when it is truncated, corrupt or of the wrong kind.
:mod:`vae_numpy.data` finds the files (through :mod:`vae_numpy.download`) and turns what these
readers return into datasets; this module knows nothing about splits, caches or downloads.

References
----------
LeCun, Y., Bottou, L., Bengio, Y. & Haffner, P. (1998). Gradient-based learning applied to
document recognition. Proc. IEEE 86(11). (MNIST; the IDX format is described on the MNIST page.)
Xiao, H., Rasul, K. & Vollgraf, R. (2017). Fashion-MNIST: a novel image dataset for
benchmarking machine learning algorithms. arXiv:1708.07747. (The same IDX files.)
Roweis, S. Data for MATLAB hackers: Frey Face (``frey_rawface.mat``, 1965 frames of 28 x 20).
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

__all__ = [
    "FREY_SHAPE",
    "check_frey_mat",
    "load_idx_split",
    "read_frey_mat",
    "read_frey_npy",
    "read_idx",
]

#: Shape of the Frey Face frames as returned by the readers: (frames, 28 * 20 pixels).
FREY_SHAPE = (1965, 560)

# IDX type codes (third byte of the magic number); all multi-byte values are big-endian.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _parse_idx(raw: bytes, source: str) -> np.ndarray:
    if len(raw) < 4:
        raise ValueError(f"{source}: {len(raw)} bytes is too short to hold an IDX magic number")
    code, ndim = raw[2], raw[3]
    if raw[0] != 0 or raw[1] != 0 or code not in _IDX_DTYPES or ndim == 0:
        raise ValueError(
            f"{source}: bad IDX magic number 0x{raw[:4].hex()}; expected two zero bytes, a type"
            " code (0x08 uint8 ... 0x0e float64) and the number of dimensions, e.g. 0x00000803"
            " for images and 0x00000801 for labels - is this an MNIST-format file?"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(
            f"{source}: truncated IDX header: {ndim} dimensions need {header} bytes,"
            f" the file holds {len(raw)}; delete it and download it again"
        )
    dims = struct.unpack(f">{ndim}i", raw[4:header])  # big-endian int32 sizes
    if any(d < 0 for d in dims):
        raise ValueError(f"{source}: IDX header announces negative dimensions {dims}")
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = math.prod(dims) * dtype.itemsize
    payload = len(raw) - header
    if payload != expected:
        raise ValueError(
            f"{source}: the IDX header announces shape {dims} of {dtype.name} ({expected} bytes)"
            f" but {payload} bytes follow it; the file is truncated or corrupt - delete it and"
            " download it again"
        )
    # astype copies into native byte order, so the result is writable and independent of raw.
    return (
        np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))
    )


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzip-compressed or not.

    Parameters
    ----------
    path : str or path
        The file. Gzip compression is recognised by its content (bytes ``1f 8b``), not by the name.

    Returns
    -------
    ndarray
        Shape as the header says (e.g. (60000, 28, 28) for images, (60000,) for labels), dtype
        from the type code (uint8 for MNIST), native byte order.

    Raises
    ------
    ValueError
        Naming the file, when the gzip stream or the IDX magic number is invalid or the payload
        size disagrees with the header (a truncated or corrupt file).

    Notes
    -----
    An IDX file starts with a 4-byte magic number: two zero bytes, a type code (0x08 uint8,
    0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64) and the number of dimensions
    ``d``; then ``d`` big-endian int32 sizes; then the values in row-major order, big-endian.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(
                f"{path}: damaged gzip data ({exc}); delete the file and download it again"
            ) from exc
    return _parse_idx(raw, str(path))


def load_idx_split(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (n, 28, 28) and labels (n,) of one MNIST-format split, checked."""
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(
            f"{images_path}: expected uint8 images of shape (n, 28, 28), got {images.dtype}"
            f" {images.shape}; is it an image file (idx3) rather than a label file (idx1)?"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(
            f"{labels_path}: expected uint8 labels of shape (n,), got {labels.dtype} {labels.shape}"
        )
    if len(labels) != len(images):
        raise ValueError(
            f"{images_path} holds {len(images)} images but {labels_path} holds"
            f" {len(labels)} labels; one of the files belongs to another split or dataset"
        )
    if labels.size and int(labels.max()) > 9:
        raise ValueError(f"{labels_path}: labels must be 0-9, found {int(labels.max())}")
    return images, labels


def read_frey_mat(path: Path) -> np.ndarray:
    """The (1965, 560) uint8 frames from ``frey_rawface.mat`` (variable ``ff``, 560 x 1965)."""
    from scipy.io import loadmat  # scipy only where .mat files are read

    try:
        contents = loadmat(path, appendmat=False)
    except Exception as exc:  # scipy raises several types for a damaged file
        raise ValueError(f"{path}: not a readable MATLAB file ({exc})") from exc
    ff = contents.get("ff")
    expected = (FREY_SHAPE[1], FREY_SHAPE[0])
    if not isinstance(ff, np.ndarray) or ff.dtype != np.uint8 or ff.shape != expected:
        got = f"{ff.dtype} {ff.shape}" if isinstance(ff, np.ndarray) else "no variable 'ff'"
        raise ValueError(f"{path}: expected a variable 'ff' of uint8 shape {expected}, got {got}")
    return np.ascontiguousarray(ff.T)  # one frame per row


def check_frey_mat(path: Path) -> None:
    """Raise ValueError naming ``path`` unless it is a readable ``frey_rawface.mat``.

    The validator :func:`vae_numpy.download.fetch_file` runs on a downloaded file without an MD5.
    """
    read_frey_mat(path)


def read_frey_npy(path: Path) -> np.ndarray:
    """The (1965, 560) uint8 frames from ``frey_faces.npy`` (loaded without pickle), checked."""
    frames = np.load(path, allow_pickle=False)
    if frames.dtype != np.uint8 or frames.shape != FREY_SHAPE:
        raise ValueError(
            f"{path}: expected uint8 of shape {FREY_SHAPE}, got {frames.dtype} {frames.shape}"
        )
    return frames
