"""Datasets for the lecture: small images scaled to [0, 1], plus 2-D toy sets and mini-batching.

Part 2 of the lecture ("low-dimensional representation") needs images to compress and
reconstruct. :func:`load_dataset` returns them as float32 rows of pixels in [0, 1]:

=================  =======  ========================  ==========  ============================
name               image    examples train/test/all   labels      source
=================  =======  ========================  ==========  ============================
``digits``         8 x 8    1,500 / 297 / 1,797       digit 0-9   scikit-learn (bundled)
``mnist``          28 x 28  60,000 / 10,000 / 70,000  digit 0-9   LeCun, Cortes & Burges
``fashion-mnist``  28 x 28  60,000 / 10,000 / 70,000  class 0-9   Xiao, Rasul & Vollgraf 2017
``frey-faces``     28 x 20  1,765 / 200 / 1,965       None        B. Frey, via S. Roweis
=================  =======  ========================  ==========  ============================

``digits`` is always available and is the default everywhere. The other three are read from
local files and, when those are missing, downloaded once into a cache and checked against the
published MD5 (:data:`MD5`). Files are looked for in ``<data dir>/<folder>/`` where the data
directory is the ``data_dir`` argument, else the ``VAE_NUMPY_DATA`` environment variable, else
``$XDG_CACHE_HOME/vae_numpy`` (``~/.cache/vae_numpy``), and the folder is ``mnist``,
``fashion_mnist`` or ``frey_face``. Finding and downloading the files is the job of
:mod:`vae_numpy.download`, and reading them (the IDX format, Frey Face's ``.mat`` / ``.npy``)
that of :mod:`vae_numpy.formats`. This module turns what they return into datasets and
re-exports the names it has always offered: :func:`read_idx` and the download names
(:data:`MIRRORS`, :data:`MD5`, :data:`FOLDERS`, :func:`get_data_dir`, :func:`fetch_file`,
:class:`ChecksumError`, :class:`DownloadError`, :class:`MissingDataError`).

Fixed splits. MNIST and Fashion-MNIST come with their canonical train/test files. The digits and
Frey Face have no official split, so this module fixes one: a permutation drawn with
``np.random.default_rng(0).permutation(n)``, whose last 297 (digits) or 200 (Frey Face) entries
are the test set, each split listed in increasing index order. Frey Face frames are consecutive
video frames, which is why the split is random rather than contiguous. ``split="all"`` returns
every example in the original order.

Besides the loaders: :func:`binarize` (dynamic binarisation, a fresh Bernoulli draw per call),
:func:`minibatches` (shuffled index batches); the 2-D toy sets :func:`gaussian_mixture` and
:func:`two_moons` live in :mod:`vae_numpy.toy` and are re-exported here.

References
----------
LeCun, Y., Bottou, L., Bengio, Y. & Haffner, P. (1998). Gradient-based learning applied to
document recognition. Proc. IEEE 86(11). (MNIST; the IDX format is described on the MNIST page.)
Xiao, H., Rasul, K. & Vollgraf, R. (2017). Fashion-MNIST: a novel image dataset for
benchmarking machine learning algorithms. arXiv:1708.07747.
Kingma, D. P. & Welling, M. (2013). Auto-Encoding Variational Bayes. arXiv:1312.6114.
(Frey Face with a Gaussian decoder; they scale pixels by 1/256, this module by 1/255.)
Larochelle, H. & Murray, I. (2011). The neural autoregressive distribution estimator. AISTATS.
(The fixed binarisation of MNIST that many likelihood tables use.)
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._validation import (
    as_array,
    check_choice,
    check_finite,
    check_positive_int,
    check_unit_interval,
)
from .download import (
    FOLDERS,
    MD5,
    MIRRORS,
    ChecksumError,
    DownloadError,
    MissingDataError,
    fetch_file,
    get_data_dir,
    missing_data_error,
    require_file,
)
from .formats import (
    FREY_SHAPE,
    check_frey_mat,
    load_idx_split,
    read_frey_mat,
    read_frey_npy,
    read_idx,
)
from .toy import gaussian_mixture, two_moons

__all__ = [
    "Dataset",
    "DATASETS",
    "SPLITS",
    "FOLDERS",
    "MD5",
    "MIRRORS",
    "SPLIT_SEED",
    "ChecksumError",
    "DownloadError",
    "MissingDataError",
    "load_dataset",
    "get_data_dir",
    "read_idx",
    "fetch_file",
    "binarize",
    "minibatches",
    "gaussian_mixture",
    "two_moons",
]

DATASETS: tuple[str, ...] = ("digits", "mnist", "fashion-mnist", "frey-faces")
"""Names accepted by :func:`load_dataset`."""

SPLITS: tuple[str, ...] = ("train", "test", "all")
"""Splits accepted by :func:`load_dataset`; ``"all"`` is train and test together."""

SPLIT_SEED = 0
"""Seed of the permutation that fixes the train/test split of ``digits`` and ``frey-faces``."""

_DIGITS_N_TEST = 297
_FREY_N_TEST = 200
_FREY_MAT = "frey_rawface.mat"  # the file MD5["frey-faces"] lists
_FREY_NPY = "frey_faces.npy"

_IDX_FILES: dict[str, tuple[str, str]] = {  # split -> (images, labels)
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


@dataclass(frozen=True, eq=False)
class Dataset:
    """Examples of one split of a dataset, as rows of pixels in [0, 1].

    Unpacks as ``x, y, image_shape = load_dataset("digits")``; ``name`` and ``split`` are
    attributes only.

    Attributes
    ----------
    x : ndarray of shape (n, features), float32
        One flattened image per row (row-major), values in [0, 1]; ``features = h * w``.
    y : ndarray of shape (n,), int64, or None
        Class labels, or None for a dataset without labels (``frey-faces``).
    image_shape : tuple (h, w)
        Height and width in pixels: ``x[i].reshape(image_shape)`` is image ``i``.
    name, split : str
        What :func:`load_dataset` was asked for.
    """

    x: np.ndarray
    y: np.ndarray | None
    image_shape: tuple[int, int]
    name: str
    split: str

    def __iter__(self) -> Iterator[Any]:
        return iter((self.x, self.y, self.image_shape))

    @property
    def n_examples(self) -> int:
        """Number of examples ``n`` (rows of ``x``)."""
        return int(self.x.shape[0])

    @property
    def n_features(self) -> int:
        """Pixels per example, ``h * w``."""
        return int(self.x.shape[1])

    @property
    def images(self) -> np.ndarray:
        """``x`` as an array of shape (n, h, w) (a view, no copy)."""
        return self.x.reshape(-1, *self.image_shape)

    def __repr__(self) -> str:
        y = "None" if self.y is None else f"{self.y.dtype} {self.y.shape}"
        return (
            f"Dataset(name={self.name!r}, split={self.split!r}, x={self.x.dtype} {self.x.shape},"
            f" y={y}, image_shape={self.image_shape})"
        )


# --------------------------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------------------------


def _split_indices(n: int, n_test: int, split: str) -> np.ndarray:
    """Indices of a split of the fixed seeded permutation; each split in increasing order."""
    if split == "all":
        return np.arange(n)
    order = np.random.default_rng(SPLIT_SEED).permutation(n)
    chosen = order[n - n_test :] if split == "test" else order[: n - n_test]
    return np.sort(chosen)


def _load_digits(split: str) -> Dataset:
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    bunch = load_digits()
    idx = _split_indices(len(bunch.target), _DIGITS_N_TEST, split)
    x = bunch.data[idx].astype(np.float32) / np.float32(16.0)  # pixel counts 0..16 -> [0, 1]
    y = bunch.target[idx].astype(np.int64)
    return Dataset(x, y, (8, 8), "digits", split)


def _load_idx_dataset(
    name: str, split: str, folder: Path, download: bool, progress: bool
) -> Dataset:
    parts = ("train", "test") if split == "all" else (split,)
    xs, ys = [], []
    for part in parts:
        image_file, label_file = _IDX_FILES[part]
        images_path = require_file(name, image_file, folder, download, progress)
        labels_path = require_file(name, label_file, folder, download, progress)
        images, labels = load_idx_split(images_path, labels_path)
        x = images.reshape(len(images), -1).astype(np.float32)  # (n, 784)
        x /= np.float32(255.0)
        xs.append(x)
        ys.append(labels.astype(np.int64))
    x_all = xs[0] if len(xs) == 1 else np.concatenate(xs)
    y_all = ys[0] if len(ys) == 1 else np.concatenate(ys)
    return Dataset(x_all, y_all, (28, 28), name, split)


def _load_frey(split: str, folder: Path, download: bool, progress: bool) -> Dataset:
    mat = folder / _FREY_MAT
    npy = folder / _FREY_NPY
    if mat.is_file():
        frames = read_frey_mat(mat)
    elif npy.is_file():
        frames = read_frey_npy(npy)
    elif download:
        frames = read_frey_mat(
            require_file("frey-faces", _FREY_MAT, folder, download, progress, check_frey_mat)
        )
    else:
        raise missing_data_error("frey-faces", [_FREY_MAT, _FREY_NPY], folder)
    idx = _split_indices(FREY_SHAPE[0], _FREY_N_TEST, split)
    x = frames[idx].astype(np.float32)
    x /= np.float32(255.0)
    return Dataset(x, None, (28, 20), "frey-faces", split)


def load_dataset(
    name: str,
    split: str = "train",
    *,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    progress: bool = True,
) -> Dataset:
    """Load a dataset as float32 rows of pixels in [0, 1].

    Parameters
    ----------
    name : {"digits", "mnist", "fashion-mnist", "frey-faces"}
        Case and ``_``/``-`` are ignored (``"fashion_mnist"`` works).
    split : {"train", "test", "all"}
        ``"all"`` is train followed by test for MNIST and Fashion-MNIST, and every example in
        its original order for ``digits`` and ``frey-faces``.
    data_dir : str, path or None
        Directory holding the per-dataset folders ``mnist/``, ``fashion_mnist/``, ``frey_face/``;
        see :func:`get_data_dir` for the default. Ignored for ``digits``.
    download : bool
        Download missing files from :data:`MIRRORS` into the data directory, checked against
        :data:`MD5`. With False a missing file raises FileNotFoundError.
    progress : bool
        Show a progress bar while downloading.

    Returns
    -------
    Dataset
        ``x`` of shape (n, h * w) float32 in [0, 1], ``y`` of shape (n,) int64 (None for
        ``frey-faces``), ``image_shape`` (h, w); unpacks as ``x, y, image_shape``.

    Raises
    ------
    ValueError
        Unknown name or split (the message lists the valid ones), or a local file that is
        corrupt or truncated (the message names it). A downloaded file with the wrong MD5 raises
        :class:`ChecksumError`, a ValueError.
    MissingDataError
        (a FileNotFoundError and a DownloadError) A file is missing and ``download=False``, or
        no mirror could deliver it; the message says which file to put in which folder, and
        the exception's ``folder`` attribute is the folder looked in.

    Notes
    -----
    Local files are trusted if they parse: a copy of MNIST whose gzip header differs from the
    canonical one (so its MD5 differs) still loads, because the IDX header and payload size are
    checked instead. Checksums are enforced on every download. Gunzipped copies without the
    ``.gz`` suffix are accepted. For Frey Face ``frey_rawface.mat`` is read if present, else
    ``frey_faces.npy`` (uint8, shape (1965, 560), equal to ``loadmat(...)["ff"].T``).

    Examples
    --------
    >>> x, y, image_shape = load_dataset("digits", "test")
    >>> x.shape, x.dtype, image_shape
    ((297, 64), dtype('float32'), (8, 8))
    """
    if isinstance(name, str):
        name = name.strip().lower().replace("_", "-")
        if name in ("frey-face", "freyface", "frey"):
            name = "frey-faces"
    name = check_choice(name, "name", DATASETS)
    split = check_choice(split, "split", SPLITS)
    if name == "digits":
        return _load_digits(split)
    folder = get_data_dir(data_dir) / FOLDERS[name]
    if name == "frey-faces":
        return _load_frey(split, folder, bool(download), bool(progress))
    return _load_idx_dataset(name, split, folder, bool(download), bool(progress))


# --------------------------------------------------------------------------------------------
# Batches and binarisation
# --------------------------------------------------------------------------------------------


def binarize(x: Any, rng: Any = None) -> np.ndarray:
    """Dynamic binarisation: an independent Bernoulli draw per pixel with probability ``x``.

    Parameters
    ----------
    x : array_like of values in [0, 1], any shape
        Pixel intensities, read as probabilities of a 1.
    rng : numpy.random.Generator, int or None
        Passed through ``np.random.default_rng``.

    Returns
    -------
    ndarray
        Zeros and ones of the shape of ``x``. Floating input keeps its dtype; integer or
        boolean input gives float32. ``E[binarize(x)] = x``.

    Notes
    -----
    Call it on every mini-batch so that each epoch sees new binary images ("dynamic"
    binarisation). Likelihoods measured this way are not comparable with numbers on the fixed
    binarisation of MNIST (Larochelle & Murray 2011) that many papers report.
    """
    arr = check_finite(as_array(x, "x"), "x")
    if arr.size == 0:
        return arr.copy()
    check_unit_interval(arr, "x")
    rng = np.random.default_rng(rng)
    uniform_dtype = np.float64 if arr.dtype == np.float64 else np.float32
    u = rng.random(arr.shape, dtype=uniform_dtype)  # P(u < p) = p for u ~ U[0, 1)
    return (u < arr).astype(arr.dtype)


def minibatches(
    X: Any, batch_size: int, rng: Any = None, *, shuffle: bool = True
) -> Iterator[np.ndarray]:
    """Index arrays that split ``range(len(X))`` into mini-batches for one epoch.

    Parameters
    ----------
    X : array_like or int
        The data (only its length is used) or the number of examples ``n``.
    batch_size : int
        Examples per batch (>= 1); the last batch holds the remainder and may be smaller.
    rng : numpy.random.Generator, int or None
        Passed through ``np.random.default_rng``; the same seed gives the same order.
    shuffle : bool
        Random order (default) or ``0, 1, ..., n - 1``.

    Returns
    -------
    iterator of ndarray of shape (b,), intp
        Every index appears exactly once per epoch. Slice data and labels together:
        ``for idx in minibatches(x, 128, rng): loss = model.loss(x[idx])``.
    """
    if isinstance(X, numbers.Integral) and not isinstance(X, bool):
        n = check_positive_int(X, "X")
    else:
        try:
            n = len(X)
        except TypeError as exc:
            raise TypeError(
                f"X must be an array of examples or their number, got {type(X).__name__}"
            ) from exc
        if n == 0:
            raise ValueError("X is empty; there is nothing to split into mini-batches")
    batch_size = check_positive_int(batch_size, "batch_size")
    order = np.random.default_rng(rng).permutation(n) if shuffle else np.arange(n)
    return _batches(order, batch_size)


def _batches(order: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]
