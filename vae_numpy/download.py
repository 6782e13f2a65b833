"""Where dataset files live and how they get there: the cache folder, mirrors and checksums.

:func:`~vae_numpy.data.load_dataset` reads MNIST, Fashion-MNIST and Frey Face from local files;
this module finds those files and, when one is missing, downloads it. Files are looked for in
``<data dir>/<folder>/``, where the data directory is the ``data_dir`` argument, else the
``VAE_NUMPY_DATA`` environment variable, else ``$XDG_CACHE_HOME/vae_numpy``
(``~/.cache/vae_numpy``) (:func:`get_data_dir`), and the folder is ``mnist``, ``fashion_mnist``
or ``frey_face`` (:data:`FOLDERS`).

:func:`fetch_file` tries the base URLs of :data:`MIRRORS` in order, streams the file into a
temporary file in the destination folder while computing its MD5, compares it with the
published digest (:data:`MD5`) or a structural check, then flushes, fsyncs and renames it into
place, so that no half-written or corrupt file is ever left in the cache. A mismatch raises
:class:`ChecksumError` (a ValueError); a network failure on every mirror raises
:class:`DownloadError` (an OSError).

This module knows file names and URLs, not file formats: the readers are in
:mod:`vae_numpy.formats`, and :mod:`vae_numpy.data` passes a structural check to
:func:`fetch_file` where no checksum has been published (Frey Face).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ._validation import check_positive_float

__all__ = [
    "FOLDERS",
    "MD5",
    "MIRRORS",
    "ChecksumError",
    "DownloadError",
    "get_data_dir",
    "fetch_file",
]

FOLDERS: dict[str, str] = {
    "mnist": "mnist",
    "fashion-mnist": "fashion_mnist",
    "frey-faces": "frey_face",
}
"""Sub-folder of the data directory that holds each downloadable dataset's files."""

MD5: dict[str, dict[str, str | None]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    # No checksum of frey_rawface.mat has been published: a download is checked by opening it
    # and finding the variable ``ff`` as uint8 of shape (560, 1965).
    "frey-faces": {"frey_rawface.mat": None},
}
"""Published MD5 of every file a download fetches, by dataset and file name (None: no checksum)."""

MIRRORS: dict[str, list[str]] = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ],
    "fashion-mnist": [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ],
    "frey-faces": [
        "https://cs.nyu.edu/~roweis/data/",
        "http://www.cs.nyu.edu/~roweis/data/",
    ],
}
"""Base URLs tried in order for each dataset; a file's URL is the base followed by its name.

Replace or extend a list to use another mirror (``file://`` URLs work too)."""

_CHUNK = 1 << 16  # bytes per read while downloading


class ChecksumError(ValueError):
    """A downloaded file does not match its published MD5 (or fails its structural check)."""


class DownloadError(OSError):
    """No mirror delivered a file: every attempt failed on the network."""


# --------------------------------------------------------------------------------------------
# Where files live
# --------------------------------------------------------------------------------------------


def get_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The directory that holds (or will cache) the dataset folders.

    Parameters
    ----------
    data_dir : str, path or None
        Used as given when not None. Otherwise the ``VAE_NUMPY_DATA`` environment variable,
        else ``$XDG_CACHE_HOME/vae_numpy``, else ``~/.cache/vae_numpy``.

    Returns
    -------
    pathlib.Path
        The directory (not created here); each dataset uses a sub-folder of it (:data:`FOLDERS`).
    """
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get("VAE_NUMPY_DATA")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    cache = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return cache / "vae_numpy"


def _locate(folder: Path, filename: str) -> Path | None:
    """The file in ``folder``, accepting a gunzipped copy without the ``.gz`` suffix."""
    candidates = [folder / filename]
    if filename.endswith(".gz"):
        candidates.append(folder / filename[: -len(".gz")])
    for path in candidates:
        if path.is_file():
            return path
    return None


def _missing_message(dataset: str, filenames: Sequence[str], folder: Path) -> str:
    names = " or ".join(filenames)
    url = MIRRORS[dataset][0] + filenames[0] if MIRRORS.get(dataset) else "its public mirror"
    message = (
        f"{names} not found: put it in the folder {folder}"
        f" (download it from {url}), or pass data_dir= (or set VAE_NUMPY_DATA to) a directory"
        f" with a {FOLDERS[dataset]}/ sub-folder holding it,"
        " or call load_dataset(..., download=True)"
    )
    misplaced = [folder.parent / f for f in filenames if (folder.parent / f).is_file()]
    if misplaced:
        sub = FOLDERS[dataset]
        fix = (
            f"pass data_dir={str(folder.parent.parent)!r}, the directory that contains {sub}/"
            if folder.parent.name == sub
            else f"move it into {folder}"
        )
        message += f". Note: {misplaced[0]} exists but is not in a {sub}/ sub-folder; {fix}"
    return message


def _require(
    dataset: str,
    filename: str,
    folder: Path,
    download: bool,
    progress: bool,
    validate: Callable[[Path], Any] | None = None,
) -> Path:
    """Path of a local copy of ``filename``, downloading it first if allowed.

    ``validate`` is passed on to :func:`fetch_file` (the check of a file without an MD5).
    """
    found = _locate(folder, filename)
    if found is not None:
        return found
    if not download:
        raise FileNotFoundError(_missing_message(dataset, [filename], folder))
    try:
        return fetch_file(
            filename,
            MIRRORS[dataset],
            folder,
            MD5[dataset].get(filename),
            validate=validate,
            progress=progress,
        )
    except DownloadError as exc:
        raise DownloadError(f"{exc}. {_missing_message(dataset, [filename], folder)}") from exc


# --------------------------------------------------------------------------------------------
# Downloading
# --------------------------------------------------------------------------------------------


class _MirrorFailure(Exception):
    """One mirror failed on the network; the next one is tried."""


def _stream(url: str, out: Any, digest: Any, timeout: float, progress: bool, label: str) -> None:
    """Copy the body at ``url`` into ``out`` and ``digest``; raise _MirrorFailure on any fault."""
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise _MirrorFailure(f"HTTP {exc.code} {exc.reason}") from exc
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise _MirrorFailure(repr(exc)) from exc
    with response:
        header = response.headers.get("Content-Length")
        expected = int(header) if header is not None and header.strip().isdigit() else None
        received = 0
        with tqdm(
            total=expected, unit="B", unit_scale=True, desc=label, disable=not progress, leave=False
        ) as bar:
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except (OSError, http.client.HTTPException) as exc:
                    raise _MirrorFailure(
                        f"transfer interrupted after {received} bytes: {exc!r}"
                    ) from exc
                if not chunk:
                    break
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if expected is not None and received != expected:
        raise _MirrorFailure(f"truncated transfer: received {received} of {expected} bytes")


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fetch_file(
    filename: str,
    mirrors: Sequence[str],
    dest_dir: str | os.PathLike[str],
    md5: str | None = None,
    *,
    validate: Callable[[Path], Any] | None = None,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download ``filename`` from the first mirror that delivers it intact, atomically.

    Each mirror's URL is ``mirror + filename`` (a ``/`` is inserted if missing). The body is
    streamed into a temporary file in ``dest_dir``, its MD5 compared with ``md5``, ``validate``
    called on it, and only then flushed to disk (fsync) and renamed onto ``dest_dir/filename``
    with ``os.replace``. Whatever happens, no partial file is left behind.

    Parameters
    ----------
    filename : str
        Name of the file on the mirrors and on disk.
    mirrors : sequence of str
        Base URLs, tried in order.
    dest_dir : str or path
        Folder to write into; created if missing.
    md5 : str or None
        Expected hex MD5 of the file; None skips the check (then pass ``validate``).
    validate : callable or None
        Called with the path of the complete temporary file; raising ``ValueError`` rejects it.
    progress : bool
        Show a tqdm progress bar (on stderr) while downloading.
    timeout : float
        Seconds to wait for a connection or for data before giving up on a mirror.

    Returns
    -------
    pathlib.Path
        ``dest_dir / filename``, replaced if it already existed.

    Raises
    ------
    ChecksumError
        (a ``ValueError``) No mirror delivered a valid file, and at least one delivered a
        complete file whose MD5 differed (expected and actual digests are in the message) or
        which ``validate`` rejected.
    DownloadError
        (an ``OSError``) Every mirror failed on the network: connection refused, HTTP error,
        timeout, or a truncated transfer (fewer bytes than Content-Length).
    """
    if not isinstance(filename, str) or not filename or "/" in filename or "\\" in filename:
        raise ValueError(f"filename must be a plain file name, got {filename!r}")
    if isinstance(mirrors, str):
        raise TypeError(
            "mirrors must be a list of base URLs, got a single string; wrap it in [...]"
        )
    if len(mirrors) == 0:
        raise ValueError(f"no mirror given for {filename}; pass at least one base URL")
    timeout = check_positive_float(timeout, "timeout")
    folder = Path(dest_dir).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / filename
    network_failures: list[str] = []
    bad_files: list[str] = []
    for mirror in mirrors:
        url = mirror if mirror.endswith("/") else mirror + "/"
        url += filename
        fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{filename}.", suffix=".part")
        tmp = Path(tmp_name)
        try:
            digest = hashlib.md5(usedforsecurity=False)
            with os.fdopen(fd, "wb") as out:
                try:
                    _stream(url, out, digest, timeout, progress, filename)
                except _MirrorFailure as exc:
                    network_failures.append(f"{url}: {exc}")
                    continue
                actual = digest.hexdigest()
                if md5 is not None and actual != md5.lower():
                    bad_files.append(f"{url}: md5 mismatch, expected {md5.lower()}, got {actual}")
                    continue
                out.flush()
                if validate is not None:
                    try:
                        validate(tmp)
                    except ValueError as exc:
                        bad_files.append(f"{url}: {exc}")
                        continue
                os.fsync(out.fileno())
            os.chmod(tmp, 0o644)  # mkstemp creates 0600; a cache should be readable like any file
            os.replace(tmp, dest)
            _fsync_dir(folder)
            return dest
        finally:
            tmp.unlink(missing_ok=True)  # after os.replace there is nothing left to remove
    tried = "; ".join(bad_files + network_failures)
    if bad_files:
        raise ChecksumError(
            f"no valid copy of {filename} was downloaded (tried {tried}); nothing was written"
            " - retry later, or fetch the file by hand and check its MD5"
        )
    raise DownloadError(f"could not download {filename} from any mirror (tried {tried})")
