"""Pictures made of images: reconstructions, image grids, the decoded manifold, interpolation.

Images are drawn as one mosaic per axes (tiles separated by a one-pixel white gap) with the
``gray`` colour map on the range [0, 1] (widened only when the data leave it), so that
brightness means the same in every figure. Lecture parts 2 (reconstruction) and 5 (generating
new samples: samples from the prior, the manifold of the latent plane, interpolation).

References
----------
Kingma, D. P. & Welling, M. (2013). Auto-Encoding Variational Bayes. arXiv:1312.6114.
(Fig. 4: the learned data manifold on a grid spaced by the inverse normal CDF.)
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from scipy import special

from .._validation import as_array, as_batch, check_positive_float, check_positive_int
from .figure import Z1, Z2, finish_figure, new_figure

__all__ = [
    "manifold_grid",
    "plot_reconstructions",
    "plot_image_grid",
    "plot_manifold",
    "plot_interpolation",
]

_IMAGE_CMAP = matplotlib.colormaps["gray"].with_extremes(bad="white")  # gaps between tiles


# --------------------------------------------------------------------------------------------
# Checks and mosaics
# --------------------------------------------------------------------------------------------


def _check_image_shape(
    image_shape: Any, features: int, name: str = "image_shape"
) -> tuple[int, int]:
    """``(h, w)`` as ints with ``h * w == features``; raise otherwise."""
    if (
        not isinstance(image_shape, Sequence)
        or isinstance(image_shape, str)
        or len(image_shape) != 2
    ):
        raise TypeError(
            f"{name} must be a pair (height, width) such as (8, 8), got {image_shape!r}"
        )
    h = check_positive_int(image_shape[0], f"{name}[0]")
    w = check_positive_int(image_shape[1], f"{name}[1]")
    if h * w != features:
        raise ValueError(
            f"{name}={(h, w)} holds {h * w} pixels but the images have {features} features;"
            " pass the image_shape that load_dataset returned"
        )
    return h, w


def _images(x: Any, name: str, image_shape: Any) -> np.ndarray:
    """Validate a (batch, features) array and return it as (batch, h, w)."""
    arr = as_batch(x, name)
    h, w = _check_image_shape(image_shape, arr.shape[1])
    return arr.reshape(len(arr), h, w)  # (batch, h, w)


def _check_model(model: Any) -> None:
    for attr in ("code", "decode", "latent_dim", "input_dim"):
        if not hasattr(model, attr):
            raise TypeError(
                f"model must have a latent space (code, decode, latent_dim: a VAE or an"
                f" Autoencoder); {type(model).__name__} has no {attr!r}"
            )


def _mosaic(images: np.ndarray, nrows: int, ncols: int, pad: int = 1) -> np.ndarray:
    """Tile (k, h, w) images row by row into one array; gaps and empty cells are NaN.

    Tile ``i`` sits at row ``i // ncols``, column ``i % ncols``; its top-left pixel is at
    ``(row * (h + pad), col * (w + pad))``.
    """
    k, h, w = images.shape
    dtype = images.dtype if images.dtype.kind == "f" else np.dtype(np.float32)
    out = np.full((nrows * (h + pad) - pad, ncols * (w + pad) - pad), np.nan, dtype=dtype)
    for i in range(k):
        r, c = divmod(i, ncols)
        out[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = images[i]
    return out


def _tile_centres(count: int, size: int, pad: int = 1) -> np.ndarray:
    """Pixel coordinates of the centres of ``count`` tiles of ``size`` pixels along one axis."""
    return np.arange(count) * (size + pad) + (size - 1) / 2


def _thinned(count: int, most: int) -> np.ndarray:
    """Indices of at most ``most`` tiles to label, first and last included, evenly spread."""
    if count <= most:
        return np.arange(count)
    for k in range(most, 3, -1):  # even spacing that lands on the last tile
        if (count - 1) % (k - 1) == 0:
            return np.arange(0, count, (count - 1) // (k - 1))
    return np.arange(0, count, math.ceil(count / most))


def _show_mosaic(ax: Axes, mosaic: np.ndarray) -> None:
    lo = min(0.0, float(np.nanmin(mosaic)))
    hi = max(1.0, float(np.nanmax(mosaic)))
    ax.imshow(mosaic, cmap=_IMAGE_CMAP, vmin=lo, vmax=hi, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------


def plot_reconstructions(
    originals: Any,
    reconstructions: Any,
    image_shape: Any,
    *,
    n: int = 10,
    title: str | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """Originals (top row) over their reconstructions (bottom row).

    Parameters
    ----------
    originals, reconstructions : ndarray of shape (batch, h * w)
        Paired rows, e.g. ``x`` and ``model.reconstruct(x)``.
    image_shape : tuple (h, w)
    n : int
        Number of pairs shown: the first ``min(n, batch)`` rows.
    title : str, optional
    path : str or PathLike, optional
        Also save the figure there as a PNG.

    Returns
    -------
    Figure
        Two axes, each showing one mosaic image of ``min(n, batch)`` tiles.
    """
    x = _images(originals, "originals", image_shape)
    r = _images(reconstructions, "reconstructions", image_shape)
    if x.shape != r.shape:
        raise ValueError(
            f"originals have shape {x.shape[:1] + (x.shape[1] * x.shape[2],)} but reconstructions"
            f" {r.shape[:1] + (r.shape[1] * r.shape[2],)}; pass paired rows"
        )
    k = min(check_positive_int(n, "n"), len(x))
    ih, iw = x.shape[1:]
    width = min(12.0, 0.75 * k * iw / ih + 0.8)
    fig = new_figure(width, 2 * width / k * ih / iw + 0.5)
    axes = fig.subplots(2, 1)
    for ax, imgs, label in zip(axes, (x, r), ("original", "reconstruction"), strict=True):
        _show_mosaic(ax, _mosaic(imgs[:k], 1, k))
        ax.set_ylabel(label, fontsize="small")
    return finish_figure(fig, title, path)


def plot_image_grid(
    images: Any,
    image_shape: Any,
    *,
    nrows: int | None = None,
    title: str | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """All ``images`` in a grid, row by row, e.g. ``model.sample(64)``.

    Parameters
    ----------
    images : ndarray of shape (k, h * w)
    image_shape : tuple (h, w)
    nrows : int, optional
        Rows of the grid; default ``ceil(sqrt(k))``. Columns: ``ceil(k / nrows)``.
    title : str, optional
    path : str or PathLike, optional
        Also save the figure there as a PNG.

    Returns
    -------
    Figure
        One axes with one mosaic image; image ``i`` is at row ``i // ncols``, column
        ``i % ncols``; unused cells are blank.
    """
    imgs = _images(images, "images", image_shape)
    k = len(imgs)
    rows = math.ceil(math.sqrt(k)) if nrows is None else check_positive_int(nrows, "nrows")
    rows = min(rows, k)
    cols = math.ceil(k / rows)
    ih, iw = imgs.shape[1:]
    side = min(7.0, 0.6 * max(rows * ih, cols * iw) / min(ih, iw) + 1.0)
    scale = side / max(rows * ih, cols * iw)
    fig = new_figure(cols * iw * scale + 0.3, rows * ih * scale + (0.6 if title else 0.3))
    ax = fig.subplots()
    _show_mosaic(ax, _mosaic(imgs, rows, cols))
    return finish_figure(fig, title, path)


# --------------------------------------------------------------------------------------------
# Generating: the manifold and interpolation
# --------------------------------------------------------------------------------------------


def manifold_grid(n: int, quantile_range: tuple[float, float] = (0.05, 0.95)) -> np.ndarray:
    """Latent coordinates equally spaced in probability: ``Phi^{-1}(linspace(lo, hi, n))``.

    Parameters
    ----------
    n : int
        Number of values.
    quantile_range : (lo, hi)
        Probabilities of the first and last value, ``0 < lo < hi < 1``.

    Returns
    -------
    ndarray of shape (n,), float64
        Increasing; symmetric about 0 when ``lo + hi == 1``. Each value is a quantile of
        N(0, 1), so every tile of the manifold covers the same prior probability
        (Kingma & Welling 2013, Fig. 4).
    """
    n = check_positive_int(n, "n")
    if not (isinstance(quantile_range, Sequence) and len(quantile_range) == 2):
        raise TypeError(f"quantile_range must be a pair (lo, hi), got {quantile_range!r}")
    lo, hi = (check_positive_float(q, f"quantile_range[{i}]") for i, q in enumerate(quantile_range))
    if not 0.0 < lo < hi < 1.0:
        raise ValueError(
            f"quantile_range must satisfy 0 < lo < hi < 1 (probabilities), got {quantile_range!r}"
        )
    return special.ndtri(np.linspace(lo, hi, n))


def plot_manifold(
    model: Any,
    image_shape: Any,
    *,
    n: int = 15,
    quantile_range: tuple[float, float] = (0.05, 0.95),
    title: str | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """The learned 2-D manifold: decoded images on an n x n grid of the latent plane.

    Parameters
    ----------
    model : VAE (or Autoencoder) with ``latent_dim == 2``
    image_shape : tuple (h, w)
    n : int
        Tiles per side.
    quantile_range : (lo, hi)
        The grid is :func:`manifold_grid` ``(n, quantile_range)`` on both axes: equally spaced
        in prior probability, not in z.
    title : str, optional
    path : str or PathLike, optional
        Also save the figure there as a PNG.

    Returns
    -------
    Figure
        One axes with one mosaic image. The tile at row ``r``, column ``c`` (from the top left)
        is ``model.decode([[z1[c], z2[n - 1 - r]]])`` with ``z1 = z2 = manifold_grid(n, ...)``:
        z1 increases to the right and z2 increases *upwards*, so the picture is oriented like a
        plot of the latent plane (the top-left tile is (min z1, max z2)). The ticks show the
        z values.

    Raises
    ------
    ValueError
        If ``model.latent_dim != 2`` (project or pick two dimensions yourself).
    """
    _check_model(model)
    if model.latent_dim != 2:
        raise ValueError(
            f"plot_manifold needs a model with latent_dim=2, this one has {model.latent_dim};"
            " train a VAE(..., latent_dim=2) to draw its manifold"
        )
    h, w = _check_image_shape(image_shape, int(model.input_dim))
    z = manifold_grid(n, quantile_range)
    n = len(z)
    z2_down = z[::-1]  # row r of the picture shows z2 = z2_down[r]
    grid = np.stack(np.meshgrid(z, z2_down, indexing="xy"), axis=-1)  # (n rows, n cols, 2)
    decoded = np.asarray(model.decode(grid.reshape(-1, 2)))  # (n * n, h * w), row-major
    side = min(7.0, max(3.0, 0.35 * n * max(h, w) / 8))
    fig = new_figure(side * w / max(h, w) + 0.7, side * h / max(h, w) + 0.6)
    ax = fig.subplots()
    _show_mosaic(ax, _mosaic(decoded.reshape(-1, h, w), n, n))
    shown = _thinned(n, 8)
    ax.set_xticks(_tile_centres(n, w)[shown], [f"{v:.2f}" for v in z[shown]], fontsize="small")
    ax.set_yticks(
        _tile_centres(n, h)[shown], [f"{v:.2f}" for v in z2_down[shown]], fontsize="small"
    )
    ax.set_xlabel(Z1 + r"  (quantiles $\Phi^{-1}(p)$ of N(0, 1))")
    ax.set_ylabel(Z2)
    return finish_figure(fig, title, path)


def plot_interpolation(
    model: Any,
    x_a: Any,
    x_b: Any,
    image_shape: Any,
    *,
    steps: int = 10,
    title: str | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """Decode the straight line between the codes of two examples.

    Parameters
    ----------
    model : VAE or Autoencoder
        The code of x is ``model.code(x)``: ``mu(x)`` for a VAE, the encoding for an
        autoencoder.
    x_a, x_b : ndarray of shape (h * w,) or (1, h * w)
        The two end points.
    image_shape : tuple (h, w)
    steps : int
        Number of decoded images (>= 2), at ``t = linspace(0, 1, steps)``:
        ``decode((1 - t) * z_a + t * z_b)``.
    title : str, optional
    path : str or PathLike, optional
        Also save the figure there as a PNG.

    Returns
    -------
    Figure
        Three axes: ``x_a``, a mosaic of the ``steps`` decoded images (ticks show t), ``x_b``.
    """
    _check_model(model)
    steps = check_positive_int(steps, "steps", minimum=2)
    ends = []
    for x, name in ((x_a, "x_a"), (x_b, "x_b")):
        arr = as_array(x, name)
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        if arr.shape[0] != 1:
            raise ValueError(
                f"{name} must be one example of shape (features,) or (1, features), got {arr.shape}"
            )
        ends.append(as_batch(arr, name, features=int(model.input_dim)))
    h, w = _check_image_shape(image_shape, int(model.input_dim))
    z_a, z_b = (np.asarray(model.code(x)) for x in ends)  # (1, latent_dim) each; mu for a VAE
    t = np.linspace(0.0, 1.0, steps)[:, None]  # (steps, 1)
    z = ((1.0 - t) * z_a + t * z_b).astype(z_a.dtype)  # (steps, latent_dim)
    decoded = np.asarray(model.decode(z)).reshape(steps, h, w)
    width = min(12.0, 0.7 * (steps + 2) * w / h + 0.6)
    fig = new_figure(width, 0.7 * width / (steps + 2) * h / w + 0.7)
    axes = fig.subplots(1, 3, width_ratios=[1, steps, 1])
    _show_mosaic(axes[0], ends[0].reshape(h, w))
    axes[0].set_xlabel(r"$x_a$")
    _show_mosaic(axes[1], _mosaic(decoded, 1, steps))
    shown = _thinned(steps, 11)
    axes[1].set_xticks(
        _tile_centres(steps, w)[shown], [f"{v:.2g}" for v in t[shown, 0]], fontsize="small"
    )
    axes[1].set_xlabel(r"decode$((1-t)\,z_a + t\,z_b)$, $t$")
    _show_mosaic(axes[2], ends[1].reshape(h, w))
    axes[2].set_xlabel(r"$x_b$")
    return finish_figure(fig, title, path)
