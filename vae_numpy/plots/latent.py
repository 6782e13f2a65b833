"""Pictures of the latent space: codes coloured by label, and true vs approximate posteriors.

:func:`plot_latent_scatter` and :func:`plot_latent_comparison` draw codes (projected by
:func:`pca_project` above two dimensions): lecture part 1, an autoencoder's codes against a
VAE's. :func:`plot_posterior_comparison` draws a true posterior p(z|x) on a grid against the
recognition model q(z|x), with :func:`highest_density_levels` for its contours: part 3.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure, SubFigure
from matplotlib.lines import Line2D
from matplotlib.patches import Ellipse

from .._validation import as_array, as_batch, check_finite, check_positive_int
from .figure import Z1, Z2, finish_figure, new_figure

__all__ = [
    "pca_project",
    "highest_density_levels",
    "plot_latent_scatter",
    "plot_latent_comparison",
    "plot_posterior_comparison",
]


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
        ax.set_xlabel(Z1)
        ax.set_ylabel(Z2)
    else:  # one latent dimension: spread the points by label (or not at all)
        xy = np.column_stack([codes[:, 0], labels if labels is not None else np.zeros(len(codes))])
        ax.set_xlabel(Z1)
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


def _label_key(fig: Figure | SubFigure, sc: Any, axes: Any, norm_info: Any) -> None:
    """A legend with one entry per class for categorical labels, else a colour bar."""
    _, cmap, _, classes = norm_info
    if classes is not None:
        handles = [
            Line2D([], [], ls="none", marker="o", ms=6, color=cmap(i), label=str(c))
            for i, c in enumerate(classes)
        ]
        fig.legend(handles=handles, title="label", loc="outside right upper", fontsize="small")
        return
    cbar = fig.colorbar(sc, ax=axes, shrink=0.9)
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
        Class labels: up to 10 integer classes get the ``tab10`` colours and a legend with one
        entry per class (categories, not a scale); other labels a continuous colour bar.
    ax : matplotlib Axes, optional
        Draw into this axes (its figure is returned); default: a new figure.
    title : str, optional
        Axes title (default: the projection note, if any).
    path : str or PathLike, optional
        Also save the figure there as a PNG.

    Returns
    -------
    Figure
        The scatter axes, plus the class legend (categorical labels) or a colour-bar axes
        (continuous labels) when ``labels`` is given.
    """
    arr = as_batch(codes, "codes")
    lab = None if labels is None else _check_labels(labels, len(arr))
    if ax is None:
        fig: Figure | SubFigure = new_figure(4.6 if lab is not None else 3.9, 3.6)
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
        _label_key(fig, sc, ax, norm_info)
    root = fig.figure if isinstance(fig, SubFigure) else fig
    return finish_figure(root, None, path)


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
    fig = new_figure(8.6 if lab is not None else 7.6, 3.7)
    axes = fig.subplots(1, 2)
    norm_info = None if lab is None else _label_colours(lab)
    sc = None
    for ax, codes, name in zip(axes, (ae, vae), titles, strict=True):
        sc, note = _scatter_codes(ax, codes, lab, norm_info)
        ax.set_title(f"{name}\n{note}" if note else str(name), fontsize="medium")
    if lab is not None:
        _label_key(fig, sc, list(axes), norm_info)
    return finish_figure(fig, title, path)


# --------------------------------------------------------------------------------------------
# True and approximate posteriors
# --------------------------------------------------------------------------------------------


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
    fig = new_figure(4.6, 4.0)
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
    ax.set_xlabel(Z1)
    ax.set_ylabel(Z2)
    ax.legend(
        handles=[
            Line2D([], [], color="navy", lw=1.2, label="p(z|x): 39% and 86% of mass"),
            Line2D([], [], color="C3", ls="--", lw=1.5, label="q(z|x): 1 and 2 std (39%, 86%)"),
        ],
        loc="upper left",
        fontsize="x-small",
    )
    return finish_figure(fig, title, path)
