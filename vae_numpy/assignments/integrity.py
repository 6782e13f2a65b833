"""Integrity flags: references used, copied code, submissions alike.

Flags are for the instructor's eyes; they never change a score.

* :func:`reference_flags` -- a static scan (the ``ast`` of the student's cells, and their
  strings) for the assignment's reference implementations: ``from vae_numpy.kl import
  kl_normal``, ``vae_numpy.kl.kl_normal``, ``getattr(module, "kl_normal")`` with the module
  named anywhere. While grading, the references are also withheld from the kernel (see
  :mod:`~vae_numpy.assignments.sandbox`); the flag says the student tried.
* :func:`copy_flag` -- the student's own code compared with the published solution regions
  of the source notebook and with the library's own code of every withheld reference (the
  source's ``vae_numpy.references`` metadata, read from the package's module files with
  ``ast``, never imported).
* :func:`~vae_numpy.assignments.fingerprints.near_identical_pairs` -- in ``grade-all``, the
  same comparison between every two submissions of an assignment.

How code is compared
--------------------
Winnowed fingerprints of normalised code (Schleimer, Wilkerson & Aiken, "Winnowing: local
algorithms for document fingerprinting", SIGMOD 2003; the method of MOSS and of the
``copydetect`` package), in three steps:

1. **Normalise** (:func:`~vae_numpy.assignments.tokens.normalized_tokens`). The cell is
   parsed with ``ast`` (comments go; docstrings are dropped) and rewritten, one statement at
   a time (:mod:`~vae_numpy.assignments.canonical`): ``a += b`` becomes ``a = a + b``;
   in-place forms (``np.add(a, b, out=a)``, ``a[...] = e``, ``np.copyto(a, e)``) become
   assignments; ``np.dot``/``np.matmul``/``a.dot`` become ``@`` and
   ``np.square``/``np.power`` ``**``; ``np.sum(x)`` and ``x.sum()`` become one call form,
   module prefixes (``np.``, ``math.``) go; tuple assignments are split. Then across the
   statements of each scope (:mod:`~vae_numpy.assignments.normalize`): aliases (``a = b``)
   are merged, ``x = a`` then ``x = f(x)`` (``x += b``) becomes ``x = f(a)``, temporaries
   used once and constants (``c = log(2 * pi)``) are inlined into their uses, so that split
   and merged expressions agree; ``for``, ``while`` and comprehensions become one loop form
   (``range(len(x))``, ``enumerate(x)``, ``d.items()``, a counted ``while`` iterate ``x``,
   and ``x[i]`` read in the body is the loop's element). Last
   (:mod:`~vae_numpy.assignments.tokens`), runs of independent assignments are put in one
   canonical order (a topological order of their data dependencies, ties broken by their
   text). Every name the code defines (variables, parameters, its functions and classes,
   ``self.attribute``) becomes one placeholder, as MOSS does: renaming changes nothing.
   Library names (``exp``, ``sum``, ``check_layer``), numbers and strings are kept.
2. **Fingerprint** (:func:`~vae_numpy.assignments.fingerprints.fingerprints`): hashes of
   every k-gram of the token stream (:data:`~vae_numpy.assignments.fingerprints.KGRAM`
   tokens), of which winnowing keeps the minimum of every window of
   :data:`~vae_numpy.assignments.fingerprints.WINDOW` hashes: any match of
   ``KGRAM + WINDOW - 1`` tokens is seen, the work is linear in the number of tokens, and
   at most :data:`~vae_numpy.assignments.tokens.MAX_TOKENS` tokens of a submission are
   read (the flag says so when the cap is hit).
3. **Compare as sets.** The score is the share of the student's distinct fingerprints found
   in a source (:func:`~vae_numpy.assignments.fingerprints.containment`). Sets make the
   comparison blind to the order of statements and cells. The released template's
   fingerprints (signatures, docstrings, given lines) are removed from both sides first, and
   code with fewer than :data:`~vae_numpy.assignments.fingerprints.MIN_FINGERPRINTS` distinct
   fingerprints of its own is never flagged: there is too little of it to tell a copy from
   the one obvious answer. A library source is also judged on its own
   (:func:`library_passages`): its fingerprints that the published solution does not hold
   are its own way of writing the code, and a student's code holding :data:`LIBRARY_SHARE`
   of them (at least ``MIN_FINGERPRINTS``) is a copy of it however much else it holds. The
   library's code is read with its module's constants written out.

Why this method: an ``ast`` normalisation alone is defeated by any rewrite it does not know,
and a sequence alignment (``difflib``) is quadratic and falls apart when two lines are
swapped; fingerprint sets are linear, order-blind and degrade gracefully (an unknown rewrite
costs the k-grams around it, not the match). The normalisation undoes the edits students make
to disguise a copy, so that the fingerprints see through them. The threshold and the minimum
were calibrated on the corpus in ``tests/copy_corpus`` (independently written solutions that
must not be flagged, paraphrased copies that must be).

Where the code lives
--------------------
Each step is a module, in pipeline order: normalise (:mod:`~vae_numpy.assignments.canonical`,
:mod:`~vae_numpy.assignments.normalize`, :mod:`~vae_numpy.assignments.tokens`) -> fingerprint
(:mod:`~vae_numpy.assignments.fingerprints`, winnowing and the comparisons) -> flag (this
module: the student's code, the sources it is compared with, and the flags). Every name of
this module's ``__all__`` is importable from here, wherever it is defined.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .fingerprints import (
    DEFAULT_SIMILARITY,
    KGRAM,
    MIN_FINGERPRINTS,
    MIN_MATCHED,
    WINDOW,
    Fingerprints,
    containment,
    copy_score,
    fingerprints,
    is_copy,
    matched_lines,
    near_identical_pairs,
    similarity,
)
from .tokens import MAX_TOKENS, code_tokens, normalized_tokens, renamed_tokens

__all__ = [
    "DEFAULT_SIMILARITY",
    "MIN_FINGERPRINTS",
    "MIN_MATCHED",
    "LIBRARY_SHARE",
    "WHOLE_SHARE",
    "MIN_WHOLE",
    "MIN_TOKENS",
    "KGRAM",
    "WINDOW",
    "MAX_TOKENS",
    "Fingerprints",
    "code_tokens",
    "normalized_tokens",
    "fingerprints",
    "containment",
    "student_code",
    "own_tokens",
    "own_fingerprints",
    "source_fingerprints",
    "renamed_tokens",
    "similarity",
    "reference_flags",
    "copy_flag",
    "copy_score",
    "is_copy",
    "library_passages",
    "library_source",
    "matched_lines",
    "near_identical_pairs",
]

LIBRARY_SHARE = 0.5
"""Share (0 to 1) of a library source's distinctive fingerprints (those the published solution
does not hold) that, found in the student's code, flag it as a copy of that source, provided
they number at least :data:`~vae_numpy.assignments.fingerprints.MIN_FINGERPRINTS`."""

WHOLE_SHARE = 0.9
"""Share (0 to 1) of a library source's distinctive fingerprints from which the student's code
reproduces that source whole (see :data:`MIN_WHOLE`)."""

MIN_WHOLE = 20
"""Distinctive fingerprints, summed over the library sources reproduced whole
(:data:`WHOLE_SHARE` of each), that flag the code: two short helpers pasted whole are a copy
even when each alone is too short to judge."""

MIN_TOKENS = MIN_FINGERPRINTS
"""Former name of :data:`~vae_numpy.assignments.fingerprints.MIN_FINGERPRINTS` (kept for
callers)."""


# --- the student's code and the sources --------------------------------------------------------


def student_code(nb: Any, roles: Sequence[Any]) -> list[tuple[str, str]]:
    """``(label, code)`` of the student's cells (solution cells and cells they added)."""
    out = []
    for cell, role in zip(nb.cells, roles, strict=True):
        if role.kind in ("solution", "extra") and cell.cell_type == "code":
            label = (
                f"solution cell {role.grade_id!r}" if role.kind == "solution" else "an added cell"
            )
            out.append((label, cell.source))
    return out


def _template(source: Any) -> Fingerprints:
    """The fingerprints of the released template of every solution cell (what was given)."""
    from .notebooks import cell_kind, grade_id_of
    from .release import release_cell

    out = Fingerprints()
    for cell in source.cells:
        if cell.cell_type == "code" and cell_kind(cell) == "solution":
            out.add(str(grade_id_of(cell)), release_cell(cell).source)
    return out


def own_fingerprints(source: Any, nb: Any, roles: Sequence[Any]) -> Fingerprints:
    """The fingerprints of what the student wrote: their cells' less the released template's."""
    return fingerprints(student_code(nb, roles)).without(_template(source))


def own_tokens(source: Any, nb: Any, roles: Sequence[Any]) -> Fingerprints:
    """Former name of :func:`own_fingerprints` (what ``grade-all`` compares between pairs)."""
    return own_fingerprints(source, nb, roles)


def _published_cells(source: Any) -> list[tuple[str, str]]:
    from .notebooks import BEGIN_SOLUTION, END_SOLUTION, cell_kind, grade_id_of

    out = []
    for cell in source.cells:
        if cell.cell_type == "code" and cell_kind(cell) == "solution":
            lines = [
                line
                for line in cell.source.split("\n")
                if line.strip() not in (BEGIN_SOLUTION, END_SOLUTION)
            ]
            out.append((f"published {grade_id_of(cell)}", "\n".join(lines)))
    return out


def _package_dir() -> Path:
    return Path(__file__).resolve().parents[1]


def library_source(dotted: str) -> str | None:
    """The source text of ``vae_numpy.module.name`` (a top-level function or class), read from
    the package's module file with ``ast`` (nothing is imported); a name the module imports
    from another module of the package is followed there. None when it cannot be found."""
    found = _library_definition(dotted)
    return None if found is None else found[0]


def _library_code(dotted: str) -> str | None:
    """:func:`library_source` with the module's constants written out: ``ADAM_BLOCK`` becomes
    ``(4096)`` and ``LOG_2PI`` ``(np.log(2 * np.pi))``, as a student pasting the code would
    write them."""
    found = _library_definition(dotted)
    if found is None:
        return None
    text, module_text = found
    for node in ast.parse(module_text).body:
        if (
            isinstance(node, ast.Assign | ast.AnnAssign)
            and isinstance(
                target := (node.targets[0] if isinstance(node, ast.Assign) else node.target),
                ast.Name,
            )
            and node.value is not None
            and target.id.isupper()
        ):
            value = ast.get_source_segment(module_text, node.value) or ""
            if value and len(value) <= 80 and "\n" not in value:
                text = re.sub(rf"\b{re.escape(target.id)}\b", f"({value})", text)
    return text


def _library_definition(dotted: str) -> tuple[str, str] | None:
    """(source of the definition, text of its module) of ``vae_numpy.module.name``."""
    parts = dotted.split(".")
    if len(parts) < 3 or parts[0] != "vae_numpy":
        raise ValueError(f"a reference must be vae_numpy.MODULE.NAME, got {dotted!r}")
    package = _package_dir()
    module, name = parts[1:-1], parts[-1]
    for _ in range(5):
        path = package.joinpath(*module[:-1], module[-1] + ".py")
        if not path.is_file():
            path = package.joinpath(*module, "__init__.py")
        if not path.is_file():
            return None
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        follow = None
        for node in tree.body:
            if (
                isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
                and node.name == name
            ):
                segment = ast.get_source_segment(text, node)
                return None if segment is None else (segment, text)
            if isinstance(node, ast.ImportFrom) and node.level >= 1 and node.module:
                if any((a.asname or a.name) == name for a in node.names):
                    original = next(a.name for a in node.names if (a.asname or a.name) == name)
                    base = module[: len(module) - node.level]
                    follow = ([*base, *node.module.split(".")], original)
        if follow is None:
            return None
        module, name = follow
    return None


def source_fingerprints(source: Any) -> dict[str, Fingerprints]:
    """What a submission is compared with: ``"the published solution"`` and each withheld
    reference's library code (``"vae_numpy.optim.Adam"``), each less the released template."""
    template = _template(source)
    out = {"the published solution": fingerprints(_published_cells(source)).without(template)}
    declared = source.metadata.get("vae_numpy", {})
    refs = declared.get("references", []) if isinstance(declared, dict) else []
    for dotted in refs:
        try:
            text = _library_code(str(dotted))
        except (ValueError, OSError, SyntaxError):
            text = None
        if text:
            out[str(dotted)] = fingerprints([(str(dotted), text)]).without(template)
    return out


# --- flags -------------------------------------------------------------------------------------


def reference_flags(code: Sequence[tuple[str, str]], references: Sequence[str]) -> list[str]:
    """One flag per reference implementation the student's code refers to.

    ``code`` is ``(label, source)`` of the student's cells; ``references`` the assignment's
    dotted names (``vae_numpy.kl.kl_normal``).
    """
    flags = []
    for dotted in references:
        module, _, name = dotted.rpartition(".")
        where = []
        for label, text in code:
            try:
                tree = ast.parse(text)
            except SyntaxError:
                if name in text and module.rpartition(".")[2] in text:
                    where.append(f"{label} (mentions {name})")
                continue
            hits = _reference_hits(tree, module, name)
            if hits:
                where.append(f"{label} ({hits[0]})")
        if where:
            flags.append(f"reference implementation used: {dotted} in " + ", ".join(where))
    return flags


def _reference_hits(tree: ast.AST, module: str, name: str) -> list[str]:
    hits, attributes = [], []
    strings = set()
    imports_module = False
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == module and any(a.name in (name, "*") for a in node.names):
                hits.append(f"from {module} import {name}")
            if node.module == module or (
                module.startswith(node.module + ".")
                and any(module == f"{node.module}.{a.name}" for a in node.names)
            ):
                imports_module = True
        elif isinstance(node, ast.Import):
            if any(a.name == module or module.startswith(a.name + ".") for a in node.names):
                imports_module = True
        elif isinstance(node, ast.Attribute) and node.attr == name:
            base = node.value
            if not (isinstance(base, ast.Name) and base.id in ("self", "cls")):
                attributes.append(ast.unparse(node))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            strings.add(node.value)
    tail = module.rpartition(".")[2]
    hits += [a for a in attributes if imports_module or f"{tail}." in a]
    dotted = f"{module}.{name}"
    if any(dotted in s for s in strings):
        hits.append(f"the string {dotted!r}")
    elif name in strings and (imports_module or any(module in s for s in strings)):
        hits.append(f"the string {name!r} with {module} imported")
    return hits


def library_passages(
    mine: Fingerprints, sources: Mapping[str, Fingerprints]
) -> dict[str, tuple[int, int]]:
    """The library sources whose own code the student reproduced: ``name -> (found, size)``.

    A library source's distinctive fingerprints are those the published solution does not hold
    (its validation, blocking, state handling, its own way of writing the maths; what it shares
    with the published solution is the one obvious answer). A source is reproduced when at
    least :data:`LIBRARY_SHARE` of them, and at least
    :data:`~vae_numpy.assignments.fingerprints.MIN_FINGERPRINTS`, are in
    ``mine``: the student's code holds a real part of that source's own code, however much
    else it holds. Short sources (helpers of a few lines) are also reproduced when the student
    holds :data:`WHOLE_SHARE` of each of them and their distinctive fingerprints together
    number at least :data:`MIN_WHOLE`.
    """
    published = sources.get("the published solution", Fingerprints()).hashes
    out, whole = {}, {}
    for name, theirs in sources.items():
        if name == "the published solution":
            continue
        own = [h for h in theirs.hashes if h not in published]
        found = sum(1 for h in own if h in mine.hashes)
        if found >= MIN_FINGERPRINTS and found >= LIBRARY_SHARE * len(own):
            out[name] = (found, len(own))
        elif own and found >= WHOLE_SHARE * len(own):
            whole[name] = (found, len(own))
    if sum(found for found, _ in whole.values()) >= MIN_WHOLE:
        out.update(whole)
    return out


def copy_flag(
    source: Any, nb: Any, roles: Sequence[Any], threshold: float = DEFAULT_SIMILARITY
) -> str | None:
    """A flag when the student's own code is largely a copy of the published solution or of
    the library's code of a withheld reference; None otherwise.

    The flag gives the score (share of the student's fingerprints found in the sources), the
    sources matched and the lines of the student's cells that match, with an excerpt.
    """
    mine = own_fingerprints(source, nb, roles)
    if len(mine) < MIN_FINGERPRINTS:
        return None
    sources = source_fingerprints(source)
    score, order = copy_score(mine, sources)
    passages = library_passages(mine, sources)
    if not (is_copy(score, len(mine), threshold) or passages):
        return None
    # the published solution first when it matched: its name is what instructors look for
    order = sorted(order, key=lambda n: n != "the published solution")
    matched = {h for h in mine.hashes if any(h in sources[n].hashes for n in order)}
    shares = {n: containment(mine, sources[n]) for n in order}
    # the sources that hold a real part of the code (a fifth), each with its own share
    names = (
        ", ".join(f"{n} ({shares[n]:.0%})" for n in order if shares[n] >= 0.2 or n in passages)
        or order[0]
    )
    cap = f" (only the first {MAX_TOKENS:,} tokens compared)" if mine.truncated else ""
    own = "".join(
        f"; {found} of the {size} fingerprints of {n} that the published solution does not "
        "hold are in the student's code"
        for n, (found, size) in passages.items()
    )
    return (
        f"near-copy of {names}: {score:.0%} of the {len(mine)} fingerprints of the student's "
        f"own code match{cap}{own}; matched lines: {matched_lines(mine, matched)}"
    )
