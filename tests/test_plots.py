"""Tests of vae_numpy.plots: figures hold the data they claim, PNGs are written, no pyplot state.

Pixel data is read back from the figure (``AxesImage.get_array()``) and compared with what the
model decodes; grid values are checked with ``scipy.special.ndtr`` and ``statistics.NormalDist``;
contour lines of the KL surface with ``kl_by_quadrature``; the PCA with scikit-learn.
"""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import statistics
import subprocess
import sys
from pathlib import Path

import matplotlib
import matplotlib.image
import numpy as np
import pytest
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse
from matplotlib.path import Path as MplPath
from scipy.special import ndtr

from vae_numpy import plots
from vae_numpy.autoencoder import Autoencoder
from vae_numpy.data import load_dataset
from vae_numpy.kl import kl_by_quadrature
from vae_numpy.plots import (
    highest_density_levels,
    manifold_grid,
    pca_project,
    plot_histories,
    plot_history,
    plot_image_grid,
    plot_interpolation,
    plot_kl_per_dimension,
    plot_kl_surface,
    plot_latent_comparison,
    plot_latent_scatter,
    plot_manifold,
    plot_posterior_comparison,
    plot_reconstructions,
    save_figure,
)
from vae_numpy.vae import VAE

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SHAPE = (8, 8)


@pytest.fixture(scope="module")
def digits():
    """A few test digits: x (40, 64), y (40,)."""
    x, y, shape = load_dataset("digits", "test")
    assert shape == SHAPE
    return x[:40], y[:40]


@pytest.fixture(scope="module")
def vae(digits):
    """A small 2-D VAE trained for two epochs."""
    x = load_dataset("digits").x
    return VAE(64, (16,), 2, rng=0).fit(
        x, epochs=2, rng=0, validation_data=digits[0], progress=False
    )


@pytest.fixture(scope="module")
def autoencoder(digits):
    """A small 2-D autoencoder trained for two epochs."""
    x = load_dataset("digits").x
    return Autoencoder(64, (16,), 2, rng=0).fit(x, epochs=2, rng=0, progress=False)


def _image(ax):
    (img,) = ax.get_images()
    return np.ma.getdata(img.get_array())


def _tile(mosaic, row, col, nrows, ncols, h=8, w=8):
    """Tile (row, col) of an nrows x ncols mosaic, with the gap width deduced from its size."""
    pad_r = 0 if nrows == 1 else (mosaic.shape[0] - nrows * h) // (nrows - 1)
    pad_c = 0 if ncols == 1 else (mosaic.shape[1] - ncols * w) // (ncols - 1)
    r0, c0 = row * (h + pad_r), col * (w + pad_c)
    return mosaic[r0 : r0 + h, c0 : c0 + w]


def _all_figures(vae, autoencoder, digits):
    x, y = digits
    mu, log_var = vae.encode(x[:1])
    z1 = np.linspace(-3, 3, 31)
    z2 = np.linspace(-3, 3, 41)
    dens = np.exp(-0.5 * (z1[None, :] ** 2 + z2[:, None] ** 2))
    return {
        "history": (plot_history(vae.history_), 3, 0),
        "history_ae": (plot_history(autoencoder), 1, 0),
        "histories": (plot_histories({"a": vae, "b": autoencoder.history_}), 1, 0),
        "reconstructions": (plot_reconstructions(x, vae.reconstruct(x), SHAPE, n=5), 2, 2),
        "image_grid": (plot_image_grid(vae.sample(7, rng=0), SHAPE), 1, 1),
        "latent_scatter": (plot_latent_scatter(vae.encode(x)[0], y), 1, 0),
        "latent_scatter_continuous": (plot_latent_scatter(vae.encode(x)[0], y * 0.5), 2, 0),
        "latent_scatter_unlabelled": (plot_latent_scatter(vae.encode(x)[0]), 1, 0),
        "latent_comparison": (
            plot_latent_comparison(autoencoder.encode(x), mu.repeat(40, 0), y),
            2,
            0,
        ),
        "manifold": (plot_manifold(vae, SHAPE, n=4), 1, 1),
        "interpolation": (plot_interpolation(vae, x[0], x[1], SHAPE, steps=4), 3, 3),
        "kl_per_dimension": (plot_kl_per_dimension([0.5, 0.001, 2.0]), 1, 0),
        "kl_surface": (plot_kl_surface(n=21), 2, 0),
        "kl_surface_asymmetry": (plot_kl_surface(n=21, asymmetry=True), 3, 0),
        "posterior": (plot_posterior_comparison(z1, z2, dens, mu, log_var), 1, 0),
    }


# --- every function ------------------------------------------------------------------------


def test_every_plot_returns_a_figure_with_the_expected_axes_and_images(vae, autoencoder, digits):
    """Each function returns a Figure with the documented number of axes and images."""
    for name, (fig, n_axes, n_images) in _all_figures(vae, autoencoder, digits).items():
        assert isinstance(fig, Figure), name
        assert len(fig.axes) == n_axes, (name, len(fig.axes))
        assert sum(len(ax.get_images()) for ax in fig.axes) == n_images, name


def test_plots_leave_no_pyplot_figures_open(vae, autoencoder, digits):
    """No function registers a figure with pyplot's global manager."""
    pyplot = pytest.importorskip("matplotlib.pyplot")
    before = list(pyplot.get_fignums())
    _all_figures(vae, autoencoder, digits)
    assert pyplot.get_fignums() == before


def test_figures_render_themselves_as_png_for_notebooks():
    """A returned figure has a _repr_png_ that yields PNG bytes (Jupyter shows it without pyplot)."""
    png = plot_kl_per_dimension([1.0, 0.0])._repr_png_()
    assert png.startswith(PNG_SIGNATURE)


def test_models_and_training_do_not_import_matplotlib():
    """Importing the models, the training loop and the data never loads matplotlib."""
    code = (
        "import sys, vae_numpy.vae, vae_numpy.autoencoder, vae_numpy.train, vae_numpy.data;"
        " sys.exit('matplotlib' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, "matplotlib was imported: " + result.stderr


def test_plots_never_import_pyplot():
    """Drawing and saving a figure works without pyplot ever being imported."""
    code = (
        "import sys, io, vae_numpy.plots as p; fig = p.plot_kl_surface(n=5);"
        " fig.savefig(io.BytesIO(), format='png'); sys.exit('matplotlib.pyplot' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, "pyplot was imported: " + result.stderr


# --- saving --------------------------------------------------------------------------------


def test_path_writes_a_png_with_the_figure_size(tmp_path, vae):
    """path= writes a readable PNG of width x height = figure inches x SAVE_DPI, leaving no temp file."""
    target = tmp_path / "sub" / "manifold.png"
    fig = plot_manifold(vae, SHAPE, n=3, path=target)
    data = target.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    pixels = matplotlib.image.imread(target)
    width, height = fig.get_size_inches() * plots.SAVE_DPI
    assert pixels.shape[:2] == (round(height), round(width))
    assert pixels.shape[2] in (3, 4)
    assert sorted(p.name for p in target.parent.iterdir()) == ["manifold.png"]


def test_path_overwrites_an_existing_file(tmp_path):
    """Saving over an existing file replaces it with the new PNG."""
    target = tmp_path / "kl.png"
    target.write_bytes(b"old")
    plot_kl_per_dimension([1.0, 2.0], path=target)
    assert target.read_bytes()[:8] == PNG_SIGNATURE


def test_save_figure_appends_png_and_rejects_other_suffixes(tmp_path):
    """A name without suffix gets .png; .pdf is refused rather than written as a mislabelled PNG."""
    fig = plot_kl_per_dimension([1.0])
    assert save_figure(fig, tmp_path / "bars") == tmp_path / "bars.png"
    assert (tmp_path / "bars.png").read_bytes()[:8] == PNG_SIGNATURE
    with pytest.raises(ValueError, match="PNG"):
        save_figure(fig, tmp_path / "bars.pdf")
    with pytest.raises(TypeError, match="Figure"):
        save_figure("not a figure", tmp_path / "x.png")


# --- the manifold --------------------------------------------------------------------------


def test_manifold_grid_is_equally_spaced_in_normal_probability():
    """Phi(z) of the grid is linspace(lo, hi, n), by scipy's ndtr and by statistics.NormalDist."""
    for n, (lo, hi) in [(15, (0.05, 0.95)), (7, (0.01, 0.99)), (4, (0.2, 0.9))]:
        z = manifold_grid(n, (lo, hi))
        assert z.shape == (n,)
        np.testing.assert_allclose(ndtr(z), np.linspace(lo, hi, n), rtol=0, atol=1e-12)
        normal = statistics.NormalDist()
        np.testing.assert_allclose([normal.cdf(v) for v in z], np.linspace(lo, hi, n), atol=1e-12)


def test_manifold_grid_is_symmetric_increasing_and_ends_at_the_5_percent_quantile():
    """The default grid is symmetric about 0, strictly increasing, from -1.64485 to 1.64485."""
    z = manifold_grid(15)
    np.testing.assert_allclose(z, -z[::-1], atol=1e-12)
    assert np.all(np.diff(z) > 0)
    assert z[7] == pytest.approx(0.0, abs=1e-12)
    assert z[-1] == pytest.approx(1.6448536269514722, rel=1e-12)  # tabulated 95% quantile


def test_manifold_tiles_decode_the_grid_with_z2_increasing_upwards(vae):
    """Tile (r, c) is decode(z1[c], z2[n-1-r]): the top-left tile is (min z1, max z2)."""
    n = 5
    normal = statistics.NormalDist()
    z = np.array([normal.inv_cdf(p) for p in np.linspace(0.05, 0.95, n)])
    mosaic = _image(plot_manifold(vae, SHAPE, n=n).axes[0])
    top_left = vae.decode([[z[0], z[-1]]]).reshape(SHAPE)
    np.testing.assert_allclose(mosaic[:8, :8], top_left, rtol=1e-5, atol=1e-6)
    bottom_left = vae.decode([[z[0], z[0]]]).reshape(SHAPE)
    assert not np.allclose(top_left, bottom_left, atol=1e-3)  # orientation is observable
    np.testing.assert_allclose(mosaic[-8:, :8], bottom_left, rtol=1e-5, atol=1e-6)
    for r in range(n):
        for c in range(n):
            expected = vae.decode([[z[c], z[n - 1 - r]]]).reshape(SHAPE)
            np.testing.assert_allclose(
                _tile(mosaic, r, c, n, n), expected, rtol=1e-5, atol=1e-6, err_msg=f"tile {r},{c}"
            )


def test_manifold_rejects_latent_dim_other_than_two():
    """A model whose latent_dim is not 2 raises ValueError naming latent_dim."""
    with pytest.raises(ValueError, match="latent_dim=2"):
        plot_manifold(VAE(64, (16,), 3, rng=0), SHAPE)


def test_manifold_rejects_bad_grid_arguments(vae):
    """n must be a positive int; quantile_range must satisfy 0 < lo < hi < 1."""
    with pytest.raises(ValueError, match="n must be >= 1"):
        plot_manifold(vae, SHAPE, n=0)
    with pytest.raises(TypeError, match="n must be an integer"):
        plot_manifold(vae, SHAPE, n=2.5)
    with pytest.raises(ValueError, match="0 < lo < hi < 1"):
        manifold_grid(5, (0.5, 1.0))
    with pytest.raises(ValueError, match="image_shape"):
        plot_manifold(vae, (8, 7))


# --- images --------------------------------------------------------------------------------


def test_image_grid_places_images_row_by_row_and_leaves_unused_cells_blank():
    """Image i sits at row i // ncols, column i % ncols; the grid's last unused cell is empty."""
    images = np.random.default_rng(0).uniform(size=(7, 64)).astype(np.float32)
    mosaic = _image(plot_image_grid(images, SHAPE, nrows=2).axes[0])  # 2 x 4 cells
    for i in range(7):
        np.testing.assert_array_equal(_tile(mosaic, i // 4, i % 4, 2, 4), images[i].reshape(SHAPE))
    assert np.all(np.isnan(_tile(mosaic, 1, 3, 2, 4)))


def test_reconstructions_show_originals_over_reconstructions(vae, digits):
    """Top axes holds the first n originals, bottom axes their reconstructions, in order."""
    x, _ = digits
    rec = vae.reconstruct(x)
    fig = plot_reconstructions(x, rec, SHAPE, n=3)
    top, bottom = (_image(ax) for ax in fig.axes)
    for i in range(3):
        np.testing.assert_array_equal(_tile(top, 0, i, 1, 3), x[i].reshape(SHAPE))
        np.testing.assert_array_equal(_tile(bottom, 0, i, 1, 3), rec[i].reshape(SHAPE))


def test_image_functions_reject_mismatched_shapes(digits):
    """image_shape must hold as many pixels as there are features; pairs must match."""
    x, _ = digits
    with pytest.raises(ValueError, match="image_shape"):
        plot_image_grid(x, (28, 28))
    with pytest.raises(TypeError, match="image_shape"):
        plot_image_grid(x, 64)
    with pytest.raises(ValueError, match="paired"):
        plot_reconstructions(x, x[:5], SHAPE)
    with pytest.raises(ValueError, match="n must be >= 1"):
        plot_reconstructions(x, x, SHAPE, n=0)


@pytest.mark.parametrize("model_name", ["vae", "autoencoder"])
def test_interpolation_decodes_the_line_between_the_two_codes(model_name, request, digits):
    """The decoded tiles are decode((1-t) z_a + t z_b) with z = mu(x) (VAE) or encode(x) (AE)."""
    model = request.getfixturevalue(model_name)
    x, _ = digits
    fig = plot_interpolation(model, x[0], x[1:2], SHAPE, steps=5)
    left, middle, right = (_image(ax) for ax in fig.axes)
    np.testing.assert_array_equal(left, x[0].reshape(SHAPE))
    np.testing.assert_array_equal(right, x[1].reshape(SHAPE))
    code = model.encode(x[:2])
    z_a, z_b = code[0] if isinstance(code, tuple) else code
    for i, t in enumerate(np.linspace(0, 1, 5)):
        expected = model.decode([(1 - t) * z_a + t * z_b]).reshape(SHAPE)
        np.testing.assert_allclose(_tile(middle, 0, i, 1, 5), expected, rtol=1e-5, atol=1e-6)


def test_interpolation_rejects_batches_and_single_steps(vae, digits):
    """x_a must be one example and steps >= 2."""
    x, _ = digits
    with pytest.raises(ValueError, match="one example"):
        plot_interpolation(vae, x[:2], x[2], SHAPE)
    with pytest.raises(ValueError, match="steps must be >= 2"):
        plot_interpolation(vae, x[0], x[2], SHAPE, steps=1)


# --- latent codes --------------------------------------------------------------------------


def test_two_dimensional_codes_are_scattered_unchanged_with_one_colour_per_class(vae, digits):
    """2-D codes are plotted as they are; a legend has one entry per class, in its tab10 colour."""
    x, y = digits
    mu = vae.encode(x)[0]
    fig = plot_latent_scatter(mu, y)
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.collections[0].get_offsets(), mu)
    assert "PC" not in ax.get_xlabel()
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == [str(c) for c in np.unique(y)]
    tab10 = matplotlib.colormaps["tab10"]
    for i, handle in enumerate(legend.legend_handles):
        assert matplotlib.colors.same_color(handle.get_color(), tab10(i))
    points = ax.collections[0]
    for label in np.unique(y):  # each point has its class's colour
        colours = points.to_rgba(points.get_array()[y == label])
        np.testing.assert_allclose(colours[:, :3], [tab10(int(label))[:3]] * len(colours))


def test_continuous_labels_get_a_colour_bar_not_a_legend(vae, digits):
    """Float labels are a scale: they get a colour bar and no class legend."""
    x, y = digits
    fig = plot_latent_scatter(vae.encode(x)[0], y * 0.37)
    assert len(fig.axes) == 2 and fig.legends == []


def test_codes_above_two_dimensions_are_projected_with_pca_and_labelled_so():
    """5-D codes are drawn at their PCA projection, and the axis labels and title say so."""
    codes = np.random.default_rng(0).standard_normal((50, 5)).astype(np.float32)
    fig = plot_latent_scatter(codes, np.arange(50) % 3)
    ax = fig.axes[0]
    projected, _ = pca_project(codes)
    np.testing.assert_allclose(ax.collections[0].get_offsets(), projected, rtol=1e-5)
    assert ax.get_xlabel().startswith("PC 1") and ax.get_ylabel().startswith("PC 2")
    assert "PCA" in ax.get_title() and "5-D" in ax.get_title()


def test_pca_projection_matches_scikit_learn_up_to_sign():
    """pca_project agrees with sklearn.decomposition.PCA (components up to sign, variance ratios)."""
    decomposition = pytest.importorskip("sklearn.decomposition")
    rng = np.random.default_rng(1)
    codes = rng.standard_normal((200, 6)) @ rng.standard_normal((6, 6))
    ours, ratio = pca_project(codes, 3)
    pca = decomposition.PCA(n_components=3).fit(codes)
    theirs = pca.transform(codes)
    for j in range(3):
        sign = np.sign(ours[:, j] @ theirs[:, j])
        np.testing.assert_allclose(ours[:, j], sign * theirs[:, j], atol=1e-9)
    np.testing.assert_allclose(ratio, pca.explained_variance_ratio_, rtol=1e-9)


def test_pca_projection_preserves_distances_of_codes_on_a_plane():
    """Codes on a 2-D plane inside 6-D are projected without distortion (all variance explained)."""
    rng = np.random.default_rng(2)
    flat = rng.standard_normal((30, 2)) * [3.0, 1.0]
    basis, _ = np.linalg.qr(rng.standard_normal((6, 2)))  # orthonormal columns
    codes = flat @ basis.T + rng.standard_normal(6)  # (30, 6), shifted
    projected, ratio = pca_project(codes)

    def distances(a):
        return np.linalg.norm(a[:, None] - a[None, :], axis=-1)

    np.testing.assert_allclose(distances(projected), distances(flat), atol=1e-9)
    assert ratio.sum() == pytest.approx(1.0)


def test_latent_comparison_draws_both_code_sets_with_one_colour_scale(autoencoder, vae, digits):
    """Left panel: AE codes; right panel: VAE means; one shared class legend."""
    x, y = digits
    ae_codes, mu = autoencoder.encode(x), vae.encode(x)[0]
    fig = plot_latent_comparison(ae_codes, mu, y)
    left, right = fig.axes
    assert len(fig.legends) == 1
    np.testing.assert_allclose(left.collections[0].get_offsets(), ae_codes)
    np.testing.assert_allclose(right.collections[0].get_offsets(), mu)
    assert left.collections[0].norm is right.collections[0].norm
    with pytest.raises(ValueError, match="same examples"):
        plot_latent_comparison(ae_codes, mu[:10], y)
    with pytest.raises(ValueError, match="labels"):
        plot_latent_scatter(mu, y[:5])


def test_latent_scatter_draws_into_a_given_axes(vae, digits):
    """With ax= the codes go into that axes and its figure is returned."""
    x, _ = digits
    fig = Figure()
    ax = fig.subplots()
    assert plot_latent_scatter(vae.encode(x)[0], ax=ax) is fig
    assert len(ax.collections) == 1


# --- training curves -----------------------------------------------------------------------


HISTORY = {
    "loss": [40.0, 35.0, 33.0],
    "reconstruction": [39.0, 33.0, 30.5],
    "kl": [1.0, 2.0, 2.5],
    "val_loss": [41.0, 36.0, 34.0],
    "val_reconstruction": [40.0, 34.0, 31.0],
    "val_kl": [1.0, 2.0, 3.0],
    "beta": [1.0, 1.0, 1.0],
    "seconds": [0.1, 0.1, 0.1],
    "epoch": [1.0, 2.0, 3.0],
}


def test_history_draws_train_solid_and_validation_dashed_on_separate_axes():
    """Loss, reconstruction and KL get one axes each; train solid, validation dashed, same data."""
    fig = plot_history(HISTORY)
    assert len(fig.axes) == 3
    for ax, key in zip(fig.axes, ["loss", "reconstruction", "kl"], strict=True):
        train, val = ax.get_lines()
        np.testing.assert_array_equal(train.get_xdata(), HISTORY["epoch"])
        np.testing.assert_array_equal(train.get_ydata(), HISTORY[key])
        np.testing.assert_array_equal(val.get_ydata(), HISTORY[f"val_{key}"])
        assert train.get_linestyle() == "-" and val.get_linestyle() == "--"
        assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == "nats per example"


def test_history_with_kl_warmup_shows_beta_on_a_second_axis():
    """A varying beta (KL warm-up) adds a twin axes to the KL panel holding beta."""
    fig = plot_history({**HISTORY, "beta": [0.2, 0.6, 1.0]})
    assert len(fig.axes) == 4
    np.testing.assert_array_equal(fig.axes[3].get_lines()[0].get_ydata(), [0.2, 0.6, 1.0])


def test_autoencoder_history_has_a_single_loss_panel(autoencoder):
    """Without KL (the loss is the reconstruction) one axes suffices; epoch defaults to 1..n."""
    assert len(plot_history(autoencoder.history_).axes) == 1
    fig = plot_history({"loss": [3.0, 2.0]})
    np.testing.assert_array_equal(fig.axes[0].get_lines()[0].get_xdata(), [1, 2])


def test_history_rejects_empty_ragged_or_lossless_input():
    """Empty, ragged or loss-less histories raise ValueError; a non-dict raises TypeError."""
    with pytest.raises(ValueError, match="fit"):
        plot_history({})
    with pytest.raises(ValueError, match="different lengths"):
        plot_history({"loss": [1.0, 2.0], "kl": [1.0]})
    with pytest.raises(ValueError, match="'loss'"):
        plot_history({"kl": [1.0]})
    with pytest.raises(TypeError, match="history_"):
        plot_history([1.0, 2.0])


def test_histories_draws_one_line_per_run_and_names_missing_columns():
    """Each run is one solid line labelled with its name; a missing key lists the columns."""
    sgd = {"loss": [50.0, 45.0], "epoch": [1.0, 2.0]}
    fig = plot_histories({"adam": HISTORY, "sgd": sgd}, logy=True)
    lines = fig.axes[0].get_lines()
    solid = [ln for ln in lines if ln.get_linestyle() == "-"]
    assert [ln.get_label() for ln in solid] == ["adam", "sgd"]
    np.testing.assert_array_equal(solid[1].get_ydata(), sgd["loss"])
    assert sum(ln.get_linestyle() == "--" for ln in lines) == 1  # only adam has val_loss
    assert fig.axes[0].get_yscale() == "log"
    with pytest.raises(ValueError, match="no 'kl' column"):
        plot_histories({"sgd": sgd}, key="kl")


# --- KL pictures ---------------------------------------------------------------------------


def test_kl_per_dimension_marks_units_above_the_threshold_as_active():
    """Bars have the given heights, the dashed line sits at the threshold, the title counts actives."""
    kl = [0.5, 0.001, 2.0, 0.02]
    fig = plot_kl_per_dimension(kl, threshold=0.01)
    ax = fig.axes[0]
    np.testing.assert_allclose([p.get_height() for p in ax.patches], kl)
    (line,) = ax.get_lines()
    assert line.get_ydata()[0] == pytest.approx(0.01)
    assert ax.get_title() == "3 of 4 units active"
    assert ax.get_yscale() == "linear" and ax.get_ylim()[0] == 0
    assert ax.get_legend() is None and len(fig.legends) == 1  # outside the axes
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()  # lays the figure out as it is saved
    renderer = canvas.get_renderer()
    assert not fig.legends[0].get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))
    with pytest.raises(ValueError, match=">= 0"):
        plot_kl_per_dimension([0.1, -0.2])
    with pytest.raises(ValueError, match="latent_dim"):
        plot_kl_per_dimension(np.ones((3, 2)))


def _contour_points(ax, level):
    """Vertices of the line contour at ``level`` on ``ax`` (as (mu, sigma) pairs)."""
    (lines,) = [c for c in ax.collections if isinstance(c, ContourSet) and not c.filled]
    index = list(lines.levels).index(level)
    path = lines.get_paths()[index]
    keep = path.codes != MplPath.CLOSEPOLY if path.codes is not None else slice(None)
    return path.vertices[keep]


def test_kl_surface_contours_lie_where_quadrature_gives_that_kl():
    """Points on the 1-nat contour have KL(p||q) = 1 and on the reverse panel KL(q||p) = 1."""
    fig = plot_kl_surface(asymmetry=True)
    forward_ax, reverse_ax = fig.axes[:2]
    for mu, sigma in _contour_points(forward_ax, 1.0)[::40]:
        assert kl_by_quadrature(mu, sigma, 0.0, 1.0) == pytest.approx(1.0, abs=2e-3)
    for mu, sigma in _contour_points(reverse_ax, 1.0)[::40]:
        assert kl_by_quadrature(0.0, 1.0, mu, sigma) == pytest.approx(1.0, abs=2e-3)
    with pytest.raises(ValueError, match="sigma_range"):
        plot_kl_surface(sigma_range=(0.0, 2.0))


def test_highest_density_levels_of_a_gaussian_sit_at_its_one_and_two_std_ellipses():
    """For a 2-D Gaussian the 39% and 86% mass levels equal the density at 1 and 2 std."""
    z1 = np.linspace(-6, 6, 601)
    z2 = np.linspace(-5, 7, 501)
    s1, s2, m2 = 1.3, 0.7, 1.0
    dens = np.exp(-0.5 * ((z1[None, :] / s1) ** 2 + ((z2[:, None] - m2) / s2) ** 2))
    levels = highest_density_levels(dens, z1, z2)
    np.testing.assert_allclose(levels, np.exp(-0.5 * np.array([1.0, 4.0])), rtol=1e-2)


def test_posterior_comparison_draws_q_as_one_and_two_std_ellipses(digits):
    """Ellipses are centred at mu with semi-axes k * exp(log_var / 2), k = 1, 2; grids may be meshgrids."""
    z1 = np.linspace(-3, 3, 61)
    z2 = np.linspace(-2, 2, 41)
    dens = np.exp(-0.5 * (z1[None, :] ** 2 + 4 * z2[:, None] ** 2))
    mu, log_var = np.array([0.5, -0.2]), np.log([0.25, 0.09])
    g1, g2 = np.meshgrid(z1, z2)
    for a, b in [(z1, z2), (g1, g2)]:
        fig = plot_posterior_comparison(a, b, dens, mu, log_var)
        ellipses = [p for p in fig.axes[0].patches if isinstance(p, Ellipse)]
        sizes = [(e.width, e.height) for e in ellipses]
        np.testing.assert_allclose(sizes, [(1.0, 0.6), (2.0, 1.2)], rtol=1e-12)
        assert all(tuple(e.center) == pytest.approx(tuple(mu)) for e in ellipses)
    with pytest.raises(ValueError, match="meshgrid"):
        plot_posterior_comparison(g2, g1, dens, mu, log_var)
    with pytest.raises(ValueError, match="density"):
        plot_posterior_comparison(z1, z2, -dens, mu, log_var)
    with pytest.raises(ValueError, match="2 coordinates"):
        plot_posterior_comparison(z1, z2, dens, [0.0, 0.0, 0.0], log_var)


# --- the figures of a `vae-numpy train` run ------------------------------------------------


def test_history_kl_axis_starts_at_zero():
    """The KL panel's y-axis starts at 0 (a KL is >= 0), whatever the values."""
    fig = plot_history(HISTORY)
    kl_ax = [ax for ax in fig.axes if ax.get_title().startswith("KL")][0]
    assert kl_ax.get_ylim()[0] == 0


def _texts(fig):
    """Every title of a figure: its suptitle and the axes titles."""
    titles = [fig._suptitle.get_text()] if fig._suptitle is not None else []
    return titles + [ax.get_title() for ax in fig.axes if ax.get_title()]


def test_every_figure_of_a_training_run_is_a_titled_non_blank_png(tmp_path, monkeypatch):
    """Each PNG of `vae-numpy train` opens, has a sensible size, is not blank, and says its model and data."""
    from vae_numpy import cli
    from vae_numpy.plots import figure

    titles = {}
    save = figure.save_figure

    def recording_save(fig, path, **kw):
        titles[Path(path).name] = _texts(fig)
        return save(fig, path, **kw)

    monkeypatch.setattr(figure, "save_figure", recording_save)
    out = tmp_path / "run"
    assert (
        cli.main(["train", "--epochs", "3", "--hidden", "16", "--out", str(out), "--no-progress"])
        == 0
    )
    expected = {
        "loss.png",
        "reconstructions.png",
        "latent.png",
        "samples.png",
        "kl_per_dim.png",
        "manifold.png",
    }
    assert set(titles) == expected
    for name in sorted(expected):
        pixels = matplotlib.image.imread(out / name)  # (height, width, RGBA) floats in [0, 1]
        height, width = pixels.shape[:2]
        assert 300 <= height <= 2000 and 300 <= width <= 2500, (name, pixels.shape)
        grey = pixels[..., :3].mean(axis=-1)
        assert (grey < 0.5).mean() > 0.01, f"{name} is (nearly) blank"
        assert grey.std() > 0.1, f"{name} has no contrast"
        assert any("VAE on digits" in t for t in titles[name]), (name, titles[name])
    assert any("decoder means for z ~ N(0, I)" in t for t in titles["samples.png"])
    assert not any("samples from the prior" in t for t in titles["samples.png"])
    assert any("means of q(z|x), test set" in t for t in titles["latent.png"])
