"""Test configuration: hypothesis profiles and the location of the shared real datasets."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# A test run started in the background by a non-interactive shell inherits SIGINT ignored. The
# Ctrl-C tests need Python's usual handler here, and the commands they start then get the
# default disposition (a handler, unlike an ignored signal, is reset on exec).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# "default": deterministic (derandomized) so that CI and the edit loop see the same examples;
# "explore": random examples, for hunting new failures (HYPOTHESIS_PROFILE=explore pytest ...).
settings.register_profile(
    "default",
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("explore", deadline=None, derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def shared_data_dir() -> Path | None:
    """Folder with the real MNIST / Fashion-MNIST / Frey Face files, or None when absent.

    ``VAE_NUMPY_TEST_DATA`` wins; otherwise ``shared/data`` next to the project checkout.
    """
    env = os.environ.get("VAE_NUMPY_TEST_DATA")
    candidate = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    return candidate if candidate.is_dir() else None


@pytest.fixture
def shared_data() -> Path:
    """The shared real-data folder; skips the test, saying why, when it is absent."""
    path = shared_data_dir()
    if path is None:
        pytest.skip(
            "real datasets not found: set VAE_NUMPY_TEST_DATA or place shared/data beside the checkout"
        )
    return path
