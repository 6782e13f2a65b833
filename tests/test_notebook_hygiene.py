"""Notebooks are committed clean, valid and self-describing; lecture notebooks import, not redefine.

Fast checks that read the notebook files without executing them (nbmake executes the lecture
notebooks; the assignment tests grade the assignments). Every notebook under ``notebooks/``,
including ``notebooks/assignments/**``, must be stored without outputs or execution counts
(``nbstripout``), be valid nbformat v4, and open with a markdown title. The lecture notebooks
(``notebooks/0*.ipynb``) must also end with "Summary" and "Exercises" sections, import from
``vae_numpy``, and not ``def`` (or ``class``) a name that the ``vae_numpy`` modules they import
from already define: students should see the library's code used, not a shadow copy of it.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
ALL_NOTEBOOKS = sorted(p for p in NOTEBOOKS.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
LECTURE_NOTEBOOKS = sorted(NOTEBOOKS.glob("0*.ipynb"))
EXPECTED_LECTURES = (
    "01_autoencoders_and_vaes.ipynb",
    "02_latent_distribution_and_elbo.ipynb",
    "03_kl_divergence_for_normals.ipynb",
    "04_training_a_vae.ipynb",
    "05_generating_new_samples.ipynb",
    "06_beyond_the_lecture.ipynb",
)
# A path on someone's machine (/home/..., /Users/..., C:\Users\...) inside a notebook.
MACHINE_PATH = re.compile(r"(?<![\w.~])/(home|Users|root|tmp|work)/|\b[A-Z]:\\Users\\")


def _id(path: Path) -> str:
    return path.relative_to(NOTEBOOKS).as_posix()


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=nbformat.NO_CONVERT)


def _code_sources(nb: nbformat.NotebookNode) -> list[str]:
    """Source of each code cell with IPython magics and shell escapes blanked out."""
    out = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            lines = cell.source.splitlines()
            out.append("\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in lines))
    return out


def _headings(nb: nbformat.NotebookNode) -> list[str]:
    """Text of every markdown heading line ('# ...', '## ...'), without the hashes."""
    return [
        line.lstrip("#").strip()
        for cell in nb.cells
        if cell.cell_type == "markdown"
        for line in cell.source.splitlines()
        if re.match(r"#{1,6}\s", line)
    ]


def _vae_numpy_modules(trees: list[ast.Module]) -> set[str]:
    """Names of the vae_numpy modules a notebook imports from (``from vae_numpy.x import ...``)."""
    modules = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module == "vae_numpy" or node.module.startswith("vae_numpy."):
                    modules.add(node.module)
            elif isinstance(node, ast.Import):
                modules.update(a.name for a in node.names if a.name.split(".")[0] == "vae_numpy")
    return modules


def _definitions(trees: list[ast.Module]) -> set[str]:
    """Names bound by ``def``/``class`` anywhere in the notebook (nested ones included)."""
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return {node.name for tree in trees for node in ast.walk(tree) if isinstance(node, kinds)}


def test_the_six_lecture_notebooks_are_present() -> None:
    """notebooks/ holds the six lecture notebooks the README lists, and nothing else numbered."""
    assert tuple(p.name for p in LECTURE_NOTEBOOKS) == EXPECTED_LECTURES


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=_id)
def test_notebook_is_valid_nbformat_v4(path: Path) -> None:
    """The file is a notebook in format 4 that passes nbformat's schema validation."""
    nb = _read(path)
    assert nb.nbformat == 4, f"{_id(path)} is nbformat {nb.nbformat}, expected 4"
    nbformat.validate(nb)


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=_id)
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    """No code cell has outputs or an execution count (run nbstripout before committing)."""
    dirty = [
        i
        for i, cell in enumerate(_read(path).cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count"))
    ]
    assert not dirty, (
        f"{_id(path)}: cells {dirty} have outputs or execution counts;"
        f" run `nbstripout notebooks/{_id(path)}`"
    )


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=_id)
def test_notebook_opens_with_a_markdown_title(path: Path) -> None:
    """The first cell is markdown whose first line is a level-1 heading ('# Title')."""
    cells = _read(path).cells
    assert cells, f"{_id(path)} has no cells"
    first = cells[0]
    assert first.cell_type == "markdown", f"{_id(path)}: the first cell is {first.cell_type}"
    title = first.source.strip().splitlines()[0] if first.source.strip() else ""
    assert re.match(r"#\s+\S", title), f"{_id(path)}: first line {title!r} is not '# Title'"


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=_id)
def test_notebook_code_cells_are_valid_python(path: Path) -> None:
    """Every code cell parses (magics aside), so a syntax slip fails here, not after a long run."""
    for i, source in enumerate(_code_sources(_read(path))):
        try:
            ast.parse(source)
        except SyntaxError as exc:
            pytest.fail(f"{_id(path)}: code cell {i} does not parse: {exc}")


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=_id)
def test_notebook_has_no_machine_specific_paths(path: Path) -> None:
    """No cell names a path on the author's machine; notebooks must run from any checkout."""
    hits = [
        (i, m.group(0))
        for i, cell in enumerate(_read(path).cells)
        for m in MACHINE_PATH.finditer(cell.source)
    ]
    assert not hits, f"{_id(path)}: machine-specific paths in cells {hits}"


@pytest.mark.parametrize("path", LECTURE_NOTEBOOKS, ids=_id)
def test_lecture_notebook_ends_with_summary_and_exercises(path: Path) -> None:
    """A lecture notebook has 'Summary' and 'Exercises' headings, in that order, at its end."""
    headings = _headings(_read(path))
    names = [h for h in headings if h in ("Summary", "Exercises")]
    assert names == ["Summary", "Exercises"], (
        f"{_id(path)}: expected '## Summary' then '## Exercises' headings, found {names}"
    )
    assert headings[-2:] == ["Summary", "Exercises"], (
        f"{_id(path)}: Summary and Exercises should be the last sections, headings end {headings[-3:]}"
    )


@pytest.mark.parametrize("path", LECTURE_NOTEBOOKS, ids=_id)
def test_lecture_notebook_imports_from_vae_numpy(path: Path) -> None:
    """A lecture notebook uses the package: it has at least one ``from vae_numpy... import``."""
    trees = [ast.parse(src) for src in _code_sources(_read(path))]
    assert _vae_numpy_modules(trees), f"{_id(path)} imports nothing from vae_numpy"


@pytest.mark.parametrize("path", LECTURE_NOTEBOOKS, ids=_id)
def test_lecture_notebook_does_not_redefine_library_names(path: Path) -> None:
    """No ``def``/``class`` in a lecture notebook reuses a name of a vae_numpy module it imports."""
    trees = [ast.parse(src) for src in _code_sources(_read(path))]
    defined = _definitions(trees)
    clashes = {}
    for module_name in sorted(_vae_numpy_modules(trees)):
        module = importlib.import_module(module_name)
        names = {n for n in vars(module) if not (n.startswith("__") and n.endswith("__"))}
        for name in sorted(defined & names):
            clashes[name] = module_name
    assert not clashes, (
        f"{_id(path)} redefines library names {clashes}; import and use them instead"
    )
