"""The latent-space explorer, Python side: the rebuilt decoder, the plane, the page, the command.

The page's JavaScript is tested in a real browser by ``tests/test_browser.py``.
"""

from __future__ import annotations

import base64
import configparser
import hashlib
import importlib.resources
import json
import re
from pathlib import Path

import numpy as np
import pytest

from vae_numpy.autoencoder import Autoencoder
from vae_numpy.cli import main
from vae_numpy.cvae import ConditionalVAE
from vae_numpy.data import load_dataset
from vae_numpy.gmvae import GaussianMixtureVAE
from vae_numpy.plots import explorer as explorer_module
from vae_numpy.plots import pca_project
from vae_numpy.plots.explorer import (
    decoder_spec,
    explorer_html,
    latent_plane,
    write_explorer,
)
from vae_numpy.plots.explorer_model import padded_range
from vae_numpy.ssvae import SemiSupervisedVAE
from vae_numpy.vae import VAE

#: One model of every kind with a decoder, covering every hidden activation and output.
MODELS = {
    "vae": lambda: VAE(64, (24,), 2, rng=0),
    "vae-gaussian": lambda: VAE(64, (24, 16), 4, likelihood="gaussian", activation="tanh", rng=1),
    "vae-float64": lambda: VAE(64, (24,), 2, activation="softplus", dtype=np.float64, rng=2),
    "autoencoder-mse": lambda: Autoencoder(64, (24,), 3, loss="mse", activation="sigmoid", rng=3),
    "autoencoder-bce": lambda: Autoencoder(64, (24,), 2, rng=4),
    "cvae": lambda: ConditionalVAE(64, 10, (24,), 3, activation="elu", rng=5),
    "gmvae": lambda: GaussianMixtureVAE(
        64, (24,), 2, n_components=5, activation="leaky_relu", rng=6
    ),
    "ssvae": lambda: SemiSupervisedVAE(64, 10, (24,), 2, rng=7),
}


def _decode(model, z, y=None):
    return model.decode(z) if y is None else model.decode(z, y)


def _payload(page: str) -> dict:
    """The JSON data embedded in an explorer page."""
    match = re.search(r'<script type="application/json" id="explorer-data">(.*?)</script>', page)
    assert match, "the page has no embedded data"
    return json.loads(match.group(1))


def _floats(b64: str, dtype: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(b64), dtype=np.dtype(dtype).newbyteorder("<"))


@pytest.fixture(scope="module")
def digits_test():
    return load_dataset("digits", "test")


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_rebuilt_decoder_equals_model_decode(kind):
    """The decoder rebuilt from parameters() and get_config() decodes as model.decode does."""
    model = MODELS[kind]()
    spec = decoder_spec(model)
    z = np.random.default_rng(0).standard_normal((50, model.latent_dim)) * 2
    y = np.arange(50) % 10 if spec.n_classes else None
    expected = _decode(model, z.astype(model.dtype), y)
    np.testing.assert_allclose(spec.decode(z, y), expected, atol=1e-5, rtol=0)
    assert spec.output_dim == model.input_dim
    assert spec.n_classes == (10 if kind in ("cvae", "ssvae") else 0)


def test_rebuilt_decoder_uses_identity_output_for_gaussian_and_mse_models():
    """Gaussian VAEs and squared-error autoencoders output the mean as it is, others a sigmoid."""
    outputs = {kind: decoder_spec(MODELS[kind]()).output for kind in MODELS}
    identity = {"vae-gaussian", "autoencoder-mse"}
    assert outputs == {k: "identity" if k in identity else "sigmoid" for k in MODELS}


def test_decoder_spec_refuses_a_decoder_it_would_get_wrong():
    """A model whose decode is not the plain MLP of its parameters is refused, not misdrawn."""

    class ScaledVAE(VAE):
        def decode(self, z):
            return 0.5 * super().decode(z)

    with pytest.raises(ValueError, match="cannot rebuild the decoder"):
        decoder_spec(ScaledVAE(64, (8,), 2, rng=0))


def test_decoder_spec_names_what_is_missing():
    """Objects that are not models, or models without decoder parameters, get clear errors."""
    with pytest.raises(TypeError, match="load_model"):
        decoder_spec(np.zeros(3))

    class NoDecoder:
        latent_dim, input_dim = 2, 4

        def decode(self, z):
            return z

        def parameters(self):
            return {"encoder.0.W": np.zeros((4, 2))}

        def get_config(self):
            return {}

    with pytest.raises(ValueError, match="no decoder parameters"):
        decoder_spec(NoDecoder())


def test_pca_plane_coordinates_are_the_principal_components_of_the_codes():
    """In PCA mode the plane's coordinates are pca_project's projections of the codes."""
    codes = np.random.default_rng(1).standard_normal((200, 5)) * [3.0, 2.0, 1.0, 0.5, 0.1]
    plane = latent_plane(5, codes)
    assert plane.mode == "pca"
    projected, ratio = pca_project(codes, 2)
    np.testing.assert_allclose(plane.coordinates(codes)[:, :2], projected, atol=1e-9)
    assert plane.labels[0] == f"PC 1 ({100 * ratio[0]:.0f}% of variance)"


def test_plane_maps_coordinates_to_latent_points_and_back():
    """The basis is orthonormal: latent(coordinates(z)) = z, in both plane modes."""
    codes = np.random.default_rng(2).standard_normal((100, 4))
    for dims in ("pca", (2, 0)):
        plane = latent_plane(4, codes, dims=dims)
        np.testing.assert_allclose(plane.basis @ plane.basis.T, np.eye(4), atol=1e-12)
        np.testing.assert_allclose(plane.latent(plane.coordinates(codes)), codes, atol=1e-12)


def test_chosen_dimensions_lie_on_the_axes_and_others_start_at_the_codes_mean():
    """dims=(i, j) puts z_i across and z_j up; the sliders start at the mean of the codes."""
    codes = np.random.default_rng(3).standard_normal((100, 4)) + [0.0, 1.0, 2.0, 3.0]
    plane = latent_plane(4, codes, dims=(2, 0))
    z = plane.latent([[0.7, -0.2, *plane.defaults[2:]]])[0]
    assert z[2] == pytest.approx(0.7) and z[0] == pytest.approx(-0.2)
    np.testing.assert_allclose(z[[1, 3]], codes.mean(axis=0)[[1, 3]])
    assert plane.labels[:2] == ["z3", "z1"]


def test_plane_ranges_cover_the_codes_and_the_prior():
    """Every range holds all codes; with extent=3 it also holds [-3, 3]."""
    codes = np.random.default_rng(4).uniform(-0.1, 5.0, size=(50, 2))
    plane = latent_plane(2, codes, extent=3.0)
    assert np.all(plane.ranges[:, 0] <= -3) and np.all(plane.ranges[:, 1] >= 5.0)
    tight = latent_plane(2, codes)
    assert np.all(tight.ranges[:, 0] <= codes.min(axis=0))
    assert np.all(tight.ranges[:, 0] > -0.5)


def test_padded_range_widens_by_five_percent_and_defaults_to_the_priors_range():
    """[min, max] grows by 5% of its width each side; equal values by 0.5; no values: [-3, 3]."""
    assert padded_range(np.array([0.0, 4.0, 10.0])) == pytest.approx((-0.5, 10.5))
    assert padded_range(np.array([2.0, 2.0])) == (1.5, 2.5)
    assert padded_range(None) == padded_range(np.array([])) == (-3.0, 3.0)


@pytest.mark.parametrize(
    "dims, error",
    [((0, 0), ValueError), ((0, 5), ValueError), ("pcx", ValueError), (3, TypeError)],
)
def test_latent_plane_rejects_bad_dims(dims, error):
    """dims must name two different existing dimensions, or 'pca'."""
    with pytest.raises(error, match="dims"):
        latent_plane(3, np.zeros((4, 3)), dims=dims)


def test_page_is_self_contained_and_embeds_the_decoder_weights(digits_test):
    """No URL to fetch, no external script; the embedded weights are the model's own."""
    model = MODELS["cvae"]()
    page = explorer_html(model, data=digits_test.x, labels=digits_test.y)
    assert not re.search(r"https?://", page)
    assert not re.search(r"<(script|img|iframe)[^>]*\bsrc=", page)
    assert "default-src 'none'" in page
    data = _payload(page)
    params = model.parameters()
    for i, layer in enumerate(data["decoder"]["layers"]):
        key = f"decoder.{2 * i}"
        np.testing.assert_array_equal(
            _floats(layer["W"], "float32").reshape(layer["in"], layer["out"]), params[key + ".W"]
        )
        np.testing.assert_array_equal(_floats(layer["b"], "float32"), params[key + ".b"])
    assert data["nClasses"] == 10 and data["decoder"]["activation"] == "elu"
    assert len(data["points"]["label"]) == len(digits_test.x)


def test_page_scatters_the_models_codes_in_plane_coordinates(digits_test):
    """The scattered points are the codes' plane coordinates, labelled in data order."""
    model = MODELS["vae-gaussian"]()
    data = _payload(explorer_html(model, data=digits_test.x, labels=digits_test.y))
    plane = latent_plane(4, model.code(digits_test.x), extent=3.0)
    uv = plane.coordinates(model.code(digits_test.x))[:, :2]
    np.testing.assert_allclose(_floats(data["points"]["u"], "float32"), uv[:, 0], atol=1e-5)
    np.testing.assert_allclose(_floats(data["points"]["v"], "float32"), uv[:, 1], atol=1e-5)
    assert data["points"]["label"] == digits_test.y.tolist()
    assert data["plane"]["mode"] == "pca"


def test_page_escapes_text_that_could_close_its_script():
    """A title or label name holding '</script>' cannot end the page's script early."""
    page = explorer_html(
        MODELS["cvae"](), title="</script><script>alert(1)</script>", label_names=["<b>"] * 10
    )
    assert page.count("</script>") == 2  # the data element and the code
    assert _payload(page)["title"] == "</script><script>alert(1)</script>"


def test_conditional_model_needs_labels_with_data(digits_test):
    """A conditional encoder needs the labels of the data it encodes."""
    with pytest.raises(ValueError, match="pass labels"):
        explorer_html(MODELS["ssvae"](), data=digits_test.x)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"image_shape": (7, 9)}, "image_shape"),
        ({"labels": np.zeros(3, dtype=int)}, "without data"),
        ({"max_points": 0}, "max_points"),
        ({"value_range": (1.0, 0.0)}, "value_range"),
    ],
)
def test_explorer_rejects_bad_arguments_with_the_fix(kwargs, message):
    """Bad arguments raise ValueError naming the argument."""
    with pytest.raises(ValueError, match=message):
        explorer_html(MODELS["vae"](), **kwargs)


def test_write_explorer_writes_the_page_and_leaves_no_temporary_file(tmp_path, digits_test):
    """The page is written whole (atomically) where asked, nothing else beside it."""
    path = write_explorer(MODELS["vae"](), tmp_path / "sub" / "page.html", data=digits_test.x)
    assert path == tmp_path / "sub" / "page.html"
    assert [p.name for p in path.parent.iterdir()] == ["page.html"]
    assert path.read_text(encoding="utf-8").rstrip().endswith("</html>")


# --- the page's files: package data, copied into the page as they are ---------------------------

PAGE_FILES = importlib.resources.files("vae_numpy.plots") / "explorer_page"

#: sha256 of the page written for :func:`_exact_model` below by the code before the page's HTML,
#: CSS and JavaScript moved from Python strings into ``explorer_page/``. A deliberate change to
#: the page changes it: then check the new page in a browser and pin the new value.
PINNED_PAGE_SHA256 = "67b4ba5cd3b29d4b652a28d9194c78fe59883fd5301b1729e54dc05c09b788ce"


def _exact_model() -> tuple[VAE, np.ndarray, np.ndarray]:
    """A VAE with weights in multiples of 1/8, binary data and labels: an exact page.

    Every sum of the encoder is exact in float32, so the codes, and the page, are the same bytes
    on every machine.
    """
    model = VAE(16, (8,), 2, rng=0)
    for value in model.parameters().values():
        value[...] = ((np.arange(value.size) % 7 - 3) / 8).reshape(value.shape)
    x = (np.arange(12 * 16).reshape(12, 16) % 5 < 2).astype(np.float32)
    return model, x, np.arange(12) % 3


def test_page_is_the_same_bytes_as_before_its_files_moved_out_of_the_module(tmp_path):
    """The page written for a fixed model matches, byte for byte, the page of the former code."""
    model, x, y = _exact_model()
    path = write_explorer(model, tmp_path / "page.html", data=x, labels=y, title="exact VAE")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == PINNED_PAGE_SHA256


def test_page_holds_the_style_sheet_and_the_script_as_they_are_in_the_package():
    """explorer.css and explorer.js are copied whole into the page, which loads no file."""
    page = explorer_html(MODELS["vae"]())
    style = (PAGE_FILES / "explorer.css").read_text(encoding="utf-8")
    script = (PAGE_FILES / "explorer.js").read_text(encoding="utf-8")
    assert f"<style>\n{style}</style>" in page
    assert f"<script>\n{script}</script>" in page
    assert "window.explorer = {" in script and ":root {" in style
    assert not re.search(r"<(link|script)[^>]*\b(href|src)=\"(?!data:)", page)


def test_page_files_cannot_end_their_element_early():
    """The script holds no '</script', the style sheet no '</style' (they are pasted inline)."""
    script = (PAGE_FILES / "explorer.js").read_text(encoding="utf-8").lower()
    style = (PAGE_FILES / "explorer.css").read_text(encoding="utf-8").lower()
    assert "</script" not in script and "</style" not in style


def test_placeholders_in_a_title_or_label_name_stay_text(digits_test):
    """A title or label name reading '{script}', '{style}' or '{data}' is shown as it is."""
    braces = "{script} {style} {data} {title}"
    page = explorer_html(
        MODELS["cvae"](),
        data=digits_test.x[:20],
        labels=digits_test.y[:20],
        title=braces,
        label_names=[braces] * 10,
    )
    data = _payload(page)
    assert data["title"] == braces and data["classNames"] == [braces] * 10
    assert f"<title>{braces}</title>" in page
    assert page.count("window.explorer = {") == 1 and page.count(":root {") == 1


def test_a_missing_page_file_is_named_with_the_fix(monkeypatch):
    """An installation without the page's files says which file is missing and how to reinstall."""
    monkeypatch.setattr(explorer_module, "_PAGE_FOLDER", "no_such_folder")
    with pytest.raises(FileNotFoundError, match=r"no_such_folder/explorer\.\w+.*pip install"):
        explorer_html(MODELS["vae"]())


def test_every_file_of_the_page_is_package_data():
    """setup.cfg ships each file of explorer_page/ in the wheel, so an installed page is whole."""
    config = configparser.ConfigParser(interpolation=None)
    config.read(Path(__file__).resolve().parents[1] / "setup.cfg", encoding="utf-8")
    shipped = set(config["options.package_data"]["vae_numpy.plots"].split())
    files = {f"explorer_page/{p.name}" for p in PAGE_FILES.iterdir() if p.is_file()}
    assert "explorer_page/page.html" in files
    assert files <= shipped, f"add {sorted(files - shipped)} to setup.cfg [options.package_data]"


# --- the command ------------------------------------------------------------------------------


@pytest.fixture
def saved_model(tmp_path) -> Path:
    model = VAE(64, (16,), 3, rng=0)
    model.metadata = {"dataset": "digits", "image_shape": [8, 8]}
    return model.save(tmp_path / "model.npz")


def test_explore_command_writes_the_page_beside_the_model_and_says_how_to_open_it(
    saved_model, capsys
):
    """`vae-numpy explore --model M` writes explorer.html beside M and prints its file:// URL."""
    assert main(["explore", "--model", str(saved_model), "--dims", "3", "1"]) == 0
    out = capsys.readouterr().out
    page = saved_model.parent / "explorer.html"
    assert f"wrote {page}" in out
    assert page.resolve().as_uri() in out
    data = _payload(page.read_text(encoding="utf-8"))
    assert data["plane"]["labels"][:2] == ["z3", "z1"]
    assert data["title"] == "VAE on digits: latent-space explorer"


def test_explore_command_honours_out_and_max_points(saved_model, tmp_path, capsys):
    """--out chooses the file, --max-points caps the scattered codes."""
    out = tmp_path / "elsewhere" / "x.html"
    assert (
        main(["explore", "--model", str(saved_model), "--out", str(out), "--max-points", "40"]) == 0
    )
    assert len(_payload(out.read_text(encoding="utf-8"))["points"]["label"]) == 40
    assert "with the codes of 40 digits test examples" in capsys.readouterr().out


@pytest.mark.parametrize(
    "content, message",
    [
        (b"hello", "is not a vae_numpy model file"),
        (None, "no model file"),
    ],
)
def test_explore_command_rejects_a_file_that_is_not_a_model(tmp_path, capsys, content, message):
    """A missing file or one that holds no model: one line on stderr, exit status 2."""
    path = tmp_path / "model.npz"
    if content is not None:
        path.write_bytes(content)
    assert main(["explore", "--model", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vae-numpy explore: error:") and message in err
    assert not (tmp_path / "explorer.html").exists()


def test_explore_command_rejects_dims_and_data_that_do_not_fit_the_model(saved_model, capsys):
    """--dims beyond the latent space, or a data set of another size, are refused clearly."""
    assert main(["explore", "--model", str(saved_model), "--dims", "1", "4"]) == 2
    assert "numbered 1 .. 3" in capsys.readouterr().err
    model = VAE(16, (8,), 2, rng=0)
    other = model.save(saved_model.parent / "small.npz")
    assert main(["explore", "--model", str(other), "--dataset", "digits"]) == 2
    assert "takes 16 features but digits has 64" in capsys.readouterr().err
