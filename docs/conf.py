"""Sphinx configuration of the vae_numpy documentation (``python -m sphinx -W --keep-going docs OUT``).

The site is Markdown (MyST) and the six lecture notebooks, executed during the build (myst-nb);
the API reference is generated from the numpydoc docstrings (autosummary, napoleon) with
highlighted source (viewcode). ``docs/notebooks`` is a link to the repository's ``notebooks``
folder, so the pages render the very files the tests and the wheel use.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the package from this checkout, installed or not

import vae_numpy  # noqa: E402

project = "vae_numpy"
author = "the vae_numpy authors"
copyright = "vae_numpy authors, MIT licence"
version = release = getattr(vae_numpy, "__version__", "0.1.0")

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx.ext.mathjax",
]

# The latent-space explorer page, when its extension is present (docs/_ext/explorer_page.py).
EXPLORER = (HERE / "_ext" / "explorer_page.py").is_file() and (HERE / "explorer.md").is_file()
if EXPLORER:
    sys.path.insert(0, os.path.abspath(str(HERE / "_ext")))
    extensions.append("explorer_page")

exclude_patterns = [
    "_build",
    "Thumbs.db",
    ".DS_Store",
    "notebooks/assignments",  # graded notebooks: the instructors' page describes them
    "notebooks/**/.ipynb_checkpoints",
    "_ext",
]
if not EXPLORER:
    exclude_patterns.append("explorer.md")

source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"

# --- warnings are errors (-W); every internal cross-reference must resolve -------------------
nitpicky = True
# Outside the package, types in docstrings are prose ("ndarray of shape (batch, d)", "callable")
# and third-party names have no inventory offline: only vae_numpy's own targets must resolve.
# Private helpers (a name starting with "_") and type variables are not documented either.
nitpick_ignore_regex = [
    (r"py:.*", r"(?!vae_numpy\.).*"),
    (r"py:.*", r".*\._\w+.*"),
    (r"py:class", r"vae_numpy\.\w+(\.\w+)*\.[A-Z]"),  # TypeVars such as vae_numpy.base.M
]
# A structural type named in a signature but not exported (not in its module's __all__).
nitpick_ignore = [("py:class", "vae_numpy.cpu.ThreadSetter")]

# --- MyST and the notebooks --------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
# The notebooks are stored without outputs: the build runs them (VAE_NUMPY_DOCS_EXECUTE=off
# skips that for a quick draft of the prose; the test suite always executes them).
nb_execution_mode = os.environ.get("VAE_NUMPY_DOCS_EXECUTE", "force")
nb_execution_raise_on_error = True  # a failing cell fails the build (and the test suite)
nb_execution_timeout = 600  # seconds per cell
nb_execution_show_tb = True
nb_merge_streams = True
nb_execution_excludepatterns = ["notebooks/assignments/*"]

# --- API reference -------------------------------------------------------------------------------
# Each module documents its __all__; a name re-exported from another module is documented
# where it is defined (tests/test_docs.py checks that every name of every __all__ has a page).
autodoc_default_options = {"undoc-members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
# Parameter types are prose ("ndarray of shape (batch, latent_dim)"): shown as written, not
# turned into cross-references (a word such as latent_dim would match several attributes).
napoleon_use_param = False
napoleon_use_ivar = True  # "Attributes" sections as fields: no second entry beside a property

# --- HTML ------------------------------------------------------------------------------------------
html_theme = "furo"
html_title = "vae_numpy"
html_static_path: list[str] = []
html_show_sourcelink = False
pygments_style = "sphinx"


# --- the API reference: every public module, each documenting exactly its __all__ -------------


def public_modules() -> list[str]:
    """Every importable module of vae_numpy whose name has no leading underscore, in file order."""
    import pkgutil

    names = ["vae_numpy"]
    for info in pkgutil.walk_packages(vae_numpy.__path__, "vae_numpy."):
        if not any(part.startswith("_") for part in info.name.split(".")[1:]):
            names.append(info.name)
    return sorted(names)


def api_entries(module_name: str) -> tuple[list[str], list[str], dict[str, tuple[str, str]]]:
    """What the API page shows of a module's ``__all__``.

    Returns the names autodoc documents here (classes and functions defined in the module,
    constants with a ``#:`` comment), the full names of the classes and functions it
    re-exports (documented where they are defined), and the other constants: the short
    ``repr`` of their value and their ``#:`` comment, if any.
    """
    import importlib
    import reprlib

    from sphinx.pycode import ModuleAnalyzer

    module = importlib.import_module(module_name)
    attr_docs = ModuleAnalyzer.for_module(module_name).find_attr_docs()
    commented = {name for (_, name) in attr_docs}
    short = reprlib.Repr()
    short.maxstring, short.maxother, short.maxdict, short.maxtuple = 60, 60, 4, 6
    own, reexported, constants = [], [], {}
    for name in getattr(module, "__all__", []):
        obj = getattr(module, name)
        home = getattr(obj, "__module__", None) or ""
        if (isinstance(obj, type) or callable(obj)) and home.startswith("vae_numpy"):
            if home == module_name:
                own.append(name)
            else:
                reexported.append(f"{home}.{obj.__qualname__}")
        elif name in commented and not (isinstance(obj, type) or callable(obj)):
            own.append(name)  # a constant with its #: comment
        else:  # a constant without one, or an alias of an outside type (tuple[np.ndarray, ...])
            value = short.repr(obj)
            if len(value) > 80 and hasattr(obj, "__len__"):
                value = f"<{type(obj).__name__} of {len(obj)} entries>"
            doc = " ".join(line.strip() for line in attr_docs.get(("", name), []))
            constants[name] = (value, doc)
    return own, reexported, constants


def _api_sections() -> str:
    """MyST text with one section and one ``automodule`` per public module."""
    sections = []
    for name in public_modules():
        if name == "vae_numpy":
            continue
        own, reexported, constants = api_entries(name)
        members = f"   :members: {', '.join(own)}\n" if own else ""
        data = "".join(
            f"\n.. py:data:: {constant}\n   :value: {value}\n\n   {doc}\n"
            for constant, (value, doc) in constants.items()
        )
        text = f"## `{name}`\n\n```{{eval-rst}}\n.. automodule:: {name}\n{members}{data}```\n"
        if reexported:
            links = ", ".join(f"{{py:obj}}`~{full}`" for full in reexported)
            text += f"\nAlso importable from `{name}`: {links}.\n"
        sections.append(text)
    return "\n".join(sections)


# --- the reading guide: each listing highlights the lines whose code the page names -------------

FORMULA_LISTING = re.compile(
    r"((?:% formula-line: .*\n)+)(```\{literalinclude\} (\S+)\n)((?::[\w-]+:.*\n)*)```"
)


def formula_listings(text: str) -> list[tuple[str, dict[str, str], list[str]]]:
    """The reading guide's listings: (file, literalinclude options, the code each line holds)."""
    listings = []
    for comments, _, target, options in FORMULA_LISTING.findall(text):
        wanted = [c.removeprefix("% formula-line: ").strip() for c in comments.splitlines()]
        listings.append((target, dict(re.findall(r":([\w-]+):[ \t]*(.*)", options)), wanted))
    return listings


def highlighted_lines(target: str, options: dict[str, str], wanted: list[str]) -> list[int]:
    """1-based line of each ``wanted`` code in the listing; ValueError unless each is there once."""
    from sphinx.config import Config
    from sphinx.directives.code import LiteralIncludeReader

    keys = ("pyobject", "start-at", "start-after", "end-before", "end-at", "lines")
    reader_options = {k: v for k, v in options.items() if k in keys}
    snippet, _ = LiteralIncludeReader(str(HERE / target), reader_options, Config()).read()
    lines = snippet.splitlines()
    numbers = []
    for code in wanted:
        hits = [i + 1 for i, line in enumerate(lines) if code in line]
        if len(hits) != 1:
            where = f"{target} {options.get('pyobject', '')}".strip()
            raise ValueError(
                f"the reading guide names {code!r} in {where}, found on {len(hits)} lines of it;"
                " update docs/reading-guide.md to the code as it is now"
            )
        numbers.append(hits[0])
    return numbers


def _highlight_formulas(text: str) -> str:
    """Add ``:emphasize-lines:`` to every listing of the reading guide; warn when code moved."""
    from sphinx.util import logging

    def fill(match: re.Match[str]) -> str:
        comments, opening, target, options = match.groups()
        (listing,) = formula_listings(match.group(0))
        try:
            numbers = highlighted_lines(*listing)
        except ValueError as error:
            logging.getLogger(__name__).warning(str(error), location="reading-guide")
            numbers = []
        extra = f":emphasize-lines: {', '.join(map(str, numbers))}\n" if numbers else ""
        return f"{comments}{opening}{options}{extra}```"

    return FORMULA_LISTING.sub(fill, text)


def _fill_placeholders(app: object, docname: str, source: list[str]) -> None:
    """The API page's modules, and the explorer's entry in the table of contents when present."""
    if docname == "api":
        source[0] = source[0].replace("<!-- api-modules -->", _api_sections())
    if docname == "reading-guide":
        source[0] = _highlight_formulas(source[0])
    if docname == "index":
        source[0] = source[0].replace("<!-- explorer -->", "explorer" if EXPLORER else "")


def _prose_attribute_types(
    app: object, what: str, name: str, obj: object, options: object, lines: list[str]
) -> None:
    """Show an attribute's type as written, like the parameters' (runs after napoleon)."""
    for i, line in enumerate(lines):
        if line.startswith(":vartype ") and "`" not in line:
            head, _, kind = line.partition(": ")
            if kind.strip():
                lines[i] = f"{head}: *{kind.strip()}*"


def home_of(target: str) -> str | None:
    """``vae_numpy.pkg.name`` of a re-exported class or function -> where it is documented."""
    import importlib

    module_name, _, name = target.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError):
        return None
    home = getattr(obj, "__module__", None)
    if home and home != module_name and hasattr(obj, "__qualname__"):
        return f"{home}.{obj.__qualname__}"
    return None


def _resolve_reexport(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """A reference to a re-exported name (vae_numpy.assignments.grade_notebook) links to its entry."""
    target = node.get("reftarget", "")
    if node.get("refdomain") != "py" or not target.startswith("vae_numpy."):
        return None
    home = home_of(target)
    if home is None:
        return None
    domain = env.get_domain("py")
    return domain.resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], home, node, contnode
    )


def _source_module(app: Any, modname: str, attribute: str) -> str | None:
    """viewcode: the module whose source holds an object (None: viewcode's own rule).

    An alias of an outside type (``Batch = tuple[np.ndarray, ...]``) stays in its module
    rather than pointing into ``builtins``, which has no source page. So does a re-exported
    constant (``derivation.SYMBOLS``, an instance whose class lives elsewhere): viewcode names a
    source page's links after the module of the first object it follows there, and following
    a constant documented under the re-exporting module would point every link of that page
    at anchors of the wrong module.
    """
    import importlib

    obj: Any = importlib.import_module(modname)
    for part in attribute.split("."):
        obj = getattr(obj, part, None)
    if not hasattr(obj, "__qualname__"):  # a constant, not a class or a function
        return modname
    home = getattr(obj, "__module__", None)
    if not isinstance(home, str):
        return None
    return home if home.startswith("vae_numpy") else modname


def setup(app: object) -> dict[str, bool]:
    app.connect("source-read", _fill_placeholders)  # type: ignore[attr-defined]
    app.connect("autodoc-process-docstring", _prose_attribute_types, priority=600)  # type: ignore[attr-defined]
    app.connect("missing-reference", _resolve_reexport)  # type: ignore[attr-defined]
    app.connect("viewcode-follow-imported", _source_module)  # type: ignore[attr-defined]
    return {"parallel_read_safe": True}
