"""Stage 4, mutate: small faulty versions of the function under test (mutation testing).

A test set is only as good as the bugs it catches. Each mutant changes one thing in the function:

- ``binop``: an arithmetic/bitwise operator (``+``→``-``, ``*``→``/``, ``//``→``/``, ``%``→``*``...),
  also in augmented assignments;
- ``compare``: a comparison (``<``→``<=``, ``==``→``!=``, ``in``→``not in``...);
- ``boolop``: ``and``↔``or``; ``not``: a ``not`` removed; ``negate``: an ``if``/``while`` test negated;
- ``constant``: a number ±1 (or 0), a string emptied or extended, a bool flipped;
- ``return``: a returned expression replaced by ``None``;
- ``delete``: one statement (not a ``return``) replaced by ``pass``;
- ``loop``: ``break``↔``continue``; ``call``: ``min``↔``max``, ``any``↔``all``;
- ``index``: an integer subscript or slice bound moved by one.

Duplicates are removed on the normalised source (``ast.unparse``), including mutants that
normalise back to the original, and then on the compiled bytecode of the function (*trivial
compiler equivalence*, Papadakis et al. 2015): a mutant the compiler turns into the same code as the
original (``x * 1`` folded away, ``not a < b`` in an ``if``...) is equivalent, and one that compiles
like an earlier mutant is a duplicate; `mutant_set` counts the equivalent ones. Mutants are
complete programs: the function's lines of the program are replaced by the mutated function,
everything else is kept byte for byte.
"""

from __future__ import annotations

import ast
import dis
import random
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import CodeType

__all__ = ["Mutant", "MutateOptions", "mutant_set", "mutants", "splice"]


@dataclass(frozen=True)
class MutateOptions:
    """max_mutants: a seeded sample is kept when there are more (None keeps all)."""

    max_mutants: int | None = 60
    seed: int = 0


@dataclass(frozen=True)
class Mutant:
    """One mutant: the operator, the line it changed (in the program), and the whole program."""

    operator: str
    line: int
    program: str


_BINOP_SWAPS: dict[type, tuple[type, ...]] = {
    ast.Add: (ast.Sub, ast.Mult), ast.Sub: (ast.Add,), ast.Mult: (ast.Add, ast.FloorDiv), ast.Div: (ast.Mult, ast.FloorDiv),
    ast.FloorDiv: (ast.Div, ast.Mod), ast.Mod: (ast.FloorDiv,), ast.Pow: (ast.Mult,), ast.LShift: (ast.RShift,),
    ast.RShift: (ast.LShift,), ast.BitAnd: (ast.BitOr,), ast.BitOr: (ast.BitAnd,), ast.BitXor: (ast.BitOr,),
}  # fmt: skip
_COMPARE_SWAPS: dict[type, tuple[type, ...]] = {
    ast.Lt: (ast.LtE, ast.Gt), ast.LtE: (ast.Lt, ast.GtE), ast.Gt: (ast.GtE, ast.Lt), ast.GtE: (ast.Gt, ast.LtE),
    ast.Eq: (ast.NotEq,), ast.NotEq: (ast.Eq,), ast.In: (ast.NotIn,), ast.NotIn: (ast.In,),
    ast.Is: (ast.IsNot,), ast.IsNot: (ast.Is,),
}  # fmt: skip
_CALL_SWAPS = {"min": "max", "max": "min", "any": "all", "all": "any", "sorted": "reversed", "len": "bool"}

_PLACEHOLDER = "codegym_docstring_placeholder_7f3a"
Edit = tuple[str, int, Callable[[], None], Callable[[], None]]
"""(operator, line, apply, undo): a reversible in-place change of the function's AST."""


def _set(node: ast.AST, name: str, value: object) -> tuple[Callable[[], None], Callable[[], None]]:
    old = getattr(node, name)
    return (lambda: setattr(node, name, value)), (lambda: setattr(node, name, old))


def _replace_in_list(items: list[ast.AST], index: int, new: ast.AST) -> tuple[Callable[[], None], Callable[[], None]]:
    old = items[index]

    def apply() -> None:
        items[index] = new

    def undo() -> None:
        items[index] = old

    return apply, undo


def _constant_variants(value: object) -> list[object]:
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return sorted({value + 1, value - 1, 0} - {value})
    if isinstance(value, float):
        return [value + 1.0, 0.0] if value != 0.0 else [1.0]
    if isinstance(value, str):
        return ["", value + "X"] if value else ["X"]
    return []


def _edits(func: ast.FunctionDef) -> Iterator[Edit]:
    """Every single-point change to the body of ``func`` (docstring, annotations and defaults untouched)."""
    docstring = func.body[0] if ast.get_docstring(func) is not None else None
    skip: set[int] = set()
    for node in ast.walk(func):  # annotations are not behaviour
        for ann in [getattr(node, "annotation", None), getattr(node, "returns", None)]:
            if ann is not None:
                skip |= {id(n) for n in ast.walk(ann)}
    if docstring is not None:
        skip |= {id(n) for n in ast.walk(docstring)}
    skip |= {id(n) for d in func.args.defaults + func.args.kw_defaults if d is not None for n in ast.walk(d)}
    for node in ast.walk(func):
        if id(node) in skip:
            continue
        line = getattr(node, "lineno", func.lineno)
        if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in _BINOP_SWAPS:
            for new in _BINOP_SWAPS[type(node.op)]:
                yield ("binop", line, *_set(node, "op", new()))
        elif isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                for new in _COMPARE_SWAPS.get(type(op), ()):
                    ops = list(node.ops)
                    ops[i] = new()
                    yield ("compare", line, *_set(node, "ops", ops))
        elif isinstance(node, ast.BoolOp):
            yield ("boolop", line, *_set(node, "op", ast.Or() if isinstance(node.op, ast.And) else ast.And()))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
            yield from _unwrap_edits(func, node, "not" if isinstance(node.op, ast.Not) else "constant")
        elif isinstance(node, ast.Constant) and not isinstance(node.value, (bytes, type(None), type(...))):
            for value in _constant_variants(node.value):
                yield ("constant", line, *_set(node, "value", value))
        elif isinstance(node, (ast.If, ast.While)):
            yield ("negate", line, *_set(node, "test", ast.UnaryOp(op=ast.Not(), operand=node.test)))
        elif isinstance(node, ast.Return) and node.value is not None and not (
            isinstance(node.value, ast.Constant) and node.value.value is None
        ):
            yield ("return", line, *_set(node, "value", ast.Constant(value=None)))
        elif isinstance(node, (ast.Break, ast.Continue)):
            yield from _swap_loop_control(func, node)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _CALL_SWAPS:
            yield ("call", line, *_set(node.func, "id", _CALL_SWAPS[node.func.id]))
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and type(node.slice.value) is int:
            yield ("index", line, *_set(node.slice, "value", node.slice.value + 1))
        elif isinstance(node, ast.Slice):
            for name in ("lower", "upper"):
                bound = getattr(node, name)
                if bound is not None and not (isinstance(bound, ast.Constant)):
                    new = ast.BinOp(left=bound, op=ast.Add(), right=ast.Constant(value=1))
                    yield ("index", line, *_set(node, name, new))
        for field in ("body", "orelse", "finalbody"):
            stmts = getattr(node, field, None)
            if not isinstance(stmts, list):
                continue
            for i, stmt in enumerate(stmts):
                # deleting a return is the "return" mutant again (None either way)
                if stmt is docstring or isinstance(stmt, (ast.Pass, ast.Return, ast.FunctionDef, ast.ClassDef)):
                    continue
                yield ("delete", stmt.lineno, *_replace_in_list(stmts, i, ast.Pass()))


def _parents(func: ast.FunctionDef) -> dict[int, tuple[ast.AST, str, int | None]]:
    where: dict[int, tuple[ast.AST, str, int | None]] = {}
    for parent in ast.walk(func):
        for name, value in ast.iter_fields(parent):
            if isinstance(value, list):
                for i, child in enumerate(value):
                    if isinstance(child, ast.AST):
                        where[id(child)] = (parent, name, i)
            elif isinstance(value, ast.AST):
                where[id(value)] = (parent, name, None)
    return where


def _unwrap_edits(func: ast.FunctionDef, node: ast.UnaryOp, operator: str) -> Iterator[Edit]:
    parent, name, index = _parents(func)[id(node)]
    line = node.lineno
    if index is None:
        yield (operator, line, *_set(parent, name, node.operand))
    else:
        yield (operator, line, *_replace_in_list(getattr(parent, name), index, node.operand))


def _swap_loop_control(func: ast.FunctionDef, node: ast.stmt) -> Iterator[Edit]:
    parent, name, index = _parents(func)[id(node)]
    new = ast.Continue() if isinstance(node, ast.Break) else ast.Break()
    if index is not None:
        yield ("loop", node.lineno, *_replace_in_list(getattr(parent, name), index, new))


def splice(program: str, lines: tuple[int, int], function_source: str) -> str:
    """``program`` with its lines ``lines`` (1-based, inclusive) replaced by ``function_source``."""
    kept = program.splitlines(keepends=True)
    start, end = lines
    indent = kept[start - 1][: len(kept[start - 1]) - len(kept[start - 1].lstrip())]
    new = "".join(indent + line if line.strip() else line for line in function_source.splitlines(keepends=True))
    return "".join(kept[: start - 1]) + new.rstrip("\n") + "\n" + "".join(kept[end:])


def _code_of(module: CodeType, entry: str) -> CodeType | None:
    """The code object of top-level function ``entry`` in a compiled module."""
    return next((c for c in module.co_consts if isinstance(c, CodeType) and c.co_name == entry), None)


_CONST_OPS = frozenset(dis.hasconst)
_EXTENDED_ARG = dis.opmap["EXTENDED_ARG"]


def _fingerprint(code: CodeType) -> tuple[object, ...]:
    """What a code object does, without line numbers: its bytecode, names, and the constants its
    instructions load (a constant left in the table by code the compiler removed does not count;
    nested code objects by their own fingerprint)."""
    raw, used, extended = code.co_code, set(), 0
    for i in range(0, len(raw), 2):
        op, arg = raw[i], raw[i + 1] | extended
        extended = arg << 8 if op == _EXTENDED_ARG else 0
        if op in _CONST_OPS:
            used.add(arg)
    consts = tuple(
        _fingerprint(c) if isinstance(c, CodeType) else (type(c).__name__, repr(c))
        for i, c in enumerate(code.co_consts) if i in used
    )  # fmt: skip
    return (raw, consts, code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars)


def mutants(program: str, entry: str, lines: tuple[int, int], options: MutateOptions = MutateOptions()) -> list[Mutant]:
    """The distinct, non-equivalent mutants of function ``entry`` of ``program`` (which spans ``lines``)."""
    return mutant_set(program, entry, lines, options)[0]


def mutant_set(
    program: str, entry: str, lines: tuple[int, int], options: MutateOptions = MutateOptions()
) -> tuple[list[Mutant], int]:
    """(distinct mutants, how many were dropped as compiling to the original's bytecode).

    Works on the AST and the compiler only; nothing is executed. Mutants that do not compile are
    dropped.
    """
    tree = ast.parse(program)
    func = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == entry)
    edits = list(_edits(func))
    # unparsing a long docstring for every mutant dominates the cost: unparse it once
    docstring = func.body[0] if ast.get_docstring(func) is not None else None
    restore = lambda text: text  # noqa: E731
    if isinstance(docstring, ast.Expr):
        real = ast.unparse(func).splitlines(keepends=True)
        docstring.value = ast.Constant(_PLACEHOLDER)
        stub = ast.unparse(func).splitlines(keepends=True)
        at = next(i for i, line in enumerate(stub) if _PLACEHOLDER in line)
        marker, rendered = stub[at], "".join(real[at : at + len(real) - len(stub) + 1])
        restore = lambda text: text.replace(marker, rendered, 1)  # noqa: E731
    original = ast.unparse(func)
    seen = {original}
    found: list[tuple[str, int, str]] = []
    for operator, line, apply, undo in edits:
        apply()
        try:
            text = ast.unparse(func)
        except (ValueError, AttributeError, RecursionError):
            text = original
        finally:
            undo()
        if text in seen:
            continue
        seen.add(text)
        found.append((operator, line, text))
    if options.max_mutants is not None and len(found) > options.max_mutants:
        found = sorted(random.Random(options.seed).sample(found, options.max_mutants), key=lambda m: m[1])
    def fingerprint(source: str) -> tuple[object, ...] | None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            code = _code_of(compile(source, "<mutant>", "exec", dont_inherit=True), entry)  # compiles only; nothing runs
        return _fingerprint(code) if code is not None else None

    try:
        compiled = {fingerprint(program)} - {None}
    except (SyntaxError, ValueError):
        compiled = set()
    original_code = set(compiled)
    result, equivalent = [], 0
    for operator, line, text in found:
        mutated = splice(program, lines, restore(text))
        try:
            code = fingerprint(mutated)
        except (SyntaxError, ValueError):
            continue
        if code is not None and code in compiled:
            equivalent += code in original_code
            continue
        if code is not None:
            compiled.add(code)
        result.append(Mutant(operator, line, mutated))
    return result, equivalent
