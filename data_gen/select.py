"""Stage 5, select: a small test set that kills the most mutants and covers the most branches.

Greedy set cover over the union of (killed mutants) and (covered branch outcomes): repeatedly take
the case that adds the most uncovered elements, preferring returned values over exceptions and
small inputs over large ones on ties; then top up to ``min_tests`` with cases of distinct results
(so a constant function cannot pass). The mutation score is killed / distinct mutants (mutants that
no input tells apart from the reference count as survivors: some are equivalent, which makes the
score a lower bound). Functions whose tests stay weak are dropped with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from codegym.data_gen.inputs import size, to_literal
from codegym.data_gen.mine import Skipped
from codegym.data_gen.oracle import Case, Explored

__all__ = ["SelectOptions", "Selected", "greedy", "select"]


@dataclass(frozen=True)
class SelectOptions:
    """Test-set size and the quality a function must reach to be kept.

    min_mutation_score / min_branch_coverage: below either, the function is dropped ("weak tests");
    min_distinct_results: fewer distinct returned values (or exceptions) than this is "trivial".
    """

    max_tests: int = 10
    min_tests: int = 3
    min_mutation_score: float = 0.5
    min_branch_coverage: float = 0.5
    min_distinct_results: int = 2


@dataclass
class Selected:
    """The chosen cases of an explored function, with their scores."""

    explored: Explored
    cases: list[Case]
    mutation_score: float
    branch_coverage: float
    killed: int

    @property
    def function(self):  # noqa: ANN201 - MinedFunction, re-exported for convenience
        return self.explored.function


def _key(case: Case) -> tuple[int, int]:
    return (0 if case.result[0] == "ok" else 1, size(case.args) + size(case.result[1]))


def _result_text(case: Case) -> str:
    return f"{case.result[0]}:{to_literal(case.result[1])}:{to_literal(case.result[2]) if case.result[0] == 'ok' else ''}"


def greedy(explored: Explored, options: SelectOptions) -> list[int]:
    """Indices of the chosen cases, in the order chosen."""
    cases = explored.cases
    cover = [{("m", m) for m in c.kills} | {("b", o) for o in c.outcomes} for c in cases]
    left = set().union(*cover) if cover else set()
    order = sorted(range(len(cases)), key=lambda i: _key(cases[i]))
    chosen: list[int] = []
    while left and len(chosen) < options.max_tests:
        best = max(order, key=lambda i: len(cover[i] & left))
        gain = cover[best] & left
        if not gain:
            break
        chosen.append(best)
        left -= gain
    results = {_result_text(cases[i]) for i in chosen}
    for i in order:  # top up with cases of new results, so that a constant function cannot pass
        enough = len(chosen) >= options.min_tests and len(results) >= options.min_distinct_results
        if enough or len(chosen) >= options.max_tests + 1:
            break
        if i not in chosen and _result_text(cases[i]) not in results:
            chosen.append(i)
            results.add(_result_text(cases[i]))
    for i in order:  # still short: any remaining case
        if len(chosen) >= min(options.min_tests, len(cases)):
            break
        if i not in chosen:
            chosen.append(i)
    return chosen


def score(explored: Explored, cases: Iterable[Case]) -> tuple[float, float, int]:
    """(mutation score, branch coverage, mutants killed) of a set of cases."""
    cases = list(cases)
    killed = set().union(*(c.kills for c in cases)) if cases else set()
    outcomes = set().union(*(c.outcomes for c in cases)) if cases else set()
    n_mutants = len(explored.mutants)
    mutation = len(killed) / n_mutants if n_mutants else 1.0
    if explored.points:
        coverage = len(outcomes) / (2 * len(explored.points))
    else:
        coverage = 1.0 if cases else 0.0
    return mutation, coverage, len(killed)


def select(
    items: Iterable[Explored | Skipped], options: SelectOptions = SelectOptions()
) -> Iterator[Selected | Skipped]:
    """Choose the tests of each explored function; drop functions whose tests are too weak."""
    for item in items:
        if isinstance(item, Skipped):
            yield item
            continue
        chosen = [item.cases[i] for i in greedy(item, options)]
        mutation, coverage, killed = score(item, chosen)
        key = item.function.key
        distinct = {_result_text(c) for c in chosen}
        facts = item.facts()
        if not any(c.result[0] == "ok" for c in chosen):
            yield Skipped(key, "select", "only exceptions", "", facts)
        elif len(distinct) < options.min_distinct_results:
            yield Skipped(key, "select", "trivial (constant result)", "", facts)
        elif mutation < options.min_mutation_score:
            yield Skipped(key, "select", "weak tests (mutation score)", f"{mutation:.2f}", facts)
        elif coverage < options.min_branch_coverage:
            yield Skipped(key, "select", "weak tests (branch coverage)", f"{coverage:.2f}", facts)
        else:
            yield Selected(item, chosen, mutation, coverage, killed)
