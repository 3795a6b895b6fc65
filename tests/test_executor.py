"""Executor behaviour on ordinary programs: outcomes, per-test verdicts, values, cache, batching."""

from __future__ import annotations

import math
import os

import pytest

from codegym.execution import Executor, ExecResult
from codegym.execution.plans import plan_test

from .conftest import sandbox_leftovers, worker_module

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


def test_limits_come_from_the_problem_and_timeouts_under_them_are_rerun(in_tmp):
    from codegym.problems import Problem

    slow = "import time\n\ndef f(x):\n    time.sleep(0.6)\n    return x\n"
    fast = Problem("t/fast", "def f(x):\n", "f", ["assert f(1) == 1"], "def f(x):\n    return x\n", time_limit=0.3)
    with Executor(workers=2) as ex:
        calibrated, given, default = ex.run_many([("def f(x):\n    return x\n", fast), (ADD, ["assert add(1, 2) == 3"], 2.0), (ADD, ["assert add(1, 2) == 3"])])
        assert (calibrated.limit, calibrated.time_limit, calibrated.passed) == ("calibrated", 0.3, True)
        assert (given.limit, given.time_limit) == ("given", 2.0) and (default.limit, default.time_limit) == ("default", 5.0)
        assert ex.run("def f(x):\n    return x\n", fast, timeout=1.0).limit == "given"
        late = ex.run(slow, fast)  # over the calibrated limit: re-run, and the generous default decides
        assert late.passed and late.limit == "generous" and late.time_limit == 5.0
        assert ex.reruns == 1
        ex.rerun_timeouts = False  # EvalPlus's policy: the calibrated limit is final
        final = ex.run(slow + "# once more\n", fast)
        assert final.outcome == "timeout" and final.limit == "calibrated" and ex.reruns == 1


def test_slowed_reference_on_a_loaded_pool_still_passes(in_tmp):
    """A reference 3x slower than when it was calibrated, on a pool busy with looping programs,
    still passes: its timeout under the calibrated limit is re-run under the generous default."""
    from codegym.calibration import calibrate
    from codegym.problems import Problem

    reference = "import time\n\ndef f(x):\n    time.sleep(0.1 * SLOW)\n    return x\n"
    problem = Problem("t/slow", "", "f", ["assert f(1) == 1", "assert f(2) == 2"], "SLOW = 1\n" + reference)
    with Executor(workers=2) as ex:
        (found,) = calibrate([problem], ex, k=1, t_min=0.05, factor=1.5, per_test=False)
        assert found.outcome == "passed" and found.time_limit is not None
        calibrated = Problem(problem.task_id, "", "f", problem.tests, problem.reference, time_limit=found.time_limit)
        slowed = "SLOW = 3\n" + reference
        load = ("def f(x):\n    while True:\n        pass\n", ["assert f(1) == 1"], 1.0)
        jobs = [load, (slowed, calibrated), load, (slowed + "# 2\n", calibrated), (slowed + "# 3\n", calibrated)]
        results = ex.run_many(jobs)
        assert [r.passed for r in results] == [False, True, False, True, True]
        assert ex.reruns == sum(r.limit == "generous" for r in results)


def test_fail_fast_stops_at_the_first_failing_test(executor, in_tmp):
    program = "import time\n\ndef f(x):\n    if x == 2:\n        time.sleep(30)\n    return [x + 1.0] if x == 1 else [x]\n"
    tests = ["assert f(0) == [0]", "assert f(1) == [1]", "assert f(2) == [2]"]
    stopped = executor.run(program, tests, timeout=10, fail_fast=True)  # the worker stops it at f(1)
    assert stopped.outcome == "failed" and stopped.test_status == ("passed", "failed", "not_run")
    raised = executor.run("def f(x):\n    raise ValueError\n", tests, fail_fast=True)  # the child stops itself
    assert raised.test_status == ("error", "not_run", "not_run") and raised.test_passed == (False,) * 3
    # values equal under == but encoded differently never stop a program
    equal = "def f(x):\n    return [1.0, True, (2, 3), 10 ** 20]\n"
    assert executor.run(equal, ["assert f(0) == [1, 1, (2, 3), 1e20]"] * 2, fail_fast=True).passed
    assert executor.run(ADD, ["assert add(1, 2) == 3", "assert add(1, 1) == 2"], fail_fast=True).passed


def test_forked_child_gets_its_own_workers_and_leaves_the_parents_alone(in_tmp):
    """A child forked after the parent used an executor (its background thread included) runs programs on
    workers of its own, and closing the executor there does not stop the parent's workers."""
    import os

    with Executor(workers=1) as ex:
        assert ex.submit([("x = 1", ["assert x == 1"])]).result()[0].passed  # the background thread exists now
        parent_workers = ex.backend.worker_pids()
        pid = os.fork()
        if pid == 0:  # the child: report through the exit code, never return into pytest
            code = 1
            try:
                ok = ex.submit([("y = 2", ["assert y == 2"])]).result(timeout=60)[0].passed
                own = ex.backend.worker_pids()
                ex.close()
                code = 0 if ok and own and not set(own) & set(parent_workers) else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert ex.backend.worker_pids() == parent_workers
        assert ex.run("z = 3", ["assert z == 3"]).passed  # the parent's workers still serve it


def test_read_rules_grant_everything_but_the_hidden_folders(tmp_path):
    """Landlock only grants, so a readable folder that holds one of codegym's own folders is granted
    entry by entry: itself to list, each other entry to read, the hidden one not at all; a hidden
    root (a checkout on sys.path) gets nothing, a root inside one (its virtual environment) all."""
    worker = worker_module()
    top = os.path.realpath(tmp_path)
    site, checkout = os.path.join(top, "site-packages"), os.path.join(top, "checkout")
    for folder in ("site-packages/codegym/data", "site-packages/numpy", "checkout/.venv", "checkout/codegym"):
        os.makedirs(os.path.join(top, folder))
    open(os.path.join(site, "six.py"), "w").close()
    os.symlink(os.path.join(site, "codegym"), os.path.join(site, "alias"))  # Landlock checks where a link leads
    hidden = {os.path.join(site, "codegym"), checkout}
    rules = worker._read_rules([top, checkout, os.path.join(checkout, ".venv")], hidden)
    assert rules == {
        top: worker._FS_READ_DIR,
        site: worker._FS_READ_DIR,
        os.path.join(site, "numpy"): worker._FS_READ,
        os.path.join(site, "six.py"): worker._FS_READ,
        os.path.join(checkout, ".venv"): worker._FS_READ,
    }
