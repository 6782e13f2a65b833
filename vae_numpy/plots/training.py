"""Training curves: one run's loss, reconstruction and KL, or one curve per run; accuracy.

The functions read the ``history_`` a fitted model records (:func:`vae_numpy.train.fit`), or the
fitted model itself; lecture part 3 (the two terms of the ELBO as training goes). A classifier
trained with ``validation_labels`` (M2) also records ``val_accuracy``, a fraction and not nats:
:func:`plot_accuracy` draws it on its own axes, and :func:`plot_history` leaves it out.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure, SubFigure
from matplotlib.lines import Line2D
from matplotlib.ticker import LogFormatter, MaxNLocator

from .._validation import as_array
from .figure import NATS, finish_figure, new_figure

__all__ = ["plot_history", "plot_histories", "plot_accuracy"]

_UNITS = {
    "loss": NATS,
    "reconstruction": NATS,
    "kl": NATS,
    "beta": "KL weight beta",
    "seconds": "seconds per epoch",
}
_TITLES = {
    "loss": "loss",
    "reconstruction": "reconstruction  -ln p(x|z)",
    "kl": "KL(q(z|x) || p(z))",
}


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
        when present (it is much smaller than the reconstruction, hence its own axes, whose
        y-axis starts at 0). Training
        curves are solid, validation curves dashed. When ``beta`` varies (KL warm-up) it is drawn
        dotted on a second y-axis of the KL panel.
    """
    h = _history_dict(history)
    keys = ["loss"]
    if "reconstruction" in h and not np.array_equal(h["reconstruction"], h["loss"]):
        keys.append("reconstruction")
    if "kl" in h:
        keys.append("kl")
    fig = new_figure(3.4 * len(keys), 2.9)
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
        ax.set_ylabel(NATS)
        if key == "kl":
            ax.set_ylim(bottom=0)  # a KL is >= 0: its axis starts at 0, like a bar chart's
        ax.grid(alpha=0.3)
        handles, _ = ax.get_legend_handles_labels()
        if key == "kl" and "beta" in h and np.ptp(h["beta"]) > 0:
            twin = ax.twinx()
            (beta_line,) = twin.plot(epoch, h["beta"], ":", color="0.4", label=r"$\beta$ (right)")
            twin.set_ylabel(r"KL weight $\beta$", color="0.4")
            handles.append(beta_line)
        ax.legend(handles=handles, fontsize="small")
    return finish_figure(fig, title, path)


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
    fig = new_figure(5.0, 3.4)
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
    return finish_figure(fig, title, path)


def plot_accuracy(
    history: Any,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """A classifier's accuracy on the validation set after each epoch (``val_accuracy``).

    Parameters
    ----------
    history : dict of lists, or a fitted model
        ``model.history_`` of a model that classifies (M2's q(y|x)), trained with
        ``fit(..., validation_data=X_val, validation_labels=y_val)``, which records the column
        ``val_accuracy``: the fraction of the validation rows ``model.predict`` gets right.
    ax : matplotlib Axes, optional
        Draw into this axes (its figure is returned); default: a new figure.
    title : str, optional
        First line of the axes title; the last epoch's accuracy is on the line under it.
    path : str or PathLike, optional
        Also save the figure there as a PNG.

    Returns
    -------
    Figure
        One axes: accuracy against epoch, its y-axis the fractions 0 to 1 (one point per
        epoch marked for runs of up to 25 epochs).
    """
    h = _history_dict(history)
    if "val_accuracy" not in h:
        raise ValueError(
            f"history has no 'val_accuracy' column (its columns are {sorted(h)}); train a model"
            " that has predict with fit(..., validation_data=X_val, validation_labels=y_val)"
        )
    if ax is None:
        fig: Figure | SubFigure = new_figure(4.6, 3.4)
        ax = fig.subplots()
    elif not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes, got {type(ax).__name__}")
    else:
        fig = ax.figure
    epoch, accuracy = h["epoch"], h["val_accuracy"]
    marker = "o" if len(epoch) <= 25 else None
    ax.plot(epoch, accuracy, "--", color="C1", marker=marker, ms=3, label="validation")
    ax.set_ylim(0.0, 1.02)  # fractions of the rows: the whole scale, so runs compare at a glance
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs
    ax.set_ylabel("accuracy (fraction correct)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="lower right")
    last = f"validation accuracy {100 * accuracy[-1]:.1f}% after epoch {epoch[-1]:.0f}"
    ax.set_title(last if title is None else f"{title}\n{last}", fontsize="medium")
    root = fig.figure if isinstance(fig, SubFigure) else fig
    return finish_figure(root, None, path)
