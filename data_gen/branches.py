"""Branch coverage from line arcs: which outcomes of which decisions a set of calls exercised.

The sandbox reports arcs, pairs (previous line, line) of the function's code, with negative numbers
for entry and exit (see `codegym.data_gen.harness`). A *branch point* is an ``if``, ``elif``,
``while`` or ``for`` whose body starts on a later line than its test; it has two outcomes: taken
(an arc from the test's lines to the body's first line) and not taken (an arc from the test's lines
to anywhere else, the function's exit included). Branch coverage is the share of outcomes seen, as
coverage.py counts it for statement-level branches; a function with no branch point counts as fully
covered once it has run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["BranchPoint", "branch_points", "covered_outcomes"]

Arc = tuple[int, int]


@dataclass(frozen=True)
class BranchPoint:
    """A decision: the lines its test spans and the first line of the taken branch."""

    first: int
    last: int
    target: int


def branch_points(program: str, entry: str) -> list[BranchPoint]:
    """The branch points of function ``entry`` of ``program`` (nested functions included)."""
    tree = ast.parse(program)
    func = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == entry)
    points = []
    for node in ast.walk(func):
        if isinstance(node, (ast.If, ast.While)):
            first, last = node.test.lineno, node.test.end_lineno or node.test.lineno
        elif isinstance(node, ast.For):
            first, last = node.lineno, node.iter.end_lineno or node.lineno
        else:
            continue
        target = node.body[0].lineno
        if target > last:
            points.append(BranchPoint(first, last, target))
    return sorted(set(points), key=lambda p: (p.first, p.target))


def covered_outcomes(points: list[BranchPoint], arcs: Iterable[Arc]) -> set[tuple[int, bool]]:
    """(index of the branch point, taken?) for each outcome the arcs show."""
    found: set[tuple[int, bool]] = set()
    arcs = list(arcs)
    for index, point in enumerate(points):
        for source, dest in arcs:
            if point.first <= source <= point.last:
                if dest == point.target:
                    found.add((index, True))
                elif not point.first <= dest <= point.last:
                    found.add((index, False))
    return found
