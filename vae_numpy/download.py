"""Where dataset files live and how they get there: the cache folder, mirrors and checksums.

:func:`~vae_numpy.data.load_dataset` reads MNIST, Fashion-MNIST and Frey Face from local files;
this module finds those files and, when one is missing, downloads it. Files are looked for in
``<data dir>/<folder>/``, where the data directory is the ``data_dir`` argument, else the
``VAE_NUMPY_DATA`` environment variable, else ``$XDG_CACHE_HOME/vae_numpy``
(``~/.cache/vae_numpy``) (:func:`get_data_dir`), and the folder is ``mnist``, ``fashion_mnist``
or ``frey_face`` (:data:`FOLDERS`).

Downloading is pooch's job (``pooch.retrieve``: a temporary file in the destination folder,
the checksum checked, then a rename, with a tqdm progress bar). Pooch has no list of mirrors,
so :func:`fetch_file` tries the base URLs of :data:`MIRRORS` in order. A file is checked
against its published MD5 (:data:`MD5`) or, where none was published, by a structural check
before it gets its name, so no half-written or corrupt file is ever left in the cache. A
mismatch raises :class:`ChecksumError` (a ValueError); a network failure on every mirror raises
:class:`DownloadError` (an OSError). A dataset file that is neither on disk nor downloadable
raises :class:`MissingDataError` (both a DownloadError and a FileNotFoundError), which carries
the folder looked in, so that the command line can say which ``--data-dir`` to pass; folders
created for a download that failed are removed again.

This module knows file names and URLs, not file formats: the readers are in
:mod:`vae_numpy.formats`, and :mod:`vae_numpy.data` passes a structural check to
:func:`fetch_file` where no checksum has been published (Frey Face).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
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
    "MissingDataError",
    "get_data_dir",
    "fetch_file",
    "missing_data_error",
    "require_file",
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


class ChecksumError(ValueError):
    """A downloaded file does not match its published MD5 (or fails its structural check)."""


class DownloadError(OSError):
    """No mirror delivered a file: every attempt failed on the network."""


class MissingDataError(DownloadError, FileNotFoundError):
    """A dataset file is not on disk and could not be downloaded (or downloading was off).

    Attributes
    ----------
    dataset : str
        The dataset's name, e.g. ``"mnist"``.
    folder : pathlib.Path
        The folder the file was looked for in (``<data dir>/<sub-folder>``).
    filenames : list of str
        The missing file (or the accepted alternatives).
    reason : str or None
        Why the download failed; None when downloading was turned off.
    """

    def __init__(
        self,
        message: str,
        *,
        dataset: str,
        folder: Path,
        filenames: Sequence[str],
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.dataset = dataset
        self.folder = folder
        self.filenames = list(filenames)
        self.reason = reason


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


def missing_data_error(
    dataset: str,
    filenames: Sequence[str],
    folder: Path,
    reason: str | None = None,
    existed: bool | None = None,
) -> MissingDataError:
    """The error for a file that is neither in ``folder`` nor downloadable, with the fix.

    ``existed``: whether ``folder`` existed before a download attempt (default: now).
    """
    names = " or ".join(filenames)
    existed = folder.is_dir() if existed is None else existed
    where = f"{folder}" + ("" if existed else " (that folder does not exist)")
    url = MIRRORS[dataset][0] + filenames[0] if MIRRORS.get(dataset) else "its public mirror"
    sub = FOLDERS[dataset]
    message = f"{names} not found in {where}"
    if reason is not None:
        message += f", and downloading it failed ({reason})"
    message += (
        f". Put the file there (download it from {url}), or use a data directory with a"
        f" {sub}/ sub-folder holding it: data_dir= in Python, --data-dir on the command line,"
        " or the VAE_NUMPY_DATA environment variable"
    )
    if reason is None:
        message += "; load_dataset(..., download=True) downloads it"
    misplaced = [folder.parent / f for f in filenames if (folder.parent / f).is_file()]
    if misplaced:
        fix = (
            f"use {str(folder.parent.parent)!r}, the directory that contains {sub}/, as the"
            " data directory"
            if folder.parent.name == sub
            else f"move it into {folder}"
        )
        message += f". Note: {misplaced[0]} exists but is not in a {sub}/ sub-folder; {fix}"
    return MissingDataError(
        message, dataset=dataset, folder=folder, filenames=filenames, reason=reason
    )


@contextlib.contextmanager
def _removed_if_left_empty(folder: Path) -> Iterator[None]:
    """Remove the folders that did not exist before, if they are still empty afterwards."""
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        yield
    finally:
        for p in created:  # deepest first
            with contextlib.suppress(OSError):
                p.rmdir()  # fails, and is skipped, when the folder is not empty


def require_file(
    dataset: str,
    filename: str,
    folder: Path,
    download: bool,
    progress: bool,
    validate: Callable[[Path], Any] | None = None,
) -> Path:
    """Path of a local copy of ``filename``, downloading it first if allowed.

    ``validate`` is passed on to :func:`fetch_file` (the check of a file without an MD5).
    Raises :class:`MissingDataError` when the file is missing and cannot be downloaded;
    folders created for a failed download are removed again.
    """
    found = _locate(folder, filename)
    if found is not None:
        return found
    if not download:
        raise missing_data_error(dataset, [filename], folder)
    existed = folder.is_dir()
    with _removed_if_left_empty(folder):
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
            raise missing_data_error(dataset, [filename], folder, str(exc), existed) from exc


# --------------------------------------------------------------------------------------------
# Downloading (with pooch)
# --------------------------------------------------------------------------------------------


def _copy_local(url: str, output_file: Any, pooch: Any) -> None:
    """A pooch downloader for ``file://`` URLs (a local mirror): copy the file."""
    source = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
    with open(source, "rb") as src, open(output_file, "wb") as out:
        shutil.copyfileobj(src, out)


class _Bar(tqdm):
    """A tqdm bar named after the file, for pooch (which tests ``if progressbar:``)."""

    def __bool__(self) -> bool:  # tqdm's bool() fails while the size is unknown
        return True


@contextlib.contextmanager
def _pooch_log(progress: bool) -> Iterator[None]:
    """Pooch logs each download ("Downloading data from ..."); silent when progress is off."""
    import pooch

    logger = pooch.get_logger()
    level = logger.level
    if not progress:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


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

    Each mirror's URL is ``mirror + filename`` (a ``/`` is inserted if missing); ``http(s)``,
    ``ftp`` and ``file://`` URLs work. Each is handed to ``pooch.retrieve``, which writes a
    temporary file in ``dest_dir``, checks its MD5 and renames it onto ``dest_dir/filename``.
    A file without a checksum is downloaded under a temporary name, given to ``validate``, and
    renamed only if it passes. Whatever happens, no partial or rejected file is left behind,
    and an existing file is only ever replaced by a valid one.

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
        Called with the path of the complete downloaded file; raising ``ValueError`` rejects it.
    progress : bool
        Show a progress bar (tqdm, on stderr) and pooch's log line while downloading.
    timeout : float
        Seconds to wait for a connection or for data before giving up on a mirror.

    Returns
    -------
    pathlib.Path
        ``dest_dir / filename``.

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
    import pooch  # imported here: it pulls in requests, which only a download needs
    import requests

    folder = Path(dest_dir).expanduser()
    dest = folder / filename
    known_hash = None if md5 is None else f"md5:{md5.lower()}"
    # pooch would keep an unchecked file under its final name: check it under another first
    target = dest if validate is None else folder / f".{filename}.unchecked"
    network_failures: list[str] = []
    bad_files: list[str] = []
    with _pooch_log(progress):
        for mirror in mirrors:
            url = (mirror if mirror.endswith("/") else mirror + "/") + filename
            bar = _Bar(desc=filename, unit="B", unit_scale=True, disable=not progress)
            downloader = (
                _copy_local
                if url.startswith("file:")
                else pooch.HTTPDownloader(progressbar=bar if progress else False, timeout=timeout)
                if url.startswith("http")
                else None  # pooch picks one (ftp, sftp)
            )
            if target != dest:
                target.unlink(missing_ok=True)
            try:
                pooch.retrieve(
                    url, known_hash, fname=target.name, path=folder, downloader=downloader
                )
            except ValueError as exc:  # pooch: the hash does not match (the file is deleted)
                bad_files.append(f"{url}: {exc}")
                continue
            except (requests.RequestException, OSError) as exc:
                network_failures.append(f"{url}: {exc}")
                continue
            finally:
                bar.close()
            if validate is not None:
                try:
                    validate(target)
                except ValueError as exc:
                    target.unlink(missing_ok=True)
                    bad_files.append(f"{url}: {exc}")
                    continue
                os.replace(target, dest)
            return dest
    tried = "; ".join(bad_files + network_failures)
    if bad_files:
        raise ChecksumError(
            f"no valid copy of {filename} was downloaded (tried {tried}); nothing was written"
            " - retry later, or fetch the file by hand and check its MD5"
        )
    raise DownloadError(f"could not download {filename} from any mirror (tried {tried})")
