"""Stage 5, select: a small test set that kills the most mutants and covers the most branches.

Greedy set cover over the union of (killed mutants) and (covered branch outcomes): repeatedly take
the case that adds the most uncovered elements, preferring returned values over exceptions and
small inputs over large ones on ties; then top up to ``min_tests`` with cases of distinct results
(so a constant function cannot pass).

Exceptions are behaviour: each distinct exception type the reference raised on some input gets one
test (``codegym_raises``), as long as the set also pins results it returns normally; a function
that only ever raised is skipped ("only exceptions").

The mutation score is killed / non-equivalent mutants. Equivalent mutants are left out of it and
counted separately: those that compile to the original's bytecode (dropped when the mutants are
made, `codegym.data_gen.mutate`) and those no input tried distinguishes from the reference after
every input stage, the branch-directed search included (``undistinguished``). The latter may hide
a few real but hard-to-reach faults, so the score over all mutants is kept in the metadata too
(``mutation_score_all``). Functions whose tests stay weak are dropped with the reason.
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
    undistinguished: int = 0
    """Mutants no input tried told apart from the reference (counted as equivalent)."""
    mutation_score_all: float = 0.0
    """Killed / all mutants, the equivalent ones included (a lower bound)."""

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
    if any(cases[i].result[0] == "ok" for i in order):  # exceptions as behaviour, normal results pinned too
        have = {cases[i].result[1] for i in chosen if cases[i].result[0] == "raise"}
        if not any(cases[i].result[0] == "ok" for i in chosen):
            chosen.append(next(i for i in order if cases[i].result[0] == "ok"))
        for i in order:
            if cases[i].result[0] == "raise" and cases[i].result[1] not in have and len(chosen) < options.max_tests + 2:
                chosen.append(i)
                have.add(cases[i].result[1])
    return chosen


def score(explored: Explored, cases: Iterable[Case]) -> tuple[float, float, int]:
    """(mutation score over the non-equivalent mutants, branch coverage, mutants killed) of a set
    of cases; a mutant no case of ``explored`` kills counts as equivalent."""
    cases = list(cases)
    killed = set().union(*(c.kills for c in cases)) if cases else set()
    outcomes = set().union(*(c.outcomes for c in cases)) if cases else set()
    distinguished = len(explored.killed)  # no kill at all is no evidence that every mutant is equivalent
    mutation = len(killed) / distinguished if distinguished else 0.0 if explored.mutants else 1.0
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
            n_mutants = len(item.mutants)
            undistinguished = n_mutants - len(item.killed)
            yield Selected(item, chosen, mutation, coverage, killed, undistinguished, killed / n_mutants if n_mutants else 1.0)
