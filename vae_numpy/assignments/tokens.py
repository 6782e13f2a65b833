"""Tokens of code: the normalised token stream that fingerprints are taken from.

The last step of normalising a student's code in the copy detection (normalise -> fingerprint ->
flag; the method is explained in :mod:`~vae_numpy.assignments.integrity`, step 1).
:func:`normalized_tokens` parses the code with ``ast``, rewrites it
(:mod:`~vae_numpy.assignments.canonical`, then :mod:`~vae_numpy.assignments.normalize`), puts
every run of independent assignments in one canonical order (a topological order of their data
dependencies, ties broken by their text) and emits the tokens, each with the line of the code
it comes from; every name the code defines becomes one placeholder. :func:`code_tokens` and
:func:`renamed_tokens` are the plain tokenizer's view, without ``ast``.
:mod:`~vae_numpy.assignments.fingerprints` hashes the stream.
"""

from __future__ import annotations

import ast
import builtins
import io
import keyword
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass

from .canonical import canonical_form, loop_iterable
from .normalize import defined_names, simplify_scopes

__all__ = [
    "MAX_TOKENS",
    "code_tokens",
    "renamed_tokens",
    "normalized_tokens",
    "normalize_within_cap",
]

MAX_TOKENS = 20_000
"""Normalised tokens of one submission (or source) read at most; the rest is not compared."""

_MAX_CHARS = 1_000_000  # characters of code parsed per cell; the token cap binds long before
_SORT_RUN = 40  # statements sorted together at most (the canonical order is quadratic in a run)

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
            self.expr(loop_iterable(node.iter))
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
                self.expr(loop_iterable(gen.iter))
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


def _root_name(node: ast.AST) -> str | None:
    """``self.m`` for ``self.m[k].x``, ``a`` for ``a[0]``: the variable a target writes."""
    while isinstance(node, ast.Subscript | ast.Starred):
        node = node.value
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return f"{node.value.id}.{node.attr}"
    while isinstance(node, ast.Attribute | ast.Subscript):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


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


def normalized_tokens(code: str) -> list[tuple[str, int]]:
    """``(token, line)`` of ``code`` normalised as the module docstring of
    :mod:`~vae_numpy.assignments.integrity` describes (step 1); ``line`` is the line of
    ``code`` (1-based) the token comes from.

    Code that does not parse is read token by token (comments dropped, names replaced). At
    most about :data:`MAX_TOKENS` tokens are produced (see :func:`normalize_within_cap`).
    """
    return normalize_within_cap(code)[0]


def normalize_within_cap(code: str) -> tuple[list[tuple[str, int]], bool]:
    """:func:`normalized_tokens` of ``code`` and whether code was left out to keep within the
    cap: only the top-level statements that fit in about :data:`MAX_TOKENS` tokens are read."""
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
        defined = defined_names(tree)
        tree = canonical_form(tree)
        ast.fix_missing_locations(tree)
        simplify_scopes(tree)
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
