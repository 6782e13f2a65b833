"""Test configuration: hypothesis profiles and the location of the shared real datasets."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
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


ROOT = Path(__file__).resolve().parents[1]


def docs_tools_missing() -> str | None:
    """Why the documentation cannot be built here (a missing package of the docs extra), or None."""
    import importlib.util

    for module in ("sphinx", "myst_nb", "furo"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed: the docs extra is needed (pip install -e '.[dev,docs]')"
    return None


@pytest.fixture(scope="session")
def docs_site() -> Iterator[Path]:
    """The documentation site, built once per run with warnings as errors; its HTML folder.

    The build executes the lecture notebooks (myst-nb). A failed build fails every test that
    uses the site, with the build's last lines; without the docs extra the tests are skipped.
    The site lives in its own temporary folder (not pytest's numbered ones, which a concurrent
    test run may rotate away) and is removed at the end of the run.
    """
    import shutil
    import subprocess
    import sys
    import tempfile

    missing = docs_tools_missing()
    if missing is not None:
        pytest.skip(missing)
    folder = Path(tempfile.mkdtemp(prefix="vae-numpy-docs-"))
    out = folder / "html"
    doctrees = out.parent / "doctrees"
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("VAE_NUMPY_DOCS_EXECUTE", None)  # the suite always executes the notebooks
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-q"]
    result = subprocess.run(
        [*command, "-d", str(doctrees), str(ROOT / "docs"), str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if result.returncode != 0 or not (out / "index.html").is_file():
        lines = (result.stdout + result.stderr).splitlines()
        log = "\n".join([line for line in lines if "[IPKernelApp]" not in line][-60:])
        shutil.rmtree(folder, ignore_errors=True)
        pytest.fail(f"the documentation build failed (exit status {result.returncode}):\n{log}")
    yield out
    shutil.rmtree(folder, ignore_errors=True)
