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
* :func:`near_identical_pairs` -- in ``grade-all``, the same comparison between every two
  submissions of an assignment.

How code is compared
--------------------
Winnowed fingerprints of normalised code (Schleimer, Wilkerson & Aiken, "Winnowing: local
algorithms for document fingerprinting", SIGMOD 2003; the method of MOSS and of the
``copydetect`` package), in three steps:

1. **Normalise** (:func:`normalized_tokens`). The cell is parsed with ``ast`` (comments go;
   docstrings are dropped) and rewritten: ``a += b`` becomes ``a = a + b``; in-place forms
   (``np.add(a, b, out=a)``, ``a[...] = e``, ``np.copyto(a, e)``) become assignments;
   ``np.dot``/``np.matmul``/``a.dot`` become ``@`` and ``np.square``/``np.power`` ``**``;
   ``np.sum(x)`` and ``x.sum()`` become one call form, module prefixes (``np.``, ``math.``)
   go; tuple assignments are split; aliases (``a = b``) are merged, ``x = a`` then
   ``x = f(x)`` (``x += b``) becomes ``x = f(a)``, temporaries used once and constants
   (``c = log(2 * pi)``) are inlined into their uses, so that split and merged expressions
   agree; ``for``, ``while`` and comprehensions become one loop form (``range(len(x))``,
   ``enumerate(x)``, ``d.items()``, a counted ``while`` iterate ``x``, and ``x[i]`` read in
   the body is the loop's element);
   runs of independent assignments are put in one canonical order (a topological order of
   their data dependencies, ties broken by their text). Every name the code defines
   (variables, parameters, its functions and classes, ``self.attribute``) becomes one
   placeholder, as MOSS does: renaming changes nothing. Library names (``exp``, ``sum``,
   ``check_layer``), numbers and strings are kept.
2. **Fingerprint** (:func:`fingerprints`): hashes of every k-gram of the token stream
   (:data:`KGRAM` tokens), of which winnowing keeps the minimum of every window of
   :data:`WINDOW` hashes: any match of ``KGRAM + WINDOW - 1`` tokens is seen, the work is
   linear in the number of tokens, and at most :data:`MAX_TOKENS` tokens of a submission
   are read (the flag says so when the cap is hit).
3. **Compare as sets.** The score is the share of the student's distinct fingerprints found
   in a source (:func:`containment`). Sets make the comparison blind to the order of
   statements and cells. The released template's fingerprints (signatures, docstrings,
   given lines) are removed from both sides first, and code with fewer than
   :data:`MIN_FINGERPRINTS` distinct fingerprints of its own is never flagged: there is too
   little of it to tell a copy from the one obvious answer. A library source is also judged
   on its own (:func:`library_passages`): its fingerprints that the published solution does
   not hold are its own way of writing the code, and a student's code holding
   :data:`LIBRARY_SHARE` of them (at least :data:`MIN_FINGERPRINTS`) is a copy of it however
   much else it holds. The library's code is read with its module's constants written out.

Why this method: an ``ast`` normalisation alone is defeated by any rewrite it does not know,
and a sequence alignment (``difflib``) is quadratic and falls apart when two lines are
swapped; fingerprint sets are linear, order-blind and degrade gracefully (an unknown rewrite
costs the k-grams around it, not the match). The normalisation undoes the edits students make
to disguise a copy, so that the fingerprints see through them. The threshold and the minimum
were calibrated on the corpus in ``tests/copy_corpus`` (independently written solutions that
must not be flagged, paraphrased copies that must be).
"""

from __future__ import annotations

import ast
import builtins
import copy
import io
import keyword
import re
import tokenize
import zlib
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

DEFAULT_SIMILARITY = 0.85
"""Share (0 to 1) of the student's fingerprints found in a source from which code is flagged."""

MIN_FINGERPRINTS = 30
"""Code with fewer distinct fingerprints of its own than this is never flagged as copied."""

MIN_MATCHED = 80
"""Matched fingerprints that flag code whatever their share: a long passage is a copy even
inside a longer submission."""

LIBRARY_SHARE = 0.5
"""Share (0 to 1) of a library source's distinctive fingerprints (those the published solution
does not hold) that, found in the student's code, flag it as a copy of that source, provided
they number at least :data:`MIN_FINGERPRINTS`."""

WHOLE_SHARE = 0.9
"""Share (0 to 1) of a library source's distinctive fingerprints from which the student's code
reproduces that source whole (see :data:`MIN_WHOLE`)."""

MIN_WHOLE = 20
"""Distinctive fingerprints, summed over the library sources reproduced whole
(:data:`WHOLE_SHARE` of each), that flag the code: two short helpers pasted whole are a copy
even when each alone is too short to judge."""

MIN_TOKENS = MIN_FINGERPRINTS
"""Former name of :data:`MIN_FINGERPRINTS` (kept for callers)."""

KGRAM = 9
"""Tokens per k-gram: shorter matches are noise (``V = V + V`` is in every program)."""

WINDOW = 4
"""Winnowing window: every match of ``KGRAM + WINDOW - 1`` tokens shares a fingerprint."""

MAX_TOKENS = 20_000
"""Normalised tokens of one submission (or source) read at most; the rest is not compared."""

_MAX_CHARS = 1_000_000  # characters of code parsed per cell; the token cap binds long before
_SORT_RUN = 40  # statements sorted together at most (the canonical order is quadratic in a run)
_INLINE_ROUNDS = 3
_INLINE_NODES = 60  # larger values are not inlined (chains of them would grow without bound)
_EXCERPT_LINES = 4  # lines of the student's code quoted in a flag

# --- tokens ------------------------------------------------------------------------------------

_SKIP = {
    tokenize.NL,
    tokenize.NEWLINE,
    tokenize.INDENT,
    tokenize.DEDENT,
    tokenize.ENCODING,
    tokenize.ENDMARKER,
}


def code_tokens(text: str) -> list[str]:
    """Tokens of Python code: layout dropped, comments lower-cased and squeezed.

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


_KEPT_NAMES = set(keyword.kwlist) | set(keyword.softkwlist) | set(dir(builtins))
_PLACEHOLDER = "V"


def renamed_tokens(tokens: Sequence[str]) -> list[str]:
    """``tokens`` without comments and with every name that is not a keyword, a builtin or an
    attribute after a dot replaced by one placeholder: renaming leaves the result unchanged."""
    out: list[str] = []
    for tok in tokens:
        if tok.startswith("#"):
            continue
        if tok.isidentifier() and tok not in _KEPT_NAMES and (not out or out[-1] != "."):
            tok = _PLACEHOLDER
        out.append(tok)
    return out


# --- normalisation -----------------------------------------------------------------------------

_MODULES = {"np", "numpy", "math", "scipy", "special", "integrate", "stats", "cmath"}
_BINARY_UFUNCS = {
    "add": ast.Add,
    "subtract": ast.Sub,
    "multiply": ast.Mult,
    "divide": ast.Div,
    "true_divide": ast.Div,
    "power": ast.Pow,
    "matmul": ast.MatMult,
    "dot": ast.MatMult,
}
# array methods that are also numpy functions: x.sum(axis=0) is written sum(x, axis=0)
_ARRAY_METHODS = {
    "sum", "mean", "max", "min", "prod", "std", "var", "reshape", "transpose", "copy",
    "astype", "clip", "cumsum", "argmax", "argmin", "squeeze", "ravel", "flatten", "any",
    "all", "round", "exp", "log", "sqrt", "fill",
}  # fmt: skip
_ITER_WRAPPERS = {"enumerate", "list", "sorted", "tuple", "reversed", "iter"}
_DICT_VIEWS = {"items", "keys", "values"}


def _root_name(node: ast.AST) -> str | None:
    """``self.m`` for ``self.m[k].x``, ``a`` for ``a[0]``: the variable a target writes."""
    while isinstance(node, ast.Subscript | ast.Starred):
        node = node.value
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return f"{node.value.id}.{node.attr}"
    while isinstance(node, ast.Attribute | ast.Subscript):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _module_call(func: ast.AST) -> str | None:
    """``exp`` for ``np.exp``/``numpy.exp``/``math.exp``/``np.linalg.norm``: a library
    function named without its module."""
    if isinstance(func, ast.Attribute):
        base = func.value
        while isinstance(base, ast.Attribute):
            if base.attr not in _MODULES and not base.attr.isidentifier():
                return None
            base = base.value
        if isinstance(base, ast.Name) and base.id in _MODULES:
            return func.attr
    return None


class _Canonical(ast.NodeTransformer):
    """Rewrite equivalent forms into one (see the module docstring, step 1)."""

    def visit_Expr(self, node: ast.Expr) -> Any:
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return None  # a docstring or a bare string
        call = node.value
        if isinstance(call, ast.Call):
            name = _module_call(call.func)
            out_kw = [k for k in call.keywords if k.arg == "out"]
            if name == "copyto" and len(call.args) == 2:
                return self.visit(ast.copy_location(ast.Assign([call.args[0]], call.args[1]), node))
            if name is not None and out_kw:
                call.keywords = [k for k in call.keywords if k.arg != "out"]
                target = out_kw[0].value
                return self.visit(ast.copy_location(ast.Assign([target], call), node))
        return self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> Any:
        load = copy.deepcopy(node.target)
        for sub in ast.walk(load):
            if hasattr(sub, "ctx"):
                sub.ctx = ast.Load()
        value = ast.BinOp(load, node.op, node.value)
        return self.visit(ast.copy_location(ast.Assign([node.target], value), node))

    def visit_AnnAssign(self, node: ast.AnnAssign) -> Any:
        if node.value is None:
            return None
        return self.visit(ast.copy_location(ast.Assign([node.target], node.value), node))

    def visit_Assign(self, node: ast.Assign) -> Any:
        targets = []
        for target in node.targets:
            # x[...] = e and x[:] = e write all of x: the same as x = e
            if isinstance(target, ast.Subscript) and (
                (isinstance(target.slice, ast.Constant) and target.slice.value is Ellipsis)
                or (
                    isinstance(target.slice, ast.Slice)
                    and target.slice.lower is None
                    and target.slice.upper is None
                    and target.slice.step is None
                )
            ):
                target = target.value
            targets.append(target)
        node.targets = targets
        if (
            len(targets) == 1
            and isinstance(targets[0], ast.Tuple)
            and isinstance(node.value, ast.Tuple)
            and len(targets[0].elts) == len(node.value.elts)
            and not any(isinstance(e, ast.Starred) for e in targets[0].elts)
        ):
            return [
                self.visit(ast.copy_location(ast.Assign([t], v), node))
                for t, v in zip(targets[0].elts, node.value.elts, strict=True)
            ]
        return self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> Any:
        name = _module_call(node.func)  # before np.exp becomes exp
        self.generic_visit(node)
        func = node.func
        plain = [a for a in node.args if not isinstance(a, ast.Starred)]
        if name in _BINARY_UFUNCS and len(plain) == 2 == len(node.args) and not node.keywords:
            binop = ast.BinOp(plain[0], _BINARY_UFUNCS[name](), plain[1])
            return self.visit_BinOp(ast.copy_location(binop, node))
        if name == "square" and len(node.args) == 1 and not node.keywords:
            return ast.copy_location(ast.BinOp(node.args[0], ast.Pow(), ast.Constant(2)), node)
        if name == "negative" and len(node.args) == 1 and not node.keywords:
            return ast.copy_location(ast.UnaryOp(ast.USub(), node.args[0]), node)
        if name is not None:
            node.func = ast.copy_location(ast.Name(name, ast.Load()), func)
            return node
        if isinstance(func, ast.Attribute) and not (
            isinstance(func.value, ast.Name) and func.value.id in ("self", "cls")
        ):
            if func.attr == "dot" and len(node.args) == 1 and not node.keywords:
                binop = ast.BinOp(func.value, ast.MatMult(), node.args[0])
                return self.visit_BinOp(ast.copy_location(binop, node))
            if func.attr in _ARRAY_METHODS:
                node.args = [func.value, *node.args]
                node.func = ast.copy_location(ast.Name(func.attr, ast.Load()), func)
        return node

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        self.generic_visit(node)
        if isinstance(node.op, ast.Add | ast.Mult):
            # a + b and b + a are one sum: its terms in the order of their text
            terms = _chain(node, type(node.op))
            terms.sort(key=lambda t: _skeleton(t))
            out = terms[0]
            for term in terms[1:]:
                out = ast.copy_location(ast.BinOp(out, type(node.op)(), term), node)
            return out
        return node

    def visit_Attribute(self, node: ast.Attribute) -> Any:
        self.generic_visit(node)
        if isinstance(node.value, ast.Name) and node.value.id in _MODULES:
            return ast.copy_location(ast.Name(node.attr, node.ctx), node)  # np.pi -> pi
        return node


def _chain(node: ast.expr, op: type) -> list[ast.expr]:
    """The operands of ``a op b op c`` (``op`` one associative operator)."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, op):
        return _chain(node.left, op) + _chain(node.right, op)
    return [node]


def _skeleton(node: ast.AST) -> str:
    """The text of ``node`` with every name alike (the order does not depend on names)."""
    text = re.sub(r"\b(?:self|cls)\.\w+", "V", ast.unparse(node))  # self.x is a name too
    return "".join("V" if t.isidentifier() else t for t in _split_words(text))


def _split_words(text: str) -> list[str]:
    out, word = [], ""
    for ch in text:
        if ch.isalnum() or ch == "_":
            word += ch
            continue
        if word:
            out.append(word)
            word = ""
        out.append(ch)
    if word:
        out.append(word)
    return out


def _loop_iter(node: ast.expr) -> ast.expr:
    """What a loop goes over, without the ways of writing it: ``range(len(x))``,
    ``enumerate(x)``, ``sorted(x)``, ``d.items()`` all iterate ``x``."""
    for _ in range(4):
        if isinstance(node, ast.Call) and len(node.args) == 1 and not node.keywords:
            func, arg = node.func, node.args[0]
            if isinstance(func, ast.Name) and func.id in _ITER_WRAPPERS:
                node = arg
                continue
            if isinstance(func, ast.Name) and func.id == "range":
                if (
                    isinstance(arg, ast.Call)
                    and isinstance(arg.func, ast.Name)
                    and arg.func.id == "len"
                    and len(arg.args) == 1
                ):
                    node = arg.args[0]
                    continue
                node = arg
                continue
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _DICT_VIEWS
            and not node.args
        ):
            node = node.func.value
            continue
        break
    return node


def _stores_and_loads(nodes: Iterable[ast.AST]) -> tuple[dict[str, int], dict[str, int]]:
    stores: dict[str, int] = {}
    loads: dict[str, int] = {}
    for top in nodes:
        for node in ast.walk(top):
            if isinstance(node, ast.Name):
                table = loads if isinstance(node.ctx, ast.Load) else stores
                table[node.id] = table.get(node.id, 0) + 1
            elif isinstance(node, ast.arg):
                stores[node.arg] = stores.get(node.arg, 0) + 2  # never inlined
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                stores[node.name] = stores.get(node.name, 0) + 2
            elif isinstance(node, ast.Global | ast.Nonlocal):
                for name in node.names:
                    stores[name] = stores.get(name, 0) + 2
            elif isinstance(node, ast.alias):
                name = (node.asname or node.name).split(".")[0]
                stores[name] = stores.get(name, 0) + 2
    return stores, loads


class _Substitute(ast.NodeTransformer):
    def __init__(self, values: Mapping[str, ast.expr]) -> None:
        self.values = values

    def visit_Name(self, node: ast.Name) -> Any:
        if isinstance(node.ctx, ast.Load) and node.id in self.values:
            return copy.deepcopy(self.values[node.id])
        return node


def _inline(body: list[ast.stmt]) -> list[ast.stmt]:
    """Inline, in one scope's statements, names assigned once and read once (temporaries)
    and names assigned once from a plain name or attribute (aliases)."""
    for _ in range(_INLINE_ROUNDS):
        stores, loads = _stores_and_loads(body)
        values: dict[str, ast.expr] = {}
        assigned: dict[str, ast.stmt] = {}
        dropped: set[int] = set()
        for stmt in _direct_statements(body):
            if not (
                isinstance(stmt, ast.Assign)
                and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name)
            ):
                continue
            name = stmt.targets[0].id
            if sum(1 for _ in ast.walk(stmt.value)) > _INLINE_NODES:
                continue
            pure = isinstance(stmt.value, ast.Name | ast.Attribute | ast.Constant) or _constant(
                stmt.value
            )
            if stores.get(name) == 1 and (loads.get(name) == 1 or (pure and loads.get(name))):
                if any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(stmt.value)):
                    continue
                values[name] = stmt.value
                assigned[name] = stmt
                dropped.add(id(stmt))
        # a value that uses another name inlined in this round waits for the next round
        for name in [
            n
            for n, v in values.items()
            if any(isinstance(x, ast.Name) and x.id in values for x in ast.walk(v))
        ]:
            dropped.discard(id(assigned[name]))
            del values[name]
        if not values:
            break
        body = _drop(body, dropped)
        body = [_Substitute(values).visit(stmt) for stmt in body]
    return body


_CONSTANT_NAMES = {"pi", "e", "inf", "nan", "log", "exp", "sqrt", "log1p", "log2", "log10"}


def _constant(node: ast.expr) -> bool:
    """A value that reads no variable (``log(2 * pi)``, ``0.5``): inlined wherever it is used,
    like a named constant written out."""
    return all(
        not isinstance(n, ast.Attribute | ast.Subscript | ast.Lambda)
        and (not isinstance(n, ast.Name) or n.id in _CONSTANT_NAMES)
        for n in ast.walk(node)
    )


def _direct_statements(body: list[ast.stmt]) -> Iterable[ast.stmt]:
    """The statements of a scope, into loops and branches but not into nested functions."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        for attr in ("body", "orelse", "finalbody"):
            inner = getattr(stmt, attr, None)
            if isinstance(inner, list):
                yield from _direct_statements(inner)
        for handler in getattr(stmt, "handlers", []):
            yield from _direct_statements(handler.body)


def _drop(body: list[ast.stmt], dropped: set[int]) -> list[ast.stmt]:
    out = []
    for stmt in body:
        if id(stmt) in dropped:
            continue
        if not isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            for attr in ("body", "orelse", "finalbody"):
                inner = getattr(stmt, attr, None)
                if isinstance(inner, list) and inner:
                    setattr(stmt, attr, _drop(inner, dropped) or [ast.Pass()])
            for handler in getattr(stmt, "handlers", []):
                handler.body = _drop(handler.body, dropped) or [ast.Pass()]
        out.append(stmt)
    return out


def _counter_loop(stmt: ast.While) -> tuple[str, ast.expr] | None:
    """``(i, x)`` for ``while i < len(x)`` or ``while i < n`` (then x is n)."""
    test = stmt.test
    if (
        isinstance(test, ast.Compare)
        and len(test.ops) == 1
        and isinstance(test.ops[0], ast.Lt | ast.LtE)
        and isinstance(test.left, ast.Name)
    ):
        bound = test.comparators[0]
        if (
            isinstance(bound, ast.Call)
            and isinstance(bound.func, ast.Name)
            and bound.func.id == "len"
            and len(bound.args) == 1
        ):
            bound = bound.args[0]
        return test.left.id, bound
    return None


def _is_step(stmt: ast.stmt, name: str) -> bool:
    """``name = name + 1`` (an augmented assignment already rewritten) or ``name = 0``."""
    if not (
        isinstance(stmt, ast.Assign)
        and len(stmt.targets) == 1
        and isinstance(stmt.targets[0], ast.Name)
        and stmt.targets[0].id == name
    ):
        return False
    value = stmt.value
    if isinstance(value, ast.Constant):
        return value.value == 0
    if not (isinstance(value, ast.BinOp) and isinstance(value.op, ast.Add)):
        return False
    # i + 1, or 1 + i (a sum's terms are already in canonical order)
    pair = (value.left, value.right)
    return any(
        isinstance(a, ast.Name) and a.id == name and isinstance(b, ast.Constant) and b.value == 1
        for a, b in (pair, pair[::-1])
    )


class _Loops(ast.NodeTransformer):
    """One loop form: ``while i < len(x): ...; i += 1`` becomes ``for i in x`` (the counter's
    start and step go), and ``out = []`` then ``for t in it: out.append(e)`` becomes
    ``out = [e for t in it]``."""

    def generic_visit(self, node: ast.AST) -> ast.AST:
        super().generic_visit(node)
        for attr in ("body", "orelse", "finalbody"):
            block = getattr(node, attr, None)
            if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                setattr(node, attr, self.block(block))
        return node

    def block(self, body: list[ast.stmt]) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for stmt in body:
            if isinstance(stmt, ast.While) and not stmt.orelse:
                found = _counter_loop(stmt)
                if found is not None:
                    name, bound = found
                    if out and _is_step(out[-1], name):
                        out.pop()
                    inner = [s for s in stmt.body if not _is_step(s, name)]
                    loop = ast.For(ast.Name(name, ast.Store()), bound, inner or [ast.Pass()], [])
                    out.append(ast.copy_location(loop, stmt))
                    continue
            if (
                isinstance(stmt, ast.For)
                and not stmt.orelse
                and len(stmt.body) == 1
                and out
                and isinstance(out[-1], ast.Assign)
                and len(out[-1].targets) == 1
                and isinstance(out[-1].targets[0], ast.Name)
                and isinstance(out[-1].value, ast.List)
                and not out[-1].value.elts
            ):
                name = out[-1].targets[0].id
                call = stmt.body[0].value if isinstance(stmt.body[0], ast.Expr) else None
                if (
                    isinstance(call, ast.Call)
                    and isinstance(call.func, ast.Attribute)
                    and call.func.attr == "append"
                    and isinstance(call.func.value, ast.Name)
                    and call.func.value.id == name
                    and len(call.args) == 1
                ):
                    comp = ast.ListComp(
                        call.args[0], [ast.comprehension(stmt.target, stmt.iter, [], 0)]
                    )
                    out[-1] = ast.copy_location(ast.Assign(out[-1].targets, comp), out[-1])
                    continue
            out.append(stmt)
        return out


class _Elements(ast.NodeTransformer):
    """In a loop over ``x`` with target ``i`` (``for i in range(len(x))``, ``for i, v in
    enumerate(x)``, ``for k in d``, a counted ``while``), the element ``x[i]`` read in the body
    is written as the target itself: ``v = x[i]`` becomes an alias of the target, which
    :func:`_merge_aliases` then removes, as if the loop had gone over the elements."""

    def visit_For(self, node: ast.For) -> Any:
        self.generic_visit(node)
        target = node.target
        if isinstance(target, ast.Tuple) and target.elts:
            target = target.elts[0]
        if not isinstance(target, ast.Name):
            return node
        seq = ast.dump(_loop_iter(node.iter))
        name = target.id

        class _Element(ast.NodeTransformer):
            def visit_Subscript(self, sub: ast.Subscript) -> Any:
                self.generic_visit(sub)
                if (
                    isinstance(sub.ctx, ast.Load)
                    and isinstance(sub.slice, ast.Name)
                    and sub.slice.id == name
                    and ast.dump(sub.value) == seq
                ):
                    return ast.copy_location(ast.Name(name, ast.Load()), sub)
                return sub

        node.body = [_Element().visit(stmt) for stmt in node.body]
        return node


class _Rename(ast.NodeTransformer):
    def __init__(self, old: str, new: str) -> None:
        self.old, self.new = old, new

    def visit_Name(self, node: ast.Name) -> Any:
        if node.id == self.old:
            node.id = self.new
        return node


def _merge_aliases(body: list[ast.stmt], params: set[str]) -> list[ast.stmt]:
    """Remove, in one scope, every ``a = b`` between two plain names, ``a`` becoming ``b``
    everywhere: every name the code defines is one placeholder, so an alias carries nothing
    but a changed count of reads (which decides what is inlined)."""
    for _ in range(_INLINE_ROUNDS * 4):
        found: tuple[ast.stmt, str, str] | None = None
        for stmt in _direct_statements(body):
            if (
                isinstance(stmt, ast.Assign)
                and len(stmt.targets) == 1
                and isinstance(target := stmt.targets[0], ast.Name)
                and isinstance(stmt.value, ast.Name)
                and target.id != stmt.value.id
                and target.id not in params
            ):
                found = (stmt, target.id, stmt.value.id)
                break
        if found is None:
            break
        alias, old, new = found
        body = _drop(body, {id(alias)})
        body = [_Rename(old, new).visit(stmt) for stmt in body]
    return body


def _merge_updates(body: list[ast.stmt]) -> list[ast.stmt]:
    """``x = a`` followed by ``x = f(x)`` (``x`` read once, as ``x += b`` is) becomes
    ``x = f(a)``, in every block of one scope: an expression split into updates of one
    variable reads as the expression."""
    out: list[ast.stmt] = []
    for stmt in body:
        if not isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            for attr in ("body", "orelse", "finalbody"):
                inner = getattr(stmt, attr, None)
                if isinstance(inner, list) and inner:
                    setattr(stmt, attr, _merge_updates(inner))
        prev = out[-1] if out else None
        if (
            isinstance(prev, ast.Assign)
            and isinstance(stmt, ast.Assign)
            and len(prev.targets) == len(stmt.targets) == 1
            and isinstance(prev.targets[0], ast.Name)
            and isinstance(stmt.targets[0], ast.Name)
            and prev.targets[0].id == stmt.targets[0].id
            and sum(1 for _ in ast.walk(prev.value)) <= _INLINE_NODES
        ):
            name = prev.targets[0].id
            reads = [n for n in ast.walk(stmt.value) if isinstance(n, ast.Name) and n.id == name]
            if len(reads) == 1:
                value = _Substitute({name: prev.value}).visit(stmt.value)
                merged = ast.Assign([prev.targets[0]], _Canonical().visit(value))
                out[-1] = ast.copy_location(merged, prev)
                continue
        out.append(stmt)
    return out


def _params(node: ast.AST) -> set[str]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        args = node.args
        every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
        return {a.arg for a in every if a is not None}
    return set()


def _simplify(body: list[ast.stmt], params: set[str]) -> list[ast.stmt]:
    body = _merge_updates(body)
    body = _merge_aliases(body, params)
    return _inline(body)


def _scopes(tree: ast.Module) -> None:
    """Loops in one form, then aliases, updates and temporaries of the module and of every
    function, innermost first; twice, since each step can open the way to the others."""
    for _ in range(2):
        _Loops().visit(tree)
        tree.body = _Loops().block(tree.body)
        _Elements().visit(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                node.body = _simplify(node.body, _params(node)) or [ast.Pass()]
        tree.body = _simplify(tree.body, set())
    _Canonical().visit(tree)  # sums and products grown by inlining: their terms in order


@dataclass
class _Tok:
    text: str
    line: int


class _Emitter:
    """Tokens of a normalised tree, each with the line of the student's code it came from."""

    def __init__(self, defined: set[str]) -> None:
        self.defined = defined
        self.out: list[_Tok] = []
        self.line = 1

    def emit(self, text: str) -> None:
        self.out.append(_Tok(text, self.line))

    def block(self, body: Sequence[ast.stmt]) -> None:
        self.emit("{")
        for stmt in _canonical_order(body, self):
            self.stmt(stmt)
        self.emit("}")

    def stmt(self, node: ast.stmt) -> None:
        self.line = getattr(node, "lineno", self.line)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            self.emit("def")
            args = node.args
            for _ in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
                self.emit(_PLACEHOLDER)
            for default in [*args.defaults, *(d for d in args.kw_defaults if d is not None)]:
                self.expr(default)
            self.block(node.body)
        elif isinstance(node, ast.ClassDef):
            self.emit("class")
            for base in node.bases:
                self.expr(base)
            self.block(node.body)
        elif isinstance(node, ast.For | ast.AsyncFor):
            self.emit("loop")
            self.expr(_loop_iter(node.iter))
            self.block(node.body)
            if node.orelse:
                self.block(node.orelse)
        elif isinstance(node, ast.While):
            self.emit("loop")
            self.expr(node.test)
            self.block(node.body)
        elif isinstance(node, ast.If):
            self.emit("if")
            self.expr(node.test)
            self.block(node.body)
            if node.orelse:
                self.emit("else")
                self.block(node.orelse)
        elif isinstance(node, ast.With | ast.AsyncWith):
            self.emit("with")
            for item in node.items:
                self.expr(item.context_expr)
            self.block(node.body)
        elif isinstance(node, ast.Try):
            self.emit("try")
            self.block(node.body)
            for handler in node.handlers:
                self.emit("except")
                self.block(handler.body)
            if node.finalbody:
                self.block(node.finalbody)
        elif isinstance(node, ast.Import | ast.ImportFrom | ast.Pass | ast.Global):
            return  # imports name modules, not what the code does
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                self.expr(target)
                self.emit("=")
            self.expr(node.value)
            self.emit(";")
        else:
            self.expr_text(ast.unparse(node))
            self.emit(";")

    def expr(self, node: ast.AST) -> None:
        if isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
            self.emit("loop")
            for gen in node.generators:
                self.expr(_loop_iter(gen.iter))
                for cond in gen.ifs:
                    self.emit("if")
                    self.expr(cond)
            self.emit("{")
            if isinstance(node, ast.DictComp):
                self.expr(node.key)
                self.expr(node.value)
            else:
                self.expr(node.elt)
            self.emit("}")
            return
        if isinstance(node, ast.JoinedStr):
            self.emit("STR")
            return
        self.expr_text(ast.unparse(node))

    def expr_text(self, text: str) -> None:
        try:
            raw = list(tokenize.generate_tokens(io.StringIO(text).readline))
        except (tokenize.TokenError, IndentationError, SyntaxError):  # pragma: no cover
            raw = []
        prev: list[str] = []
        raw = [t for t in raw if t.type not in _SKIP and t.type != tokenize.COMMENT]
        depth = 0
        for index, tok in enumerate(raw):
            s = tok.string
            depth += (s in "([{") - (s in ")]}") if tok.type == tokenize.OP else 0
            keyword_arg = (
                depth > 0 and index + 1 < len(raw) and raw[index + 1].string == "="
            )  # f(axis=axis): the keyword is the callee's name, not the writer's
            if tok.type == tokenize.NAME and s not in _KEPT_NAMES and not keyword_arg:
                after_dot = bool(prev) and prev[-1] == "."
                if after_dot and len(prev) >= 2 and prev[-2] == _PLACEHOLDER + "self":
                    self.out.pop()  # "self" "." attr -> one placeholder
                    self.out.pop()
                    self.out.append(_Tok(_PLACEHOLDER, self.line))
                    prev = [*prev[:-2], _PLACEHOLDER]
                    continue
                if not after_dot and s in ("self", "cls"):
                    prev.append(_PLACEHOLDER + "self")
                    self.emit(_PLACEHOLDER)
                    continue
                if not after_dot and s in self.defined:
                    s = _PLACEHOLDER
            elif tok.type == tokenize.NUMBER:
                s = _number(s)
            elif tok.type == tokenize.STRING:
                s = s if len(s) <= 40 else "STR"
            prev.append(s)
            self.emit(s)


def _number(text: str) -> str:
    try:
        value = complex(text.replace("_", "")) if text[-1] in "jJ" else float(text)
    except ValueError:  # pragma: no cover
        return text
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _place(node: ast.AST) -> str | None:
    """``x``, ``x.a``, ``x['k']`` or ``x.a['k']``: a place a statement reads or writes."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _place(node.value)
        return None if base is None else f"{base}.{node.attr}"
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        base = _place(node.value)
        return None if base is None else f"{base}[{node.slice.value!r}]"
    return None


def _accessed(node: ast.AST, out: set[str]) -> None:
    place = _place(node)
    if place is not None:
        out.add(place)
        return
    for child in ast.iter_child_nodes(node):
        _accessed(child, out)


def _conflict(a: set[str], b: set[str]) -> bool:
    for x in a:
        for y in b:
            if x == y or x.startswith((y + ".", y + "[")) or y.startswith((x + ".", x + "[")):
                return True
    return False


def _reads_writes(stmt: ast.stmt) -> tuple[set[str], set[str]]:
    reads: set[str] = set()
    writes: set[str] = set()
    if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return reads, {stmt.name}
    if isinstance(stmt, ast.Assign):
        for target in stmt.targets:
            parts = target.elts if isinstance(target, ast.Tuple | ast.List) else [target]
            for part in parts:
                place = _place(part)
                if place is None:  # x[i] = ...: writes x, reads i
                    root = _root_name(part)
                    if root is not None:
                        writes.add(root)
                    _accessed(part, reads)
                else:
                    writes.add(place)
        _accessed(stmt.value, reads)
    else:
        _accessed(stmt, reads)
    return reads, writes


def _canonical_order(body: Sequence[ast.stmt], emitter: _Emitter) -> list[ast.stmt]:
    """``body`` with every run of consecutive assignments in a canonical order: a topological
    order of their dependencies, ties broken by the statements' normalised text."""
    out: list[ast.stmt] = []
    run: list[ast.stmt] = []

    def flush() -> None:
        out.extend(_sort_run(run, emitter) if len(run) > 1 else run)
        run.clear()

    for stmt in body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            run.append(stmt)  # definitions run nothing: their order is free
        elif isinstance(stmt, ast.Assign) and not any(
            isinstance(n, ast.Call | ast.Yield | ast.Await | ast.NamedExpr) and not _pure_call(n)
            for n in ast.walk(stmt)
        ):
            run.append(stmt)
            if len(run) >= _SORT_RUN:
                flush()
        else:
            flush()
            out.append(stmt)
    flush()
    return out


def _pure_call(node: ast.AST) -> bool:
    """A call taken to have no side effect: a library function (``exp(x)``, ``sum(x)``)."""
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name)


def _sort_run(run: list[ast.stmt], emitter: _Emitter) -> list[ast.stmt]:
    keys = []
    for stmt in run:
        probe = _Emitter(emitter.defined)
        probe.stmt(stmt)
        keys.append(" ".join(t.text for t in probe.out))
    rw = [_reads_writes(s) for s in run]
    n = len(run)
    deps: list[set[int]] = [set() for _ in range(n)]
    for j in range(n):
        rj, wj = rw[j]
        for i in range(j):
            ri, wi = rw[i]
            if _conflict(wi, rj | wj) or _conflict(wj, ri):
                deps[j].add(i)
    done: list[int] = []
    left = set(range(n))
    while left:
        ready = [j for j in left if not (deps[j] & left)]
        pick = min(ready, key=lambda j: (keys[j], j))
        done.append(pick)
        left.discard(pick)
    return [run[j] for j in done]


def _defined_names(tree: ast.AST) -> set[str]:
    stores, _ = _stores_and_loads([tree])
    return {name for name in stores if name not in ("self", "cls")}


def normalized_tokens(code: str) -> list[tuple[str, int]]:
    """``(token, line)`` of ``code`` normalised as the module docstring describes (step 1);
    ``line`` is the line of ``code`` (1-based) the token comes from.

    Code that does not parse is read token by token (comments dropped, names replaced). At
    most about :data:`MAX_TOKENS` tokens are produced (see :func:`_normalize`).
    """
    return _normalize(code)[0]


def _normalize(code: str) -> tuple[list[tuple[str, int]], bool]:
    """:func:`normalized_tokens` and whether code was left out to keep within the cap."""
    if len(code) > _MAX_CHARS:
        code = code[: code.rfind("\n", 0, _MAX_CHARS) + 1]
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return _fallback_tokens(code), False
    # the top-level statements that fit in the token cap (at least two characters a token)
    budget, kept = 2 * MAX_TOKENS, 0
    lines = code.split("\n")
    for stmt in tree.body:
        budget -= sum(len(ln) for ln in lines[stmt.lineno - 1 : stmt.end_lineno or stmt.lineno])
        if budget < 0 and kept:
            break
        kept += 1
    truncated = kept < len(tree.body)
    tree.body = tree.body[:kept]
    try:
        defined = _defined_names(tree)
        tree = _Canonical().visit(tree)
        ast.fix_missing_locations(tree)
        _scopes(tree)
        emitter = _Emitter(defined)
        for stmt in _canonical_order(tree.body, emitter):
            emitter.stmt(stmt)
            if len(emitter.out) > MAX_TOKENS:
                break
    except RecursionError:
        return _fallback_tokens(code), truncated
    return [(t.text, t.line) for t in emitter.out], truncated


def _fallback_tokens(code: str) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(code).readline):
            if tok.type in _SKIP or tok.type == tokenize.COMMENT:
                continue
            s = tok.string
            if tok.type == tokenize.NAME and s not in _KEPT_NAMES:
                s = _PLACEHOLDER
            out.append((s, tok.start[0]))
            if len(out) > MAX_TOKENS:
                break
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    if not out:
        for number, line in enumerate(code.split("\n"), 1):
            out += [(w, number) for w in line.split()]
    return out


# --- fingerprints ------------------------------------------------------------------------------


@dataclass
class Fingerprints:
    """Winnowed fingerprints of some code.

    Attributes
    ----------
    hashes : dict of int to list of (str, int)
        Each fingerprint and where it occurs: ``(label, line)``, the cell's label and the line
        in that cell where the k-gram starts.
    tokens : int
        Normalised tokens read.
    truncated : bool
        True when :data:`MAX_TOKENS` was reached and the rest was not read.
    texts : dict of str to str
        The code of each label, for quoting matched lines.
    """

    hashes: dict[int, list[tuple[str, int]]] = field(default_factory=dict)
    tokens: int = 0
    truncated: bool = False
    texts: dict[str, str] = field(default_factory=dict)

    def add(self, label: str, code: str) -> None:
        """Fingerprint ``code`` (one cell) under ``label`` and add it, within the token cap."""
        self.texts[label] = code
        room = MAX_TOKENS - self.tokens
        if room <= 0:
            self.truncated = True
            return
        toks, cut = _normalize(code)
        self.truncated = self.truncated or cut
        if len(toks) > room:
            toks, self.truncated = toks[:room], True
        self.tokens += len(toks)
        for value, line in _winnow(toks):
            self.hashes.setdefault(value, []).append((label, line))

    def without(self, other: Fingerprints) -> Fingerprints:
        """These fingerprints less those of ``other`` (e.g. the released template)."""
        kept = {h: w for h, w in self.hashes.items() if h not in other.hashes}
        return Fingerprints(kept, self.tokens, self.truncated, dict(self.texts))

    def __len__(self) -> int:
        return len(self.hashes)


def _winnow(toks: Sequence[tuple[str, int]]) -> list[tuple[int, int]]:
    """``(hash, line)`` of the fingerprints winnowing selects from ``toks`` (linear time)."""
    ids = [zlib.crc32(t.encode("utf-8", "replace")) for t, _ in toks]
    if not ids:
        return []
    if len(ids) < KGRAM:  # too short for one k-gram: the whole of it is the one fingerprint
        return [(hash(tuple(ids)), toks[0][1])]
    grams = [hash(tuple(ids[i : i + KGRAM])) for i in range(len(ids) - KGRAM + 1)]
    picked: list[tuple[int, int]] = []
    window: deque[int] = deque()  # indices of grams, their hashes increasing
    last = -1
    for i, value in enumerate(grams):
        while window and grams[window[-1]] >= value:
            window.pop()
        window.append(i)
        if window[0] <= i - WINDOW:
            window.popleft()
        if i >= WINDOW - 1 and window[0] != last:
            last = window[0]
            picked.append((grams[last], toks[last][1]))
    return picked


def fingerprints(code: str | Sequence[tuple[str, str]]) -> Fingerprints:
    """The :class:`Fingerprints` of ``code``: a string, or ``(label, code)`` pairs (cells)."""
    out = Fingerprints()
    for label, text in [("code", code)] if isinstance(code, str) else code:
        out.add(label, text)
    return out


def containment(mine: Fingerprints, theirs: Fingerprints | Iterable[int]) -> float:
    """Share of ``mine``'s distinct fingerprints that ``theirs`` holds (0.0 when mine is empty)."""
    if not mine.hashes:
        return 0.0
    other = theirs.hashes if isinstance(theirs, Fingerprints) else set(theirs)
    return sum(1 for h in mine.hashes if h in other) / len(mine.hashes)


def similarity(a: Sequence[str], b: Sequence[str]) -> float:
    """How alike two pieces of code given as token sequences are (1.0: the same after
    normalisation): the larger share of either side's fingerprints found in the other."""
    fa, fb = fingerprints(" ".join(a)), fingerprints(" ".join(b))
    return max(containment(fa, fb), containment(fb, fa))


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


def matched_lines(mine: Fingerprints, matched: Iterable[int]) -> str:
    """Where the matched fingerprints sit in the student's code: per cell, the line ranges and
    an excerpt of the first few lines."""
    lines: dict[str, set[int]] = {}
    for h in matched:
        for label, line in mine.hashes.get(h, []):
            lines.setdefault(label, set()).add(line)
    parts = []
    for label, found in lines.items():
        ranges = _ranges(sorted(found))
        text = mine.texts.get(label, "").split("\n")
        first = min(found)
        excerpt = " | ".join(
            text[i - 1].strip()
            for i in range(first, min(first + _EXCERPT_LINES, len(text) + 1))
            if text[i - 1].strip()
        )
        parts.append(f"{label} lines {ranges}: {excerpt[:240]}")
    return "; ".join(parts)


def _ranges(numbers: Sequence[int]) -> str:
    out: list[str] = []
    start = prev = numbers[0]
    for n in [*numbers[1:], None]:
        if n is not None and n <= prev + 2:  # a gap of one line is the same passage
            prev = n
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return ", ".join(out[:6]) + (", ..." if len(out) > 6 else "")


def copy_score(mine: Fingerprints, sources: Mapping[str, Fingerprints]) -> tuple[float, list[str]]:
    """The share of ``mine`` found in the sources together, and the sources that hold any of
    it, most first."""
    union: set[int] = set()
    counts = {}
    for name, theirs in sources.items():
        shared = {h for h in mine.hashes if h in theirs.hashes}
        union |= shared
        if shared:
            counts[name] = len(shared)
    order = sorted(counts, key=lambda n: (-counts[n], n))
    return (len(union) / len(mine) if len(mine) else 0.0), order


def is_copy(score: float, size: int, threshold: float = DEFAULT_SIMILARITY) -> bool:
    """The decision: ``size`` distinct fingerprints of which a share ``score`` matched are a
    copy when the share reaches ``threshold`` (and ``size`` :data:`MIN_FINGERPRINTS`), or when
    the matched fingerprints reach :data:`MIN_MATCHED`."""
    if size < MIN_FINGERPRINTS:
        return False
    return score >= threshold or round(score * size) >= MIN_MATCHED


def library_passages(
    mine: Fingerprints, sources: Mapping[str, Fingerprints]
) -> dict[str, tuple[int, int]]:
    """The library sources whose own code the student reproduced: ``name -> (found, size)``.

    A library source's distinctive fingerprints are those the published solution does not hold
    (its validation, blocking, state handling, its own way of writing the maths; what it shares
    with the published solution is the one obvious answer). A source is reproduced when at
    least :data:`LIBRARY_SHARE` of them, and at least :data:`MIN_FINGERPRINTS`, are in
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


def near_identical_pairs(
    tokens: Mapping[str, tuple[str, Fingerprints]], threshold: float = DEFAULT_SIMILARITY
) -> list[tuple[str, str, float]]:
    """``(a, b, similarity)`` for every two submissions of the same assignment whose own code
    is alike; ``tokens`` maps a submission's name to (assignment, :func:`own_fingerprints`).

    The similarity of a pair is the share of the smaller submission's fingerprints that the
    other holds. Pairs are found through an inverted index (fingerprint -> submissions), so
    the work grows with the fingerprints shared, not with the square of the class; a
    fingerprint held by more than half of a class of ten or more is common code and skipped.
    """
    groups: dict[str, list[str]] = {}
    for name, (assignment, prints) in tokens.items():
        if len(prints) >= MIN_FINGERPRINTS:
            groups.setdefault(assignment, []).append(name)
    pairs = []
    for names in groups.values():
        names.sort()
        index: dict[int, list[int]] = {}
        for i, name in enumerate(names):
            for h in tokens[name][1].hashes:
                index.setdefault(h, []).append(i)
        common = len(names) // 2 if len(names) >= 10 else len(names)
        shared: dict[tuple[int, int], int] = {}
        for holders in index.values():
            if len(holders) < 2 or len(holders) > common:
                continue
            for x in range(len(holders)):
                for y in range(x + 1, len(holders)):
                    key = (holders[x], holders[y])
                    shared[key] = shared.get(key, 0) + 1
        for (i, j), count in sorted(shared.items()):
            a, b = names[i], names[j]
            size = min(len(tokens[a][1]), len(tokens[b][1]))
            ratio = count / size
            if is_copy(ratio, size, threshold):
                pairs.append((a, b, ratio))
    return pairs
