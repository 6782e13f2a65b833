"""``python -m vae_numpy.assignments ACTION ...``: the assignments' command line as a script."""

from __future__ import annotations

import sys

from .cli import main

__all__: list[str] = []

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
