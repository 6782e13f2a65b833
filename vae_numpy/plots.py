"""The lecture's pictures: loss curves, reconstructions, latent codes, the manifold, KL surfaces.

Every function returns a :class:`matplotlib.figure.Figure` built with matplotlib's
object-oriented API (``Figure`` / ``fig.subplots``), never pyplot: nothing is registered with a
global figure manager, so the functions are safe in tests, scripts and servers, and nothing needs
closing. A returned figure shows itself in a notebook (it has a ``_repr_png_``), and every
function takes ``path=``: when given, the figure is also written there as a PNG, atomically
(temporary file in the same folder, fsync, ``os.replace``).

This is the only module of the package that imports matplotlib; the models and the training
loop never do.

=================================  ==============================================  ====
function                           picture                                         part
=================================  ==============================================  ====
:func:`plot_history`               training curves of one run                      3
:func:`plot_histories`             one curve per run (optimisers, beta values)     3
:func:`plot_reconstructions`       originals over reconstructions                  2
:func:`plot_image_grid`            a grid of images (e.g. samples from the prior)  5
:func:`plot_latent_scatter`        codes coloured by label (PCA above 2-D)         1
:func:`plot_latent_comparison`     autoencoder and VAE codes side by side          1
:func:`plot_manifold`              the decoded 2-D latent plane                    5
:func:`plot_interpolation`         decoding along a line between two codes         5
:func:`plot_kl_per_dimension`      KL of each latent unit, active units            3
:func:`plot_kl_surface`            KL(N(mu, sigma^2) || N(0, 1)), its asymmetry   4
:func:`plot_posterior_comparison`  true posterior vs the recognition model         3
=================================  ==============================================  ====

The last column is the part of the lecture the picture belongs to (1 common vs variational
autoencoders, 2 low-dimensional representation, 3 the latent distribution, 4 KL divergence for
normals, 5 generating new samples).

Images are drawn as one mosaic per axes (tiles separated by a one-pixel white gap) with the
``gray`` colour map on the range [0, 1] (widened only when the data leave it), so that
brightness means the same in every figure.

References
----------
Kingma, D. P. & Welling, M. (2013). Auto-Encoding Variational Bayes. arXiv:1312.6114.
(Fig. 4: the learned data manifold on a grid spaced by the inverse normal CDF.)
Burda, Y., Grosse, R. & Salakhutdinov, R. (2016). Importance Weighted Autoencoders. ICLR.
(Active units: a latent dimension counts as active above a 0.01 threshold.)
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure, SubFigure
from matplotlib.lines import Line2D
from matplotlib.patches import Ellipse
from matplotlib.ticker import LogFormatter, MaxNLocator
from scipy import special

from ._validation import as_array, as_batch, check_finite, check_positive_float, check_positive_int
from .kl import kl_normal
from .serialization import atomic_write_bytes

__all__ = [
    "SAVE_DPI",
    "ACTIVE_UNIT_THRESHOLD",
    "save_figure",
    "manifold_grid",
    "pca_project",
    "highest_density_levels",
    "plot_history",
    "plot_histories",
    "plot_reconstructions",
    "plot_image_grid",
    "plot_latent_scatter",
    "plot_latent_comparison",
    "plot_manifold",
    "plot_interpolation",
    "plot_kl_per_dimension",
    "plot_kl_surface",
    "plot_posterior_comparison",
]

#: Resolution of saved PNG files, dots per inch (a 4 x 3 inch figure is 600 x 450 pixels).
SAVE_DPI = 150
#: KL (nats per example) above which a latent dimension counts as "active" (Burda et al. 2016
#: apply the same 0.01 threshold to the variance of the posterior mean).
ACTIVE_UNIT_THRESHOLD = 0.01

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_NATS = "nats per example"
_UNITS = {
    "loss": _NATS,
    "reconstruction": _NATS,
    "kl": _NATS,
    "beta": "KL weight beta",
    "seconds": "seconds per epoch",
}
_TITLES = {
    "loss": "loss",
    "reconstruction": "reconstruction  -ln p(x|z)",
    "kl": "KL(q(z|x) || p(z))",
}
_IMAGE_CMAP = matplotlib.colormaps["gray"].with_extremes(bad="white")  # gaps between tiles
_Z1, _Z2 = r"$z_1$", r"$z_2$"


class _Figure(Figure):
    """A Figure that renders itself as a PNG in Jupyter without pyplot or ``%matplotlib``."""

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png")
        return buf.getvalue()


def _new_figure(width: float, height: float) -> Figure:
    return _Figure(figsize=(width, height), layout="constrained")


def save_figure(fig: Figure, path: str | os.PathLike[str], *, dpi: float = SAVE_DPI) -> Path:
    """Write ``fig`` to ``path`` as a PNG, atomically.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : str or PathLike
        Destination. ``.png`` is appended when the name has no suffix; any other suffix raises
        ValueError. Missing parent folders are created.
    dpi : float
        Dots per inch: the PNG has ``round(width * dpi) x round(height * dpi)`` pixels.

    Returns
    -------
    Path
        The path written.
    """
    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a str or a path, got {type(path).__name__}")
    dpi = check_positive_float(dpi, "dpi")
    out = Path(path)
    if out.suffix == "":
        out = out.with_name(out.name + ".png")
    elif out.suffix.lower() != ".png":
        raise ValueError(
            f"path {str(out)!r} has suffix {out.suffix!r}; these figures are saved as PNG,"
            f" use {out.with_suffix('.png').name!r}"
        )
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    atomic_write_bytes(out, buf.getvalue())
    return out


def _finish(fig: Figure, title: str | None, path: str | os.PathLike[str] | None) -> Figure:
    if title is not None:
        fig.suptitle(str(title))
    if path is not None:
        save_figure(fig, path)
    return fig


# --------------------------------------------------------------------------------------------
# Checks and small helpers
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
    for attr in ("encode", "decode", "latent_dim", "input_dim"):
        if not hasattr(model, attr):
            raise TypeError(
                f"model must be a VAE or an Autoencoder (with {attr!r}), got {type(model).__name__}"
            )


def _mean_code(model: Any, x: np.ndarray) -> np.ndarray:
    """The code of ``x``: mu(x) for a VAE (encode returns (mu, log_var)), encode(x) otherwise."""
    code = model.encode(x)
    if isinstance(code, tuple):
        code = code[0]
    return np.asarray(code)


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


def _history_dict(history: Any, name: str = "history") -> dict[str, np.ndarray]:
    """Validate a ``history_`` mapping (or an object with one) into equal-length float arrays."""
    history = getattr(history, "history_", history)
    if not isinstance(history, Mapping):
        raise TypeError(
            f"{name} must be a dict such as model.history_ (or a fitted model), got"
            f" {type(history).__name__}"
        )
    if not history:
        raise ValueError(f"{name} is empty; train the model with fit(...) first")
    if "loss" not in history:
        raise ValueError(f"{name} has no 'loss' column; keys are {sorted(history)}")
    out: dict[str, np.ndarray] = {}
    for key, values in history.items():
        arr = np.asarray(as_array(values, f"{name}[{key!r}]"), dtype=np.float64)
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(
                f"{name}[{key!r}] must be a non-empty list of per-epoch numbers, got shape {arr.shape}"
            )
        out[str(key)] = arr
    lengths = {k: len(v) for k, v in out.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"{name} columns have different lengths: {lengths}")
    if "epoch" not in out:
        out["epoch"] = np.arange(1, len(out["loss"]) + 1, dtype=np.float64)
    return out


# --------------------------------------------------------------------------------------------
# Training curves
# --------------------------------------------------------------------------------------------


def plot_history(
    history: Any, *, title: str | None = None, path: str | os.PathLike[str] | None = None
) -> Figure:
    """Training curves of one run: loss, reconstruction and KL on separate axes.

    Parameters
    ----------
    history : dict of lists, or a fitted model
        ``model.history_`` (or the model itself), as recorded by :func:`vae_numpy.train.fit`:
        ``loss`` and optionally ``epoch``, ``reconstruction``, ``kl``, their ``val_`` versions,
        ``beta``. Missing columns are skipped.
    title : str, optional
        Figure title.
    path : str or PathLike, optional
        Also save the figure there as a PNG (see :func:`save_figure`).

    Returns
    -------
    Figure
        One axes for the loss; one for the reconstruction term when it differs from the loss
        (i.e. not for an autoencoder, whose loss *is* its reconstruction error); one for the KL
        when present (it is much smaller than the reconstruction, hence its own axes). Training
        curves are solid, validation curves dashed. When ``beta`` varies (KL warm-up) it is drawn
        dotted on a second y-axis of the KL panel.
    """
    h = _history_dict(history)
    keys = ["loss"]
    if "reconstruction" in h and not np.array_equal(h["reconstruction"], h["loss"]):
        keys.append("reconstruction")
    if "kl" in h:
        keys.append("kl")
    fig = _new_figure(3.4 * len(keys), 2.9)
    axes = np.atleast_1d(fig.subplots(1, len(keys), squeeze=False)[0])
    epoch = h["epoch"]
    marker = "o" if len(epoch) <= 25 else None
    for ax, key in zip(axes, keys, strict=True):
        ax.plot(epoch, h[key], "-", color="C0", marker=marker, ms=3, label="train")
        if f"val_{key}" in h:
            ax.plot(
                epoch, h[f"val_{key}"], "--", color="C1", marker=marker, ms=3, label="validation"
            )
        ax.set_title(_TITLES[key] + (" = -ELBO" if key == "loss" and "kl" in h else ""))
        ax.set_xlabel("epoch")
        ax.set_ylabel(_NATS)
        ax.grid(alpha=0.3)
        handles, _ = ax.get_legend_handles_labels()
        if key == "kl" and "beta" in h and np.ptp(h["beta"]) > 0:
            twin = ax.twinx()
            (beta_line,) = twin.plot(epoch, h["beta"], ":", color="0.4", label=r"$\beta$ (right)")
            twin.set_ylabel(r"KL weight $\beta$", color="0.4")
            handles.append(beta_line)
        ax.legend(handles=handles, fontsize="small")
    return _finish(fig, title, path)


def plot_histories(
    histories: Mapping[str, Any],
    key: str = "loss",
    *,
    logy: bool = False,
    title: str | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """One curve per run on one axes, e.g. Adam vs SGD vs Adagrad, or several beta values.

    Parameters
    ----------
    histories : dict of str to history
        Run name to ``model.history_`` (or to the fitted model).
    key : str
        Column to plot (``"loss"``, ``"reconstruction"``, ``"kl"``, ``"val_loss"``, ...). When a
        run also has ``"val_" + key`` it is drawn dashed in the same colour.
    logy : bool
        Logarithmic y-axis (useful when the runs differ by orders of magnitude early on).
    title : str, optional
    path : str or PathLike, optional
        Also save the figure there as a PNG.

    Returns
    -------
    Figure
        One axes, one solid line per run (plus its dashed validation line).
    """
    if not isinstance(histories, Mapping) or not histories:
        raise TypeError(
            "histories must be a non-empty dict of run name to model.history_, got"
            f" {type(histories).__name__} {histories!r:.60}"
        )
    if not isinstance(key, str):
        raise TypeError(f"key must be a history column name such as 'loss', got {key!r}")
    runs = {str(name): _history_dict(h, f"histories[{name!r}]") for name, h in histories.items()}
    for name, h in runs.items():
        if key not in h:
            raise ValueError(f"run {name!r} has no {key!r} column; its columns are {sorted(h)}")
    fig = _new_figure(5.0, 3.4)
    ax = fig.subplots()
    any_val = False
    for i, (name, h) in enumerate(runs.items()):
        colour = f"C{i % 10}"
        ax.plot(h["epoch"], h[key], "-", color=colour, label=name)
        if not key.startswith("val_") and f"val_{key}" in h:
            ax.plot(h["epoch"], h[f"val_{key}"], "--", color=colour)
            any_val = True
    handles, _ = ax.get_legend_handles_labels()
    if any_val:
        handles += [
            Line2D([], [], color="0.3", ls="-", label="train"),
            Line2D([], [], color="0.3", ls="--", label="validation"),
        ]
    ax.legend(handles=handles, fontsize="small")
    base = key.removeprefix("val_")
    ax.set_xlabel("epoch")
    ax.set_ylabel(_UNITS.get(base, base))
    ax.set_title(_TITLES.get(base, base) + (" (validation)" if key.startswith("val_") else ""))
    if logy:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(LogFormatter())
        ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
    ax.grid(alpha=0.3)
    return _finish(fig, title, path)


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
    fig = _new_figure(width, 2 * width / k * ih / iw + 0.5)
    axes = fig.subplots(2, 1)
    for ax, imgs, label in zip(axes, (x, r), ("original", "reconstruction"), strict=True):
        _show_mosaic(ax, _mosaic(imgs[:k], 1, k))
        ax.set_ylabel(label, fontsize="small")
    return _finish(fig, title, path)


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
    fig = _new_figure(cols * iw * scale + 0.3, rows * ih * scale + (0.6 if title else 0.3))
    ax = fig.subplots()
    _show_mosaic(ax, _mosaic(imgs, rows, cols))
    return _finish(fig, title, path)


# --------------------------------------------------------------------------------------------
# Latent codes
# --------------------------------------------------------------------------------------------


def pca_project(codes: Any, n_components: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Project codes onto their first principal components (centred, by SVD).

    Parameters
    ----------
    codes : ndarray of shape (n, latent_dim)
    n_components : int
        At most ``latent_dim``.

    Returns
    -------
    projected : ndarray of shape (n, n_components)
        ``(codes - mean) @ V[:, :n_components]``, dtype of ``codes``. Each component's sign is
        fixed so that its largest-magnitude loading is positive (deterministic output).
    explained_variance_ratio : ndarray of shape (n_components,)
        Fraction of the total variance along each component.
    """
    arr = as_batch(codes, "codes")
    k = check_positive_int(n_components, "n_components")
    if k > arr.shape[1]:
        raise ValueError(f"n_components={k} exceeds the {arr.shape[1]} dimensions of codes")
    centred = arr.astype(np.float64) - arr.mean(axis=0, dtype=np.float64)  # (n, d)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)  # vt: (min(n, d), d)
    comps = np.zeros((k, arr.shape[1]))
    comps[: min(k, len(vt))] = vt[:k]
    biggest = np.argmax(np.abs(comps), axis=1)
    signs = np.where(comps[np.arange(k), biggest] < 0, -1.0, 1.0)
    comps *= signs[:, None]
    variance = np.zeros(k)
    variance[: min(k, len(s))] = s[:k] ** 2
    total = float(np.sum(s**2))
    ratio = variance / total if total > 0 else variance
    return (centred @ comps.T).astype(arr.dtype), ratio


def _label_colours(labels: np.ndarray) -> tuple[np.ndarray, Any, Any, np.ndarray | None]:
    """Colour values, colour map, norm and (for <= 10 integer classes) the class values."""
    classes = np.unique(labels)
    if labels.dtype.kind in "iub" and len(classes) <= 10:
        cmap = ListedColormap(matplotlib.colormaps["tab10"](np.arange(len(classes))))
        norm = BoundaryNorm(np.arange(len(classes) + 1) - 0.5, len(classes))
        return np.searchsorted(classes, labels), cmap, norm, classes
    return labels.astype(np.float64), matplotlib.colormaps["viridis"], None, None


def _check_labels(labels: Any, n: int) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"labels must be numbers (class indices), got dtype {arr.dtype}")
    if arr.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), one per code, got {arr.shape}")
    if arr.dtype.kind == "f":
        check_finite(arr, "labels")
    return arr


def _scatter_codes(
    ax: Axes, codes: np.ndarray, labels: np.ndarray | None, norm_info: Any
) -> tuple[Any, str]:
    """Scatter 2-D (or PCA-projected) codes on ``ax``; returns the collection and a note."""
    d = codes.shape[1]
    note = ""
    if d > 2:
        xy, ratio = pca_project(codes, 2)
        ax.set_xlabel(f"PC 1 of z ({100 * ratio[0]:.0f}% of variance)")
        ax.set_ylabel(f"PC 2 of z ({100 * ratio[1]:.0f}% of variance)")
        note = f"PCA projection of {d}-D codes"
    elif d == 2:
        xy = codes
        ax.set_xlabel(_Z1)
        ax.set_ylabel(_Z2)
    else:  # one latent dimension: spread the points by label (or not at all)
        xy = np.column_stack([codes[:, 0], labels if labels is not None else np.zeros(len(codes))])
        ax.set_xlabel(_Z1)
        ax.set_ylabel("label" if labels is not None else "")
    size = 12 if len(xy) <= 2000 else 3
    if labels is None:
        sc = ax.scatter(xy[:, 0], xy[:, 1], s=size, alpha=0.6, color="C0", linewidths=0)
    else:
        colours, cmap, norm, _ = norm_info
        sc = ax.scatter(
            xy[:, 0], xy[:, 1], c=colours, cmap=cmap, norm=norm, s=size, alpha=0.7, linewidths=0
        )
    sc.set_rasterized(len(xy) > 2000)
    ax.grid(alpha=0.3)
    return sc, note


def _label_colorbar(fig: Figure | SubFigure, sc: Any, axes: Any, norm_info: Any) -> None:
    _, _, _, classes = norm_info
    cbar = fig.colorbar(sc, ax=axes, shrink=0.9)
    if classes is not None:
        cbar.set_ticks(list(range(len(classes))))
        cbar.set_ticklabels([str(c) for c in classes])
    cbar.set_label("label")
    if cbar.solids is not None:
        cbar.solids.set(alpha=1)  # opaque colour bar even though the points are translucent


def plot_latent_scatter(
    codes: Any,
    labels: Any = None,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """Latent codes as points, coloured by label.

    Parameters
    ----------
    codes : ndarray of shape (n, latent_dim)
        ``model.encode(x)`` of an autoencoder, or ``mu`` of a VAE's ``encode(x)``. With
        ``latent_dim > 2`` the points are projected on their first two principal components
        (:func:`pca_project`), which the axis labels and the title say.
    labels : ndarray of shape (n,), optional
        Class labels: up to 10 integer classes get the ``tab10`` colours and a colour bar with
        one tick per class; other labels a continuous colour bar.
    ax : matplotlib Axes, optional
        Draw into this axes (its figure is returned); default: a new figure.
    title : str, optional
        Axes title (default: the projection note, if any).
    path : str or PathLike, optional
        Also save the figure there as a PNG.

    Returns
    -------
    Figure
        The scatter axes, plus a colour-bar axes when ``labels`` is given.
    """
    arr = as_batch(codes, "codes")
    lab = None if labels is None else _check_labels(labels, len(arr))
    if ax is None:
        fig: Figure | SubFigure = _new_figure(4.6 if lab is not None else 3.9, 3.6)
        ax = fig.subplots()
    elif not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes, got {type(ax).__name__}")
    else:
        fig = ax.figure
    norm_info = None if lab is None else _label_colours(lab)
    sc, note = _scatter_codes(ax, arr, lab, norm_info)
    if title is not None or note:
        ax.set_title(title if title is not None else note, fontsize="medium")
    if lab is not None:
        _label_colorbar(fig, sc, ax, norm_info)
    root = fig.figure if isinstance(fig, SubFigure) else fig
    return _finish(root, None, path)


def plot_latent_comparison(
    ae_codes: Any,
    vae_codes: Any,
    labels: Any = None,
    *,
    titles: tuple[str, str] = ("autoencoder", "VAE (means of q(z|x))"),
    title: str | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """Autoencoder codes and VAE codes side by side, coloured by the same labels.

    The lecture's first picture: an autoencoder's codes land in separated, oddly shaped clusters;
    the VAE's KL term pulls them together toward N(0, I).

    Parameters
    ----------
    ae_codes : ndarray of shape (n, ae_latent_dim)
    vae_codes : ndarray of shape (n, vae_latent_dim)
        Usually ``mu`` of the VAE's ``encode(x)`` on the same ``x``.
    labels : ndarray of shape (n,), optional
    titles : pair of str
        Titles of the two panels.
    title : str, optional
        Figure title.
    path : str or PathLike, optional
        Also save the figure there as a PNG.

    Returns
    -------
    Figure
        Two scatter axes (PCA-projected when a latent dimension exceeds 2), plus one shared
        colour-bar axes when ``labels`` is given.
    """
    ae = as_batch(ae_codes, "ae_codes")
    vae = as_batch(vae_codes, "vae_codes")
    if len(ae) != len(vae):
        raise ValueError(
            f"ae_codes has {len(ae)} rows but vae_codes {len(vae)}; encode the same examples"
        )
    lab = None if labels is None else _check_labels(labels, len(ae))
    if not (isinstance(titles, Sequence) and len(titles) == 2):
        raise TypeError(f"titles must be a pair of strings, got {titles!r}")
    fig = _new_figure(8.6 if lab is not None else 7.6, 3.7)
    axes = fig.subplots(1, 2)
    norm_info = None if lab is None else _label_colours(lab)
    sc = None
    for ax, codes, name in zip(axes, (ae, vae), titles, strict=True):
        sc, note = _scatter_codes(ax, codes, lab, norm_info)
        ax.set_title(f"{name}\n{note}" if note else str(name), fontsize="medium")
    if lab is not None:
        _label_colorbar(fig, sc, list(axes), norm_info)
    return _finish(fig, title, path)


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
    fig = _new_figure(side * w / max(h, w) + 0.7, side * h / max(h, w) + 0.6)
    ax = fig.subplots()
    _show_mosaic(ax, _mosaic(decoded.reshape(-1, h, w), n, n))
    shown = _thinned(n, 8)
    ax.set_xticks(_tile_centres(n, w)[shown], [f"{v:.2f}" for v in z[shown]], fontsize="small")
    ax.set_yticks(
        _tile_centres(n, h)[shown], [f"{v:.2f}" for v in z2_down[shown]], fontsize="small"
    )
    ax.set_xlabel(_Z1 + r"  (quantiles $\Phi^{-1}(p)$ of N(0, 1))")
    ax.set_ylabel(_Z2)
    return _finish(fig, title, path)


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
        The code of x is ``mu(x)`` for a VAE (``encode`` returns ``(mu, log_var)``) and
        ``encode(x)`` for an autoencoder.
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
    z_a, z_b = (_mean_code(model, x) for x in ends)  # (1, latent_dim) each
    t = np.linspace(0.0, 1.0, steps)[:, None]  # (steps, 1)
    z = ((1.0 - t) * z_a + t * z_b).astype(z_a.dtype)  # (steps, latent_dim)
    decoded = np.asarray(model.decode(z)).reshape(steps, h, w)
    width = min(12.0, 0.7 * (steps + 2) * w / h + 0.6)
    fig = _new_figure(width, 0.7 * width / (steps + 2) * h / w + 0.7)
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
    return _finish(fig, title, path)


# --------------------------------------------------------------------------------------------
# KL pictures
# --------------------------------------------------------------------------------------------


def plot_kl_per_dimension(
    kl_per_dim: Any,
    *,
    threshold: float = ACTIVE_UNIT_THRESHOLD,
    log: bool = True,
    title: str | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """Bar chart of the mean KL of each latent dimension; units above ``threshold`` are active.

    Parameters
    ----------
    kl_per_dim : ndarray of shape (latent_dim,)
        Mean KL per dimension in nats per example, e.g. ``model.loss_parts(x)["kl_per_dim"]``.
    threshold : float
        The "active unit" line (nats per example).
    log : bool
        Logarithmic y-axis (default), so that collapsed units near 0 and active ones of several
        nats are both visible.
    title : str, optional
    path : str or PathLike, optional
        Also save the figure there as a PNG.

    Returns
    -------
    Figure
        One axes: one bar per dimension (active ones coloured, inactive ones grey) and a dashed
        horizontal line at ``threshold``.
    """
    kl = check_finite(as_array(kl_per_dim, "kl_per_dim"), "kl_per_dim")
    if kl.ndim != 1 or kl.size == 0:
        raise ValueError(
            f"kl_per_dim must have shape (latent_dim,), got {kl.shape}; average a (batch,"
            " latent_dim) array over the batch with kl.mean(axis=0)"
        )
    if np.any(kl < 0):
        raise ValueError(f"kl_per_dim must be >= 0 (a divergence), got min {float(kl.min()):g}")
    threshold = check_positive_float(threshold, "threshold")
    active = kl > threshold
    fig = _new_figure(max(3.6, min(9.0, 0.28 * kl.size + 1.6)), 3.0)
    ax = fig.subplots()
    dims = np.arange(kl.size)
    ax.bar(dims, kl, color=np.where(active, "C0", "0.7"), width=0.8)
    ax.axhline(threshold, color="C3", ls="--", lw=1, label=f"threshold {threshold:g} nats")
    if log:
        ax.set_yscale("log")
        positive = kl[kl > 0]
        floor = min(threshold, float(positive.min()) if positive.size else threshold) / 3
        ax.set_ylim(bottom=floor)
    ax.set_xlabel("latent dimension")
    ax.set_ylabel("KL, " + _NATS)
    ax.set_title(f"{int(active.sum())} of {kl.size} units active", fontsize="medium")
    if kl.size <= 32:
        ax.set_xticks(dims)
        ax.tick_params(axis="x", labelsize="small")
    ax.legend(fontsize="small")
    return _finish(fig, title, path)


def plot_kl_surface(
    *,
    mu_range: tuple[float, float] = (-3.0, 3.0),
    sigma_range: tuple[float, float] = (0.1, 3.0),
    m: float = 0.0,
    s: float = 1.0,
    n: int = 201,
    asymmetry: bool = False,
    title: str | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """KL(N(mu, sigma^2) || N(m, s^2)) over a (mu, sigma) grid, as filled contours.

    Parameters
    ----------
    mu_range : (low, high)
        Range of the mean mu of p (x-axis).
    sigma_range : (low, high)
        Range of the standard deviation sigma of p (y-axis), ``0 < low < high``.
    m, s : float
        Mean and standard deviation of the fixed q (default N(0, 1), the VAE's prior).
    n : int
        Grid points per axis.
    asymmetry : bool
        Add a second panel with the reverse divergence KL(q || p) on the same colour scale
        (values above the scale are drawn in the colour bar's "over" colour).
    title : str, optional
    path : str or PathLike, optional
        Also save the figure there as a PNG.

    Returns
    -------
    Figure
        One (or two) contour axes plus one colour-bar axes, in nats. A star marks (m, s),
        where the divergence is 0. Values come from :func:`vae_numpy.kl.kl_normal`.
    """
    ranges = []
    for rng_, name in ((mu_range, "mu_range"), (sigma_range, "sigma_range")):
        if not (isinstance(rng_, Sequence) and len(rng_) == 2):
            raise TypeError(f"{name} must be a pair (low, high), got {rng_!r}")
        lo, hi = (float(check_finite(as_array(v, name), name)) for v in rng_)
        if not lo < hi:
            raise ValueError(f"{name} must have low < high, got {rng_!r}")
        ranges.append((lo, hi))
    if ranges[1][0] <= 0:
        raise ValueError(f"sigma_range must be positive standard deviations, got {sigma_range!r}")
    s = check_positive_float(s, "s")
    m = float(check_finite(as_array(m, "m"), "m"))
    n = check_positive_int(n, "n", minimum=2)
    mu = np.linspace(*ranges[0], n)
    sigma = np.linspace(*ranges[1], n)
    mu_g, sigma_g = np.meshgrid(mu, sigma, indexing="xy")  # (n sigma, n mu)
    forward = kl_normal(mu_g, sigma_g, m, s)
    panels = [(forward, r"$\mathrm{KL}(\mathcal{N}(\mu,\sigma^2)\,\Vert\,\mathcal{N}(m,s^2))$")]
    if asymmetry:
        reverse = kl_normal(m, s, mu_g, sigma_g)
        panels.append(
            (reverse, r"$\mathrm{KL}(\mathcal{N}(m,s^2)\,\Vert\,\mathcal{N}(\mu,\sigma^2))$")
        )
    levels = MaxNLocator(nbins=20).tick_values(0.0, float(forward.max()))
    fig = _new_figure(4.4 * len(panels) + 0.8, 3.6)
    axes = np.atleast_1d(fig.subplots(1, len(panels), squeeze=False)[0])
    filled = []
    for ax, (values, label) in zip(axes, panels, strict=True):
        filled.append(
            ax.contourf(mu_g, sigma_g, values, levels=levels, cmap="viridis", extend="max")
        )
        lines = ax.contour(
            mu_g, sigma_g, values, levels=[0.1, 0.5, 1, 2, 4], colors="white", linewidths=0.7
        )
        ax.clabel(lines, fontsize="x-small", fmt="%g")
        ax.plot(
            [m], [s], marker="*", color="red", ms=11, ls="none", label=f"q = N({m:g}, {s * s:g})"
        )
        ax.set_xlabel(r"$\mu$ (mean of p)")
        ax.set_ylabel(r"$\sigma$ (standard deviation of p)")
        ax.set_title(label, fontsize="medium")
        ax.legend(loc="upper right", fontsize="x-small")
    cbar = fig.colorbar(filled[0], ax=list(axes))
    cbar.set_label("KL (nats)")
    return _finish(fig, title, path)


def highest_density_levels(
    density: np.ndarray,
    z1: np.ndarray,
    z2: np.ndarray,
    masses: Sequence[float] = (1 - math.exp(-0.5), 1 - math.exp(-2.0)),
) -> np.ndarray:
    """Density values whose super-level sets hold the given probability masses.

    Parameters
    ----------
    density : ndarray of shape (len(z2), len(z1))
        Non-negative density (unnormalised is fine) on a grid; row i is ``z2[i]``.
    z1, z2 : ndarray, increasing
        Grid coordinates.
    masses : sequence of float in (0, 1)
        The default ``1 - exp(-k^2 / 2)`` for k = 1, 2 are the masses inside the 1- and
        2-standard-deviation ellipses of a 2-D Gaussian.

    Returns
    -------
    ndarray of shape (len(masses),)
        ``levels[i]``: the region ``{density >= levels[i]}`` holds about ``masses[i]`` of the
        grid's total mass (cell areas from ``np.gradient`` of the coordinates).
    """
    cell = np.outer(np.gradient(z2), np.gradient(z1))  # (n2, n1) cell areas
    flat = density.ravel()
    order = np.argsort(flat)[::-1]  # densest first
    cum = np.cumsum((flat * cell.ravel())[order])
    cum /= cum[-1]
    idx = np.minimum(np.searchsorted(cum, np.asarray(masses, dtype=np.float64)), len(cum) - 1)
    return flat[order][idx]


def _grid_axis(g: np.ndarray, name: str, axis: int, shape: tuple[int, int]) -> np.ndarray:
    """1-D coordinates from a 1-D vector or a meshgrid (``indexing="xy"``)."""
    if g.ndim == 2:
        if g.shape != shape:
            raise ValueError(f"{name} has shape {g.shape}, expected {shape} like true_posterior")
        line = g[0, :] if axis == 1 else g[:, 0]
        expected = np.broadcast_to(line[None, :] if axis == 1 else line[:, None], shape)
        if not np.allclose(g, expected):
            raise ValueError(
                f"{name} is not a grid from np.meshgrid(z1, z2) (indexing='xy'); pass 1-D vectors"
            )
        g = line
    if g.ndim != 1 or len(g) != shape[axis]:
        raise ValueError(
            f"{name} must have {shape[axis]} values (true_posterior has shape {shape}:"
            f" rows follow z2, columns z1), got shape {g.shape}"
        )
    if len(g) < 2 or np.any(np.diff(g) <= 0):
        raise ValueError(f"{name} must be strictly increasing with at least 2 points")
    return g


def plot_posterior_comparison(
    grid_z1: Any,
    grid_z2: Any,
    true_posterior: Any,
    mu: Any,
    log_var: Any,
    *,
    title: str | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """The true posterior p(z|x) as contours, with the recognition model q(z|x) on top.

    Parameters
    ----------
    grid_z1 : ndarray of shape (n1,) or (n2, n1)
        z1 coordinates, increasing (or the first output of ``np.meshgrid(z1, z2)``).
    grid_z2 : ndarray of shape (n2,) or (n2, n1)
        z2 coordinates, increasing (or the second output of ``np.meshgrid(z1, z2)``).
    true_posterior : ndarray of shape (n2, n1)
        p(z|x) (unnormalised is fine, >= 0) at ``(z1[j], z2[i])`` in row i, column j.
    mu, log_var : ndarray of shape (2,) or (1, 2)
        Mean and log-variance of the diagonal Gaussian q(z|x) = N(mu, diag exp(log_var)).
    title : str, optional
    path : str or PathLike, optional
        Also save the figure there as a PNG.

    Returns
    -------
    Figure
        One axes: filled contours of the density; two solid lines around the regions holding
        39% and 86% of its mass (:func:`highest_density_levels`); dashed ellipses at 1 and 2
        standard deviations of q, which hold the same 39% and 86% of q's mass, so a perfect q
        would trace the solid lines.
    """
    dens = check_finite(as_array(true_posterior, "true_posterior"), "true_posterior")
    if dens.ndim != 2:
        raise ValueError(f"true_posterior must be 2-D (len(z2), len(z1)), got shape {dens.shape}")
    if np.any(dens < 0) or not np.any(dens > 0):
        raise ValueError("true_posterior must be a density: >= 0 everywhere and not all zero")
    shape = (dens.shape[0], dens.shape[1])
    z1 = _grid_axis(check_finite(as_array(grid_z1, "grid_z1"), "grid_z1"), "grid_z1", 1, shape)
    z2 = _grid_axis(check_finite(as_array(grid_z2, "grid_z2"), "grid_z2"), "grid_z2", 0, shape)
    m = check_finite(as_array(mu, "mu"), "mu").reshape(-1)
    lv = check_finite(as_array(log_var, "log_var"), "log_var").reshape(-1)
    if m.shape != (2,) or lv.shape != (2,):
        raise ValueError(
            f"mu and log_var must each hold the 2 coordinates of one q(z|x), got sizes"
            f" {np.size(mu)} and {np.size(log_var)}"
        )
    std = np.exp(0.5 * lv.astype(np.float64))
    fig = _new_figure(4.6, 4.0)
    ax = fig.subplots()
    ax.contourf(z1, z2, dens, levels=12, cmap="Blues")
    levels = np.unique(highest_density_levels(dens, z1, z2))
    if len(levels) and levels[0] < dens.max():
        ax.contour(z1, z2, dens, levels=levels, colors="navy", linewidths=1.2)
    for k in (1, 2):
        ax.add_patch(
            Ellipse(
                (float(m[0]), float(m[1])),
                width=2 * k * std[0],
                height=2 * k * std[1],
                fill=False,
                ec="C3",
                ls="--",
                lw=1.5,
            )
        )
    ax.plot([m[0]], [m[1]], "x", color="C3", ms=8)
    ax.set_xlim(z1[0], z1[-1])
    ax.set_ylim(z2[0], z2[-1])
    ax.set_aspect("equal")
    ax.set_xlabel(_Z1)
    ax.set_ylabel(_Z2)
    ax.legend(
        handles=[
            Line2D([], [], color="navy", lw=1.2, label="p(z|x): 39% and 86% of mass"),
            Line2D([], [], color="C3", ls="--", lw=1.5, label="q(z|x): 1 and 2 std (39%, 86%)"),
        ],
        loc="upper left",
        fontsize="x-small",
    )
    return _finish(fig, title, path)
