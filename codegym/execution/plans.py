"""How each test is judged: split a test into what the sandbox evaluates and what the parent checks.

For the common shapes the expected value never enters the sandbox:

- ``assert CALL == EXPECTED`` (any comparison operator, either side literal),
- ``assert abs(CALL - E) < TOL`` (and ``<=``, either operand order),
- ``assert CALL`` and ``assert not CALL``,

where EXPECTED, E and TOL are literals (or builtin constructors of literals such as
``set([1, 2])`` and ``float("inf")``). The sandbox evaluates only CALL and returns its value;
the parent compares. Every other test runs whole inside the sandbox and only its pass/fail comes
back: weaker evidence, reported as ``trusted=False``.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from codegym.sourcecode import parse

__all__ = ["Plan", "UnsafeExpression", "judge", "plan_test", "safe_eval"]


class UnsafeExpression(ValueError):
    """An expression the parent will not evaluate itself."""


_CONSTRUCTORS: dict[str, Callable[..., Any]] = {
    "set": set, "frozenset": frozenset, "tuple": tuple, "list": list, "dict": dict,
    "float": float, "int": int, "str": str, "bool": bool, "bytes": bytes, "complex": complex,
}  # fmt: skip
_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}  # fmt: skip
_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.Is: operator.is_, ast.IsNot: operator.is_not,
    ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}  # fmt: skip
_MAX_SIZE = 10_000


def safe_eval(node: ast.expr) -> Any:
    """The value of a literal-like expression, computed without running any code of the test."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        items = [safe_eval(e) for e in node.elts]
        return {ast.Tuple: tuple, ast.List: list, ast.Set: set}[type(node)](items)
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise UnsafeExpression("dict unpacking")
        return {safe_eval(k): safe_eval(v) for k, v in zip(node.keys, node.values)}  # type: ignore[arg-type]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd, ast.Not)):
        value = safe_eval(node.operand)
        return {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}[type(node.op)](value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left, right = safe_eval(node.left), safe_eval(node.right)
        if isinstance(node.op, ast.Pow) and (not isinstance(right, (int, float)) or abs(right) > 64):
            raise UnsafeExpression("large power")
        if isinstance(node.op, ast.Mult) and any(isinstance(v, (str, bytes, list, tuple)) for v in (left, right)):
            count = right if isinstance(right, int) else left
            if isinstance(count, int) and count > _MAX_SIZE:
                raise UnsafeExpression("large repetition")
        return _BINOPS[type(node.op)](left, right)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _CONSTRUCTORS
        and not node.keywords
        and len(node.args) <= 1
    ):
        return _CONSTRUCTORS[node.func.id](*(safe_eval(a) for a in node.args))
    raise UnsafeExpression(ast.dump(node)[:80])


def _try_safe(node: ast.expr) -> tuple[bool, Any]:
    try:
        return True, safe_eval(node)
    except (UnsafeExpression, TypeError, ValueError, ArithmeticError, RecursionError):
        return False, None


@dataclass(frozen=True)
class Plan:
    """How one test is judged.

    kind ``const``: decided in the parent alone (``verdict``); ``value``: the sandbox evaluates
    ``source`` and the parent applies ``check`` to its value; ``truth``: the same for ``assert CALL``
    and ``assert not CALL`` (a regex match object counts as a true value); ``statement``: the
    sandbox runs ``source`` whole and reports pass/fail (untrusted).
    """

    kind: str
    source: str = ""
    check: Callable[[Any], bool] | None = None
    verdict: bool = False
    expect: tuple[Any, ...] = ()
    """For ``CALL == EXPECTED``: (EXPECTED,), which lets the trusted worker stop a program at its
    first certainly-wrong value under ``fail_fast`` (the verdict is still decided here)."""

    @property
    def trusted(self) -> bool:
        return self.kind != "statement"

    @property
    def step(self) -> str:
        """The harness step kind that carries this plan into the sandbox."""
        return {"value": "e", "truth": "t", "statement": "s"}[self.kind]


def _abs_difference(node: ast.expr) -> tuple[ast.expr, Any] | None:
    """(CALL, E) for ``abs(CALL - E)`` or ``abs(E - CALL)``."""
    if not (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "abs"
        and len(node.args) == 1
        and not node.keywords
        and isinstance(node.args[0], ast.BinOp)
        and isinstance(node.args[0].op, ast.Sub)
    ):
        return None
    diff = node.args[0]
    ok, value = _try_safe(diff.right)
    if ok:
        return diff.left, value
    ok, value = _try_safe(diff.left)
    if ok:
        return diff.right, value
    return None


def _value_plan(expr: ast.expr) -> Plan:
    ok, value = _try_safe(expr)
    if ok:
        return Plan("const", verdict=bool(value))
    if isinstance(expr, ast.UnaryOp) and isinstance(expr.op, ast.Not):
        return Plan("truth", ast.unparse(expr.operand), lambda got: not got)
    if isinstance(expr, ast.Compare) and len(expr.ops) == 1:
        compare = _COMPARE[type(expr.ops[0])]
        left, right = expr.left, expr.comparators[0]
        right_ok, expected = _try_safe(right)
        if right_ok:
            diff = _abs_difference(left)
            if diff is not None:
                call, e = diff
                return Plan("value", ast.unparse(call), lambda got: compare(abs(got - e), expected))
            expect = (expected,) if isinstance(expr.ops[0], ast.Eq) else ()
            return Plan("value", ast.unparse(left), lambda got: compare(got, expected), expect=expect)
        left_ok, expected = _try_safe(left)
        if left_ok:
            expect = (expected,) if isinstance(expr.ops[0], ast.Eq) else ()
            return Plan("value", ast.unparse(right), lambda got: compare(expected, got), expect=expect)
        return Plan("statement", f"assert {ast.unparse(expr)}")
    if isinstance(expr, ast.Compare):
        return Plan("statement", f"assert {ast.unparse(expr)}")
    return Plan("truth", ast.unparse(expr), bool)


@lru_cache(maxsize=65536)
def plan_test(test: str) -> Plan:
    """The plan for one test snippet (cached: the same tests are run against many programs)."""
    try:
        module = parse(test)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return Plan("statement", test)
    if len(module.body) == 1 and isinstance(module.body[0], ast.Assert):
        return _value_plan(module.body[0].test)
    return Plan("statement", test)


def judge(plan: Plan, value: Any) -> bool:
    """Apply a value plan's check; any exception while comparing means not passed."""
    assert plan.check is not None, plan
    try:
        return bool(plan.check(value))
    except Exception:
        return False

