"""Stage 6, emit: selected cases become codegym problems, checked through the real test runner.

Test shapes (every one of them is judged outside the sandbox by `codegym.execution`, because the
expected value is a literal and only the call runs inside):

- ``assert f(ARGS) == VALUE`` for returned values; ``assert abs(f(ARGS) - VALUE) < 1e-06`` when the
  value is a float;
- ``assert codegym_raises(f, ARGS) == "ValueError"`` when the reference raises: ``codegym_raises``
  (defined in ``test_setup``) returns the name of the exception type raised, or None;
- ``assert codegym_after_call(f, ARGS) == (VALUE, [ARGS AFTER])`` when the call changes its
  arguments in place (``heapify``-style functions): it returns the result and the arguments after
  the call.

`confirm` runs each problem's tests against its own reference with `Executor.run_many`, twice
(fresh processes, unlike the exploration; often two workers with different string-hash seeds), and
drops tests that do not pass both times; a problem left with fewer than ``min_tests`` is dropped as
flaky. The two runs also give the problem its ``time_limit`` (`codegym.calibration`'s rule). Known gap: a result that depends on the iteration order of a set of strings can still slip
through when both runs land in workers with the same hash seed. Splits are a hash of the task id (stable across runs and
machines). Problems that overlap HumanEval or MBPP (same normalised function, or most of their
code 13-grams or docstring 8-grams) are dropped as contaminated.
"""

from __future__ import annotations

import ast
import hashlib
import io
import re
import tokenize
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version

from codegym.calibration import FACTOR, T_MIN
from codegym.data_gen.inputs import to_literal
from codegym.data_gen.mine import MinedFunction, Skipped, split_prompt
from codegym.data_gen.oracle import Case
from codegym.data_gen.select import Selected
from codegym.execution import Executor
from codegym.problems import Problem

__all__ = ["EmitOptions", "TEST_HELPERS", "confirm", "contamination", "split_of", "to_problem", "test_of"]

TEST_HELPERS = '''def codegym_raises(function, *args):
    """The name of the exception type that function(*args) raises, or None if it returns."""
    try:
        function(*args)
    except Exception as exc:
        return type(exc).__name__
    return None


def codegym_after_call(function, *args):
    """(result, arguments after the call), for functions that change their arguments in place."""
    result = function(*args)
    return result, list(args)
'''


@dataclass(frozen=True)
class EmitOptions:
    """task_prefix: first part of generated task ids; splits: (name, share) in order, shares summing
    to 1; decontaminate: drop problems overlapping HumanEval/MBPP; min_tests: fewest confirmed tests
    a problem may keep; examples_in_docstring: tests shown in a docstring made for undocumented
    functions (MBPP style), 0 to leave them without one."""

    task_prefix: str = "codegym"
    splits: tuple[tuple[str, float], ...] = (("train", 0.8), ("validation", 0.1), ("test", 0.1))
    decontaminate: bool = True
    min_tests: int = 2
    examples_in_docstring: int = 2
    seed: int = 0


def generator_version() -> str:
    try:
        return version("codegym")
    except PackageNotFoundError:  # pragma: no cover - running from a plain checkout
        return "unknown"


def test_of(entry: str, case: Case) -> str:
    """The assert for one case."""
    args = ", ".join(to_literal(a) or "None" for a in case.args)
    call = f"{entry}({args})"
    if case.result[0] == "raise":
        joined = f", {args}" if args else ""
        return f"assert codegym_raises({entry}{joined}) == {case.result[1]!r}"
    value = case.result[1]
    after = case.result[2]
    if after is not None:
        joined = f", {args}" if args else ""
        return f"assert codegym_after_call({entry}{joined}) == ({to_literal(value)}, {to_literal(after)})"
    if isinstance(value, float) and value == value and abs(value) != float("inf"):
        return f"assert abs({call} - {to_literal(value)}) < 1e-06"
    return f"assert {call} == {to_literal(value)}"


def split_of(task_id: str, splits: tuple[tuple[str, float], ...], seed: int = 0) -> str:
    """A split chosen by hashing the task id: the same id always lands in the same split."""
    digest = hashlib.sha256(f"{seed}:{task_id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64
    total = 0.0
    for name, share in splits:
        total += share
        if point < total:
            return name
    return splits[-1][0]


def _with_docstring(function: MinedFunction, tests: list[str], n: int) -> tuple[str, str]:
    """(program, prompt) with a docstring of example tests added to an undocumented function."""
    if function.docstring or n <= 0:
        return function.program, function.prompt
    tree = ast.parse(function.program)
    func = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function.entry)
    shown = "".join(f"    {t}\n" for t in tests[:n]).replace("codegym_raises(", "raises(")
    func.body.insert(0, ast.Expr(ast.Constant(f"Examples:\n{shown}    ")))
    program = re.sub(r"\n(?=def )", "\n\n\n", ast.unparse(tree) + "\n")
    prompt, _, _ = split_prompt(program, function.entry)
    return program, prompt


def task_id_of(function: MinedFunction, prefix: str) -> str:
    if function.task_id is not None:
        return function.task_id
    where = str(function.source.get("file", "source")).removesuffix(".py")
    where = where.replace("<stdlib>", "stdlib").replace("<site-packages>", "site-packages")
    return f"{prefix}/{where.lstrip('/')}/{function.entry}"


def to_problem(selected: Selected, options: EmitOptions = EmitOptions()) -> Problem:
    """The problem for a selected function (before confirmation)."""
    function = selected.function
    tests = [test_of(function.entry, c) for c in selected.cases]
    program, prompt = _with_docstring(function, tests, options.examples_in_docstring)
    task_id = task_id_of(function, options.task_prefix)
    explored = selected.explored
    metadata = {
        **function.source,
        "function_key": function.key,
        "generator": "codegym.data_gen",
        "generator_version": generator_version(),
        "mutation_score": round(selected.mutation_score, 4),
        "branch_coverage": round(selected.branch_coverage, 4),
        "mutants": len(explored.mutants),
        "mutants_killed": selected.killed,
        "mutation_score_all": round(selected.mutation_score_all, 4),
        "equivalent_mutants": {"same_bytecode": explored.same_bytecode, "undistinguished": selected.undistinguished},
        "test_origins": dict(Counter(c.origin for c in selected.cases)),
        "branch_points": len(explored.points),
        "inputs_tried": len(explored.cases) + sum(explored.dropped.values()),
        "seed": options.seed,
    }
    if explored.hunt:  # CPU seconds left out: the output depends only on the function and the seed
        metadata["branch_directed"] = {e: {k: v for k, v in r.items() if k != "seconds"} for e, r in explored.hunt.items()}
    if function.docstring is None and program != function.program:
        metadata["docstring"] = "generated from tests"
    return Problem(
        task_id=task_id,
        prompt=prompt,
        entry_point=function.entry,
        tests=tuple(tests),
        reference=program,
        test_setup=TEST_HELPERS,
        split=function.split or split_of(task_id, options.splits, options.seed),
        metadata=metadata,
    )


def confirm(
    items: Iterable[Problem | Skipped], executor: Executor, options: EmitOptions = EmitOptions(), batch: int = 64
) -> Iterator[Problem | Skipped]:
    """Keep only the tests each reference passes under the real runner; drop flaky problems."""
    pending: list[Problem] = []

    def flush() -> Iterator[Problem | Skipped]:
        # each job twice, the copy marked so that the executor's cache does not answer it: the two
        # often run in different workers, whose string-hash seeds differ, which exposes results that
        # depend on the iteration order of a set of strings (the exploration ran in one process)
        jobs = []
        for p in pending:
            jobs += [(p.reference_program(), p.tests), (p.reference_program() + "\n# again\n", p.tests)]
        results = executor.run_many(jobs)
        for i, problem in enumerate(pending):
            first, again = results[2 * i], results[2 * i + 1]
            passed = [a and b for a, b in zip(first.test_passed, again.test_passed)]
            tests = tuple(t for t, ok in zip(problem.tests, passed) if ok)
            result = first if not first.passed else again
            if len(tests) < min(options.min_tests, len(problem.tests)) or not tests:
                key = str(problem.metadata.get("function_key", problem.task_id))
                yield Skipped(key, "confirm", "tests fail on the reference", result.outcome)
            else:
                meta = dict(problem.metadata)
                if len(tests) < len(problem.tests):
                    meta["tests_dropped_as_flaky"] = len(problem.tests) - len(tests)
                limit = round(max(T_MIN, FACTOR * (first.duration + again.duration) / 2), 3)  # the calibration rule
                yield Problem(problem.task_id, problem.prompt, problem.entry_point, tests, problem.reference,
                              problem.test_setup, problem.split, meta, time_limit=limit)  # fmt: skip
        pending.clear()

    for item in items:
        if isinstance(item, Skipped):
            yield item
            continue
        pending.append(item)
        if len(pending) >= batch:
            yield from flush()
    if pending:
        yield from flush()


# --------------------------------------------------------------------------------------------
# Decontamination against HumanEval and MBPP.


def _code_tokens(source: str) -> list[str]:
    try:
        return [t.string for t in tokenize.generate_tokens(io.StringIO(source).readline)
                if t.type in (tokenize.NAME, tokenize.OP, tokenize.NUMBER, tokenize.STRING)]  # fmt: skip
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return []


def _grams(items: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(items[i : i + n]) for i in range(len(items) - n + 1)}


def _normalised_bodies(source: str) -> set[str]:
    """Each function of ``source`` with names, docstring and annotations erased: renaming-proof."""
    try:
        with warnings.catch_warnings():  # benchmark code has invalid escapes; not our business here
            warnings.simplefilter("ignore")
            tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return set()
    found = set()
    for func in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
        body = func.body[1:] if ast.get_docstring(func) is not None else func.body
        if not body:
            continue
        names: dict[str, str] = {}
        clone = ast.parse(ast.unparse(ast.Module(body=body, type_ignores=[])))
        for node in ast.walk(clone):
            if isinstance(node, ast.Name):
                node.id = names.setdefault(node.id, f"v{len(names)}")
            elif isinstance(node, ast.arg):
                node.arg = names.setdefault(node.arg, f"v{len(names)}")
        found.add(ast.dump(clone))
    return found


@dataclass(frozen=True)
class _Index:
    bodies: frozenset[str]
    code: frozenset[tuple[str, ...]]
    text: frozenset[tuple[str, ...]]


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


@lru_cache(maxsize=1)
def _benchmark_index() -> _Index:
    from codegym.problems import load

    bodies: set[str] = set()
    code: set[tuple[str, ...]] = set()
    text: set[tuple[str, ...]] = set()
    for name in ("humaneval", "mbpp"):
        for problem in load(name):
            reference = problem.reference or ""
            bodies |= _normalised_bodies(reference)
            code |= _grams(_code_tokens(reference), 13)
            doc = str(problem.metadata.get("text", "")) or _docstring_of(reference)
            text |= _grams(_words(doc), 8)
    return _Index(frozenset(bodies), frozenset(code), frozenset(text))


def _docstring_of(source: str) -> str:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return ""
    func = next((n for n in tree.body if isinstance(n, ast.FunctionDef)), None)
    return (ast.get_docstring(func) or "") if func is not None else ""


def contamination(problem: Problem) -> str | None:
    """Why ``problem`` overlaps HumanEval or MBPP, or None."""
    index = _benchmark_index()
    reference = problem.reference or problem.prompt
    if _normalised_bodies(reference) & index.bodies:
        return "same function as a HumanEval/MBPP solution"
    grams = _grams(_code_tokens(reference), 13)
    if grams and len(grams & index.code) / len(grams) > 0.5:
        return "code overlaps a HumanEval/MBPP solution"
    words = _grams(_words(problem.prompt), 8)
    if words and len(words & index.text) / len(words) > 0.5:
        return "prompt overlaps a HumanEval/MBPP task"
    return None


def emit(
    items: Iterable[Selected | Skipped], options: EmitOptions = EmitOptions()
) -> Iterator[Problem | Skipped]:
    """Problems for the selected functions; contaminated ones become `Skipped`."""
    for item in items:
        if isinstance(item, Skipped):
            yield item
            continue
        problem = to_problem(item, options)
        if options.decontaminate and item.function.task_id is None:
            why = contamination(problem)
            if why:
                yield Skipped(item.function.key, "emit", "contaminated (HumanEval/MBPP)", why)
                continue
        yield problem
