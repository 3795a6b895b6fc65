"""data_gen stages 3, 5, 6 and the whole pipeline: oracle, selection, emission, resume, bad input, CLI.

Everything that runs mined code goes through the sandbox, and these tests work from a temporary
directory (never the repository).
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from codegym.data_gen.emit import EmitOptions, TEST_HELPERS, confirm, emit, split_of
from codegym.data_gen.mine import MinedFunction, mine_problems, mine_source
from codegym.data_gen.mutate import mutants
from codegym.data_gen.oracle import ExploreOptions, explore
from codegym.data_gen.pipeline import Options, run
from codegym.data_gen.select import SelectOptions, select
from codegym.execution import Executor
from codegym.problems import Problem, join_program, load

SAMPLE = '''
def classify(n: int, limit: int) -> str:
    """Say whether n is below, at or above the limit."""
    if n < limit:
        return "below"
    if n == limit:
        return "at"
    return "above"


def checked_div(a: int, b: int) -> int:
    if b == 0:
        raise ValueError("b must not be zero")
    return a // b


def sort_in_place(items: list[int]) -> None:
    items.sort()


def _tick(x, _seen=[]):
    _seen.append(x)
    return len(_seen)


def stateful(x: int) -> int:
    return _tick(x)


def hangs(n: int) -> int:
    while n != 12345:
        n = n
    return n
'''

FAST = ExploreOptions(rounds=2, budget=0.05, batch=8)


@pytest.fixture(scope="module")
def sandbox():
    with Executor(workers=2) as executor:
        yield executor


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def _functions():
    return {f.entry: f for f in mine_source(SAMPLE, {"file": "sample.py", "license": "MIT"}) if isinstance(f, MinedFunction)}


def test_generated_tests_kill_the_mutants(sandbox):
    function = _functions()["classify"]
    (explored,) = explore([function], sandbox, FAST)
    (selected,) = select([explored])
    assert selected.mutation_score == 1.0 and selected.branch_coverage == 1.0
    (problem,) = confirm(emit([selected], EmitOptions(decontaminate=False)), sandbox)
    assert sandbox.run(problem.reference_program(), problem.tests).passed
    # every mutant fails the emitted tests when run through the real test runner
    for mutant in mutants(function.program, "classify", function.lines):
        assert not sandbox.run(join_program(mutant.program, problem.test_setup), problem.tests).passed, mutant.program
    assert problem.metadata["mutation_score"] == 1.0 and problem.metadata["license"] == "MIT"
    assert problem.time_limit is not None and problem.time_limit >= 0.5  # calibrated from the two confirming runs
    assert 1 <= len(problem.tests) <= SelectOptions().max_tests


def test_oracle_records_exceptions_and_in_place_changes(sandbox):
    functions = _functions()
    results = list(explore([functions["checked_div"], functions["sort_in_place"]], sandbox, FAST))
    problems = list(confirm(emit(select(results), EmitOptions(decontaminate=False)), sandbox))
    tests = {p.entry_point: p.tests for p in problems}
    assert any(t.startswith("assert codegym_raises(checked_div, ") and t.endswith("== 'ValueError'") for t in tests["checked_div"])
    assert any(t.startswith("assert codegym_after_call(sort_in_place, ") for t in tests["sort_in_place"])
    for problem in problems:
        assert problem.test_setup == TEST_HELPERS
        assert sandbox.run(problem.reference_program(), problem.tests).passed


def test_bad_functions_are_skipped_with_reasons(sandbox):
    functions = _functions()
    crash = mine_problems([Problem("X/crash", "def f(x):\n", "f", ("assert f(1) == 1",), "raise SystemExit\ndef f(x):\n    return x\n")])
    results = list(explore([functions["stateful"], functions["hangs"], *crash], sandbox, FAST))
    stateful, hangs, crashes = results
    assert (stateful.stage, stateful.reason) == ("oracle", "no usable result")  # every result was flaky
    assert "flaky" in stateful.detail
    assert hangs.dropped["timeout"] > 0  # only the input that returns is left...
    assert [s.reason for s in select([hangs])] == ["trivial (constant result)"]  # ...so it is dropped
    assert (crashes.stage, crashes.reason) == ("oracle", "crashes at import or in the harness")


def test_splits_are_deterministic():
    splits = (("train", 0.8), ("validation", 0.1), ("test", 0.1))
    names = [split_of(f"task/{i}", splits) for i in range(400)]
    assert names == [split_of(f"task/{i}", splits) for i in range(400)]
    counts = Counter(names)
    assert 260 < counts["train"] < 380 and counts["validation"] > 15 and counts["test"] > 15


def test_decontamination_drops_benchmark_copies(sandbox):
    humaneval_add = 'def plus(a: int, b: int) -> int:\n    """Sum."""\n    return a + b\n'
    items = list(mine_source(humaneval_add, {"file": "copy.py"}))
    problems = list(emit(select(explore(items, sandbox, FAST))))
    assert [p.reason for p in problems] == ["contaminated (HumanEval/MBPP)"]


def test_run_is_resumable_and_counts_bad_input(tmp_path, sandbox):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.py").write_text("def inc(x: int) -> int:\n    return x + 1\n\n\ndef neg(x: int) -> int:\n    return -x\n")
    (src / "broken.py").write_text("def f(:\n")
    (src / "blob.py").write_bytes(b"\x00\xff")
    out = tmp_path / "out" / "problems.jsonl"
    options = Options(explore=FAST)
    first = run([str(src)], out, options, executor=sandbox)
    assert first.kept == 2 and first.resumed == 0
    assert first.skipped[("mine", "does not parse")] == 1 and first.skipped[("mine", "binary file")] == 1
    loaded = load(out)
    assert {p.entry_point for p in loaded} == {"inc", "neg"}
    assert all(p.split in ("train", "validation", "test") and p.metadata["generator"] == "codegym.data_gen" for p in loaded)
    assert all(p.time_limit is not None for p in loaded)  # the calibrated limit survives the progress file
    (src / "b.py").write_text("def double(x: int) -> int:\n    return 2 * x\n")
    second = run([str(src)], out, options, executor=sandbox)
    assert second.resumed == 2 and second.kept == 3
    progress = (out.parent / "problems.jsonl.progress.jsonl").read_text().splitlines()
    assert sum("problem" in json.loads(line) for line in progress) == 3  # done work was not redone
    assert [p.task_id for p in load(out)][:2] == [p.task_id for p in loaded]


def test_problems_file_as_source_keeps_task_ids(tmp_path, sandbox):
    from codegym.problems import write_jsonl

    source = tmp_path / "in.jsonl"
    reference = 'def twice(s: str) -> str:\n    """Repeat s."""\n    return s + s\n'
    write_jsonl([Problem("mine/7", 'def twice(s: str) -> str:\n    """Repeat s."""\n', "twice", ("assert twice('a') == 'aa'",), reference, split="test")], source)
    run([str(source)], tmp_path / "out.jsonl", Options(explore=FAST), executor=sandbox)
    (problem,) = load(tmp_path / "out.jsonl")
    assert problem.task_id == "mine/7" and problem.split == "test" and problem.tests != ("assert twice('a') == 'aa'",)


def test_cli_on_a_small_directory(tmp_path):
    from typer.testing import CliRunner

    from codegym.cli import app

    src = tmp_path / "src"
    src.mkdir()
    (src / "m.py").write_text("def sign(x: int) -> int:\n    if x > 0:\n        return 1\n    if x < 0:\n        return -1\n    return 0\n")
    result = CliRunner().invoke(app, ["generate-data", str(src), "--out", str(tmp_path / "o.jsonl"), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "problems written" in result.output
    (problem,) = load(tmp_path / "o.jsonl")
    assert problem.entry_point == "sign" and problem.metadata["branch_coverage"] == 1.0


PYNGUIN_OUTPUT = '''# Automatically generated by Pynguin.
import pytest
import cg_target as module_0
import sys

module_1 = sys.modules["cg_target"]


def test_case_0():
    var_0 = module_0.checked_div(7, 2)
    assert var_0 == 3
    assert var_0 == pytest.approx(3.0000001, abs=0.01, rel=0.01)
    assert [var_0] == pytest.approx([3.0])


def test_case_1():
    with pytest.raises(ValueError):
        module_1.checked_div(1, 0)


@pytest.mark.xfail(strict=True)
def test_case_2():
    module_0.checked_div("a", 1)
'''


def test_pynguin_tests_run_in_the_sandbox_with_shims(sandbox):
    from codegym.data_gen.pynguin_backend import _convert

    tests, setup = _convert(PYNGUIN_OUTPUT)
    assert tests == ["test_case_0()", "test_case_1()", "test_case_2()"]
    program = _functions()["checked_div"].program
    assert sandbox.run(join_program(program, setup), tests).passed
    broken = program.replace("a // b", "a // b + 1")
    assert sandbox.run(join_program(broken, setup), tests).test_passed == (False, True, True)


def test_pynguin_missing_says_how_to_install(monkeypatch, tmp_path):
    from codegym.data_gen.pynguin_backend import PynguinError, pynguin_executable

    monkeypatch.setenv("CODEGYM_PYNGUIN", str(tmp_path / "nope"))
    with pytest.raises(PynguinError, match="pip install pynguin"):
        pynguin_executable()
