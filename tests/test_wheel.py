"""The built wheel is the student's product: installed without a checkout, every command works,
and it carries no answer key (no solution and no hidden test; the sdist has them, for instructors).

The sdist and the wheel are built once per session with the standard front end
(``python -m build --no-isolation``: the wheel is built from the unpacked sdist, so both are
checked). The wheel is installed into a fresh venv, without pip and without the network: a
``.pth`` file lends the venv the dependencies already installed for this interpreter, and
``pip --python`` installs the wheel alone (``--no-deps --no-index``). The source checkout's
editable hook is not inherited (a ``.pth`` line adds a folder to ``sys.path``; it does not
process the ``.pth`` files inside it), so ``import vae_numpy`` in the venv can only find the
wheel's copy, which the tests check. Every command runs from an empty temporary folder, where
the commands that need the assignment sources find none until ``--source`` names the checkout's.

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
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from vae_numpy.assignments.notebooks import (
    BEGIN_HIDDEN,
    BEGIN_SOLUTION,
    END_HIDDEN,
    END_SOLUTION,
    replace_regions,
)

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "notebooks" / "assignments" / "source"

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


def _lines(text: str) -> set[str]:
    return {line.strip() for line in text.splitlines()} - {""}


def _answer_key() -> tuple[dict[str, set[str]], set[str]]:
    """The lines only an answer key holds: each solution cell's solution lines (by grade_id)
    and the hidden tests' lines, less every line a student copy shows anyway (the code around
    the markers, the visible tests, closing brackets), comments and imports."""
    solutions: dict[str, set[str]] = {}
    hidden: set[str] = set()
    public: set[str] = set()
    for path in SOURCES.glob("*.ipynb"):
        for cell in nbformat.read(path, 4).cells:
            gid = cell.metadata.get("nbgrader", {}).get("grade_id", "")
            outside, _ = replace_regions(cell.source, BEGIN_SOLUTION, END_SOLUTION, None)
            no_solution = outside
            outside, _ = replace_regions(outside, BEGIN_HIDDEN, END_HIDDEN, None)
            public |= _lines(outside)
            solutions.setdefault(gid, set()).update(_lines(cell.source) - _lines(no_solution))
            hidden |= _lines(no_solution) - _lines(outside)
    # comments, and imports (which library a test uses is no answer), say nothing of a key
    comments = {line for line in public | hidden if line.startswith(("#", "import ", "from "))}
    solutions = {gid: lines - public - comments for gid, lines in solutions.items()}
    return solutions, hidden - public - comments


def answers_in(notebook: bytes) -> list[str]:
    """Every trace of an answer key in a notebook: a solution or hidden-test marker, a solution
    cell (nbgrader ``solution: true``) holding a line of its source's solution, a line of a
    source's hidden tests. Empty for a clean student copy or lecture notebook."""
    text = notebook.decode("utf-8")
    found = [m for m in (BEGIN_SOLUTION, BEGIN_HIDDEN, END_HIDDEN) if m in text]
    solutions, hidden = _answer_key()
    for cell in nbformat.reads(text, as_version=4).cells:
        meta = cell.metadata.get("nbgrader", {})
        lines = _lines(cell.source)
        if meta.get("solution"):
            leaked = lines & solutions.get(meta.get("grade_id", ""), set())
            found += [f"solution line in cell {meta.get('grade_id')!r}: {x}" for x in leaked]
        found += [f"hidden-test line: {x}" for x in sorted(lines & hidden)]
    return found


def test_the_answer_key_check_finds_the_sources_answers():
    """answers_in finds markers and answer lines in every source, none in the checkout's
    student copies: the wheel test below cannot pass by looking at nothing."""
    sources = sorted(SOURCES.glob("*.ipynb"))
    assert len(sources) >= 6
    for path in sources:
        found = answers_in(path.read_bytes())
        assert any(f.startswith("solution line") for f in found), path.name
        assert any(f.startswith("hidden-test line") for f in found), path.name
        copy = ROOT / "notebooks" / "assignments" / "release" / path.name
        assert answers_in(copy.read_bytes()) == [], copy.name
        stripped = nbformat.read(path, 4)  # the markers gone, the answers kept: still found
        for cell in stripped.cells:
            cell.source = cell.source.replace(BEGIN_SOLUTION, "").replace(BEGIN_HIDDEN, "")
        assert answers_in(nbformat.writes(stripped).encode("utf-8")), path.name


def test_wheel_holds_the_library_the_lectures_and_the_student_copies_only(installed):
    """The wheel has each .py of vae_numpy/, the lecture notebooks and the student copies, and
    no assignment source: not one solution or hidden test in any of its files."""
    archive = zipfile.ZipFile(installed.wheel)
    names = set(archive.namelist())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "vae_numpy").rglob("*.py")}
    assert modules - names == set(), "modules missing from the wheel (list them in setup.cfg)"
    shipped = {
        "vae_numpy/_notebooks/" + p.relative_to(ROOT / "notebooks").as_posix()
        for p in [
            *(ROOT / "notebooks").glob("*.ipynb"),
            *(ROOT / "notebooks" / "assignments" / "release").glob("*.ipynb"),
        ]
    }
    wheel_notebooks = {n for n in names if n.endswith(".ipynb")}
    assert len(shipped) >= 12 and wheel_notebooks == shipped
    assert not [n for n in names if "/source/" in n or "solution" in n.lower()]
    for name in sorted(n for n in names if not n.endswith(".py")):  # the grader names markers
        data = archive.read(name)
        for marker in (BEGIN_SOLUTION, BEGIN_HIDDEN):
            assert marker.encode() not in data, f"{marker!r} in {name} of the wheel"
        if name.endswith(".ipynb"):
            assert answers_in(data) == [], f"{name} of the wheel: {answers_in(data)}"


def test_sdist_still_holds_the_assignment_sources(installed):
    """The sdist, for instructors, has every source notebook byte for byte."""
    with tarfile.open(installed.sdist) as sdist:
        members = {m.name.split("/", 1)[1]: m for m in sdist.getmembers() if "/" in m.name}
        sources = sorted(SOURCES.glob("*.ipynb"))
        assert len(sources) >= 6
        for path in sources:
            member = members.get(path.relative_to(ROOT).as_posix())
            assert member is not None, f"{path.name} missing from the sdist (MANIFEST.in)"
            extracted = sdist.extractfile(member)
            assert extracted is not None and extracted.read() == path.read_bytes()


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
    """From an empty folder: train, sample, evaluate; list, release and grade with --source
    (without it: a message naming --source DIR); copy the notebooks, without solutions."""
    train = installed.run("train", "--out", "run", "--epochs", "2", "--no-progress")
    assert train.returncode == 0, train.stderr
    assert (installed.cwd / "run" / "model.npz").is_file()
    sample = installed.run("sample", "--model", "run/model.npz", "-n", "4", "--out", "s.png")
    assert sample.returncode == 0 and (installed.cwd / "s.png").is_file(), sample.stderr
    evaluate = installed.run("evaluate", "--model", "run/model.npz", "--max-examples", "20")
    assert evaluate.returncode == 0 and "ELBO" in evaluate.stdout, evaluate.stderr

    nowhere = installed.run("assignments", "list")
    assert nowhere.returncode == 2, nowhere.stdout
    assert "--source DIR" in nowhere.stderr and "notebooks/assignments/source" in nowhere.stderr

    listing = installed.run("assignments", "list", "--source", str(SOURCES))
    assert listing.returncode == 0, listing.stderr
    assert "04_adam" in listing.stdout and "10 points" in listing.stdout

    release = installed.run("assignments", "release", "--out", "release", "--source", str(SOURCES))
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

    shutil.copy(SOURCES / "04_adam.ipynb", installed.cwd / "04_adam.ipynb")
    grade = installed.run(
        "assignments", "grade", "04_adam.ipynb", "--json", "--source", str(SOURCES)
    )
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
    assert not (installed.cwd / "mine" / "solutions").exists()
    again = installed.run("notebooks", "mine")
    assert again.returncode == 2 and "--force" in again.stderr
    solutions = installed.run("notebooks", "keys", "--solutions")
    assert solutions.returncode == 2 and "not shipped" in solutions.stderr
    assert "notebooks/assignments/source" in solutions.stderr
    assert not (installed.cwd / "keys").exists()
