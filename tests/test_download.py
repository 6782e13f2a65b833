"""Tests of downloading: mirrors, checksums, truncated transfers and atomic writes.

A real HTTP server on 127.0.0.1 (``http.server.ThreadingHTTPServer`` on a free port, in a
thread, shut down after each test) serves real files: the canonical MNIST test files from the
shared data folder when present, else a label file the test writes. URL prefixes choose the
server's behaviour: ``/ok/`` serves the file, ``/corrupt/`` flips one byte, ``/truncated/``
announces the full Content-Length but sends half and closes, anything else is a 404.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import shutil
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vae_numpy import data
from vae_numpy.data import ChecksumError, DownloadError, fetch_file, load_dataset

SHARED_DATA = Path(
    os.environ.get("VAE_NUMPY_TEST_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data"
)
LABELS = "t10k-labels-idx1-ubyte.gz"
IMAGES = "t10k-images-idx3-ubyte.gz"


@dataclass
class Server:
    """A running local HTTP server: base URL, the files it serves, and the paths requested."""

    url: str
    files: dict[str, bytes]
    requests: list[str] = field(default_factory=list)


class _Handler(http.server.BaseHTTPRequestHandler):
    timeout = 10  # seconds; a stuck client cannot hold a server thread forever

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        state: Server = self.server.state  # type: ignore[attr-defined]
        state.requests.append(self.path)
        mode, _, name = self.path.lstrip("/").partition("/")
        body = state.files.get(name)
        if body is None or mode not in ("ok", "corrupt", "truncated"):
            self.send_error(404, "not found")
            return
        if mode == "corrupt":
            body = body[:100] + bytes([body[100] ^ 0xFF]) + body[101:]
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "truncated":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass


@pytest.fixture
def server() -> Iterator[Server]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    state = Server(url=f"http://127.0.0.1:{httpd.server_address[1]}", files={})
    httpd.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@pytest.fixture
def label_file(tmp_path: Path) -> tuple[str, bytes, str]:
    """(name, bytes, md5): the real canonical MNIST test label file, else one written here."""
    real = SHARED_DATA / "mnist" / LABELS
    if real.is_file():
        body = real.read_bytes()
    else:
        labels = np.random.default_rng(0).integers(0, 10, size=1000, dtype=np.uint8)
        header = struct.pack(">BBBBi", 0, 0, 0x08, 1, len(labels))
        body = gzip.compress(header + labels.tobytes())
    return LABELS, body, hashlib.md5(body).hexdigest()


def closed_port_url() -> str:
    """A base URL on which nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def fetch(name: str, mirrors: list[str], dest: Path, md5: str | None, **kw: Any) -> Path:
    return fetch_file(name, mirrors, dest, md5, progress=False, timeout=5.0, **kw)


def test_good_file_is_downloaded_and_checked(server, label_file, tmp_path):
    """A served file arrives byte for byte under its name, with no temporary file left."""
    name, body, md5 = label_file
    server.files[name] = body
    dest = tmp_path / "cache"
    path = fetch(name, [f"{server.url}/ok/"], dest, md5)
    assert path == dest / name and path.read_bytes() == body
    assert os.listdir(dest) == [name]
    if md5 == data.MD5["mnist"][LABELS]:  # the real canonical file was served
        np.testing.assert_array_equal(data.read_idx(path)[:4], [7, 2, 1, 0])


def test_corrupted_file_raises_checksum_error_and_leaves_nothing(server, label_file, tmp_path):
    """A wrong MD5 raises ChecksumError (a ValueError) quoting both digests; nothing is left."""
    name, body, md5 = label_file
    server.files[name] = body
    dest = tmp_path / "cache"
    with pytest.raises(ChecksumError) as info:
        fetch(name, [f"{server.url}/corrupt/"], dest, md5)
    assert isinstance(info.value, ValueError)
    corrupted = body[:100] + bytes([body[100] ^ 0xFF]) + body[101:]
    assert md5 in str(info.value) and hashlib.md5(corrupted).hexdigest() in str(info.value)
    assert os.listdir(dest) == []


def test_missing_file_on_first_mirror_falls_back_to_second(server, label_file, tmp_path):
    """A 404 on the first mirror is followed by a successful download from the second."""
    name, body, md5 = label_file
    server.files[name] = body
    path = fetch(name, [f"{server.url}/nothing-here/", f"{server.url}/ok/"], tmp_path, md5)
    assert path.read_bytes() == body
    assert server.requests == [f"/nothing-here/{name}", f"/ok/{name}"]


def test_unreachable_and_corrupt_mirrors_are_skipped(server, label_file, tmp_path):
    """Connection refused, then a corrupt copy, then a good one: the good one is kept."""
    name, body, md5 = label_file
    server.files[name] = body
    mirrors = [closed_port_url(), f"{server.url}/corrupt", f"{server.url}/ok"]
    path = fetch(name, mirrors, tmp_path, md5)
    assert path.read_bytes() == body and os.listdir(tmp_path) == [name]


def test_truncated_transfer_is_a_mirror_failure(server, label_file, tmp_path):
    """Fewer bytes than Content-Length: the next mirror is tried, no partial file remains."""
    name, body, md5 = label_file
    server.files[name] = body
    path = fetch(name, [f"{server.url}/truncated/", f"{server.url}/ok/"], tmp_path, md5)
    assert path.read_bytes() == body and os.listdir(tmp_path) == [name]


def test_truncated_transfer_without_checksum_is_still_rejected(server, label_file, tmp_path):
    """With no MD5 to check, a short transfer alone raises DownloadError and leaves nothing."""
    name, body, _ = label_file
    server.files[name] = body
    with pytest.raises(DownloadError, match=rf"IncompleteRead\({len(body) // 2} bytes read"):
        fetch(name, [f"{server.url}/truncated/"], tmp_path, None)
    assert os.listdir(tmp_path) == []


def test_all_mirrors_failing_raises_oserror_listing_each(server, label_file, tmp_path):
    """When every mirror fails on the network, DownloadError (an OSError) lists every URL."""
    name, body, md5 = label_file
    server.files[name] = body
    refused = closed_port_url()
    with pytest.raises(OSError) as info:
        fetch(name, [f"{server.url}/gone/", refused], tmp_path, md5)
    assert isinstance(info.value, DownloadError)
    assert "404" in str(info.value) and f"{refused}/{name}" in str(info.value)
    assert os.listdir(tmp_path) == []


def test_failed_download_leaves_existing_file_untouched(server, label_file, tmp_path):
    """A corrupt download never replaces a file already in place."""
    name, body, md5 = label_file
    server.files[name] = body
    (tmp_path / name).write_bytes(b"previous contents")
    with pytest.raises(ChecksumError):
        fetch(name, [f"{server.url}/corrupt/"], tmp_path, md5)
    assert (tmp_path / name).read_bytes() == b"previous contents"
    assert os.listdir(tmp_path) == [name]


def test_validate_hook_rejects_a_file_without_checksum(server, tmp_path):
    """A file with no published MD5 is kept only if the validate callback accepts it."""
    server.files["thing.bin"] = b"not what we wanted" * 10

    def reject(path: Path) -> None:
        raise ValueError(f"{path.name} has the wrong structure")

    with pytest.raises(ChecksumError, match="wrong structure"):
        fetch("thing.bin", [f"{server.url}/ok/"], tmp_path, None, validate=reject)
    assert os.listdir(tmp_path) == []


def test_load_dataset_downloads_real_mnist_into_cache_once(server, tmp_path, monkeypatch):
    """load_dataset fetches real files via MIRRORS, checks the real MD5s, then reuses them."""
    shared = SHARED_DATA / "mnist"
    if not all((shared / f).is_file() for f in (IMAGES, LABELS)):
        pytest.skip(f"real MNIST test files not found in {shared}")
    for f in (IMAGES, LABELS):
        server.files[f] = (shared / f).read_bytes()
    monkeypatch.setitem(data.MIRRORS, "mnist", [f"{server.url}/gone/", f"{server.url}/ok/"])
    ds = load_dataset("mnist", "test", data_dir=tmp_path, progress=False)
    assert sorted(os.listdir(tmp_path / "mnist")) == sorted([IMAGES, LABELS])
    reference = load_dataset("mnist", "test", data_dir=SHARED_DATA, download=False)
    np.testing.assert_array_equal(ds.x, reference.x)
    np.testing.assert_array_equal(ds.y, reference.y)
    requests = len(server.requests)
    load_dataset("mnist", "test", data_dir=tmp_path, progress=False)
    assert len(server.requests) == requests  # served from the cache


def test_load_dataset_with_failing_mirrors_names_file_and_folder(server, tmp_path, monkeypatch):
    """When no mirror works, the error says which file to put in which folder."""
    monkeypatch.setitem(data.MIRRORS, "fashion-mnist", [f"{server.url}/gone/"])
    with pytest.raises(DownloadError) as info:
        load_dataset("fashion-mnist", "test", data_dir=tmp_path, progress=False)
    message = str(info.value)
    assert IMAGES in message and str(tmp_path / "fashion_mnist") in message
    assert isinstance(info.value, FileNotFoundError) and "404" in info.value.reason
    assert info.value.folder == tmp_path / "fashion_mnist"
    assert os.listdir(tmp_path) == []  # the folder made for the download is removed again


def test_failed_download_into_a_new_data_dir_leaves_no_folders(server, tmp_path, monkeypatch):
    """A data directory that did not exist is not left behind, empty, by a failed download."""
    monkeypatch.setitem(data.MIRRORS, "mnist", [closed_port_url()])
    with pytest.raises(DownloadError) as info:
        load_dataset("mnist", "test", data_dir=tmp_path / "new" / "cache", progress=False)
    assert "(that folder does not exist)" in str(info.value)
    assert os.listdir(tmp_path) == []


def test_progress_bar_is_drawn_only_when_asked(server, label_file, tmp_path, capfd):
    """progress=True draws a byte-counting bar on stderr; progress=False prints nothing."""
    name, body, md5 = label_file
    server.files[name] = body
    fetch_file(name, [f"{server.url}/ok/"], tmp_path / "quiet", md5, progress=False)
    quiet = capfd.readouterr()
    assert quiet.out == "" and quiet.err == ""
    fetch_file(name, [f"{server.url}/ok/"], tmp_path / "loud", md5, progress=True)
    err = capfd.readouterr().err
    assert "100%" in err and f"{name}" in err


def test_download_false_names_file_and_folder_without_network(server, tmp_path, monkeypatch):
    """download=False with a missing file raises FileNotFoundError and makes no request."""
    monkeypatch.setitem(data.MIRRORS, "mnist", [f"{server.url}/ok/"])
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("mnist", "train", data_dir=tmp_path, download=False)
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message and str(tmp_path / "mnist") in message
    assert server.requests == []


def test_frey_download_is_checked_by_structure(server, tmp_path, monkeypatch):
    """frey_rawface.mat has no published MD5: a valid .mat is kept, a bad one rejected."""
    from scipy.io import savemat

    ff = np.random.default_rng(1).integers(0, 256, size=(560, 1965), dtype=np.uint8)
    savemat(tmp_path / "served.mat", {"ff": ff})
    savemat(tmp_path / "wrong.mat", {"ff": ff[:, :10]})
    monkeypatch.setitem(data.MIRRORS, "frey-faces", [f"{server.url}/ok/"])

    server.files["frey_rawface.mat"] = (tmp_path / "wrong.mat").read_bytes()
    with pytest.raises(ChecksumError, match="'ff'"):
        load_dataset("frey-faces", "all", data_dir=tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad").exists()  # the rejected file and its new folders are gone

    server.files["frey_rawface.mat"] = (tmp_path / "served.mat").read_bytes()
    ds = load_dataset("frey-faces", "all", data_dir=tmp_path / "good", progress=False)
    np.testing.assert_array_equal(np.rint(ds.x * 255).astype(np.uint8), ff.T)


def test_file_urls_work_as_mirrors(tmp_path, label_file):
    """A file:// base URL (a local mirror) is accepted like an HTTP one."""
    name, body, md5 = label_file
    (tmp_path / "mirror").mkdir()
    (tmp_path / "mirror" / name).write_bytes(body)
    path = fetch(name, [(tmp_path / "mirror").as_uri()], tmp_path / "cache", md5)
    assert path.read_bytes() == body
    shutil.rmtree(tmp_path / "mirror")


def test_fetch_file_validates_arguments(tmp_path):
    """A path as file name, a bare string of mirrors or no mirror at all are refused."""
    with pytest.raises(ValueError, match="plain file name"):
        fetch_file("../escape.gz", ["http://127.0.0.1/"], tmp_path)
    with pytest.raises(TypeError, match="list of base URLs"):
        fetch_file("a.gz", "http://127.0.0.1/", tmp_path)
    with pytest.raises(ValueError, match="no mirror"):
        fetch_file("a.gz", [], tmp_path)
