"""Small synthetic 2-D point sets for pictures of a latent space.

``gaussian_mixture`` draws a multimodal set (Gaussians on a circle), the kind of latent codes
a plain autoencoder produces; ``two_moons`` draws two interleaving half circles. Both return
float32 points and int64 labels and take ``rng`` like everything else in the package.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._validation import check_positive_float, check_positive_int

__all__ = ["gaussian_mixture", "two_moons"]


def gaussian_mixture(
    n: int,
    rng: Any = None,
    *,
    n_components: int = 8,
    radius: float = 2.0,
    std: float = 0.2,
) -> tuple[np.ndarray, np.ndarray]:
    """Points from equal-weight Gaussians placed on a circle: a multimodal 2-D set.

    Component ``k`` has mean ``radius * (cos 2 pi k / K, sin 2 pi k / K)`` and covariance
    ``std**2 * I``. Its latent codes show the multimodality the lecture contrasts with N(0, I).

    Parameters
    ----------
    n : int
        Number of points.
    rng : numpy.random.Generator, int or None
        Passed through ``np.random.default_rng``.
    n_components, radius, std
        Number of Gaussians K, radius of the circle of means, standard deviation per axis.

    Returns
    -------
    x : ndarray of shape (n, 2), float32
    y : ndarray of shape (n,), int64
        The component each point was drawn from.
    """
    n = check_positive_int(n, "n")
    k = check_positive_int(n_components, "n_components")
    radius = check_positive_float(radius, "radius", allow_zero=True)
    std = check_positive_float(std, "std", allow_zero=True)
    rng = np.random.default_rng(rng)
    y = rng.integers(k, size=n)
    angles = 2.0 * np.pi * np.arange(k) / k
    means = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)  # (K, 2)
    x = means[y] + std * rng.standard_normal((n, 2))  # (n, 2)
    return x.astype(np.float32), y.astype(np.int64)


def two_moons(n: int, rng: Any = None, *, noise: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles with Gaussian noise (as ``sklearn.datasets.make_moons``).

    Moon 0 is ``(cos t, sin t)`` and moon 1 is ``(1 - cos t, 1/2 - sin t)`` for t uniform on
    [0, pi]; both are unit half circles, centred at (0, 0) and (1, 1/2).

    Parameters
    ----------
    n : int
        Number of points; moon 0 gets ``(n + 1) // 2`` of them, moon 1 the rest.
    rng : numpy.random.Generator, int or None
        Passed through ``np.random.default_rng``.
    noise : float
        Standard deviation of the Gaussian noise added to each coordinate.

    Returns
    -------
    x : ndarray of shape (n, 2), float32
    y : ndarray of shape (n,), int64
        Which moon each point lies on.
    """
    n = check_positive_int(n, "n")
    noise = check_positive_float(noise, "noise", allow_zero=True)
    rng = np.random.default_rng(rng)
    y = (np.arange(n) >= (n + 1) // 2).astype(np.int64)
    t = np.pi * rng.random(n)
    x = np.where(
        (y == 0)[:, None],
        np.stack([np.cos(t), np.sin(t)], axis=1),
        np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], axis=1),
    )  # (n, 2)
    x = x + noise * rng.standard_normal((n, 2))
    order = rng.permutation(n)  # interleave the two moons
    return x[order].astype(np.float32), y[order]
