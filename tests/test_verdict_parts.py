"""The parent-side pieces of a verdict: test plans, safe evaluation and value decoding."""

from __future__ import annotations

import ast
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codegym.execution.plans import UnsafeExpression, judge, plan_test, safe_eval
from codegym.execution.values import MalformedValue, decode

from .conftest import worker_module


@pytest.mark.parametrize(
    ("test", "kind", "source"),
    [
        ("assert f(1) == 2", "value", "f(1)"),
        ("assert 2 == f(1)", "value", "f(1)"),
        ("assert abs(f(1) - 0.5) < 1e-6", "value", "f(1)"),
        ("assert f(1)", "truth", "f(1)"),
        ("assert not f(1)", "truth", "f(1)"),
        ("assert f(1) == g(2)", "statement", "assert f(1) == g(2)"),
        ("assert 1 < f(1) < 3", "statement", "assert 1 < f(1) < 3"),
        ("x = f(1)\nassert x == 2", "statement", "x = f(1)\nassert x == 2"),
        ("assert True", "const", ""),
        ("assert f(1 == 2", "statement", "assert f(1 == 2"),
    ],
)
def test_plans(test, kind, source):
    plan = plan_test(test)
    assert plan.kind == kind and plan.source == source


def test_judging_never_runs_program_code():
    plan = plan_test("assert f(1) == [1, 2]")
    assert judge(plan, [1, 2]) and not judge(plan, [2, 1])
    tol = plan_test("assert abs(f(1) - 0.5) < 1e-6")
    assert judge(tol, 0.5000001) and not judge(tol, 0.6) and not judge(tol, "text")


@pytest.mark.parametrize("src", ["f(1)", "__import__('os')", "10 ** 10 ** 8", "'a' * 10 ** 9", "[x for x in y]", "{**a}"])
def test_safe_eval_refuses(src):
    with pytest.raises(UnsafeExpression):
        safe_eval(ast.parse(src, mode="eval").body)


@pytest.mark.parametrize(("src", "value"), [("-1.5", -1.5), ("set([1, 2])", {1, 2}), ("(1, [2], {'a': None})", (1, [2], {"a": None})), ("2 ** 10", 1024), ("float('inf')", math.inf)])
def test_safe_eval_literals(src, value):
    assert safe_eval(ast.parse(src, mode="eval").body) == value


def encode(value):
    """The same encoding the sandbox harness uses, imported from the worker script."""
    return worker_module()._encode(value, [10**6])


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=12,
)


@given(values)
def test_encode_decode_round_trip(value):
    decoded = decode(encode(value))
    assert decoded == value and type(decoded) is type(value)


@pytest.mark.parametrize("bad", [{"x": 1}, {"t": 1}, {"d": [[1]]}, {"s": [[1]]}, {"i": 5}, {"a": 1, "b": 2}, {"c": [1, 2]}])
def test_decode_rejects_malformed(bad):
    with pytest.raises(MalformedValue):
        decode(bad)
