"""Safe files: atomic writes, refusal of pickles and of damaged or foreign archives."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from vae_numpy.serialization import FORMAT_VERSION, load_npz, save_npz
from vae_numpy.vae import VAE


class _Exploit:
    """Unpickling this object would create a marker file (it must never happen)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_loading_a_pickled_object_array_raises_and_runs_nothing(tmp_path):
    """An .npz whose object array would run code when unpickled is refused; the code never runs."""
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.npz"
    np.savez(evil, **{"encoder.0.W": np.array([_Exploit(str(marker))], dtype=object)})
    assert not marker.exists()
    with pytest.raises(ValueError, match="pickle"):
        VAE.load(evil)
    assert not marker.exists()


def test_truncated_and_corrupted_files_raise_value_error_with_path(tmp_path):
    """A cut-off or garbled model file raises ValueError naming the path."""
    path = VAE(6, (4,), 2, rng=0).save(tmp_path / "m.npz")
    data = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.npz"):
        VAE.load(tmp_path / "cut.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="junk.npz"):
        VAE.load(tmp_path / "junk.npz")


def test_wrong_version_kind_or_foreign_archive_is_refused(tmp_path):
    """Archives of another format version, another kind, or without a header raise ValueError."""
    save_npz(tmp_path / "a.npz", {"w": np.zeros(2)}, {"kind": "Autoencoder"})
    with pytest.raises(ValueError, match="expected 'VAE'"):
        VAE.load(tmp_path / "a.npz")
    header = json.dumps({"kind": "VAE", "format_version": FORMAT_VERSION + 1}).encode()
    np.savez(tmp_path / "v.npz", __meta__=np.frombuffer(header, np.uint8))
    with pytest.raises(ValueError, match="format version"):
        VAE.load(tmp_path / "v.npz")
    np.savez(tmp_path / "plain.npz", w=np.zeros(3))
    with pytest.raises(ValueError, match=r"is not a vae_numpy model file.*archive of 1 array"):
        VAE.load(tmp_path / "plain.npz")
    with pytest.raises(FileNotFoundError):
        VAE.load(tmp_path / "missing.npz")


def test_parameters_of_wrong_shape_are_refused(tmp_path):
    """A header that does not match the stored arrays is reported, not silently broadcast."""
    model = VAE(6, (4,), 2, rng=0)
    params = dict(model.parameters())
    params["encoder.0.W"] = np.zeros((6, 5), np.float32)
    save_npz(tmp_path / "bad.npz", params, {"kind": "VAE", "config": model.get_config()})
    with pytest.raises(ValueError, match="encoder.0.W has shape"):
        VAE.load(tmp_path / "bad.npz")


def test_failed_save_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    """An exception in the middle of writing keeps the old file and leaves no temp file."""
    path = tmp_path / "m.npz"
    save_npz(path, {"w": np.arange(3.0)}, {"kind": "t"})
    before = path.read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(KeyboardInterrupt):
        save_npz(path, {"w": np.arange(4.0)}, {"kind": "t"})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


def test_killing_the_process_during_a_save_keeps_the_previous_checkpoint(tmp_path):
    """SIGKILL while a large archive is being written leaves the old file loadable."""
    path = tmp_path / "big.npz"
    save_npz(path, {"w": np.zeros(10)}, {"kind": "t"})
    script = textwrap.dedent(
        f"""
        import numpy as np, sys
        from vae_numpy.serialization import save_npz
        big = np.ones((64, 1024, 1024), np.float32)   # 256 MiB: the write takes a while
        print("start", flush=True)
        save_npz({str(path)!r}, {{"w": big}}, {{"kind": "t"}})
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "start"
    # wait until the temporary file exists, then kill the writer mid-write
    import time

    deadline = time.monotonic() + 30
    while (
        not any(p.name.endswith(".tmp") for p in tmp_path.iterdir()) and time.monotonic() < deadline
    ):
        time.sleep(0.005)
    proc.kill()
    proc.wait()
    arrays, meta = load_npz(path, kind="t")
    np.testing.assert_array_equal(arrays["w"], np.zeros(10))


def test_saved_files_get_the_usual_permissions(tmp_path):
    """Atomic writes end with mode 0666 & ~umask, not the 0600 of a temporary file."""
    import os

    mask = os.umask(0o022)
    try:
        path = save_npz(tmp_path / "m.npz", {"w": np.zeros(2)}, {"kind": "t"})
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o644


PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)


@pytest.mark.parametrize(
    ("name", "content", "looks_like"),
    [
        ("picture.png", PNG, "a PNG image"),
        ("notes.txt", b"epoch,loss\n1,45.2\n", "a text file starting with 'epoch,loss'"),
        ("empty.npz", b"", "an empty file"),
        ("weights.pkl", b"\x80\x04\x95" + bytes(20), "a Python pickle"),
        ("array.npy", None, "a single NumPy array (.npy)"),
    ],
)
def test_a_file_that_is_not_a_model_is_named_as_what_it_looks_like(
    tmp_path, name, content, looks_like
):
    """Images, text, pickles and .npy files are refused as "not a vae_numpy model file"."""
    path = tmp_path / name
    if content is None:
        np.save(path, np.zeros(3))
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError) as info:
        VAE.load(path)
    message = str(info.value)
    assert f"{path} is not a vae_numpy model file: it looks like {looks_like}" in message
    assert "allow_pickle" not in message


def test_a_checkpoint_loaded_as_a_model_points_at_model_npz(tmp_path):
    """A training checkpoint given to VAE.load says to use model.npz or finish with --resume."""
    from vae_numpy.checkpoints import save_checkpoint

    model = VAE(6, (4,), 2, rng=0).fit(np.full((8, 6), 0.5), epochs=1, progress=False)
    path = save_checkpoint(
        tmp_path / "checkpoint.npz", model, model.optimizer_, np.random.default_rng(0), 1, {}
    )
    with pytest.raises(ValueError, match="is a training checkpoint, not a model: use model.npz"):
        VAE.load(path)


def test_no_message_in_the_package_advises_unpickling():
    """No string in vae_numpy tells a user to load a file with allow_pickle=True."""
    import pathlib

    import vae_numpy

    root = pathlib.Path(vae_numpy.__file__).parent
    offenders = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if "allow_pickle=True" in p.read_text(encoding="utf-8")
        or "allow_pickle=`" in p.read_text(encoding="utf-8")
    ]
    assert offenders == []


def test_a_saved_model_keeps_its_history_and_metadata_and_old_files_without_them_load(tmp_path):
    """history_ and metadata round-trip; a file written without them loads with empty ones."""
    model = VAE(6, (5,), 2, rng=0)
    model.history_ = {"loss": [3.0, 2.5]}
    model.metadata = {"dataset": "digits", "image_shape": [2, 3]}
    back = VAE.load(model.save(tmp_path / "m.npz"))
    assert back.history_ == {"loss": [3.0, 2.5]} and back.metadata == model.metadata
    arrays, meta = load_npz(tmp_path / "m.npz", kind="VAE")
    for key in ("history", "metadata"):
        del meta[key]
    bare = VAE.from_saved(arrays, meta)
    assert bare.history_ == {} and bare.metadata == {}


def test_a_file_that_does_not_fit_the_model_is_refused_naming_the_file_and_the_mismatch(tmp_path):
    model = VAE(6, (5,), 2, rng=0)
    path = model.save(tmp_path / "m.npz")
    arrays, meta = load_npz(path, kind="VAE")
    bad_config = {**meta, "config": {**meta["config"], "latent_dim": -1}}
    with pytest.raises(ValueError, match=r"^m\.npz: invalid configuration \{.*'latent_dim': -1"):
        VAE.from_saved(arrays, bad_config, "m.npz")
    fewer = {k: v for k, v in arrays.items() if k != "decoder.0.b"}
    with pytest.raises(ValueError, match=r"^file: parameters \[.*\] do not match the model's \["):
        VAE.from_saved(fewer, meta)
    save_npz(tmp_path / "few.npz", fewer, meta)
    with pytest.raises(ValueError, match=r"few\.npz: parameters .*'decoder\.0\.W'.* do not match"):
        VAE.load(tmp_path / "few.npz")
