"""How strong the procgen tests are: the mutation score of each problem's tests on its reference.

Mutants come from `codegym.data_gen.mutate` (operators, comparisons, constants, slices, ``min``↔``max``,
removed statements, ...; duplicates and mutants compiling to the original's bytecode removed). A mutant
is killed when it does not pass every test in the sandbox. Mutants no test input tells apart from the
reference can still be equivalent (``x * 2`` → ``x + x`` is not produced, but ``sorted`` → ``reversed``
on a filtered list of equal elements can be), so the score is a lower bound.

    python -m codegym.procgen.quality --split none --limit 300

prints one JSON line: problems, mutants, killed, the overall score and the mean per-problem score.
"""

from __future__ import annotations

import argparse
import ast
import json
from collections.abc import Sequence
from typing import Any

from codegym.problems import Problem

__all__ = ["mutation_scores"]


def _lines(program: str, entry: str) -> tuple[int, int]:
    node = next(n for n in ast.parse(program).body if isinstance(n, ast.FunctionDef) and n.name == entry)
    return node.lineno, node.end_lineno or node.lineno


def mutation_scores(problems: Sequence[Problem], executor: Any) -> list[tuple[int, int]]:
    """(killed, mutants) per problem."""
    from codegym.data_gen.mutate import MutateOptions, mutants

    jobs, owner = [], []
    for i, p in enumerate(problems):
        program = p.reference_program()
        for m in mutants(program, p.entry_point, _lines(program, p.entry_point), MutateOptions(max_mutants=None)):
            jobs.append((m.program, list(p.tests)))
            owner.append(i)
    results = executor.run_many(jobs, timeout=2.0, fail_fast=True)
    counts = [[0, 0] for _ in problems]
    for i, r in zip(owner, results):
        counts[i][1] += 1
        counts[i][0] += not r.passed
    return [(k, n) for k, n in counts]


def main(argv: Sequence[str] | None = None) -> None:
    from codegym.execution import Executor
    from codegym.experiments.data import _first
    from codegym.problems import load

    parser = argparse.ArgumentParser(description="Mutation score of the procgen tests.")
    parser.add_argument("--split", default="none", help="procgen split")
    parser.add_argument("--limit", type=int, default=None, help="first N problems after the fixed shuffle of data specs")
    args = parser.parse_args(argv)
    problems = _first(load("procgen", split=args.split), args.limit)
    with Executor() as executor:
        scores = mutation_scores(problems, executor)
    killed, total = sum(k for k, _ in scores), sum(n for _, n in scores)
    per = [k / n for k, n in scores if n]
    print(json.dumps({"split": args.split, "problems": len(problems), "mutants": total, "killed": killed,
                      "mutation_score": killed / max(total, 1), "mean_per_problem": sum(per) / max(len(per), 1),
                      "problems_all_killed": sum(k == n for k, n in scores if n)}))  # fmt: skip


if __name__ == "__main__":
    main()
