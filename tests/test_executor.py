"""Executor behaviour on ordinary programs: outcomes, per-test verdicts, values, cache, batching."""

from __future__ import annotations

import math

import pytest

from codegym.execution import Executor, ExecResult
from codegym.execution.plans import plan_test

from .conftest import sandbox_leftovers

ADD = "def add(a, b):\n    return a + b\n"


def test_passed_failed_and_statuses(executor, in_tmp):
    result = executor.run(ADD, ["assert add(1, 2) == 3", "assert add(2, 2) == 5", "assert add('a', 1) == 'a1'"])
    assert result.outcome == "failed"
    assert result.test_passed == (True, False, False)
    assert result.test_status == ("passed", "failed", "error")
    assert result.n_passed == 1 and math.isclose(result.pass_ratio, 1 / 3)
    assert not result.passed


def test_all_passed(executor, in_tmp):
    result = executor.run(ADD, ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"])
    assert result.outcome == "passed" and result.passed
    assert result.trusted == (True, True)


@pytest.mark.parametrize(
    ("program", "outcome"),
    [
        ("def add(a, b)\n    return a + b\n", "syntax_error"),
        ("def add(a, b):\n    return a +\n", "syntax_error"),
        ("raise ValueError('at import')\n", "runtime_error"),
        ("def add(a, b):\n    raise ValueError\n", "runtime_error"),
        ("def add(a, b):\n    while True:\n        pass\n", "timeout"),
        ("def add(a, b):\n    return 0\n", "failed"),
        ("x = '\\0'\0", "syntax_error"),
    ],
)
def test_outcomes(executor, in_tmp, program, outcome):
    result = executor.run(program, ["assert add(1, 2) == 3"], timeout=1.0)
    assert result.outcome == outcome
    assert result.test_passed == (False,)


def test_stderr_tail_has_the_traceback(executor, in_tmp):
    result = executor.run("def add(a, b):\n    return a / 0\n", ["assert add(1, 2) == 3"])
    assert "ZeroDivisionError" in result.stderr_tail


def test_partial_timeout_keeps_earlier_verdicts(executor, in_tmp):
    program = "def f(x):\n    while x > 1:\n        pass\n    return x\n"
    result = executor.run(program, ["assert f(1) == 1", "assert f(2) == 2"], timeout=1.0)
    assert result.outcome == "timeout"
    assert result.test_passed == (True, False)
    assert result.test_status == ("passed", "not_run")


def test_test_shapes(executor, in_tmp):
    program = "import re\n\ndef f(x):\n    return x\n\ndef m(s):\n    return re.match('a', s)\n"
    tests = [
        "assert f(0.1 + 0.2) == 0.30000000000000004",
        "assert abs(f(0.1) - 0.1) < 1e-9",
        "assert abs(0.5 - f(0.5)) <= 1e-9",
        "assert f([1, 2]) != [2, 1]",
        "assert f(True)",
        "assert not f(0)",
        "assert f(None) is None",
        "assert 3 == f(3)",
        "assert f({1, 2}) == set([2, 1])",
        "assert f(2) in [1, 2]",
        "assert m('abc')",
        "assert not m('bc')",
        "assert f(float('inf')) == float('inf')",
        "assert f(-2 + 1j) == (-2+1j)",
        "result = f(4)\nassert result == 4",
    ]
    result = executor.run(program, tests)
    assert result.passed, result
    assert result.trusted == (True,) * 14 + (False,)


def test_builtin_subclasses_and_containers(executor, in_tmp):
    program = (
        "from collections import Counter, OrderedDict, defaultdict, namedtuple\n"
        "P = namedtuple('P', 'x y')\n"
        "def c():\n    return Counter('aab')\n"
        "def d():\n    dd = defaultdict(list)\n    dd[1].append(2)\n    return dd\n"
        "def p():\n    return P(1, 2)\n"
    )
    result = executor.run(program, ["assert c() == {'a': 2, 'b': 1}", "assert d() == {1: [2]}", "assert p() == (1, 2)"])
    assert result.test_status == ("passed", "passed", "failed")  # a namedtuple is a class of the program's


def test_evaluate_brings_values_back(executor, in_tmp):
    program = "def f():\n    return [1, (2.5, None), {'k': b'\\x00'}, {3}, frozenset({4}), 10 ** 40, float('nan')]\n"
    result = executor.evaluate(program, ["f()", "undefined_name", "object()", "'ok'"])
    assert result.outcome == "ok"
    value = result.values[0].value
    assert value[:6] == [1, (2.5, None), {"k": b"\x00"}, {3}, frozenset({4}), 10**40]
    assert math.isnan(value[6])
    assert (result.values[1].status, result.values[1].error) == ("error", "NameError")
    assert result.values[2].status == "unserializable"
    assert result.values[3].value == "ok"


def test_evaluate_outcomes(executor, in_tmp):
    assert executor.evaluate("def f(:\n", ["1"]).outcome == "syntax_error"
    assert executor.evaluate("raise KeyError\n", ["1"]).outcome == "runtime_error"
    slow = executor.evaluate("import time\n", ["time.sleep(30)"], timeout=1.0)
    assert slow.outcome == "timeout" and slow.values[0].status == "not_run"


def test_run_many_keeps_order_and_uses_cache(in_tmp):
    with Executor(workers=2, cache_size=100) as ex:
        jobs = [(f"def f():\n    return {i}\n", [f"assert f() == {i % 3}"]) for i in range(30)]
        first = ex.run_many(jobs, progress=False)
        assert [r.passed for r in first] == [i % 3 == i for i in range(30)]
        again = ex.run_many(jobs)
        assert all(r.cached for r in again)
        assert [r.test_passed for r in again] == [r.test_passed for r in first]


def test_per_job_timeout(executor, in_tmp):
    slow = "import time\ndef f():\n    time.sleep(1.5)\n    return 1\n"
    fast, generous = executor.run_many([(slow, ["assert f() == 1"], 0.5), (slow, ["assert f() == 1"], 5.0)])
    assert fast.outcome == "timeout" and generous.outcome == "passed"


def test_submit_runs_in_background(executor, in_tmp):
    future = executor.submit([(ADD, ["assert add(2, 3) == 5"])])
    assert future.result(timeout=30)[0].passed


def test_bad_arguments(executor):
    with pytest.raises(TypeError):
        executor.run_many([(ADD, [1])])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        executor.run(ADD, ["assert add(1, 1) == 2"], timeout=0)


def test_constant_tests_need_no_program_run(executor, in_tmp):
    result = executor.run(ADD, ["assert True", "assert 1 == 2"])
    assert result.test_status == ("passed", "failed")
    assert plan_test("assert True").kind == "const"


def test_close_leaves_nothing_running(in_tmp):
    import psutil

    ex = Executor(workers=2)
    assert ex.run(ADD, ["assert add(1, 1) == 2"]).passed
    pids = ex.backend.worker_pids()
    assert not sandbox_leftovers(ex)
    ex.close()
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    with pytest.raises(RuntimeError):
        ex.run(ADD, ["assert add(1, 1) == 2"])


def test_result_is_plain_data():
    result = ExecResult("failed", (True, False))
    assert result.n_tests == 2 and result.pass_ratio == 0.5 and not result.passed
    assert ExecResult("failed", ()).pass_ratio == 0.0
