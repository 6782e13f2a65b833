"""Integrity flags: references used, the published solution copied, submissions alike.

Flags are for the instructor's eyes; they never change a score.

* :func:`reference_flags` -- a static scan (the ``ast`` of the student's cells, and their
  strings) for the assignment's reference implementations: ``from vae_numpy.kl import
  kl_normal``, ``vae_numpy.kl.kl_normal``, ``getattr(module, "kl_normal")`` with the module
  named anywhere. While grading, the references are also withheld from the kernel (see
  :mod:`~vae_numpy.assignments.sandbox`); the flag says the student tried.
* :func:`copy_flag` -- the student's own code (what they wrote into the solution cells, i.e.
  the tokens that differ from the released template) compared with the published solution
  regions of the source notebook.
* :func:`near_identical_pairs` -- in ``grade-all``, the same comparison between every two
  submissions of an assignment.

The comparison is :class:`difflib.SequenceMatcher`'s ratio on normalised token sequences
(``tokenize``: whitespace and layout dropped, comments kept lower-cased, since copied code
brings its comments along), and again with comments dropped and the writer's own names replaced
by placeholders (:func:`renamed_tokens`), so that renaming variables does not hide a copy; the
higher ratio counts. A few hundred tokens per submission make the pairwise comparison of
a class of 100 a matter of seconds, without a dependency.
"""

from __future__ import annotations

import ast
import builtins
import difflib
import io
import itertools
import keyword
import tokenize
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "DEFAULT_SIMILARITY",
    "MIN_TOKENS",
    "code_tokens",
    "student_code",
    "own_tokens",
    "renamed_tokens",
    "similarity",
    "reference_flags",
    "copy_flag",
    "near_identical_pairs",
]

DEFAULT_SIMILARITY = 0.9
"""Similarity (0 to 1) from which two pieces of code are flagged as near-identical."""

MIN_TOKENS = 40
"""Fewer tokens of the student's own code than this are never flagged as copied."""

_SKIP = {
    tokenize.NL,
    tokenize.NEWLINE,
    tokenize.INDENT,
    tokenize.DEDENT,
    tokenize.ENCODING,
    tokenize.ENDMARKER,
}


def code_tokens(text: str) -> list[str]:
    """Normalised tokens of Python code: layout dropped, comments lower-cased and squeezed.

    Code that does not tokenize falls back to whitespace-separated words.
    """
    out: list[str] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type in _SKIP:
                continue
            if tok.type == tokenize.COMMENT:
                out.append(" ".join(tok.string.lower().split()))
            else:
                out.append(tok.string)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return text.split()
    return out


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


def own_tokens(source: Any, nb: Any, roles: Sequence[Any]) -> list[str]:
    """The tokens the student wrote: their cells minus the released template's tokens."""
    from .notebooks import grade_id_of
    from .release import release_cell

    templates = {grade_id_of(c): release_cell(c).source for c in source.cells}
    out: list[str] = []
    for cell, role in zip(nb.cells, roles, strict=True):
        if role.kind == "extra":
            out += code_tokens(cell.source)
        elif role.kind == "solution":
            mine = code_tokens(cell.source)
            given = code_tokens(templates.get(role.grade_id, ""))
            matcher = difflib.SequenceMatcher(None, given, mine, autojunk=False)
            for op, _, _, j1, j2 in matcher.get_opcodes():
                if op in ("replace", "insert"):
                    out += mine[j1:j2]
    return out


def published_tokens(source: Any) -> list[str]:
    """The tokens of the source's solution regions (between the solution markers)."""
    from .notebooks import BEGIN_SOLUTION, END_SOLUTION, cell_kind

    out: list[str] = []
    for cell in source.cells:
        if cell_kind(cell) != "solution":
            continue
        inside, lines = False, []
        for line in cell.source.split("\n"):
            if line.strip() == BEGIN_SOLUTION:
                inside = True
            elif line.strip() == END_SOLUTION:
                inside = False
            elif inside:
                lines.append(line.strip())
        out += code_tokens("\n".join(lines))
    return out


_KEPT_NAMES = set(keyword.kwlist) | set(keyword.softkwlist) | set(dir(builtins)) | {"self"}


def renamed_tokens(tokens: Sequence[str]) -> list[str]:
    """``tokens`` without comments and with every name the writer chose (not a keyword, a
    builtin, ``self`` or an attribute after a dot) replaced by ``$k``, k counting names in order
    of first appearance: renaming variables and deleting comments leave the result unchanged."""
    out: list[str] = []
    names: dict[str, str] = {}
    for tok in tokens:
        if tok.startswith("#"):
            continue
        if tok.isidentifier() and tok not in _KEPT_NAMES and (not out or out[-1] != "."):
            tok = names.setdefault(tok, f"${len(names)}")
        out.append(tok)
    return out


def similarity(a: Sequence[str], b: Sequence[str]) -> float:
    """How alike two token sequences are (1.0: identical): SequenceMatcher's ratio of the
    tokens, or of their :func:`renamed_tokens` when that is higher."""
    return max(_ratio(a, b), _ratio(renamed_tokens(a), renamed_tokens(b)))


def _ratio(a: Sequence[str], b: Sequence[str]) -> float:
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    if matcher.real_quick_ratio() < 0.5 or matcher.quick_ratio() < 0.5:
        return 0.0
    return matcher.ratio()


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


def copy_flag(
    source: Any, nb: Any, roles: Sequence[Any], threshold: float = DEFAULT_SIMILARITY
) -> str | None:
    """A flag when the student's own code is a near-copy of the published solution."""
    mine, published = own_tokens(source, nb, roles), published_tokens(source)
    if len(mine) < MIN_TOKENS or len(published) < MIN_TOKENS:
        return None
    ratio = similarity(mine, published)
    if ratio >= threshold:
        return (
            f"near-copy of the published solution: the solution cells are {ratio:.0%} "
            "identical to the source notebook's"
        )
    return None


def near_identical_pairs(
    tokens: Mapping[str, tuple[str, Sequence[str]]], threshold: float = DEFAULT_SIMILARITY
) -> list[tuple[str, str, float]]:
    """``(a, b, similarity)`` for every two submissions of the same assignment whose own code
    is near-identical; ``tokens`` maps a submission's name to (assignment, own tokens)."""
    pairs = []
    names = sorted(n for n, (_, toks) in tokens.items() if len(toks) >= MIN_TOKENS)
    for a, b in itertools.combinations(names, 2):
        if tokens[a][0] != tokens[b][0]:
            continue
        ratio = similarity(tokens[a][1], tokens[b][1])
        if ratio >= threshold:
            pairs.append((a, b, ratio))
    return pairs
