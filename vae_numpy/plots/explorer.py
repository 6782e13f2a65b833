"""A live latent-space explorer: one self-contained HTML page whose decoder runs in the browser.

The lecture's part 5 ends on the picture of the latent plane: move through it and watch the
decoded digit morph. :func:`write_explorer` writes that picture as a page that needs no Python
kernel, no server and no network. The page holds

* the decoder's weights, embedded as base64 little-endian floats in the model's dtype;
* the decoder itself, written out in plain JavaScript: ``Dense → activation → ... → Dense``
  (matrix-vector products), then the mean of p(x|z): the sigmoid of a Bernoulli decoder's
  logits, or a Gaussian decoder's (or a squared-error autoencoder's) output as it is;
* the test set's codes (the means of q(z|x), or an autoencoder's z = f(x)) scattered on the
  latent plane and coloured by label, with a legend.

Moving the pointer over the plane decodes the point under it; a click pins it. A model with two
latent dimensions shows its own plane; with more, the page shows the plane of the first two
principal components of the test codes (or two chosen dimensions, ``dims=(i, j)``) and a slider
for each remaining direction. A conditional decoder (``decode(z, y)``: the conditional VAE, M2)
gets a label selector.

The model is read only through the model protocol (:mod:`vae_numpy.protocol`): ``decode``,
``parameters()`` (the decoder's layers are ``"decoder.<i>.W"`` and ``"decoder.<i>.b"``) and
``get_config()`` (hidden activation, likelihood). Before writing, :func:`decoder_spec` checks the
rebuilt decoder against ``model.decode`` on probe points, so a page never shows a decoder that
differs from the model's.

The page exposes a small API on ``window.explorer`` (used by the browser tests, handy in the
browser's console): ``decodeAt(z, label)`` returns the decoded values, ``moveTo(u, v)`` moves the
pointer to plane coordinates, ``latentAt(u, v)`` returns the latent point there, ``pin()``,
``pins()``, ``setSlider(k, value)``, ``setLabel(c)``, ``current()`` and ``info``.

References
----------
Kingma, D. P. & Welling, M. (2013). Auto-Encoding Variational Bayes. arXiv:1312.6114.
(Fig. 4: the learned data manifold.)
"""

from __future__ import annotations

import base64
import html
import inspect
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import as_batch, check_positive_int
from ..layers import ACTIVATIONS
from ..serialization import atomic_write_bytes

__all__ = [
    "DecoderSpec",
    "LatentPlane",
    "decoder_spec",
    "latent_plane",
    "explorer_html",
    "write_explorer",
    "EXPLORER_MAX_POINTS",
]

#: Codes scattered on the plane at most (the first ones of the data); more only slow the page.
EXPLORER_MAX_POINTS = 5000

#: Largest difference allowed between the rebuilt decoder and ``model.decode`` on probe points,
#: relative to the size of the output (float32 rounding stays far below it).
DECODER_MATCH_TOLERANCE = 1e-4

#: Matplotlib's "tab10" colours, the label colours of :func:`~vae_numpy.plots.plot_latent_scatter`.
TAB10 = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


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


def _padded_range(values: np.ndarray | None) -> tuple[float, float]:
    """[min, max] of ``values`` widened by 5% on each side ([-3, 3] without values)."""
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
        [_padded_range(None if projected is None else projected[:, k]) for k in range(d)]
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


# --- the page ----------------------------------------------------------------------------------


def _b64(arr: np.ndarray, dtype: np.dtype) -> str:
    """Little-endian bytes of ``arr`` in ``dtype`` (float32 or float64), base64-encoded."""
    le = np.ascontiguousarray(arr, dtype=dtype.newbyteorder("<"))
    return base64.b64encode(le.tobytes()).decode("ascii")


def _codes_of(model: Any, x: np.ndarray, labels: np.ndarray | None, conditional: bool) -> Any:
    if conditional:
        if labels is None:
            raise ValueError(
                f"{type(model).__name__} encodes x together with its label: pass labels"
                " (one integer per row of data)"
            )
        return model.encode(x, labels)[0]  # the mean of q(z|x, y)
    return model.code(x)  # the mean of q(z|x), or an autoencoder's z = f(x)


def _image_shape(model: Any, image_shape: Any) -> tuple[int, int]:
    n = int(model.input_dim)
    if image_shape is None:
        image_shape = getattr(model, "metadata", {}).get("image_shape")
    if image_shape is None:
        side = int(round(n**0.5))
        if side * side != n:
            raise ValueError(
                f"cannot tell the image shape of {n} features: pass image_shape=(height, width)"
            )
        return side, side
    try:
        h, w = (int(k) for k in image_shape)
    except (TypeError, ValueError):
        raise TypeError(f"image_shape must be (height, width), got {image_shape!r}") from None
    if h < 1 or w < 1 or h * w != n:
        raise ValueError(
            f"image_shape {image_shape!r} does not hold the model's {n} features"
            " (height * width must equal input_dim)"
        )
    return h, w


def _json_for_script(obj: Any) -> str:
    """JSON that is safe inside a <script> element (no '<', so no '</script>')."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")


def explorer_html(
    model: Any,
    *,
    data: Any = None,
    labels: Any = None,
    image_shape: Any = None,
    dims: Any = None,
    title: str | None = None,
    label_names: Any = None,
    max_points: int = EXPLORER_MAX_POINTS,
    value_range: tuple[float, float] = (0.0, 1.0),
) -> str:
    """The explorer page for ``model``, as a string of HTML; see :func:`write_explorer`."""
    spec = decoder_spec(model)
    conditional = spec.n_classes > 0
    d = spec.latent_dim
    shape = _image_shape(model, image_shape)
    max_points = check_positive_int(max_points, "max_points")
    lo, hi = (float(v) for v in value_range)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"value_range must be (low, high) with low < high, got {value_range!r}")
    x = y = codes = None
    if data is not None:
        x = as_batch(data, "data", features=int(model.input_dim))[:max_points]
        if labels is not None:
            y = np.asarray(labels)
            if y.ndim != 1 or len(y) < len(x) or y.dtype.kind not in "iu":
                raise ValueError(
                    f"labels must be integers of shape ({len(x)},), one per row of data, got"
                    f" {y.dtype} of shape {y.shape}; convert with labels.astype(int)"
                )
            y = y[: len(x)].astype(np.int64)
        codes = np.asarray(_codes_of(model, x.astype(np.dtype(model.dtype)), y, conditional))
    elif labels is not None:
        raise ValueError("labels were given without data: pass data=X with labels=y")
    generative = bool(getattr(model, "generative", False))
    plane = latent_plane(d, codes, dims=dims, extent=3.0 if generative else None)
    classes = [int(c) for c in np.unique(y)] if y is not None else list(range(spec.n_classes))
    if conditional:
        classes = sorted(set(classes) | set(range(spec.n_classes)))
    names = _label_names(label_names, classes)
    points = None
    ranges = plane.ranges.copy()
    if codes is not None:
        xy = plane.coordinates(codes)[:, :2]
        if d == 1:  # no second direction: spread the points by label, as plot_latent_scatter
            xy = np.column_stack([xy[:, 0], y if y is not None else np.zeros(len(xy))])
            if y is not None:
                ranges[1] = _padded_range(y.astype(np.float64))
        points = {
            "u": _b64(xy[:, 0], np.dtype(np.float32)),
            "v": _b64(xy[:, 1], np.dtype(np.float32)),
            "label": None if y is None else [classes.index(int(c)) for c in y],
        }
    dtype = np.dtype(np.float64 if np.dtype(model.dtype) == np.float64 else np.float32)
    kind = str(getattr(model, "kind", type(model).__name__))
    what = (
        "means of q(z|x, y)"
        if conditional
        else ("means of q(z|x)" if generative else "codes z = f(x)")
    )
    sizes = " → ".join(
        str(s) for s in [spec.weights[0].shape[0], *(w.shape[1] for w in spec.weights)]
    )
    subtitle = (
        f"{d}-D latent space; decoder {sizes} ({spec.activation},"
        f" {'sigmoid' if spec.output == 'sigmoid' else 'identity'} output)"
        + (f"; {len(codes)} test {what}" if codes is not None else "")
    )
    payload = {
        "title": title or f"{kind}: latent-space explorer",
        "subtitle": subtitle,
        "latentDim": d,
        "inputDim": int(model.input_dim),
        "imageShape": list(shape),
        "valueRange": [lo, hi],
        "decoder": {
            "dtype": dtype.name,
            "activation": spec.activation,
            "parameter": spec.activation_parameter,
            "output": spec.output,
            "layers": [
                {
                    "in": int(w.shape[0]),
                    "out": int(w.shape[1]),
                    "W": _b64(w, dtype),
                    "b": _b64(b, dtype),
                }
                for w, b in zip(spec.weights, spec.biases, strict=True)
            ],
        },
        "nClasses": spec.n_classes,
        "classes": classes,
        "classNames": names,
        "colours": _colours(len(classes)),
        "plane": {
            "mode": plane.mode,
            "origin": plane.origin.tolist(),
            "basis": plane.basis.tolist(),
            "labels": plane.labels,
            "ranges": ranges.tolist(),
            "defaults": plane.defaults.tolist(),
        },
        "points": points,
        "pointsLabel": what,
    }
    page_title = html.escape(str(payload["title"]))
    return (
        _TEMPLATE.replace("{title}", page_title)
        .replace("{style}", _STYLE)
        .replace("{data}", _json_for_script(payload))
        .replace("{script}", _SCRIPT)
    )


def write_explorer(
    model: Any,
    path: str | os.PathLike[str],
    *,
    data: Any = None,
    labels: Any = None,
    image_shape: Any = None,
    dims: Any = None,
    title: str | None = None,
    label_names: Any = None,
    max_points: int = EXPLORER_MAX_POINTS,
    value_range: tuple[float, float] = (0.0, 1.0),
) -> Path:
    """Write the latent-space explorer of ``model`` to ``path``: one self-contained HTML page.

    Parameters
    ----------
    model : a model of vae_numpy with a decoder
        ``VAE``, ``Autoencoder``, ``GaussianMixtureVAE``, ``ConditionalVAE`` or
        ``SemiSupervisedVAE`` (the last two get a label selector).
    path : str or path-like
        The HTML file to write (atomically); open it in any browser, no server needed.
    data : ndarray of shape (n, input_dim), optional
        Examples (e.g. the test set) whose codes are scattered on the plane; at most
        ``max_points`` of them (the first ones).
    labels : ndarray of shape (n,) of int, optional
        Their labels: the colours and the legend; required with ``data`` for a conditional
        model, whose encoder takes the label.
    image_shape : (height, width), optional
        Default: ``model.metadata["image_shape"]``, else a square.
    dims : None, "pca" or (i, j)
        The plane shown for more than two latent dimensions; see :func:`latent_plane`.
    title : str, optional
        Heading of the page (default: the model's kind).
    label_names : sequence of str or dict of int to str, optional
        Names of the labels in the legend and the selector (default: the numbers).
    max_points : int
        Codes scattered at most (default :data:`EXPLORER_MAX_POINTS`).
    value_range : (low, high)
        Decoded values drawn black at ``low`` and white at ``high`` (clipped); default (0, 1).

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from vae_numpy.vae import VAE
    >>> from vae_numpy.plots.explorer import write_explorer
    >>> model = VAE(64, (16,), 2, rng=0)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     page = write_explorer(model, pathlib.Path(folder) / "explorer.html")
    ...     print("window.explorer" in page.read_text())
    True
    """
    text = explorer_html(
        model,
        data=data,
        labels=labels,
        image_shape=image_shape,
        dims=dims,
        title=title,
        label_names=label_names,
        max_points=max_points,
        value_range=value_range,
    )
    out = Path(path)
    atomic_write_bytes(out, text.encode("utf-8"))
    return out


def _label_names(label_names: Any, classes: list[int]) -> list[str]:
    if label_names is None:
        return [str(c) for c in classes]
    if isinstance(label_names, dict):
        return [str(label_names.get(c, c)) for c in classes]
    names = list(label_names)
    if any(not 0 <= c < len(names) for c in classes):
        raise ValueError(
            f"label_names has {len(names)} entries but the labels reach {max(classes)};"
            " give one name per label 0 .. n - 1, or a dict"
        )
    return [str(names[c]) for c in classes]


def _colours(n: int) -> list[str]:
    """tab10 for up to ten classes, else evenly spaced hues."""
    if n <= len(TAB10):
        return list(TAB10[:n])
    return [f"hsl({round(360 * i / n)}, 65%, 45%)" for i in range(n)]


# --- the page's HTML, CSS and JavaScript ------------------------------------------------------------

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy"
      content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<link rel="icon" href="data:,">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<header>
  <h1 id="title"></h1>
  <p id="subtitle"></p>
</header>
<main>
  <section class="plane-box">
    <canvas id="plane" tabindex="0" aria-label="latent plane: move the pointer to decode, click to pin"></canvas>
    <p class="hint">Move the pointer over the plane to decode the point under it; click (or press
      Enter) to pin it; arrow keys move the point.</p>
  </section>
  <section class="side">
    <div class="decoded-box">
      <canvas id="decoded"></canvas>
      <div id="readout"></div>
    </div>
    <div id="label-box" hidden>
      <label for="label-select">decode as label</label>
      <select id="label-select"></select>
    </div>
    <div id="sliders"></div>
    <div id="legend-box" hidden>
      <h2 id="legend-title"></h2>
      <ul id="legend"></ul>
    </div>
    <div id="pins-box" hidden>
      <h2>pinned</h2>
      <div id="pins"></div>
    </div>
  </section>
</main>
<script type="application/json" id="explorer-data">{data}</script>
<script>{script}</script>
</body>
</html>
"""

_STYLE = """
:root { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; }
body { margin: 0; padding: 12px 18px; background: #fff; }
header h1 { font-size: 1.25rem; margin: 0 0 2px; }
header p { margin: 0 0 10px; color: #555; font-size: 0.85rem; }
main { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
.plane-box { flex: 0 0 auto; width: min(482px, max(282px, calc(100vw - 300px))); }
#plane { width: 100%; box-sizing: border-box; aspect-ratio: 1; height: auto; border: 1px solid #ccc;
  cursor: crosshair; display: block; touch-action: none; }
#plane:focus { outline: 2px solid #1f77b4; }
.hint { font-size: 0.8rem; color: #666; margin: 6px 0 0; }
.side { flex: 1 1 220px; min-width: 220px; max-width: 420px; }
.decoded-box { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
#decoded { width: 160px; image-rendering: pixelated; border: 1px solid #ccc; background: #000; }
#readout { font: 0.8rem/1.4 ui-monospace, monospace; white-space: pre; }
#label-box, #sliders, #legend-box, #pins-box { margin-top: 12px; font-size: 0.85rem; }
#sliders label { display: grid; grid-template-columns: 1fr; margin-bottom: 4px; }
#sliders input { width: 100%; }
h2 { font-size: 0.9rem; margin: 0 0 4px; }
#legend { list-style: none; padding: 0; margin: 0; display: flex; flex-wrap: wrap; gap: 4px 12px; }
#legend li { display: flex; align-items: center; gap: 4px; }
#legend .swatch { width: 10px; height: 10px; border-radius: 50%; display: inline-block; }
#pins { display: flex; flex-wrap: wrap; gap: 6px; }
#pins canvas { width: 48px; image-rendering: pixelated; border: 1px solid #ccc; cursor: pointer; }
"""

_SCRIPT = r"""
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("explorer-data").textContent);
  const d = data.latentDim;
  const [imgH, imgW] = data.imageShape;
  const [valueLo, valueHi] = data.valueRange;
  const plane = data.plane;

  // --- base64 little-endian floats -> Float64Array ------------------------------------------
  function readFloats(b64, dtype) {
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const view = new DataView(bytes.buffer);
    const size = dtype === "float64" ? 8 : 4;
    const out = new Float64Array(bytes.length / size);
    for (let i = 0; i < out.length; i++) {
      out[i] = size === 8 ? view.getFloat64(8 * i, true) : view.getFloat32(4 * i, true);
    }
    return out;
  }

  // --- the decoder: Dense -> activation -> ... -> Dense -> mean of p(x|z) ----------------------
  const sigmoid = (x) => 1 / (1 + Math.exp(-x));
  const ACTIVATIONS = {
    relu: (x) => (x > 0 ? x : 0),
    leaky_relu: (x, slope) => (x > 0 ? x : slope * x),
    tanh: (x) => Math.tanh(x),
    sigmoid: sigmoid,
    softplus: (x) => Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x))), // ln(1 + e^x), no overflow
    elu: (x, alpha) => (x > 0 ? x : alpha * Math.expm1(x)),
  };
  const dec = data.decoder;
  const hidden = ACTIVATIONS[dec.activation];
  const output = dec.output === "sigmoid" ? sigmoid : (x) => x;
  const layers = dec.layers.map((l) => ({
    nIn: l.in, nOut: l.out, W: readFloats(l.W, dec.dtype), b: readFloats(l.b, dec.dtype),
  }));

  function runDecoder(input) {
    let h = input;
    layers.forEach((layer, i) => {
      const y = Float64Array.from(layer.b); // y = h @ W + b, W of shape (in, out), row-major
      for (let r = 0; r < layer.nIn; r++) {
        const hr = h[r];
        const row = r * layer.nOut;
        for (let c = 0; c < layer.nOut; c++) y[c] += hr * layer.W[row + c];
      }
      const last = i === layers.length - 1;
      for (let c = 0; c < layer.nOut; c++) {
        y[c] = last ? output(y[c]) : hidden(y[c], dec.parameter);
      }
      h = y;
    });
    return h;
  }

  function decodeAt(z, label) {
    if (z.length !== d) throw new Error("z must have " + d + " entries, got " + z.length);
    const input = new Float64Array(d + data.nClasses); // [z | one_hot(label)]
    for (let j = 0; j < d; j++) input[j] = z[j];
    if (data.nClasses > 0) {
      const c = label === undefined ? state.label : label;
      if (!(Number.isInteger(c) && c >= 0 && c < data.nClasses)) {
        throw new Error("label must be an integer in 0 .. " + (data.nClasses - 1));
      }
      input[d + c] = 1;
    }
    return Array.from(runDecoder(input));
  }

  // --- coordinates: z = origin + coords @ basis ------------------------------------------------
  const state = {
    coords: Float64Array.from(plane.defaults),
    v: d >= 2 ? plane.defaults[1] : 0, // the vertical position (for a 1-D space, display only)
    label: 0,
    pins: [],
  };

  function latentOf(coords) {
    const z = Float64Array.from(plane.origin);
    for (let k = 0; k < d; k++) {
      const ck = coords[k];
      if (ck === 0) continue;
      for (let j = 0; j < d; j++) z[j] += ck * plane.basis[k][j];
    }
    return Array.from(z);
  }

  function latentAt(u, v) {
    const coords = Float64Array.from(state.coords);
    coords[0] = u;
    if (d >= 2) coords[1] = v;
    return latentOf(coords);
  }

  // --- drawing --------------------------------------------------------------------------------
  const greyOf = (x) => Math.round(255 * Math.min(1, Math.max(0, (x - valueLo) / (valueHi - valueLo))));

  function drawImage(canvas, values) {
    canvas.width = imgW;
    canvas.height = imgH;
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(imgW, imgH);
    for (let i = 0; i < imgW * imgH; i++) {
      const g = greyOf(values[i]);
      img.data[4 * i] = g;
      img.data[4 * i + 1] = g;
      img.data[4 * i + 2] = g;
      img.data[4 * i + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
  }

  const planeCanvas = document.getElementById("plane");
  const decodedCanvas = document.getElementById("decoded");
  const SIZE = 480;
  const M = { left: 52, right: 12, top: 12, bottom: 40 };
  const [uLo, uHi] = plane.ranges[0];
  const [vLo, vHi] = plane.ranges[1];
  const toX = (u) => M.left + ((u - uLo) / (uHi - uLo)) * (SIZE - M.left - M.right);
  const toY = (v) => SIZE - M.bottom - ((v - vLo) / (vHi - vLo)) * (SIZE - M.top - M.bottom);
  const fromX = (x) => uLo + ((x - M.left) / (SIZE - M.left - M.right)) * (uHi - uLo);
  const fromY = (y) => vLo + ((SIZE - M.bottom - y) / (SIZE - M.top - M.bottom)) * (vHi - vLo);

  const points = data.points && {
    u: readFloats(data.points.u, "float32"),
    v: readFloats(data.points.v, "float32"),
    label: data.points.label,
  };

  function niceTicks(lo, hi) {
    const raw = (hi - lo) / 6;
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw);
    const ticks = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-9 * step; t += step) {
      ticks.push(Math.abs(t) < 1e-9 * step ? 0 : t);
    }
    return ticks;
  }

  let background = null; // axes and points, redrawn only when the label changes

  function drawBackground() {
    const ratio = window.devicePixelRatio || 1;
    background = document.createElement("canvas");
    background.width = SIZE * ratio;
    background.height = SIZE * ratio;
    const ctx = background.getContext("2d");
    ctx.scale(ratio, ratio);
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, SIZE, SIZE);
    ctx.font = "11px system-ui, sans-serif";
    ctx.strokeStyle = "#e4e4e4";
    ctx.fillStyle = "#444";
    ctx.lineWidth = 1;
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (const t of niceTicks(uLo, uHi)) {
      const x = Math.round(toX(t)) + 0.5;
      ctx.beginPath(); ctx.moveTo(x, M.top); ctx.lineTo(x, SIZE - M.bottom); ctx.stroke();
      ctx.fillText(String(+t.toPrecision(6)), x, SIZE - M.bottom + 4);
    }
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    if (d >= 2 || points) {
      for (const t of niceTicks(vLo, vHi)) {
        const y = Math.round(toY(t)) + 0.5;
        ctx.beginPath(); ctx.moveTo(M.left, y); ctx.lineTo(SIZE - M.right, y); ctx.stroke();
        ctx.fillText(String(+t.toPrecision(6)), M.left - 4, y);
      }
    }
    ctx.strokeStyle = "#999";
    ctx.strokeRect(M.left + 0.5, M.top + 0.5, SIZE - M.left - M.right, SIZE - M.top - M.bottom);
    ctx.fillStyle = "#222";
    ctx.textAlign = "center";
    ctx.textBaseline = "bottom";
    ctx.fillText(plane.labels[0], M.left + (SIZE - M.left - M.right) / 2, SIZE - 4);
    ctx.save();
    ctx.translate(12, M.top + (SIZE - M.top - M.bottom) / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textBaseline = "middle";
    ctx.fillText(d >= 2 ? plane.labels[1] : points && points.label ? "label" : "", 0, 0);
    ctx.restore();
    if (points) {
      const n = points.u.length;
      const r = n > 2000 ? 1.6 : 2.6;
      ctx.save();
      ctx.beginPath();
      ctx.rect(M.left, M.top, SIZE - M.left - M.right, SIZE - M.top - M.bottom);
      ctx.clip();
      for (let i = 0; i < n; i++) {
        const c = points.label ? points.label[i] : 0;
        const chosen = data.nClasses === 0 || c === data.classes.indexOf(state.label);
        ctx.globalAlpha = chosen ? 0.8 : 0.2;
        ctx.fillStyle = data.colours.length ? data.colours[c] : "#1f77b4";
        ctx.beginPath();
        ctx.arc(toX(points.u[i]), toY(points.v[i]), r, 0, 2 * Math.PI);
        ctx.fill();
      }
      ctx.restore();
    }
  }

  function drawPlane() {
    const ratio = window.devicePixelRatio || 1;
    planeCanvas.width = SIZE * ratio;
    planeCanvas.height = SIZE * ratio;
    const ctx = planeCanvas.getContext("2d");
    ctx.drawImage(background, 0, 0);
    ctx.scale(ratio, ratio);
    ctx.font = "bold 11px system-ui, sans-serif";
    ctx.textAlign = "left";
    ctx.textBaseline = "bottom";
    state.pins.forEach((p, i) => {
      ctx.strokeStyle = "#000";
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.arc(toX(p.u), toY(p.v), 5, 0, 2 * Math.PI);
      ctx.stroke();
      ctx.fillStyle = "#000";
      ctx.fillText(String(i + 1), toX(p.u) + 6, toY(p.v) - 3);
    });
    const x = toX(state.coords[0]);
    const y = toY(state.v);
    ctx.strokeStyle = "rgba(0, 0, 0, 0.45)";
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(x, M.top); ctx.lineTo(x, SIZE - M.bottom);
    ctx.moveTo(M.left, y); ctx.lineTo(SIZE - M.right, y);
    ctx.stroke();
    ctx.strokeStyle = "#d62728";
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.arc(x, y, 6, 0, 2 * Math.PI);
    ctx.stroke();
  }

  const fmt = (x) => (x >= 0 ? " " : "") + x.toFixed(3);

  function update() {
    const z = latentOf(state.coords);
    const values = decodeAt(z);
    drawImage(decodedCanvas, values);
    drawPlane();
    const lines = z.map((zj, j) => "z" + (j + 1) + " = " + fmt(zj));
    if (data.nClasses > 0) lines.push("label " + data.classNames[data.classes.indexOf(state.label)]);
    document.getElementById("readout").textContent = lines.join("\n");
    return values;
  }

  function moveTo(u, v) {
    state.coords[0] = u;
    state.v = v;
    if (d >= 2) state.coords[1] = state.v;
    const values = update();
    return current(values);
  }

  function current(values) {
    const z = latentOf(state.coords);
    return {
      u: state.coords[0], v: state.v, z: z,
      label: data.nClasses > 0 ? state.label : null,
      values: values || decodeAt(z),
    };
  }

  // --- pins -------------------------------------------------------------------------------------
  const MAX_PINS = 24;
  function pin() {
    const p = current();
    p.coords = Array.from(state.coords);
    state.pins.push(p);
    if (state.pins.length > MAX_PINS) state.pins.shift();
    drawPins();
    drawPlane();
    return state.pins.length - 1;
  }

  function drawPins() {
    const box = document.getElementById("pins");
    box.textContent = "";
    document.getElementById("pins-box").hidden = state.pins.length === 0;
    state.pins.forEach((p, i) => {
      const c = document.createElement("canvas");
      drawImage(c, p.values);
      c.title = (i + 1) + ": z = (" + p.z.map((x) => x.toFixed(2)).join(", ") + ")" +
        (p.label === null ? "" : ", label " + data.classNames[data.classes.indexOf(p.label)]);
      c.addEventListener("click", () => {
        state.coords = Float64Array.from(p.coords);
        state.v = p.v;
        if (p.label !== null) setLabel(p.label);
        syncSliders();
        update();
      });
      box.appendChild(c);
    });
  }

  // --- controls: label selector, sliders, legend ------------------------------------------------
  function setLabel(c) {
    if (data.nClasses === 0) throw new Error("this model's decoder takes no label");
    if (!(Number.isInteger(c) && c >= 0 && c < data.nClasses)) {
      throw new Error("label must be an integer in 0 .. " + (data.nClasses - 1));
    }
    state.label = c;
    document.getElementById("label-select").value = String(c);
    drawBackground();
    update();
  }

  const sliderInputs = [];
  function setSlider(k, value) {
    if (!(k >= 0 && k < d - 2)) throw new Error("there are " + Math.max(0, d - 2) + " sliders");
    state.coords[k + 2] = value;
    syncSliders();
    update();
    return state.coords[k + 2];
  }

  function syncSliders() {
    sliderInputs.forEach(({ input, out }, k) => {
      input.value = String(state.coords[k + 2]);
      out.textContent = state.coords[k + 2].toFixed(2);
    });
  }

  function buildControls() {
    document.getElementById("title").textContent = data.title;
    document.getElementById("subtitle").textContent = data.subtitle;
    decodedCanvas.width = imgW;
    decodedCanvas.height = imgH;
    if (data.nClasses > 0) {
      const select = document.getElementById("label-select");
      for (let c = 0; c < data.nClasses; c++) {
        const opt = document.createElement("option");
        opt.value = String(c);
        opt.textContent = data.classNames[data.classes.indexOf(c)];
        select.appendChild(opt);
      }
      select.addEventListener("change", () => setLabel(Number(select.value)));
      document.getElementById("label-box").hidden = false;
    }
    const sliders = document.getElementById("sliders");
    for (let k = 2; k < d; k++) {
      const [lo, hi] = plane.ranges[k];
      const label = document.createElement("label");
      const name = document.createElement("span");
      const out = document.createElement("output");
      name.textContent = plane.labels[k] + ": ";
      name.appendChild(out);
      const input = document.createElement("input");
      input.type = "range";
      input.min = String(lo);
      input.max = String(hi);
      input.step = String((hi - lo) / 200);
      input.addEventListener("input", () => {
        state.coords[k] = Number(input.value);
        out.textContent = state.coords[k].toFixed(2);
        update();
      });
      label.append(name, input);
      sliders.appendChild(label);
      sliderInputs.push({ input, out });
    }
    syncSliders();
    if (points) {
      const legend = document.getElementById("legend");
      document.getElementById("legend-title").textContent = data.pointsLabel;
      const entries = points.label ? data.classNames : ["test set"];
      entries.forEach((name, i) => {
        const li = document.createElement("li");
        const sw = document.createElement("span");
        sw.className = "swatch";
        sw.style.background = data.colours.length ? data.colours[i] : "#1f77b4";
        li.append(sw, document.createTextNode(name));
        legend.appendChild(li);
      });
      document.getElementById("legend-box").hidden = false;
    }
  }

  // --- pointer and keyboard -----------------------------------------------------------------------
  function planeAt(event) {
    const rect = planeCanvas.getBoundingClientRect(); // includes the border
    const x = ((event.clientX - rect.left - planeCanvas.clientLeft) / planeCanvas.clientWidth) * SIZE;
    const y = ((event.clientY - rect.top - planeCanvas.clientTop) / planeCanvas.clientHeight) * SIZE;
    return [fromX(x), fromY(y)];
  }
  planeCanvas.addEventListener("pointermove", (e) => moveTo(...planeAt(e)));
  planeCanvas.addEventListener("click", (e) => {
    moveTo(...planeAt(e));
    pin();
  });
  planeCanvas.addEventListener("keydown", (e) => {
    const du = (uHi - uLo) / 100;
    const dv = (vHi - vLo) / 100;
    const moves = { ArrowLeft: [-du, 0], ArrowRight: [du, 0], ArrowUp: [0, dv], ArrowDown: [0, -dv] };
    if (moves[e.key]) {
      moveTo(state.coords[0] + moves[e.key][0], state.v + moves[e.key][1]);
      e.preventDefault();
    } else if (e.key === "Enter" || e.key === " ") {
      pin();
      e.preventDefault();
    }
  });

  buildControls();
  drawBackground();
  update();

  window.explorer = {
    info: {
      latentDim: d, inputDim: data.inputDim, imageShape: [imgH, imgW], nClasses: data.nClasses,
      planeMode: plane.mode, ranges: plane.ranges, labels: plane.labels,
      nPoints: points ? points.u.length : 0,
    },
    decodeAt: decodeAt,
    latentAt: latentAt,
    moveTo: moveTo,
    current: () => current(),
    pin: pin,
    pins: () => state.pins.map((p) => ({ u: p.u, v: p.v, z: p.z, label: p.label })),
    setSlider: setSlider,
    setLabel: setLabel,
    greyOf: greyOf,
    ready: true,
  };
})();
"""
