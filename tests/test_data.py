"""Tests of vae_numpy.data: loaders, the IDX parser, fixed splits, binarisation, mini-batches.

Real files are read from the ``shared/data`` folder beside the project checkout (or from the
folder named by ``VAE_NUMPY_TEST_DATA``); tests that need them skip, saying why, when absent.
Reference numbers for the real files were computed with the recipe of their PROVENANCE.md
(``np.frombuffer(gzip.open(p).read(), np.uint8, offset=...)``), not with this module.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from vae_numpy import data
from vae_numpy.data import (
    MD5,
    Dataset,
    binarize,
    gaussian_mixture,
    get_data_dir,
    load_dataset,
    minibatches,
    read_idx,
    two_moons,
)

SHARED_DATA = Path(
    os.environ.get("VAE_NUMPY_TEST_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data"
)


def shared_folder(sub: str, *files: str) -> Path:
    """The real-data folder ``sub``, or skip the test when one of ``files`` is missing."""
    folder = SHARED_DATA / sub
    for name in files:
        if not (folder / name).is_file():
            pytest.skip(
                f"real data file {folder / name} not found; set VAE_NUMPY_TEST_DATA to a folder"
                " holding mnist/, fashion_mnist/ and frey_face/"
            )
    return folder


def raw_idx(values: np.ndarray, code: int = 0x08, be_format: str = "B") -> bytes:
    """IDX bytes written by hand with struct (independent of the module's parser)."""
    header = struct.pack(">BBBB", 0, 0, code, values.ndim)
    header += struct.pack(f">{values.ndim}i", *values.shape)
    body = struct.pack(f">{values.size}{be_format}", *values.ravel().tolist())
    return header + body


def write_gz(path: Path, payload: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(payload, compresslevel=1))
    return path


def rows_multiset(x: np.ndarray) -> list[bytes]:
    return sorted(row.tobytes() for row in x)


MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


@pytest.fixture(scope="module")
def mnist_train() -> Dataset:
    folder = shared_folder("mnist", *MNIST_FILES[:2])
    return load_dataset("mnist", "train", data_dir=folder.parent, download=False)


@pytest.fixture(scope="module")
def mnist_test() -> Dataset:
    folder = shared_folder("mnist", *MNIST_FILES[2:])
    return load_dataset("mnist", "test", data_dir=folder.parent, download=False)


@pytest.fixture
def tiny_mnist(tmp_path: Path) -> tuple[Path, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """A data dir whose mnist/ folder holds hand-written IDX files: 5 train and 3 test images."""
    rng = np.random.default_rng(7)
    splits = {}
    for split, n in (("train", 5), ("t10k", 3)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        write_gz(tmp_path / "mnist" / f"{split}-images-idx3-ubyte.gz", raw_idx(images))
        write_gz(tmp_path / "mnist" / f"{split}-labels-idx1-ubyte.gz", raw_idx(labels))
        splits[split] = (images, labels)
    return tmp_path, splits


# ------------------------------------------------------------------------------------------
# digits
# ------------------------------------------------------------------------------------------


def test_digits_splits_have_documented_sizes():
    """digits: train 1500, test 297, all 1797 rows of 64 float32 pixels, image shape (8, 8)."""
    for split, n in (("train", 1500), ("test", 297), ("all", 1797)):
        ds = load_dataset("digits", split)
        assert ds.x.shape == (n, 64) and ds.x.dtype == np.float32
        assert ds.y is not None and ds.y.shape == (n,) and ds.y.dtype == np.int64
        assert ds.image_shape == (8, 8) and ds.name == "digits" and ds.split == split


def test_dataset_unpacks_as_x_y_image_shape():
    """A Dataset unpacks into exactly (x, y, image_shape)."""
    ds = load_dataset("digits", "test")
    x, y, image_shape = ds
    assert x is ds.x and y is ds.y and image_shape == (8, 8)
    assert ds.images.shape == (297, 8, 8) and ds.n_examples == 297 and ds.n_features == 64


def test_digits_are_sklearn_pixels_divided_by_16():
    """digits 'all' equals scikit-learn's pixel counts (0..16) / 16, in the original order."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    ds = load_dataset("digits", "all")
    np.testing.assert_array_equal(ds.x * 16, bunch.data)
    np.testing.assert_array_equal(ds.y, bunch.target)
    assert ds.x.min() == 0.0 and ds.x.max() == 1.0
    assert set(np.unique(ds.y)) == set(range(10))


def test_digits_split_is_the_documented_seeded_permutation():
    """test = sorted(perm[-297:]), train = sorted(perm[:1500]) for perm from default_rng(0)."""
    everything = load_dataset("digits", "all")
    perm = np.random.default_rng(0).permutation(1797)
    test_idx, train_idx = np.sort(perm[-297:]), np.sort(perm[:1500])
    np.testing.assert_array_equal(load_dataset("digits", "test").x, everything.x[test_idx])
    np.testing.assert_array_equal(load_dataset("digits", "train").x, everything.x[train_idx])
    # Pinned from that recipe: a numpy change that altered the held-out set must show up here.
    np.testing.assert_array_equal(test_idx[:8], [1, 3, 4, 6, 7, 9, 16, 29])


def test_digits_split_is_deterministic_disjoint_and_covering():
    """Loading twice gives the same split; train and test together are exactly 'all'."""
    train, test, everything = (load_dataset("digits", s) for s in ("train", "test", "all"))
    np.testing.assert_array_equal(train.x, load_dataset("digits", "train").x)
    assert rows_multiset(np.concatenate([train.x, test.x])) == rows_multiset(everything.x)
    assert train.y is not None and test.y is not None and everything.y is not None
    counts = np.bincount(train.y, minlength=10) + np.bincount(test.y, minlength=10)
    np.testing.assert_array_equal(counts, np.bincount(everything.y, minlength=10))


def test_unknown_name_and_split_list_the_valid_ones():
    """Unknown names and splits raise ValueError naming every valid choice."""
    with pytest.raises(ValueError, match="'digits', 'mnist', 'fashion-mnist', 'frey-faces'"):
        load_dataset("cifar10")
    with pytest.raises(ValueError, match="'train', 'test', 'all'"):
        load_dataset("digits", "validation")
    with pytest.raises(ValueError, match="unknown name"):
        load_dataset(3)


def test_name_ignores_case_and_underscores(tiny_mnist):
    """'MNIST' and 'fashion_mnist'-style spellings are accepted."""
    data_dir, _ = tiny_mnist
    assert load_dataset("MNIST", "test", data_dir=data_dir, download=False).name == "mnist"


# ------------------------------------------------------------------------------------------
# MNIST-format files written by the tests
# ------------------------------------------------------------------------------------------


def test_mnist_loader_scales_hand_written_idx_files(tiny_mnist):
    """x = pixels / 255 flattened row-major, y = labels as int64, for each split."""
    data_dir, splits = tiny_mnist
    for split, key in (("train", "train"), ("test", "t10k")):
        images, labels = splits[key]
        ds = load_dataset("mnist", split, data_dir=data_dir, download=False)
        assert ds.x.dtype == np.float32 and ds.x.shape == (len(images), 784)
        np.testing.assert_allclose(ds.x, images.reshape(len(images), 784) / 255.0, rtol=1e-6)
        np.testing.assert_array_equal(ds.y, labels)
        assert ds.y is not None and ds.y.dtype == np.int64


def test_split_all_is_train_followed_by_test(tiny_mnist):
    """MNIST 'all' concatenates the train split and then the test split."""
    data_dir, splits = tiny_mnist
    everything = load_dataset("mnist", "all", data_dir=data_dir, download=False)
    expected = np.concatenate([splits["train"][1], splits["t10k"][1]])
    np.testing.assert_array_equal(everything.y, expected)
    assert everything.x.shape == (8, 784)


def test_data_dir_comes_from_environment_variable(tiny_mnist, monkeypatch):
    """Without data_dir, VAE_NUMPY_DATA names the directory that holds mnist/."""
    data_dir, splits = tiny_mnist
    monkeypatch.setenv("VAE_NUMPY_DATA", str(data_dir))
    ds = load_dataset("mnist", "test", download=False)
    np.testing.assert_array_equal(ds.y, splits["t10k"][1])


def test_get_data_dir_precedence(tmp_path, monkeypatch):
    """data_dir beats VAE_NUMPY_DATA, which beats $XDG_CACHE_HOME/vae_numpy, then ~/.cache."""
    monkeypatch.delenv("VAE_NUMPY_DATA", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert get_data_dir() == tmp_path / "home" / ".cache" / "vae_numpy"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert get_data_dir() == tmp_path / "xdg" / "vae_numpy"
    monkeypatch.setenv("VAE_NUMPY_DATA", str(tmp_path / "env"))
    assert get_data_dir() == tmp_path / "env"
    assert get_data_dir(tmp_path / "arg") == tmp_path / "arg"


def test_gunzipped_copies_are_accepted(tmp_path):
    """An uncompressed file without the .gz suffix loads like the .gz file."""
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(4, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1], dtype=np.uint8)
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "t10k-images-idx3-ubyte").write_bytes(raw_idx(images))
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte").write_bytes(raw_idx(labels))
    ds = load_dataset("mnist", "test", data_dir=tmp_path, download=False)
    np.testing.assert_array_equal(ds.y, labels)
    np.testing.assert_array_equal(np.rint(ds.x * 255).astype(np.uint8), images.reshape(4, -1))


def test_missing_file_without_download_names_file_and_folder(tmp_path):
    """download=False with no file raises FileNotFoundError naming the file and the folder."""
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("mnist", "test", data_dir=tmp_path, download=False)
    message = str(info.value)
    assert "t10k-images-idx3-ubyte.gz" in message and str(tmp_path / "mnist") in message


def test_files_outside_the_dataset_folder_are_pointed_out(tiny_mnist):
    """Pointing data_dir at mnist/ itself yields a hint to pass its parent."""
    data_dir, _ = tiny_mnist
    with pytest.raises(FileNotFoundError, match="the directory that contains mnist/"):
        load_dataset("mnist", "test", data_dir=data_dir / "mnist", download=False)


# ------------------------------------------------------------------------------------------
# The IDX parser
# ------------------------------------------------------------------------------------------


def test_read_idx_round_trips_hand_written_files(tmp_path):
    """read_idx returns the shape and values that a hand-written header and payload declare."""
    values = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    plain = tmp_path / "plain-idx3-ubyte"
    plain.write_bytes(raw_idx(values))
    packed = write_gz(tmp_path / "packed-idx3-ubyte.gz", raw_idx(values))
    for path in (plain, packed):
        out = read_idx(path)
        assert out.dtype == np.uint8 and out.shape == (2, 3, 4)
        np.testing.assert_array_equal(out, values)


def test_read_idx_decodes_big_endian_multibyte_types(tmp_path):
    """int16 (0x0B) and float32 (0x0D) payloads are read big-endian into native values."""
    ints = np.array([[-2, 300], [7, -32768]], dtype=np.int16)
    (tmp_path / "i16").write_bytes(raw_idx(ints, code=0x0B, be_format="h"))
    np.testing.assert_array_equal(read_idx(tmp_path / "i16"), ints)
    floats = np.array([0.5, -1.25, 3e8], dtype=np.float32)
    (tmp_path / "f32").write_bytes(raw_idx(floats, code=0x0D, be_format="f"))
    out = read_idx(tmp_path / "f32")
    assert out.dtype == np.float32 and out.dtype.isnative
    np.testing.assert_array_equal(out, floats)


def test_read_idx_rejects_bad_magic_naming_the_file(tmp_path):
    """A wrong magic number (non-zero leading bytes, unknown type, 0 dims) raises ValueError."""
    good = raw_idx(np.zeros((2, 2), dtype=np.uint8))
    for i, magic in enumerate((b"\x01\x00\x08\x02", b"\x00\x00\x07\x02", b"\x00\x00\x08\x00")):
        path = tmp_path / f"bad{i}"
        path.write_bytes(magic + good[4:])
        with pytest.raises(ValueError, match=f"{path.name}.*magic"):
            read_idx(path)


def test_read_idx_rejects_truncated_or_padded_payload(tmp_path):
    """A payload shorter or longer than the header announces raises ValueError with the file."""
    good = raw_idx(np.ones((3, 28, 28), dtype=np.uint8))
    cases = {"short": good[:-1], "long": good + b"\x00", "header": good[:9], "tiny": good[:2]}
    for label, payload in cases.items():
        path = write_gz(tmp_path / f"{label}.gz", payload)
        with pytest.raises(ValueError, match=path.name):
            read_idx(path)


def test_read_idx_rejects_truncated_gzip_stream(tmp_path):
    """A .gz file cut short (an interrupted copy) raises ValueError naming the file."""
    packed = gzip.compress(raw_idx(np.ones((50, 28, 28), dtype=np.uint8)))
    path = tmp_path / "cut.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(ValueError, match="cut.gz"):
        read_idx(path)


def test_label_file_in_place_of_images_is_rejected(tmp_path):
    """Swapped image and label files raise ValueError instead of loading nonsense."""
    labels = np.array([1, 2, 3], dtype=np.uint8)
    write_gz(tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz", raw_idx(labels))
    write_gz(tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz", raw_idx(labels))
    with pytest.raises(ValueError, match="uint8 images of shape"):
        load_dataset("mnist", "test", data_dir=tmp_path, download=False)


# ------------------------------------------------------------------------------------------
# Real MNIST
# ------------------------------------------------------------------------------------------


def test_real_mnist_has_canonical_shapes_and_range(mnist_train, mnist_test):
    """MNIST: (60000, 784) and (10000, 784) float32 in [0, 1], 28 x 28 images, int64 labels."""
    for ds, n in ((mnist_train, 60000), (mnist_test, 10000)):
        assert ds.x.shape == (n, 784) and ds.x.dtype == np.float32
        assert ds.x.min() == 0.0 and ds.x.max() == 1.0
        assert ds.image_shape == (28, 28)
        assert ds.y is not None and ds.y.shape == (n,) and ds.y.dtype == np.int64


def test_real_mnist_labels_start_in_published_order(mnist_train, mnist_test):
    """The first ten labels: train 5 0 4 1 9 2 1 3 1 4, test 7 2 1 0 4 1 4 9 5 9."""
    np.testing.assert_array_equal(mnist_train.y[:10], [5, 0, 4, 1, 9, 2, 1, 3, 1, 4])
    np.testing.assert_array_equal(mnist_test.y[:10], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9])


def test_real_mnist_label_counts(mnist_train, mnist_test):
    """Digit counts: test 980 1135 1032 ... (PROVENANCE.md); train 5923 6742 5958 ..."""
    test_counts = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    train_counts = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    np.testing.assert_array_equal(np.bincount(mnist_test.y, minlength=10), test_counts)
    np.testing.assert_array_equal(np.bincount(mnist_train.y, minlength=10), train_counts)


def test_real_mnist_pixel_sums_match_raw_bytes(mnist_train, mnist_test):
    """x * 255 recovers the uint8 pixels exactly: their sums equal those of the raw files."""
    # Sums of the uint8 payloads, computed once with
    # np.frombuffer(gzip.open(p).read(), np.uint8, offset=16).astype(np.int64).sum().
    # Check: 1567298545 / (60000 * 784 * 255) = 0.1307, the well-known MNIST mean.
    for ds, expected in ((mnist_train, 1567298545), (mnist_test, 264923200)):
        total = 0
        for start in range(0, ds.n_examples, 10000):  # chunks keep memory and time small
            scaled = ds.x[start : start + 10000] * np.float32(255)
            pixels = np.rint(scaled)
            assert np.abs(scaled - pixels).max() < 1e-4
            total += int(pixels.sum(dtype=np.float64))  # exact: integers below 2**53
        assert total == expected


def test_read_idx_agrees_with_provenance_recipe_on_real_file():
    """read_idx equals np.frombuffer(gzip data, offset=16) reshaped, on the real test images."""
    path = shared_folder("mnist", "t10k-images-idx3-ubyte.gz") / "t10k-images-idx3-ubyte.gz"
    recipe = np.frombuffer(gzip.open(path).read(), np.uint8, offset=16).reshape(-1, 28, 28)
    np.testing.assert_array_equal(read_idx(path), recipe)


def test_checksum_table_matches_real_files():
    """The module's MD5 table agrees with hashlib on every real canonical file present."""
    checked = 0
    for dataset, sub in (("mnist", "mnist"), ("fashion-mnist", "fashion_mnist")):
        for name, md5 in MD5[dataset].items():
            path = SHARED_DATA / sub / name
            if path.is_file():
                assert hashlib.md5(path.read_bytes()).hexdigest() == md5, name
                checked += 1
    if checked == 0:
        pytest.skip(f"no real canonical files under {SHARED_DATA}")
    assert all(len(v) == 32 for d in ("mnist", "fashion-mnist") for v in MD5[d].values() if v)


# ------------------------------------------------------------------------------------------
# Fashion-MNIST (real label files; images only as a 2,000-image npz)
# ------------------------------------------------------------------------------------------


def test_real_fashion_label_files_are_balanced():
    """Fashion-MNIST labels: 6000 per class in train, 1000 per class in test, classes 0-9."""
    folder = shared_folder(
        "fashion_mnist", "train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz"
    )
    train = read_idx(folder / "train-labels-idx1-ubyte.gz")
    test = read_idx(folder / "t10k-labels-idx1-ubyte.gz")
    assert train.shape == (60000,) and test.shape == (10000,) and train.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(train, minlength=10), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(test, minlength=10), [1000] * 10)


def test_real_fashion_test_labels_agree_with_independent_copy():
    """The first 2000 canonical test labels equal those of the separately sourced npz."""
    folder = shared_folder(
        "fashion_mnist", "t10k-labels-idx1-ubyte.gz", "t10k-labels-first2000.npz"
    )
    with np.load(folder / "t10k-labels-first2000.npz", allow_pickle=False) as npz:
        subset = npz["arr_0"]
    np.testing.assert_array_equal(read_idx(folder / "t10k-labels-idx1-ubyte.gz")[:2000], subset)


def test_fashion_loader_reads_real_pixels_through_idx(tmp_path):
    """Real Fashion-MNIST pixels written as IDX files load as pixels / 255 with their labels."""
    folder = shared_folder(
        "fashion_mnist", "t10k-images-first2000.npz", "t10k-labels-first2000.npz"
    )
    with np.load(folder / "t10k-images-first2000.npz", allow_pickle=False) as npz:
        images = npz["arr_0"][:300]
    with np.load(folder / "t10k-labels-first2000.npz", allow_pickle=False) as npz:
        labels = npz["arr_0"][:300]
    out = tmp_path / "fashion_mnist"
    write_gz(out / "t10k-images-idx3-ubyte.gz", raw_idx(images))
    write_gz(out / "t10k-labels-idx1-ubyte.gz", raw_idx(labels))
    ds = load_dataset("fashion-mnist", "test", data_dir=tmp_path, download=False)
    assert ds.x.shape == (300, 784) and ds.image_shape == (28, 28)
    np.testing.assert_array_equal(np.rint(ds.x * 255).astype(np.uint8), images.reshape(300, -1))
    np.testing.assert_array_equal(ds.y, labels)


def test_image_and_label_counts_must_agree(tmp_path):
    """10000 real labels with 20 images raise ValueError naming both counts."""
    folder = shared_folder("fashion_mnist", "t10k-labels-idx1-ubyte.gz")
    out = tmp_path / "fashion_mnist"
    out.mkdir()
    (out / "t10k-labels-idx1-ubyte.gz").write_bytes(
        (folder / "t10k-labels-idx1-ubyte.gz").read_bytes()
    )
    write_gz(out / "t10k-images-idx3-ubyte.gz", raw_idx(np.zeros((20, 28, 28), np.uint8)))
    with pytest.raises(ValueError, match="20 images.*10000 labels"):
        load_dataset("fashion-mnist", "test", data_dir=tmp_path, download=False)


def test_shared_fashion_folder_lacks_images_and_says_so():
    """The shared Fashion-MNIST folder (labels only) gives FileNotFoundError naming the file."""
    folder = shared_folder("fashion_mnist", "t10k-labels-idx1-ubyte.gz")
    if (folder / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip("the full Fashion-MNIST test images are present")
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte.gz"):
        load_dataset("fashion-mnist", "test", data_dir=folder.parent, download=False)


# ------------------------------------------------------------------------------------------
# Frey Face
# ------------------------------------------------------------------------------------------


def test_real_frey_faces_have_documented_shape_and_range():
    """Frey Face from the .npy: 1965 x 560 float32, image (28, 20), pixels 8..238 / 255, no y."""
    folder = shared_folder("frey_face", "frey_faces.npy")
    ds = load_dataset("frey-faces", "all", data_dir=folder.parent, download=False)
    assert ds.x.shape == (1965, 560) and ds.x.dtype == np.float32
    assert ds.image_shape == (28, 20) and ds.y is None
    np.testing.assert_allclose([ds.x.min(), ds.x.max()], [8 / 255, 238 / 255], rtol=1e-6)
    raw = np.load(folder / "frey_faces.npy", allow_pickle=False)
    np.testing.assert_array_equal(np.rint(ds.x * 255).astype(np.uint8), raw)


def test_real_frey_split_is_random_disjoint_and_covering():
    """Frey train 1765 + test 200 frames are exactly the 1965 frames, test not contiguous."""
    folder = shared_folder("frey_face", "frey_faces.npy")
    train, test, everything = (
        load_dataset("frey-faces", s, data_dir=folder.parent, download=False)
        for s in ("train", "test", "all")
    )
    assert train.x.shape == (1765, 560) and test.x.shape == (200, 560)
    assert rows_multiset(np.concatenate([train.x, test.x])) == rows_multiset(everything.x)
    perm = np.random.default_rng(0).permutation(1965)
    test_idx = np.sort(perm[-200:])
    np.testing.assert_array_equal(test.x, everything.x[test_idx])
    assert test_idx.max() - test_idx.min() > 1000  # spread over the video, not one stretch


def test_frey_mat_file_is_read_as_transposed_ff(tmp_path):
    """frey_rawface.mat with ff of shape (560, 1965) loads as ff.T / 255, one frame per row."""
    from scipy.io import savemat

    ff = np.random.default_rng(5).integers(0, 256, size=(560, 1965), dtype=np.uint8)
    (tmp_path / "frey_face").mkdir()
    savemat(tmp_path / "frey_face" / "frey_rawface.mat", {"ff": ff})
    ds = load_dataset("frey-faces", "all", data_dir=tmp_path, download=False)
    np.testing.assert_array_equal(np.rint(ds.x * 255).astype(np.uint8), ff.T)
    assert ds.images[0, 0, 1] * 255 == pytest.approx(ff[1, 0])  # row-major 28 x 20 frames


def test_frey_files_with_wrong_shape_are_rejected(tmp_path):
    """A .mat or .npy of the wrong shape raises ValueError naming the file."""
    from scipy.io import savemat

    folder = tmp_path / "frey_face"
    folder.mkdir()
    np.save(folder / "frey_faces.npy", np.zeros((10, 560), np.uint8))
    with pytest.raises(ValueError, match="frey_faces.npy"):
        load_dataset("frey-faces", data_dir=tmp_path, download=False)
    savemat(folder / "frey_rawface.mat", {"ff": np.zeros((560, 10), np.uint8)})
    with pytest.raises(ValueError, match="frey_rawface.mat"):
        load_dataset("frey-faces", data_dir=tmp_path, download=False)


def test_missing_frey_file_names_both_accepted_files(tmp_path):
    """Without any Frey file and download=False, the error names the .mat and the .npy."""
    with pytest.raises(FileNotFoundError, match="frey_rawface.mat or frey_faces.npy"):
        load_dataset("frey-faces", data_dir=tmp_path, download=False)


# ------------------------------------------------------------------------------------------
# binarize
# ------------------------------------------------------------------------------------------


def test_binarize_mean_matches_probabilities():
    """Column means of many binarisations equal the probabilities within 5 standard errors."""
    p = np.linspace(0.0, 1.0, 41, dtype=np.float32)
    draws = binarize(np.tile(p, (20000, 1)), rng=0)  # (20000, 41)
    se = np.sqrt(p * (1 - p) / 20000)
    assert np.all(np.abs(draws.mean(axis=0) - p) <= 5 * se + 1e-12)


def test_binarize_gives_zeros_and_ones_in_input_dtype():
    """Output is 0/1, float32 stays float32, float64 stays float64, ints become float32."""
    x = np.random.default_rng(0).random((30, 7))
    for arr in (x.astype(np.float32), x):
        out = binarize(arr, rng=1)
        assert out.dtype == arr.dtype and out.shape == arr.shape
        assert set(np.unique(out)) <= {0.0, 1.0}
    assert binarize(np.array([[0, 1]]), rng=0).dtype == np.float32


def test_binarize_is_deterministic_at_0_and_1_and_per_seed():
    """p = 0 gives 0, p = 1 gives 1; the same seed gives the same draw."""
    x = np.array([[0.0, 1.0] * 500], dtype=np.float32)
    np.testing.assert_array_equal(binarize(x, rng=3), x)
    y = np.full((10, 10), 0.5, np.float32)
    np.testing.assert_array_equal(binarize(y, rng=9), binarize(y, rng=9))
    assert not np.array_equal(binarize(y, rng=9), binarize(y, rng=10))


def test_binarize_rejects_values_outside_unit_interval():
    """Pixels in 0..255 or NaN raise ValueError instead of drawing nonsense."""
    with pytest.raises(ValueError, match="divide by 255"):
        binarize(np.array([[0.0, 255.0]]))
    with pytest.raises(ValueError, match="NaN"):
        binarize(np.array([[np.nan]]))


# ------------------------------------------------------------------------------------------
# minibatches
# ------------------------------------------------------------------------------------------


def test_minibatches_cover_every_index_once_per_epoch():
    """An epoch's batches are a partition of range(n), sizes b, ..., b, n mod b."""
    x = np.zeros((103, 2))
    batches = list(minibatches(x, 10, rng=0))
    assert [len(b) for b in batches] == [10] * 10 + [3]
    np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(103))
    assert not np.array_equal(np.concatenate(batches), np.arange(103))  # shuffled


def test_minibatches_same_seed_same_order():
    """The same seed yields the same batches; shuffle=False yields 0, 1, ..., n - 1."""
    first = np.concatenate(list(minibatches(50, 8, rng=4)))
    np.testing.assert_array_equal(first, np.concatenate(list(minibatches(50, 8, rng=4))))
    assert not np.array_equal(first, np.concatenate(list(minibatches(50, 8, rng=5))))
    np.testing.assert_array_equal(
        np.concatenate(list(minibatches(50, 8, shuffle=False))), np.arange(50)
    )


def test_minibatches_validate_arguments_when_called():
    """A bad batch size or empty data raises at the call, before any iteration."""
    with pytest.raises(ValueError, match="batch_size"):
        minibatches(np.zeros((5, 2)), 0)
    with pytest.raises(TypeError, match="batch_size"):
        minibatches(np.zeros((5, 2)), 2.5)
    with pytest.raises(ValueError, match="empty"):
        minibatches(np.zeros((0, 2)), 4)


# ------------------------------------------------------------------------------------------
# 2-D toy sets
# ------------------------------------------------------------------------------------------


def test_gaussian_mixture_components_have_requested_means_and_spread():
    """Each component's sample mean is near radius * (cos, sin)(2 pi k / K), its std near std."""
    x, y = gaussian_mixture(8000, rng=0, n_components=4, radius=3.0, std=0.5)
    assert x.shape == (8000, 2) and x.dtype == np.float32 and y.dtype == np.int64
    centres = {0: (3.0, 0.0), 1: (0.0, 3.0), 2: (-3.0, 0.0), 3: (0.0, -3.0)}
    for k, centre in centres.items():
        pts = x[y == k]
        assert len(pts) > 1500
        np.testing.assert_allclose(pts.mean(axis=0), centre, atol=5 * 0.5 / np.sqrt(len(pts)))
        np.testing.assert_allclose(pts.std(axis=0), 0.5, rtol=0.1)


def test_two_moons_without_noise_lie_on_their_half_circles():
    """With noise=0, moon 0 lies on the unit circle, moon 1 on the one centred at (1, 1/2)."""
    x, y = two_moons(301, rng=2, noise=0.0)
    assert x.shape == (301, 2) and np.bincount(y).tolist() == [151, 150]
    upper, lower = x[y == 0].astype(np.float64), x[y == 1].astype(np.float64)
    np.testing.assert_allclose(np.hypot(upper[:, 0], upper[:, 1]), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.hypot(lower[:, 0] - 1, lower[:, 1] - 0.5), 1.0, atol=1e-6)
    assert upper[:, 1].min() >= -1e-6 and lower[:, 1].max() <= 0.5 + 1e-6
    assert not np.all(y[:151] == 0)  # interleaved, not moon 0 first


def test_toy_sets_are_reproducible_per_seed():
    """The same seed gives the same points."""
    np.testing.assert_array_equal(gaussian_mixture(50, rng=1)[0], gaussian_mixture(50, rng=1)[0])
    np.testing.assert_array_equal(two_moons(50, rng=1)[0], two_moons(50, rng=1)[0])


def test_module_exports_only_defined_names():
    """Every name in __all__ exists in the module."""
    assert all(hasattr(data, name) for name in data.__all__)
