"""A classifier's picture: the confusion matrix of its predictions on labelled data.

Beyond the lecture: the semi-supervised M2 model (Kingma et al. 2014) learns a classifier
q(y|x) from a few labels. :func:`confusion_matrix` counts, for every true class, which classes
its rows were given; :func:`plot_confusion_matrix` draws that table with the counts written in
its cells, so that the digits M2 confuses (a 4 for a 9, a 3 for an 8) can be read off. The
accuracy over training is a training curve: :func:`vae_numpy.plots.plot_accuracy`.

References
----------
Kingma, D. P., Rezende, D. J., Mohamed, S. & Welling, M. (2014). Semi-Supervised Learning with
Deep Generative Models. NeurIPS.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure, SubFigure

from .._validation import check_choice, check_positive_int
from .figure import finish_figure, new_figure

__all__ = ["NORMALIZE_CHOICES", "confusion_matrix", "plot_confusion_matrix"]

#: What ``normalize=`` of :func:`plot_confusion_matrix` divides the counts by, for the colours.
NORMALIZE_CHOICES = {
    "true": "fraction of the true class (row)",
    "pred": "fraction of the predicted class (column)",
    "all": "fraction of all examples",
}


def _check_classes(y_true: Any, y_pred: Any, n_classes: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """Both label arrays as 1-D int arrays of one length, and the number of classes."""
    arrays = []
    for name, values in (("y_true", y_true), ("y_pred", y_pred)):
        arr = np.asarray(values)
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(
                f"{name} must be a non-empty 1-D array of labels, got shape {arr.shape}"
            )
        if arr.dtype.kind not in "iu":
            raise TypeError(
                f"{name} must hold integer class indices, got dtype {arr.dtype};"
                f" convert it with np.asarray({name}).astype(int) if its values are whole numbers"
            )
        if arr.min() < 0:
            raise ValueError(
                f"{name} holds the negative label {arr.min()}; classes are 0 .. C-1 (drop"
                f" unlabelled rows, y = -1, before counting)"
            )
        arrays.append(arr.astype(np.int64))
    t, p = arrays
    if len(t) != len(p):
        raise ValueError(
            f"y_true has {len(t)} labels and y_pred {len(p)}: one prediction per labelled row"
        )
    top = int(max(t.max(), p.max()))
    if n_classes is None:
        return t, p, top + 1
    k = check_positive_int(n_classes, "n_classes")
    if top >= k:
        raise ValueError(f"a label {top} is out of range for n_classes={k} (classes 0 .. {k - 1})")
    return t, p, k


def confusion_matrix(y_true: Any, y_pred: Any, n_classes: int | None = None) -> np.ndarray:
    """Counts of (true class, predicted class) pairs.

    Parameters
    ----------
    y_true, y_pred : array of int, shape (n,)
        The classes of ``n`` rows and the classes a model gave them (e.g. ``model.predict(x)``).
    n_classes : int, optional
        Number of classes C (default: one more than the largest label of either array).

    Returns
    -------
    ndarray of shape (C, C), int64
        Entry ``[i, j]`` is the number of rows of true class ``i`` predicted as ``j``: rows are
        true classes, columns predictions; the diagonal holds the correct ones and the
        entries sum to ``n``.
    """
    t, p, k = _check_classes(y_true, y_pred, n_classes)
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (t, p), 1)  # one count per row, at (its class, its prediction)
    return counts


def plot_confusion_matrix(
    y_true: Any,
    y_pred: Any,
    n_classes: int | None = None,
    *,
    ax: Axes | None = None,
    path: str | os.PathLike[str] | None = None,
    title: str | None = None,
    normalize: str | None = "true",
) -> Figure:
    """The confusion matrix as an image: rows true classes, columns predictions, counts in cells.

    Parameters
    ----------
    y_true, y_pred : array of int, shape (n,)
        True classes and predictions (e.g. ``y_test`` and ``model.predict(x_test)``).
    n_classes : int, optional
        Number of classes C (default: one more than the largest label).
    ax : matplotlib Axes, optional
        Draw into this axes (its figure is returned); default: a new figure.
    path : str or PathLike, optional
        Also save the figure there as a PNG.
    title : str, optional
        First line of the axes title; the accuracy is always on the line under it.
    normalize : {"true", "pred", "all"} or None
        What the colours show (see :data:`NORMALIZE_CHOICES`): each count divided by its row's
        total (default: the fraction of each true class given each label, comparable between
        classes of different sizes), by its column's total, by ``n``, or the counts themselves
        (None). The cells always show the counts.

    Returns
    -------
    Figure
        The matrix axes (one image of shape (C, C)) and its colour bar; the title reads
        ``accuracy 93.3% (277 of 297)``.
    """
    counts = confusion_matrix(y_true, y_pred, n_classes)  # (C, C)
    if normalize is not None:
        check_choice(normalize, "normalize", list(NORMALIZE_CHOICES))
    if ax is None:
        k = len(counts)
        fig: Figure | SubFigure = new_figure(2.4 + 0.32 * k, 1.9 + 0.3 * k)
        ax = fig.subplots()
    elif not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes, got {type(ax).__name__}")
    else:
        fig = ax.figure
    totals = {
        None: None,
        "true": counts.sum(axis=1, keepdims=True),  # (C, 1): rows of each true class
        "pred": counts.sum(axis=0, keepdims=True),  # (1, C): rows given each class
        "all": counts.sum(),
    }[normalize]
    if totals is None:
        colours = counts.astype(np.float64)
    else:  # a class without rows stays 0 rather than 0/0
        colours = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    top = float(colours.max()) or 1.0
    image = ax.imshow(colours, cmap="Blues", vmin=0.0, vmax=top, interpolation="nearest")
    k = len(counts)
    size = "small" if k <= 10 else "x-small" if k <= 20 else "xx-small"
    for i in range(k):
        for j in range(k):
            shade = "white" if colours[i, j] > 0.5 * top else "black"
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", color=shade, fontsize=size)
    ax.set_xticks(range(k), [str(c) for c in range(k)])
    ax.set_yticks(range(k), [str(c) for c in range(k)])
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    correct, n = int(np.trace(counts)), int(counts.sum())
    accuracy = f"accuracy {100 * correct / n:.1f}% ({correct} of {n})"
    ax.set_title(accuracy if title is None else f"{title}\n{accuracy}", fontsize="medium")
    bar = fig.colorbar(image, ax=ax, shrink=0.85)
    bar.set_label("examples" if normalize is None else NORMALIZE_CHOICES[normalize])
    root = fig.figure if isinstance(fig, SubFigure) else fig
    return finish_figure(root, None, path)
