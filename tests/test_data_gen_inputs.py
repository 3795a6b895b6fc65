"""data_gen stage 2: input generation (pure, nothing runs)."""

from __future__ import annotations

import ast

from hypothesis import given, settings
from hypothesis import strategies as st

from codegym.data_gen.inputs import InputGenerator, TypeSpec, parse_type, size, to_literal
from codegym.execution.plans import safe_eval

PROGRAM = '''def pick(nums: list[int], limit: int, word) -> int:
    """Pick.

    >>> pick([1, 2, 3], 2, "ab")
    2
    """
    if limit > 17 and word.startswith("zz"):
        return -1
    return len(nums)
'''


def test_parse_type():
    assert parse_type("List[int]") == TypeSpec("list", (TypeSpec("int"),))
    assert parse_type("Optional[str]") == TypeSpec("union", (TypeSpec("str"), TypeSpec("none")))
    assert parse_type("dict[str, float]").kind == "dict"
    assert parse_type("int | None").kind == "union"
    assert parse_type("Tuple[int, ...]").variadic
    assert parse_type("SomethingElse").kind == "any"


def test_generator_uses_hints_examples_and_boundaries():
    gen = InputGenerator.of(PROGRAM, "pick", ast.get_docstring(ast.parse(PROGRAM).body[0]), seed=3)
    assert gen.types[0].kind == "list" and gen.types[1].kind == "int"
    assert gen.types[2].kind == "str"  # inferred from word.startswith
    first = gen.initial()
    assert first[0] == ([1, 2, 3], 2, "ab")  # docstring example first
    limits = {args[1] for args in first}
    assert {16, 17, 18} <= limits  # boundary values around the literal 17
    assert any(isinstance(a[2], str) and a[2].startswith("zz") for a in first)
    assert all(len(a) == 3 for a in first)


def test_generation_is_seeded():
    a = InputGenerator.of(PROGRAM, "pick", seed=5)
    b = InputGenerator.of(PROGRAM, "pick", seed=5)
    assert a.initial() == b.initial()
    assert a.evolve(a.initial()[:3]) == b.evolve(b.initial()[:3])


def test_shrink_gives_smaller_inputs():
    gen = InputGenerator.of(PROGRAM, "pick")
    args = ([5, 6, 7, 8], 40, "hello")
    smaller = gen.shrink(args)
    assert smaller and all(size(s) <= size(args) for s in smaller)
    assert min(size(s) for s in smaller) < size(args)


plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5) | st.binary(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    | st.frozensets(st.integers(), max_size=3) | st.sets(st.text(max_size=2), max_size=3),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(plain)
def test_literals_round_trip_through_the_trusted_parser(value):
    text = to_literal(value)
    assert text is not None
    assert safe_eval(ast.parse(text, mode="eval").body) == value
