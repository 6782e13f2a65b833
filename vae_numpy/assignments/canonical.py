"""Canonical forms: the equivalent ways of writing one statement or expression made one.

The first rewrite of a student's code in the copy detection (normalise -> fingerprint -> flag;
the method is explained in :mod:`~vae_numpy.assignments.integrity`, step 1): ``a += b`` becomes
``a = a + b``, in-place numpy calls (``out=``, ``np.copyto``, ``a[...] = e``) become
assignments, ``np.dot``/``np.matmul``/``a.dot`` become ``@`` and ``np.square``/``np.power``
``**``, module prefixes go, array methods become calls (``x.sum()`` is ``sum(x)``), tuple
assignments are split and the terms of a sum or a product are put in the order of their text.
Each statement is rewritten on its own; :mod:`~vae_numpy.assignments.normalize` then rewrites
whole scopes and :mod:`~vae_numpy.assignments.tokens` turns the tree into tokens.
"""

from __future__ import annotations

import ast
import copy
import re
from typing import Any

__all__ = ["canonical_form", "loop_iterable"]

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


def canonical_form(node: ast.AST) -> Any:
    """``node`` (a tree, a statement or an expression) with its equivalent forms rewritten into
    one, as the module docstring lists; the tree is rewritten in place and returned (a
    statement may come back as a list of statements, or as None when it was a docstring)."""
    return _Canonical().visit(node)


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
    """Rewrite equivalent forms into one (see the module docstring)."""

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


def loop_iterable(node: ast.expr) -> ast.expr:
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
