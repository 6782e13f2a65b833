"""Normalisation across statements: one loop form, aliases merged, temporaries inlined.

The second rewrite of a student's code in the copy detection (normalise -> fingerprint -> flag;
the method is explained in :mod:`~vae_numpy.assignments.integrity`, step 1). After
:mod:`~vae_numpy.assignments.canonical` has put each statement in one form,
:func:`simplify_scopes` works on the statements of the module and of every function together:
``for``, ``while`` and comprehensions become one loop form (and ``x[i]`` read in a loop over
``x`` its element), aliases (``a = b``) are merged, ``x = a`` then ``x = f(x)`` becomes
``x = f(a)``, and temporaries used once and constants are inlined into their uses, so that split
and merged expressions agree. :mod:`~vae_numpy.assignments.tokens` then emits the tokens.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Iterable, Mapping
from typing import Any

from .canonical import canonical_form, loop_iterable

__all__ = ["simplify_scopes", "defined_names"]

_INLINE_ROUNDS = 3
_INLINE_NODES = 60  # larger values are not inlined (chains of them would grow without bound)


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
        seq = ast.dump(loop_iterable(node.iter))
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
                merged = ast.Assign([prev.targets[0]], canonical_form(value))
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


def simplify_scopes(tree: ast.Module) -> None:
    """Rewrite ``tree`` in place: loops in one form, then aliases, updates and temporaries of
    the module and of every function, innermost first; twice, since each step can open the
    way to the others. ``tree`` has been through
    :func:`~vae_numpy.assignments.canonical.canonical_form` and has its locations fixed."""
    for _ in range(2):
        _Loops().visit(tree)
        tree.body = _Loops().block(tree.body)
        _Elements().visit(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                node.body = _simplify(node.body, _params(node)) or [ast.Pass()]
        tree.body = _simplify(tree.body, set())
    canonical_form(tree)  # sums and products grown by inlining: their terms in order


def defined_names(tree: ast.AST) -> set[str]:
    """Every name ``tree`` defines (assigned variables, parameters, functions, classes, imported
    names), ``self`` and ``cls`` excepted: the names the tokens replace by one placeholder."""
    stores, _ = _stores_and_loads([tree])
    return {name for name in stores if name not in ("self", "cls")}
