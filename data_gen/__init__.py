"""Automatic unit-test data generation: plain Python functions in, RL-ready problems with strong tests out.

Why this design. The paper generated tests for *Java* functions with EvoSuite and translated them to
Python. No Java toolchain is reachable here and codegym's users write Python, so codegym does the
same thing directly on Python functions: inputs found by a search guided by branch coverage and
by mutants, the reference's outputs recorded as ``assert f(args) == expected``, and a test kept
only for the mutants it kills or the branches it covers. Pynguin, the Python counterpart of
EvoSuite, is available as a comparison backend (``--backend pynguin``, see
`codegym.data_gen.pynguin_backend`; it runs in its own Python 3.10 environment:
``python3.10 -m venv /tmp/pynguin-venv && /tmp/pynguin-venv/bin/pip install pynguin``).

Pipeline, one module per stage, each a function over an iterator of records, where a record that
is dropped becomes a `Skipped` with the stage and the reason (counted in the summary):

1. `mine` (``mine.py``): top-level functions and class-free static methods, with signature,
   docstring, file, line, package and license; what cannot be tested in isolation (I/O, network,
   randomness, time, global state, missing imports) is recognised from the AST and skipped.
   Needed helpers, constants and pure imports of the same file are copied into the program.
2. inputs (``inputs.py``): docstring examples, type hints (annotations and docstring hints) or
   types inferred from use and names, boundary values from the body's literals, operand-aware
   values (prefixes, separators, repeated halves, non-ASCII and whitespace-only text, lists with
   duplicates, sorted and reversed, lengths around compared constants), seeded random values,
   mutation of inputs, shrinking.
3. oracle (``oracle.py`` + ``harness.py``): rounds in the sandbox (`codegym.execution.Executor`,
   never in this process): the reference on each input twice (determinism), arcs from a
   ``sys.settrace`` collector, mutants on the same inputs; the next round mutates the inputs that
   found new arcs, killed new mutants or reach live mutants. Then the branch-directed stage, only
   for functions at risk of being dropped (one result so far, or low branch coverage):
   Hypothesis guided by the body's operands (and regexes), then optionally CrossHair (symbolic),
   both inside the sandbox.
4. `mutate` (``mutate.py``): AST mutants (operators, comparisons, constants, return values,
   removed statements...), deduplicated on normalised source and on bytecode (those compiling to
   the original's bytecode are counted as equivalent).
5. `select` (``select.py``): greedy set cover of killed mutants and branch outcomes, one test per
   distinct exception type; mutation score over non-equivalent mutants and branch coverage per
   function; weak functions dropped (thresholds are options).
6. `emit` (``emit.py``): codegym problems (exceptions as ``assert codegym_raises(f, ...) ==
   "ValueError"``, in-place changes as ``codegym_after_call``, helpers in ``test_setup``),
   provenance and scores in ``metadata``, hash splits, decontamination against HumanEval and MBPP,
   and a last check of every test against the reference through the real test runner.

`pipeline.run` chains them, resumably (``OUT.progress.jsonl``); the CLI is
``codegym generate-data SOURCE... --out FILE [--workers N] [--max-functions N] [--seed S]
[--report SKIPPED.jsonl] [--symbolic]``.
Bundled sets ``basic`` (templates, `templates.py`) and ``stdlib`` (mined) are built with
``python -m codegym.data_gen.build_bundled``.
"""

from codegym.data_gen.mine import MinedFunction, MineOptions, Skipped, mine, mine_problems, mine_source
from codegym.data_gen.pipeline import Options, Summary, collect, generate, run

__all__ = [
    "MineOptions",
    "MinedFunction",
    "Options",
    "Skipped",
    "Summary",
    "collect",
    "generate",
    "mine",
    "mine_problems",
    "mine_source",
    "run",
]
