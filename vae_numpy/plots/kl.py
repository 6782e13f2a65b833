"""KL pictures: the KL of each latent unit (active units), and KL(N(mu, sigma^2) || N(m, s^2)).

:func:`plot_kl_per_dimension` shows which latent units a trained VAE uses (lecture part 3);
:func:`plot_kl_surface` draws the closed form of :func:`vae_numpy.kl.kl_normal` over a
(mu, sigma) grid and, optionally, its asymmetry (part 4).

References
----------
Burda, Y., Grosse, R. & Salakhutdinov, R. (2016). Importance Weighted Autoencoders. ICLR.
(Active units: a latent dimension counts as active above a 0.01 threshold.)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from .._validation import as_array, check_finite, check_positive_float, check_positive_int
from ..kl import kl_normal
from .figure import NATS, finish_figure, new_figure

__all__ = ["ACTIVE_UNIT_THRESHOLD", "plot_kl_per_dimension", "plot_kl_surface"]

#: KL (nats per example) above which a latent dimension counts as "active" (Burda et al. 2016
#: apply the same 0.01 threshold to the variance of the posterior mean).
ACTIVE_UNIT_THRESHOLD = 0.01


def plot_kl_per_dimension(
    kl_per_dim: Any,
    *,
    threshold: float = ACTIVE_UNIT_THRESHOLD,
    log: bool = False,
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
        Logarithmic y-axis, so that collapsed units near 0 and active ones of several nats are
        both visible. Default: linear, starting at 0, where bar heights compare honestly.
    title : str, optional
    path : str or PathLike, optional
        Also save the figure there as a PNG.

    Returns
    -------
    Figure
        One axes: one bar per dimension (active ones coloured, inactive ones grey) and a dashed
        horizontal line at ``threshold``; the legend sits outside the axes, never over a bar.
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
    fig = new_figure(max(3.6, min(9.0, 0.28 * kl.size + 1.6)), 3.0)
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
    ax.set_ylabel("KL, " + NATS)
    ax.set_title(f"{int(active.sum())} of {kl.size} units active", fontsize="medium")
    if kl.size <= 32:
        ax.set_xticks(dims)
        ax.tick_params(axis="x", labelsize="small")
    fig.legend(
        handles=[
            Patch(color="C0", label="active"),
            Patch(color="0.7", label="inactive"),
            *ax.get_lines(),
        ],
        loc="outside lower center",
        ncols=3,
        fontsize="small",
    )
    return finish_figure(fig, title, path)


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
    fig = new_figure(4.4 * len(panels) + 0.8, 3.6)
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
    return finish_figure(fig, title, path)
