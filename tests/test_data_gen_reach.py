"""data_gen reaching every branch: operand-aware values, branch-directed search, exceptions as
behaviour, equivalent mutants and the skip report.

The issue's examples: a ``return False`` reached only through a non-ASCII character, a ``True`` that
needs ``text[half:] == text[:half]``, a prefix that must be a prefix. Mined code runs only in the
sandbox, from a temporary directory.
"""

from __future__ import annotations

import json
import re

import pytest

from codegym.data_gen.inputs import InputGenerator, TypeSpec
from codegym.data_gen.mine import MinedFunction, Skipped, mine_source
from codegym.data_gen.mutate import mutant_set
from codegym.data_gen.oracle import ExploreOptions
from codegym.data_gen.pipeline import Options, generate, run
from codegym.execution import Executor

SAMPLE = r'''
import re


def is_ascii_word(text):
    for ch in text:
        if ord(ch) > 127:
            return False
    return True


def is_doubled(text):
    half = len(text) // 2
    if len(text) > 1 and text[half:] == text[:half]:
        return True
    return False


def strip_tag(line):
    if line.startswith("TAG:"):
        return line[4:]
    return line


def checked_root(n: int) -> int:
    if n < 0:
        raise ValueError("negative")
    return int(n ** 0.5)


def always_raises(n: int) -> int:
    raise ValueError("never")


def ticket_code(code: str) -> str:
    if re.fullmatch(r"[a-f]{3}-[0-9]{2}", code):
        return "valid " + code[:3]
    return "invalid"


def same_either_way(x: int) -> int:
    return x
'''


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def _functions() -> list[MinedFunction]:
    return [f for f in mine_source(SAMPLE, {"file": "reach.py", "license": "MIT"}) if isinstance(f, MinedFunction)]


def _generator(source: str, entry: str = "f") -> InputGenerator:
    return InputGenerator.of(source, entry)


def test_operand_values_hit_what_random_text_misses():
    gen = _generator(SAMPLE, "strip_tag")
    texts = [a[0] for a in gen.initial() if isinstance(a[0], str)]
    assert any(t.startswith("TAG:") and len(t) > 4 for t in texts)  # a real prefix, with something after it
    gen = _generator(SAMPLE, "is_doubled")
    texts = [a[0] for a in gen.initial() if isinstance(a[0], str)]
    assert any(len(t) > 1 and t[len(t) // 2 :] == t[: len(t) // 2] for t in texts)  # a repeated half
    assert any(not t.isascii() for t in texts) and any(t and t.isspace() for t in texts)


def test_operand_values_for_lists_numbers_and_lengths():
    gen = _generator("def f(items: list[int], n: int):\n    if len(items) > 5 and n >= 10:\n        return 1\n    return 0\n")
    lists = [a[0] for a in gen.initial()]
    assert any(len(v) != len(set(v)) for v in lists)  # duplicates
    assert any(len(v) > 2 and v == sorted(v) for v in lists) and any(len(v) > 2 and v == sorted(v, reverse=True) for v in lists)
    assert {5, 6} <= {len(v) for v in lists}  # around the length the body compares with
    assert {9, 10, 11} <= {a[1] for a in gen.initial()}  # around the constant


def test_types_from_use():
    gen = _generator("def f(a, b, d):\n    return min(a, b) + d % 2\n")
    assert gen.types[0].kind == "int" and gen.types[1].kind == "int"
    gen = _generator("def f(pairs):\n    return [abs(b - a) for a, b in pairs]\n")
    assert gen.types[0] == TypeSpec("list", (TypeSpec("tuple", (TypeSpec("int"), TypeSpec("int"))),))
    gen = _generator("import re\ndef f(email):\n    return bool(re.search('^[a-z]+@[a-z]+$', email))\n")
    assert gen.types[0].kind == "str" and gen.operands.patterns == ("^[a-z]+@[a-z]+$",)


def test_mutants_with_the_original_bytecode_are_dropped_and_counted():
    program = "def f(x):\n    if False:\n        return x + 1\n    return x * 2\n"
    found, equivalent = mutant_set(program, "f", (1, 4))
    assert equivalent >= 3  # x - 1, x * 1, x + 0 in the branch the compiler removes
    dead = [f"return {e}\n    return x * 2" for e in ("x - 1", "x * 1", "x + 0")]
    assert found and not any(d in m.program for m in found for d in dead)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("reach") / "out.jsonl"
    report = out.with_name("skipped.jsonl")
    options = Options(explore=ExploreOptions(rounds=2, batch=16))
    with Executor(workers=2) as executor:
        summary = run([], out, options, executor=executor, functions=_functions(), report=report)
    problems = {json.loads(line)["entry_point"]: json.loads(line) for line in out.read_text().splitlines()}
    skipped = [json.loads(line) for line in report.read_text().splitlines()]
    return summary, problems, skipped


def test_the_issues_examples_get_tests_that_reach_every_branch(generated):
    _, problems, _ = generated
    ascii_tests = " ".join(problems["is_ascii_word"]["tests"])
    assert "== False" in ascii_tests and "== True" in ascii_tests
    assert "== True" in " ".join(problems["is_doubled"]["tests"])
    tag = problems["strip_tag"]["tests"]
    assert any(re.search(r"strip_tag\('TAG:.+'\) == ", t) for t in tag)
    for entry in ("is_ascii_word", "is_doubled", "strip_tag"):
        assert problems[entry]["metadata"]["branch_coverage"] == 1.0


def test_exceptions_are_behaviour_when_normal_results_are_pinned_too(generated):
    _, problems, skipped = generated
    tests = problems["checked_root"]["tests"]
    assert sum("codegym_raises(checked_root" in t and "'ValueError'" in t for t in tests) == 1
    assert any(re.fullmatch(r"assert checked_root\(\d+\) == \d+", t) for t in tests)
    assert "always_raises" not in problems
    assert any(s["key"].endswith("always_raises") or "always_raises" in s["key"] for s in skipped if s["reason"] == "only exceptions")


def test_branch_directed_search_reaches_a_regex_branch(generated):
    _, problems, _ = generated
    meta = problems["ticket_code"]["metadata"]
    assert meta["branch_directed"]["hypothesis"]["reached"] >= 1
    assert meta["test_origins"].get("hypothesis", 0) >= 1
    assert any("'valid " in t for t in problems["ticket_code"]["tests"])


def test_report_and_equivalent_mutants(generated):
    summary, problems, skipped = generated
    assert summary.kept == len(problems)
    for line in skipped:
        assert {"key", "stage", "reason", "detail"} <= set(line)
    trivial = [s for s in skipped if s["reason"] == "trivial (constant result)"]
    assert all("inputs_tried" in s and "uncovered" in s for s in trivial)
    for problem in problems.values():
        meta = problem["metadata"]
        assert set(meta["equivalent_mutants"]) == {"same_bytecode", "undistinguished"}
        assert meta["mutation_score"] >= meta["mutation_score_all"]


def test_skipped_functions_carry_the_uncovered_branches():
    source = "def f(x: int) -> int:\n    if x == 987654321:\n        return 1\n    return 0\n"
    functions = [f for f in mine_source(source, {"file": "k.py"}) if isinstance(f, MinedFunction)]
    options = Options(explore=ExploreOptions(rounds=1, hunt=False))
    with Executor(workers=1) as executor:
        (item,) = list(generate(functions, executor, options))
    assert isinstance(item, Skipped) and item.reason == "trivial (constant result)"
    assert item.facts["uncovered"] == [{"line": 2, "taken": True, "test": "if x == 987654321:"}]
    assert item.facts["inputs_tried"] > 0 and item.facts["inputs"]



def test_crosshair_reaches_what_sampling_cannot(tmp_path):
    source = "def f(x: int) -> int:\n    if x * 3 == 2962962963:\n        return 1\n    return 0\n"
    functions = [f for f in mine_source(source, {"file": "k.py"}) if isinstance(f, MinedFunction)]
    options = Options(explore=ExploreOptions(rounds=1, symbolic=True))
    with Executor(workers=1) as executor:
        (item,) = list(generate(functions, executor, options))
    assert not isinstance(item, Skipped), item
    assert "assert f(987654321) == 1" in item.tests
    assert item.metadata["branch_directed"]["crosshair"]["reached"] == 1
    assert item.metadata["test_origins"]["crosshair"] == 1
