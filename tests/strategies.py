"""Shared hypothesis strategies and settings for the property tests."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

# Means in [-10, 10]; standard deviations log-uniform in [0.05, 20] (the ranges).
means = st.floats(min_value=-10.0, max_value=10.0, allow_nan=False, allow_infinity=False)
log_stds = st.floats(min_value=float(np.log(0.05)), max_value=float(np.log(20.0)))
stds = log_stds.map(lambda v: float(np.exp(v)))

normal_params = st.tuples(means, stds, means, stds)  # (mu, sigma, m, s)

seeds = st.integers(min_value=0, max_value=2**32 - 1)
small_dims = st.integers(min_value=1, max_value=6)
batch_sizes = st.integers(min_value=1, max_value=5)


def shaped_normal(
    rng: np.random.Generator, shape: tuple[int, ...], scale: float = 1.0, dtype: type = np.float64
) -> np.ndarray:
    """Standard-normal array of the given shape and dtype, times ``scale``."""
    return (scale * rng.standard_normal(shape)).astype(dtype)
