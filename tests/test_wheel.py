"""The built wheel is the whole product: installed without a checkout, every command works.

The sdist and the wheel are built once per session with the standard front end
(``python -m build --no-isolation``: the wheel is built from the unpacked sdist, so both are
checked). The wheel is installed into a fresh venv, without pip and without the network: a
``.pth`` file lends the venv the dependencies already installed for this interpreter, and
``pip --python`` installs the wheel alone (``--no-deps --no-index``). The source checkout's
editable hook is not inherited (a ``.pth`` line adds a folder to ``sys.path``; it does not
process the ``.pth`` files inside it), so ``import vae_numpy`` in the venv can only find the
wheel's copy, which the tests check. Every command runs from an empty temporary folder.

Marked ``notebooks`` (it grades a notebook) and ``wheel``: ``pytest -m "not notebooks"`` leaves
it out of the edit loop, ``pytest -m wheel`` runs it alone.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.notebooks, pytest.mark.wheel]


@dataclass(frozen=True)
class Installed:
    """A venv with the built wheel installed: its python, its ``vae-numpy`` and a clean cwd."""

    python: Path
    cli: Path
    site_packages: Path
    wheel: Path
    sdist: Path
    cwd: Path

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env.update(MPLBACKEND="Agg", PYTHONDONTWRITEBYTECODE="1")
        return subprocess.run(
            [str(self.cli), *args],
            cwd=self.cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def _run(*cmd: str | Path, cwd: Path | None = None) -> str:
    result = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """Build the sdist and the wheel, install the wheel into a fresh venv (no network)."""
    base = tmp_path_factory.mktemp("wheel")
    dist = base / "dist"
    _run(sys.executable, "-m", "build", "--no-isolation", "--outdir", dist, ROOT, cwd=base)
    (wheel,) = dist.glob("vae_numpy-*.whl")
    (sdist,) = dist.glob("vae_numpy-*.tar.gz")
    venv = base / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    purelib = Path(
        _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    )
    lent = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    lent |= set(site.getsitepackages())
    (purelib / "_dependencies_of_the_test_environment.pth").write_text(
        "\n".join(sorted(lent)) + "\n", encoding="utf-8"
    )
    _run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "--quiet",
        "--no-deps",
        "--no-index",
        wheel,
    )
    cwd = base / "work"
    cwd.mkdir()
    yield Installed(python, venv / "bin" / "vae-numpy", purelib, wheel, sdist, cwd)


def test_wheel_holds_every_module_and_every_notebook(installed):
    """The wheel has each .py of vae_numpy/ and each notebook, lecture and assignment alike."""
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "vae_numpy").rglob("*.py")}
    assert modules - names == set(), "modules missing from the wheel (list them in setup.cfg)"
    notebooks = {
        "vae_numpy/_notebooks/" + p.relative_to(ROOT / "notebooks").as_posix()
        for p in (ROOT / "notebooks").rglob("*.ipynb")
        if ".ipynb_checkpoints" not in p.parts
    }
    assert len(notebooks) >= 15 and notebooks - names == set()


def test_installed_package_is_the_wheel_not_the_checkout(installed):
    """`import vae_numpy` in the venv finds the wheel's copy in the venv's site-packages."""
    where = _run(
        installed.python,
        "-c",
        "import vae_numpy, vae_numpy.resources as r; print(vae_numpy.__file__); print(r.notebooks_dir())",
        cwd=installed.cwd,
    ).split()
    assert Path(where[0]).is_relative_to(installed.site_packages), where
    assert Path(where[1]).is_relative_to(installed.site_packages), where


def test_installed_cli_trains_lists_releases_grades_and_copies_notebooks(installed):
    """From an empty folder: train, sample, evaluate; list, release, grade; copy the notebooks."""
    train = installed.run("train", "--out", "run", "--epochs", "2", "--no-progress")
    assert train.returncode == 0, train.stderr
    assert (installed.cwd / "run" / "model.npz").is_file()
    sample = installed.run("sample", "--model", "run/model.npz", "-n", "4", "--out", "s.png")
    assert sample.returncode == 0 and (installed.cwd / "s.png").is_file(), sample.stderr
    evaluate = installed.run("evaluate", "--model", "run/model.npz", "--max-examples", "20")
    assert evaluate.returncode == 0 and "ELBO" in evaluate.stdout, evaluate.stderr

    listing = installed.run("assignments", "list")
    assert listing.returncode == 0, listing.stderr
    assert "04_adam" in listing.stdout and "10 points" in listing.stdout

    release = installed.run("assignments", "release", "--out", "release")
    assert release.returncode == 0, release.stderr
    released = sorted(p.name for p in (installed.cwd / "release").glob("*.ipynb"))
    shipped = sorted(
        p.name for p in (ROOT / "notebooks" / "assignments" / "release").glob("*.ipynb")
    )
    assert released == shipped
    for name in released:  # the same sources give byte-identical copies
        assert (installed.cwd / "release" / name).read_bytes() == (
            ROOT / "notebooks" / "assignments" / "release" / name
        ).read_bytes()

    source = ROOT / "notebooks" / "assignments" / "source" / "04_adam.ipynb"
    shutil.copy(source, installed.cwd / "04_adam.ipynb")
    grade = installed.run("assignments", "grade", "04_adam.ipynb", "--json")
    assert grade.returncode == 0, grade.stderr
    report = json.loads(grade.stdout)
    assert report["score"] == report["max_score"] > 0, report

    copied = installed.run("notebooks", "mine")
    assert copied.returncode == 0, copied.stderr
    lecture = sorted(p.name for p in (installed.cwd / "mine").glob("*.ipynb"))
    assert lecture == sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert (
        sorted(p.name for p in (installed.cwd / "mine" / "assignments").glob("*.ipynb")) == shipped
    )
    again = installed.run("notebooks", "mine")
    assert again.returncode == 2 and "--force" in again.stderr
