"""data_gen stage 4: AST mutants (pure, nothing runs)."""

from __future__ import annotations

import ast
from collections import Counter

from codegym.data_gen.mutate import MutateOptions, mutants, splice

PROGRAM = '''import math

LIMIT = 3


def classify(n: int, items: list) -> str:
    """Say what n is."""
    if n < 0 and not items:
        return "negative"
    total = 0
    for x in items:
        if x == LIMIT:
            break
        total += x * 2
    return str(min(total, n))
'''


def test_mutants_cover_the_operators_and_stay_valid():
    found = mutants(PROGRAM, "classify", (6, 15), MutateOptions(max_mutants=None))
    operators = Counter(m.operator for m in found)
    for op in ("binop", "compare", "boolop", "not", "constant", "return", "delete", "negate", "loop", "call"):
        assert operators[op] > 0, op
    programs = [m.program for m in found]
    assert len(set(programs)) == len(programs)  # deduplicated
    for program in programs:
        assert program != PROGRAM
        tree = ast.parse(program)
        assert program.startswith("import math\n\nLIMIT = 3\n")  # the rest of the program is kept
        assert ast.get_docstring(tree.body[-1]) == "Say what n is."  # docstrings are not mutated


def test_mutants_are_sampled_reproducibly():
    a = mutants(PROGRAM, "classify", (6, 15), MutateOptions(max_mutants=5, seed=1))
    b = mutants(PROGRAM, "classify", (6, 15), MutateOptions(max_mutants=5, seed=1))
    assert len(a) == 5 and a == b


def test_no_op_mutations_are_dropped():
    program = "def f(x):\n    return x\n"
    found = mutants(program, "f", (1, 2))
    assert [m.program for m in found] == ["def f(x):\n    return None\n"]


def test_splice_replaces_only_the_function():
    program = "A = 1\n\n\ndef f(x):\n    return x\n\n\nB = 2\n"
    assert splice(program, (4, 5), "def f(x):\n    return -x") == "A = 1\n\n\ndef f(x):\n    return -x\n\n\nB = 2\n"
