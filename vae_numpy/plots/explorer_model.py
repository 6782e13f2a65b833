"""What the latent-space explorer needs of a model: its decoder, rebuilt, and the plane it shows.

The explorer page (:mod:`vae_numpy.plots.explorer`) runs a model's decoder in the browser, so it
needs that decoder as plain numbers: :func:`decoder_spec` rebuilds it from the model protocol
(:mod:`vae_numpy.protocol`) alone. ``parameters()`` gives the Dense layers (``"decoder.<i>.W"``
of shape (in, out) and ``"decoder.<i>.b"``), ``get_config()`` the hidden activation and the
likelihood, and the output is the mean of p(x|z): the sigmoid of a Bernoulli decoder's logits,
or a Gaussian decoder's (or a squared-error autoencoder's) output as it is. The rebuilt decoder
is checked against ``model.decode`` on probe points, so a page never shows a decoder that
differs from the model's.

:func:`latent_plane` chooses the page's coordinates: two chosen latent dimensions, or the plane
of the first two principal components of the data's codes, and one slider for each remaining
direction. ``DecoderSpec``, ``decoder_spec``, ``LatentPlane`` and ``latent_plane`` are
importable from :mod:`vae_numpy.plots.explorer` too, and from :mod:`vae_numpy.plots`.

References
----------
Kingma, D. P. & Welling, M. (2013). Auto-Encoding Variational Bayes. arXiv:1312.6114.
(Fig. 4: the learned data manifold, drawn on the latent plane.)
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import as_batch, check_positive_int
from ..layers import ACTIVATIONS

__all__ = [
    "DecoderSpec",
    "LatentPlane",
    "decoder_spec",
    "latent_plane",
    "padded_range",
    "DECODER_MATCH_TOLERANCE",
]

#: Largest difference allowed between the rebuilt decoder and ``model.decode`` on probe points,
#: relative to the size of the output (float32 rounding stays far below it).
DECODER_MATCH_TOLERANCE = 1e-4


# --- the decoder, rebuilt from the parameters ----------------------------------------------------


@dataclass(frozen=True)
class DecoderSpec:
    """The decoder of a model as the page runs it: dense layers, activations, output function.

    Attributes
    ----------
    weights : list of ndarray
        ``W`` of each Dense layer, shape (in, out), in order; the first has
        ``latent_dim + n_classes`` rows (z, then the one-hot label of a conditional decoder).
    biases : list of ndarray
        ``b`` of each Dense layer, shape (out,).
    activation : str
        Hidden activation after every Dense but the last (a key of ``vae_numpy.layers.ACTIVATIONS``).
    activation_parameter : float
        LeakyReLU's slope or ELU's alpha (0 for the other activations).
    output : {"sigmoid", "identity"}
        From the last layer to the mean of p(x|z): Bernoulli probabilities, or the output as is.
    latent_dim : int
    n_classes : int
        Number of labels of a conditional decoder ``decode(z, y)``; 0 for ``decode(z)``.
    """

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    activation: str
    activation_parameter: float
    output: str
    latent_dim: int
    n_classes: int

    @property
    def output_dim(self) -> int:
        """Number of decoded values (the model's ``input_dim``)."""
        return int(self.weights[-1].shape[1])

    def decode(self, z: Any, y: Any = None) -> np.ndarray:
        """The decoder's mean for codes ``z`` (and labels ``y``), computed in float64.

        Parameters
        ----------
        z : ndarray of shape (batch, latent_dim)
        y : ndarray of shape (batch,) of int, optional
            Labels, required exactly when ``n_classes > 0``.

        Returns
        -------
        ndarray of shape (batch, output_dim)
        """
        h = as_batch(z, "z", features=self.latent_dim, dtype=np.float64)
        if self.n_classes:
            if y is None:
                raise ValueError("this decoder is conditional: pass y, one label per row of z")
            labels = np.asarray(y)
            if labels.shape != (len(h),):
                raise ValueError(f"y must have shape ({len(h)},), got {labels.shape}")
            h = np.concatenate([h, np.eye(self.n_classes)[labels]], axis=1)  # [z | one_hot(y)]
        layer = ACTIVATIONS[self.activation]()
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = h @ w.astype(np.float64) + b.astype(np.float64)  # (batch, out)
            if i < last:
                h = layer.forward(h)
        if self.output == "sigmoid":
            return 1 / (1 + np.exp(-h))
        return h


def _is_conditional(model: Any) -> bool:
    """True when ``model.decode`` takes a label ``y`` besides ``z``."""
    try:
        return "y" in inspect.signature(model.decode).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return False


def _check_model(model: Any) -> None:
    needed = ("decode", "parameters", "get_config", "latent_dim", "input_dim")
    missing = [name for name in needed if not hasattr(model, name)]
    if missing:
        raise TypeError(
            f"expected a vae_numpy model with a decoder, got {type(model).__name__}"
            f" (it has no {', '.join(missing)}); load one with vae_numpy.models.load_model(path)"
        )


def _model_decode(model: Any, z: np.ndarray, y: np.ndarray | None) -> np.ndarray:
    return np.asarray(model.decode(z) if y is None else model.decode(z, y))


def decoder_spec(model: Any, *, check: bool = True) -> DecoderSpec:
    """Rebuild a model's decoder from ``parameters()`` and ``get_config()``.

    Parameters
    ----------
    model : a model of vae_numpy with a decoder
        Its parameters ``"decoder.<i>.W"`` (shape (in, out)) and ``"decoder.<i>.b"`` are the
        Dense layers, in the order of ``i``; ``get_config()["activation"]`` is the activation
        between them; the output is the identity for a Gaussian likelihood or a squared-error
        autoencoder, the sigmoid otherwise.
    check : bool
        Compare the rebuilt decoder with ``model.decode`` on probe points (default True).

    Returns
    -------
    DecoderSpec

    Raises
    ------
    TypeError
        If ``model`` is not a model (no ``decode``, ``parameters``, ...).
    ValueError
        If the model has no decoder parameters, its layers do not chain, or the rebuilt
        decoder differs from ``model.decode``.
    """
    _check_model(model)
    name = type(model).__name__
    layers: dict[int, dict[str, np.ndarray]] = {}
    for key, value in model.parameters().items():
        parts = key.split(".")
        if (
            len(parts) == 3
            and parts[0] == "decoder"
            and parts[1].isdigit()
            and parts[2] in ("W", "b")
        ):
            layers.setdefault(int(parts[1]), {})[parts[2]] = np.asarray(value)
    if not layers:
        raise ValueError(
            f"{name} has no decoder parameters ('decoder.<i>.W'): the explorer needs a model"
            " with a decoder (VAE, Autoencoder, ConditionalVAE, GaussianMixtureVAE,"
            " SemiSupervisedVAE)"
        )
    order = sorted(layers)
    if any(set(layers[i]) != {"W", "b"} for i in order):
        raise ValueError(f"{name}: every decoder layer needs a W and a b, got {sorted(layers)}")
    weights = [layers[i]["W"] for i in order]
    biases = [layers[i]["b"] for i in order]
    config = model.get_config()
    n_classes = int(config.get("n_classes", 0)) if _is_conditional(model) else 0
    latent_dim = int(model.latent_dim)
    sizes = [latent_dim + n_classes]
    for i, (w, b) in zip(order, zip(weights, biases, strict=True), strict=True):
        if w.ndim != 2 or w.shape[0] != sizes[-1] or b.shape != (w.shape[1],):
            raise ValueError(
                f"{name}: decoder layer {i} has W {w.shape} and b {b.shape}, expected W of shape"
                f" ({sizes[-1]}, out) and b of shape (out,)"
            )
        sizes.append(int(w.shape[1]))
    if sizes[-1] != model.input_dim:
        raise ValueError(
            f"{name}: the decoder outputs {sizes[-1]} values but input_dim is {model.input_dim}"
        )
    activation = str(config.get("activation", "relu"))
    if activation not in ACTIVATIONS:
        raise ValueError(f"{name}: activation {activation!r} is not one of {sorted(ACTIVATIONS)}")
    layer = ACTIVATIONS[activation]()
    parameter = float(getattr(layer, "slope", getattr(layer, "alpha", 0.0)))
    identity = config.get("likelihood") == "gaussian" or config.get("loss") == "mse"
    spec = DecoderSpec(
        weights=weights,
        biases=biases,
        activation=activation,
        activation_parameter=parameter,
        output="identity" if identity else "sigmoid",
        latent_dim=latent_dim,
        n_classes=n_classes,
    )
    if check:
        _check_spec(model, spec)
    return spec


def _check_spec(model: Any, spec: DecoderSpec) -> None:
    """Raise ValueError when the rebuilt decoder differs from ``model.decode`` on probe points."""
    gen = np.random.default_rng(0)
    z = 2 * gen.standard_normal((16, spec.latent_dim))
    z[0] = 0.0
    y = np.arange(16) % spec.n_classes if spec.n_classes else None
    expected = _model_decode(model, z.astype(np.dtype(model.dtype)), y).astype(np.float64)
    got = spec.decode(z, y)
    diff = float(np.max(np.abs(got - expected)))
    scale = max(1.0, float(np.max(np.abs(expected))))
    if not diff <= DECODER_MATCH_TOLERANCE * scale:
        raise ValueError(
            f"cannot rebuild the decoder of {type(model).__name__} from its parameters: it differs"
            f" from model.decode by up to {diff:.3g}. The explorer runs decoders made of Dense"
            " layers and one hidden activation, with a sigmoid or identity output"
        )


# --- the plane shown on the page ------------------------------------------------------------------


@dataclass(frozen=True)
class LatentPlane:
    """Coordinates of the page: a latent point is ``z = origin + coords @ basis``.

    ``coords[0]`` and ``coords[1]`` are the horizontal and vertical positions on the plane
    (u, v); the other coordinates are set by sliders.

    Attributes
    ----------
    origin : ndarray of shape (latent_dim,)
        Latent point at coords = 0: zero, or the mean of the codes (PCA plane).
    basis : ndarray of shape (latent_dim, latent_dim)
        Orthonormal rows: the plane's two axes, then one direction per slider.
    labels : list of str
        Name of each direction (``"z1"``, ``"PC 1 (62% of variance)"``, ...).
    ranges : ndarray of shape (max(latent_dim, 2), 2)
        Low and high end of each coordinate on the page (for a 1-D latent space, row 1 is the
        vertical range of the scatter, which has no latent direction).
    defaults : ndarray of shape (latent_dim,)
        Coordinates of the point shown when the page opens.
    mode : {"dims", "pca"}
        Two chosen latent dimensions, or the first two principal components of the codes.
    """

    origin: np.ndarray
    basis: np.ndarray
    labels: list[str]
    ranges: np.ndarray
    defaults: np.ndarray
    mode: str

    def coordinates(self, codes: Any) -> np.ndarray:
        """Coordinates of latent points: ``(codes - origin) @ basis.T``, shape (n, latent_dim)."""
        arr = as_batch(codes, "codes", features=len(self.origin), dtype=np.float64)
        return (arr - self.origin) @ self.basis.T

    def latent(self, coords: Any) -> np.ndarray:
        """Latent points of coordinates: ``origin + coords @ basis``, shape (n, latent_dim)."""
        arr = as_batch(coords, "coords", features=len(self.origin), dtype=np.float64)
        return self.origin + arr @ self.basis


def padded_range(values: np.ndarray | None) -> tuple[float, float]:
    """The range shown for some coordinates: their [min, max] widened by 5% on each side.

    Parameters
    ----------
    values : ndarray of shape (n,), or None
        Coordinates of points along one axis of the page.

    Returns
    -------
    (low, high) : tuple of float
        ``[min - pad, max + pad]`` with ``pad = 0.05 * (max - min)``; a pad of 0.5 when all
        values are equal; ``(-3.0, 3.0)`` for None or no values (the prior's 99.7% range).
    """
    if values is None or len(values) == 0:
        return -3.0, 3.0
    lo, hi = float(np.min(values)), float(np.max(values))
    pad = 0.05 * (hi - lo) if hi > lo else 0.5
    return lo - pad, hi + pad


def latent_plane(
    latent_dim: int, codes: Any = None, *, dims: Any = None, extent: float | None = None
) -> LatentPlane:
    """The plane (and slider directions) that the explorer shows.

    Parameters
    ----------
    latent_dim : int
    codes : ndarray of shape (n, latent_dim), optional
        Codes of the data: they set the ranges, and the PCA plane.
    dims : None, "pca" or (i, j)
        ``(i, j)``: latent dimensions ``i`` and ``j`` (0-based) on the horizontal and vertical
        axes, a slider for each other dimension (starting at the codes' mean). ``"pca"``: the
        plane through the codes' mean spanned by their first two principal components, a
        slider for each further component (starting at 0, the mean). None: ``(0, 1)`` for a
        latent space of at most two dimensions or without codes, else ``"pca"``.
    extent : float, optional
        Every range covers at least [-extent, extent] (the explorer passes 3 for a model with
        the prior N(0, I), whose draws fall there 99.7% of the time along any direction).

    Returns
    -------
    LatentPlane
    """
    d = check_positive_int(latent_dim, "latent_dim")
    arr = None if codes is None else as_batch(codes, "codes", features=d, dtype=np.float64)
    if dims is None:
        dims = "pca" if d > 2 and arr is not None and len(arr) >= 2 else (0, min(1, d - 1))
    if isinstance(dims, str):
        if dims != "pca":
            raise ValueError(f"dims must be 'pca' or a pair of dimensions (i, j), got {dims!r}")
        if arr is None or d < 2:
            raise ValueError(
                "dims='pca' needs codes and at least two latent dimensions;"
                " pass data, or dims=(i, j)"
            )
        origin = arr.mean(axis=0)
        _, s, vt = np.linalg.svd(arr - origin, full_matrices=True)  # vt: (d, d), orthonormal rows
        biggest = np.argmax(np.abs(vt), axis=1)  # sign: largest loading positive, as pca_project
        vt = vt * np.where(vt[np.arange(d), biggest] < 0, -1.0, 1.0)[:, None]
        variance = np.zeros(d)
        variance[: len(s)] = s**2
        total = float(variance.sum())
        ratio = variance / total if total > 0 else variance
        labels = [f"PC {k + 1} ({100 * ratio[k]:.0f}% of variance)" for k in range(d)]
        basis, mode = vt, "pca"
        defaults = np.zeros(d)
    else:
        pair = _check_dims(dims, d)
        order = [*dict.fromkeys(pair), *(k for k in range(d) if k not in pair)]
        basis = np.eye(d)[order]
        origin = np.zeros(d)
        labels = [f"z{k + 1}" for k in order]
        mode = "dims"
        defaults = np.zeros(d)
        if arr is not None:  # sliders start at the codes' mean, the plane at the origin
            defaults[2:] = arr.mean(axis=0)[order][2:]
    projected = None if arr is None else (arr - origin) @ basis.T  # (n, d)
    ranges = np.array(
        [padded_range(None if projected is None else projected[:, k]) for k in range(d)]
    )
    if extent is not None and codes is not None:
        ranges[:, 0] = np.minimum(ranges[:, 0], -abs(extent))
        ranges[:, 1] = np.maximum(ranges[:, 1], abs(extent))
    if d == 1:
        ranges = np.vstack([ranges, [-1.0, 1.0]])
    ranges[:d, 0] = np.minimum(ranges[:d, 0], defaults)
    ranges[:d, 1] = np.maximum(ranges[:d, 1], defaults)
    return LatentPlane(origin, basis, labels, ranges, defaults, mode)


def _check_dims(dims: Any, d: int) -> tuple[int, ...]:
    try:
        pair = tuple(int(k) for k in dims)
    except (TypeError, ValueError):
        raise TypeError(f"dims must be 'pca' or a pair of ints (i, j), got {dims!r}") from None
    want = min(2, d)
    if len(pair) != 2 or any(not 0 <= k < d for k in pair) or len(set(pair)) != want:
        raise ValueError(
            f"dims must be two different latent dimensions in 0 .. {d - 1}, got {dims!r}"
            + ("; a 1-D latent space takes dims=(0, 0)" if d == 1 else "")
        )
    return pair
