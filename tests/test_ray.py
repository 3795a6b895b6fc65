"""The Ray backend on a local Ray instance (in-process ``ray.init``): the same verdicts as the local
pool, no result lost or counted twice when an actor is killed mid-batch, and the same data
generation output as the local run."""

from __future__ import annotations

import ast
import json
import os
import signal
import sys
import threading

import pytest
import ray

from codegym import problems
from codegym.data_gen.mutate import MutateOptions, mutants
from codegym.data_gen.oracle import ExploreOptions
from codegym.data_gen.pipeline import Options, run
from codegym.execution import Executor
from codegym.execution.ray_backend import RayBackend



@pytest.fixture(scope="module", autouse=True)
def ray_cluster():
    """One local Ray instance for the module, 2 CPUs (the CI machine's)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _entry_lines(program: str, entry: str) -> tuple[int, int]:
    node = next(n for n in ast.walk(ast.parse(program)) if isinstance(n, ast.FunctionDef) and n.name == entry)
    return node.lineno, node.end_lineno or node.lineno


def humaneval_jobs(every: int = 4, per_problem: int = 3) -> list[tuple[str, list[str]]]:
    """Every ``every``-th HumanEval reference and up to ``per_problem`` of its AST mutants, with the tests."""
    jobs = []
    for problem in problems.load("humaneval")[::every]:
        reference = problem.reference_program()
        variants = [reference]
        try:
            found = mutants(reference, problem.entry_point, _entry_lines(reference, problem.entry_point), MutateOptions(max_mutants=per_problem))
            variants += [m.program for m in found]
        except StopIteration:  # the entry point is not a top-level def
            pass
        jobs += [(program, list(problem.tests)) for program in variants]
    return jobs


def _verdicts(results):
    return [(r.outcome, r.test_passed, r.test_status, r.trusted) for r in results]


def test_ray_verdicts_match_the_local_pool_on_humaneval_and_mutants(in_tmp):
    jobs = humaneval_jobs()
    assert len(jobs) > 100
    with Executor(workers=2, cache_size=0) as local:
        expected = local.run_many(jobs, timeout=2.0)
    with Executor(backend="ray", cache_size=0) as remote:
        assert isinstance(remote.backend, RayBackend)
        got = remote.run_many(jobs, timeout=2.0)
        assert remote.capabilities()["backend"] == "ray"
    assert _verdicts(got) == _verdicts(expected)
    outcomes = {r.outcome for r in expected}
    assert {"passed", "failed"} <= outcomes  # the set is mixed, so the comparison means something


def test_killing_an_actor_mid_batch_loses_no_result(in_tmp, monkeypatch):
    slow = "import time\ndef f(x):\n    time.sleep(0.15)\n    return x * 2\n"
    jobs = [(slow, [f"assert f({i}) == {2 * i}", f"assert f({i}) == {2 * i + 1}"]) for i in range(40)]
    backend = RayBackend(workers=2, workers_per_actor=1)  # two actors of one sandbox process each
    reported: list[int] = []
    run_raw = backend.run_raw
    monkeypatch.setattr(backend, "run_raw", lambda raw_jobs, on_done=None: run_raw(raw_jobs, on_done=reported.append))
    with Executor(backend=backend, cache_size=0) as ex:
        victim = backend.actor_pids()[0]
        killer = threading.Timer(0.5, os.kill, (victim, signal.SIGKILL))  # each actor holds ~3 s of work
        killer.start()
        try:
            results = ex.run_many(jobs)
        finally:
            killer.join()
        assert sorted(reported) == list(range(len(jobs)))  # every job reported exactly once
        assert backend.resubmitted >= 1  # the victim's batches went to another actor
        assert victim not in backend.actor_pids()  # Ray replaced the dead actor...
        again = ex.run_many([(slow, ["assert f(-1) == -2"])] * 4)  # ...and the replacement works
    assert all("worker was lost" not in r.stderr_tail for r in results)
    assert [r.test_status for r in results] == [("passed", "failed")] * len(jobs)
    assert all(r.passed for r in again)


SOURCE = '''
def clamp(x: int, low: int, high: int) -> int:
    """Clamp x into [low, high]."""
    if x < low:
        return low
    if x > high:
        return high
    return x


def fizz(n: int) -> str:
    if n % 15 == 0:
        return "FizzBuzz"
    if n % 3 == 0:
        return "Fizz"
    if n % 5 == 0:
        return "Buzz"
    return str(n)


def checked_div(a: int, b: int) -> int:
    if b == 0:
        raise ValueError("b must not be zero")
    return a // b


def count_vowels(s: str) -> int:
    return sum(1 for c in s.lower() if c in "aeiou")


def rotate(items: list, k: int) -> list:
    if not items:
        return []
    k %= len(items)
    return items[k:] + items[:k]


def read_it(path: str) -> str:
    return open(path).read()
'''


def _without_time_limits(path) -> list[dict]:
    """The records of a data-generation output, each ``time_limit`` checked for presence and dropped."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert all(row["time_limit"] > 0 for row in rows)
    return [{k: v for k, v in row.items() if k != "time_limit"} for row in rows]


def test_data_generation_output_is_identical_between_backends(tmp_path, in_tmp):
    src = tmp_path / "src"
    src.mkdir()
    (src / "funcs.py").write_text(SOURCE)
    options = Options(explore=ExploreOptions(rounds=2, budget=0.05, batch=2, seed=7))  # 3 chunks of 2 functions
    with Executor(workers=2) as local:
        local_summary = run([str(src)], tmp_path / "local.jsonl", options, executor=local)
    with Executor(backend="ray") as remote:
        ray_summary = run([str(src)], tmp_path / "ray.jsonl", options, executor=remote)
    assert local_summary.kept >= 4
    ray_rows, local_rows = (_without_time_limits(tmp_path / f"{name}.jsonl") for name in ("ray", "local"))
    assert ray_rows == local_rows  # same problems, tests and order; time limits come from measured run times
    assert ray_summary.skipped == local_summary.skipped


def test_generate_data_command_with_the_ray_backend(tmp_path, in_tmp):
    from typer.testing import CliRunner

    from codegym.cli import app

    src = tmp_path / "src"
    src.mkdir()
    (src / "m.py").write_text("def sign(x: int) -> int:\n    if x > 0:\n        return 1\n    if x < 0:\n        return -1\n    return 0\n")
    result = CliRunner().invoke(app, ["generate-data", str(src), "--out", str(tmp_path / "o.jsonl"), "--backend", "ray"])
    assert result.exit_code == 0, result.output
    (problem,) = problems.load(tmp_path / "o.jsonl")
    assert problem.entry_point == "sign" and problem.metadata["branch_coverage"] == 1.0
    result = CliRunner().invoke(app, ["generate-data", str(src), "--out", str(tmp_path / "p.jsonl"), "--address", "auto"])
    assert result.exit_code != 0 and "--address is for --backend ray" in result.output


def test_backend_names_and_missing_ray(monkeypatch):
    with pytest.raises(ValueError, match="choose one of local, ray"):
        Executor(backend="dask")
    with pytest.raises(ValueError, match="address= is for backend='ray'"):
        Executor(backend="local", address="auto")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'codegym\[ray\]'"):
        Executor(backend="ray")
