"""What every figure of :mod:`vae_numpy.plots` shares: the figure class, saving, finishing.

A figure is a :class:`matplotlib.figure.Figure` built without pyplot, laid out with the
"constrained" engine, that renders itself as a PNG in Jupyter (``_repr_png_``).
:func:`save_figure` writes it as a PNG, atomically (temporary file in the same folder, fsync,
``os.replace``). The plot modules build their figures with :func:`new_figure`, end them with
:func:`finish_figure` (the title, and saving when a function was given ``path=``) and share the
axis labels :data:`NATS`, :data:`Z1` and :data:`Z2`.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from matplotlib.figure import Figure

from .._validation import check_positive_float
from ..serialization import atomic_write_bytes

__all__ = ["NATS", "SAVE_DPI", "Z1", "Z2", "finish_figure", "new_figure", "save_figure"]

#: Resolution of saved PNG files, dots per inch (a 4 x 3 inch figure is 600 x 450 pixels).
SAVE_DPI = 150

#: Axis label of every per-example quantity measured in nats (losses, KL terms).
NATS = "nats per example"
#: Axis labels of the first two latent coordinates (mathtext).
Z1, Z2 = r"$z_1$", r"$z_2$"


class _Figure(Figure):
    """A Figure that renders itself as a PNG in Jupyter without pyplot or ``%matplotlib``."""

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png")
        return buf.getvalue()


def new_figure(width: float, height: float) -> Figure:
    """A new figure of ``width`` x ``height`` inches, constrained layout, PNG in Jupyter."""
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


def finish_figure(fig: Figure, title: str | None, path: str | os.PathLike[str] | None) -> Figure:
    """Give ``fig`` the suptitle ``title`` (if not None), save it to ``path`` (if not None).

    Returns
    -------
    matplotlib.figure.Figure
        ``fig`` itself, so a plot function can end with ``return finish_figure(...)``.
    """
    if title is not None:
        fig.suptitle(str(title))
    if path is not None:
        save_figure(fig, path)
    return fig
