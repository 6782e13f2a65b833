"""The documentation site: it builds with warnings as errors, its links resolve, its examples run.

The site is built once per test run (the ``docs_site`` fixture in ``tests/conftest.py``); the
build executes the six lecture notebooks, which is how the suite runs them. The checks of the
pages' text (examples, the reading guide's highlighted lines) do not need the build.
"""

from __future__ import annotations

import doctest
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from tests.conftest import docs_tools_missing

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PAGES = sorted(p for p in DOCS.rglob("*.md") if "notebooks" not in p.relative_to(DOCS).parts)


def python_blocks(path: Path) -> list[str]:
    """The ```python blocks of a Markdown file."""
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)


def run_doctest(path: Path) -> doctest.TestResults:
    """Run the ```python blocks of ``path`` as one doctest (they share one namespace, in order)."""
    source = "\n".join(python_blocks(path))
    test = doctest.DocTestParser().get_doctest(source, {}, path.name, str(path), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    return runner.summarize(verbose=False)


# --- the pages' text --------------------------------------------------------------------------


def test_every_python_block_of_the_readme_and_the_docs_is_a_doctest():
    """Each ```python block of the README and of docs/ is made of >>> examples, so it runs."""
    assert PAGES, "no documentation pages found under docs/"
    for path in [README, *PAGES]:
        for block in python_blocks(path):
            assert block.lstrip().startswith(">>>"), (
                f"{path.relative_to(ROOT)} has a python block that is not a doctest:\n{block[:200]}"
            )


@pytest.mark.slow
@pytest.mark.parametrize(
    "page",
    [p for p in PAGES if python_blocks(p)],
    ids=lambda p: str(p.relative_to(DOCS)),
)
def test_docs_python_examples_print_what_they_show(page):
    """Every >>> example of a documentation page runs and prints exactly what the page shows."""
    result = run_doctest(page)
    assert result.attempted > 0
    assert result.failed == 0, f"{result.failed} example(s) of {page.name} print something else"


def test_results_page_shows_what_verify_kl_prints(capsys):
    """The verify-kl table on the results page is what the command prints (|diff| digits aside)."""
    from vae_numpy.cli import main

    text = (DOCS / "results.md").read_text(encoding="utf-8")
    (block,) = re.findall(r"```console\n\$ vae-numpy verify-kl\n(.*?)```", text, flags=re.S)
    assert main(["verify-kl"]) == 0
    printed = capsys.readouterr().out

    def rounding_aside(s: str) -> list[str]:  # |closed form - quadrature| is rounding: ~1e-15
        return [re.sub(r"\d\.\de-1[3-7]", "<rounding>", line).rstrip() for line in s.splitlines()]

    assert rounding_aside(block) == rounding_aside(printed)


def docs_conf():
    """docs/conf.py as a module (the helpers the build uses)."""
    sys.path.insert(0, str(DOCS))
    try:
        return importlib.import_module("conf")
    finally:
        sys.path.remove(str(DOCS))


def test_reading_guide_names_code_that_is_in_each_listing():
    """Each line of code the reading guide names is in its listing once (the build highlights it)."""
    pytest.importorskip("sphinx", reason="the docs extra is not installed")
    conf = docs_conf()
    text = (DOCS / "reading-guide.md").read_text(encoding="utf-8")
    listings = conf.formula_listings(text)
    assert len(listings) >= 15, "the reading guide lost its formula index"
    assert len(re.findall(r"```\{literalinclude\}", text)) == len(listings), (
        "every listing of the reading guide needs the % formula-line comments above it"
    )
    for listing in listings:
        assert all(listing[2]), f"an empty formula-line above {listing[0]}"
        numbers = conf.highlighted_lines(*listing)  # ValueError says which code moved
        assert len(numbers) == len(listing[2])


def test_students_page_notebooks_command_prints_what_it_shows(tmp_path, monkeypatch, capsys):
    """The students' page's `vae-numpy notebooks` example, run in an empty folder, prints that."""
    from vae_numpy.cli import main

    text = (DOCS / "students.md").read_text(encoding="utf-8")
    (block,) = re.findall(r"```console\n(.*?)```", text, flags=re.S)
    command, *shown = [line.strip() for line in block.strip().splitlines()]
    assert command.startswith("$ vae/bin/vae-numpy notebooks ")
    monkeypatch.chdir(tmp_path)
    assert main(command.split()[2:]) == 0
    printed = capsys.readouterr().out.splitlines()
    position = 0
    for line in shown:
        if line == "...":
            continue
        assert line in printed[position:], f"the page shows {line!r}; the command printed {printed}"
        position = printed.index(line, position) + 1


# --- the built site ---------------------------------------------------------------------------


class _Links(HTMLParser):
    """Collects the href/src targets and the element ids of one HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.targets: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            if name == "id":
                self.ids.add(value)
            elif name in ("href", "src") and not (tag == "link" and "preconnect" in value):
                self.targets.append(value)


def parse_page(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


@pytest.mark.notebooks
def test_docs_site_builds_with_every_page_the_readme_links_to(docs_site):
    """The site builds (-W) and has a page for each docs page the README links to."""
    linked = re.findall(r"\]\((docs/[^)#]+)\.md(?:#[^)]*)?\)", README.read_text(encoding="utf-8"))
    assert linked, "the README links to no documentation page"
    for source in linked:
        page = docs_site / (source.removeprefix("docs/") + ".html")
        assert page.is_file(), f"the README links to {source}.md, which was not built"


def broken_links(site: Path) -> tuple[int, list[str]]:
    """(links checked, problems) for every relative href/src of every page of a built site."""
    ids: dict[Path, set[str]] = {}
    problems = []
    checked = 0
    for page in sorted(site.rglob("*.html")):
        for target in parse_page(page).targets:
            parts = urlsplit(target)
            if parts.scheme or parts.netloc or target.startswith(("mailto:", "javascript:")):
                continue
            path = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if path.is_dir():
                path = path / "index.html"
            checked += 1
            if not path.is_file():
                problems.append(f"{page.relative_to(site)}: {target} (no such file)")
                continue
            if parts.fragment and path.suffix == ".html":
                if path not in ids:
                    ids[path] = parse_page(path).ids
                if unquote(parts.fragment) not in ids[path]:
                    problems.append(f"{page.relative_to(site)}: {target} (no such anchor)")
    return checked, sorted(set(problems))


@pytest.mark.notebooks
def test_every_internal_link_and_image_of_the_site_resolves(docs_site):
    """Every relative href/src of every built page names an existing file, and its #anchor exists."""
    assert len(list(docs_site.rglob("*.html"))) > 10
    checked, problems = broken_links(docs_site)
    assert checked > 100
    assert not problems, "broken internal links:\n" + "\n".join(problems[:50])


def public_names() -> list[tuple[str, str]]:
    """(module, name) for every name in the __all__ of every public module of vae_numpy."""
    conf = docs_conf()
    pairs = []
    for module_name in conf.public_modules():
        module = importlib.import_module(module_name)
        pairs.extend((module_name, name) for name in getattr(module, "__all__", []))
    return pairs


@pytest.mark.notebooks
def test_every_public_name_has_an_entry_in_the_api_reference(docs_site):
    """Each name of each public module's __all__ is documented (where it is defined) on api.html."""
    ids = parse_page(docs_site / "api.html").ids
    pairs = public_names()
    assert len(pairs) > 200
    missing = []
    for module_name, name in pairs:
        obj = getattr(importlib.import_module(module_name), name)
        home = getattr(obj, "__module__", None) or ""
        if (isinstance(obj, type) or callable(obj)) and home.startswith("vae_numpy"):
            anchor = f"{home}.{obj.__qualname__}"
        else:
            anchor = f"{module_name}.{name}"
        if anchor not in ids:
            missing.append(f"{module_name}.{name} (expected #{anchor})")
    assert not missing, "not in the API reference:\n" + "\n".join(missing)


@pytest.mark.notebooks
def test_reading_guide_page_highlights_every_line_it_names(docs_site):
    """The built reading guide highlights as many source lines as the page names formulas."""
    text = (DOCS / "reading-guide.md").read_text(encoding="utf-8")
    named = sum(len(listing[2]) for listing in docs_conf().formula_listings(text))
    html = (docs_site / "reading-guide.html").read_text(encoding="utf-8")
    assert html.count('<span class="hll">') == named


def lecture_page_outputs(html: str) -> int:
    return html.count('class="cell_output')


@pytest.mark.notebooks
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_lecture_notebook_runs_and_renders_with_its_outputs(notebook, request, tmp_path):
    """The notebook runs without error; on the site every code cell that prints shows its output.

    With the docs extra the build executed it (a cell that raises fails the build); without it,
    the notebook is executed here with nbclient.
    """
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    code_cells = [c for c in cells if c["cell_type"] == "code"]
    assert code_cells and not any(c.get("outputs") for c in code_cells), "stored with outputs"
    if docs_tools_missing() is None:
        site = request.getfixturevalue("docs_site")
        page = site / "notebooks" / f"{notebook.stem}.html"
        assert page.is_file(), f"{notebook.name} is not on the site"
        html = page.read_text(encoding="utf-8")
        assert lecture_page_outputs(html) >= len(code_cells) // 3, "the page shows few outputs"
        assert "Traceback" not in html
        return
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(notebook, as_version=4)
    NotebookClient(
        nb, timeout=600, resources={"metadata": {"path": str(notebook.parent)}}
    ).execute()


# --- the quick start leaves the clone clean ---------------------------------------------------


# The command line of this working tree, run in another folder (not the copy's package).
RUN_CLI = (
    "import sys; sys.path.insert(0, sys.argv.pop(1)); "
    "from vae_numpy.cli import main; sys.exit(main(sys.argv[1:]))"
)


def readme_commands() -> list[list[str]]:
    """The `vae-numpy` commands of the README's bash blocks, as argument lists."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            for part in line.split("&&"):
                words = part.split()
                if words and words[0].endswith("bin/vae-numpy"):
                    commands.append(words[1:])
    return commands


@pytest.mark.slow
def test_readme_commands_leave_the_clone_clean(tmp_path):
    """Run in a copy of the clone, every vae-numpy command of the README leaves git status clean."""
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout")
    listed = subprocess.run(
        [git, "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    clone = tmp_path / "clone"
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_symlink():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.readlink(source), clone / name)
        elif source.is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, clone / name)
    for extra in (".gitignore", "README.md"):  # the working copies, committed or not
        shutil.copy2(ROOT / extra, clone / extra)
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "MPLBACKEND": "Agg"}
    env.update(GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t", PYTHONDONTWRITEBYTECODE="1")
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "clone"]):
        subprocess.run([git, *args], cwd=clone, env=env, check=True, capture_output=True)
    commands = readme_commands()
    assert any(c[0] == "train" for c in commands) and any(c[0] == "notebooks" for c in commands)
    for args in commands:
        run = subprocess.run(
            [sys.executable, "-c", RUN_CLI, str(ROOT), *args],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert run.returncode == 0, f"vae-numpy {' '.join(args)} failed:\n{run.stderr[-2000:]}"
    status = subprocess.run(
        [git, "status", "--porcelain"], cwd=clone, capture_output=True, text=True, check=True
    ).stdout
    assert status == "", f"the README's commands left files in the clone:\n{status}"
