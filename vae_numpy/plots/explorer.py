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
``get_config()`` (hidden activation, likelihood). Before writing,
:func:`~vae_numpy.plots.explorer_model.decoder_spec` checks the rebuilt decoder against
``model.decode`` on probe points, so a page never shows a decoder that differs from the model's;
:func:`~vae_numpy.plots.explorer_model.latent_plane` chooses the plane. Both live in
:mod:`vae_numpy.plots.explorer_model` and are importable from here.

The page is made of three package files beside this module, in ``explorer_page/``:
``page.html`` (the markup, with the placeholders ``{title}``, ``{style}``, ``{data}`` and
``{script}``), ``explorer.css`` and ``explorer.js`` (the decoder, the drawing, the controls).
:func:`explorer_html` fills the placeholders: the style sheet and the script are copied into the
page as they are, the model's data goes in as JSON, so the written page is one file.

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
import importlib.resources
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import as_batch, check_positive_int
from ..serialization import atomic_write_bytes
from .explorer_model import DECODER_MATCH_TOLERANCE as DECODER_MATCH_TOLERANCE  # re-exported
from .explorer_model import (
    DecoderSpec,
    LatentPlane,
    decoder_spec,
    latent_plane,
    padded_range,
)

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

_PAGE_PACKAGE = "vae_numpy.plots"  # the page's files are its package data, in explorer_page/
_PAGE_FOLDER = "explorer_page"
_PLACEHOLDER = re.compile(r"\{(title|style|data|script)\}")  # in page.html


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
                ranges[1] = padded_range(y.astype(np.float64))
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
    return _fill_page(
        title=html.escape(str(payload["title"])),
        style=_page_file("explorer.css"),
        data=_json_for_script(payload),
        script=_page_file("explorer.js"),
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
        The plane shown for more than two latent dimensions; see
        :func:`~vae_numpy.plots.explorer_model.latent_plane`.
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


# --- the page's HTML, CSS and JavaScript: package files, copied into the page -------------------


def _page_file(name: str) -> str:
    """The text of ``explorer_page/<name>``, a file of the package (page.html, .css or .js)."""
    resource = importlib.resources.files(_PAGE_PACKAGE) / _PAGE_FOLDER / name
    try:
        return resource.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"this installation of vae_numpy lacks {_PAGE_FOLDER}/{name}, a file of the explorer"
            " page that ships beside vae_numpy/plots/explorer.py; reinstall vae_numpy with"
            " `pip install vae_numpy`, or from a checkout with `pip install .`"
        ) from None


def _fill_page(**parts: str) -> str:
    """The page: ``page.html`` with ``{title}``, ``{style}``, ``{data}`` and ``{script}`` filled.

    One pass over the template: the parts put in are never searched for placeholders, so a
    title or a label name that reads "{script}" stays that text.
    """
    return _PLACEHOLDER.sub(lambda match: parts[match.group(1)], _page_file("page.html"))
