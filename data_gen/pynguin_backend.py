"""Optional Pynguin backend, for comparison with codegym's own generator.

Pynguin (the Python counterpart of EvoSuite) pins old dependencies and a single Python minor
version, so it lives in its own virtual environment and runs as a subprocess, one per function:

    python3.10 -m venv /tmp/pynguin-venv          # Pynguin 0.48 needs Python 3.10
    /tmp/pynguin-venv/bin/pip install pynguin     # tested with pynguin 0.48.0

(``CODEGYM_PYNGUIN`` overrides the path of the ``pynguin`` executable.) **Pynguin imports and runs
the module under test itself, outside codegym's sandbox**: use this backend only on code you trust
(benchmarks such as HumanEval). Its tests are then checked like ours, inside the sandbox: each
generated ``test_*`` function becomes one test ``test_N()`` whose code goes into ``test_setup``
together with two small shims: the module Pynguin imports is rebuilt from the program's globals,
and ``pytest.raises``/``pytest.approx``/``pytest.mark.xfail`` are provided without pytest.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codegym.data_gen.mine import MinedFunction, Skipped
from codegym.execution import Executor
from codegym.problems import Problem, write_jsonl

__all__ = ["PynguinError", "PynguinTests", "pynguin_executable", "pynguin_tests", "run_pynguin"]

MODULE = "cg_target"
SHIMS = f'''import sys as _cg_sys
import types as _cg_types

_cg_module = _cg_types.ModuleType({MODULE!r})
_cg_module.__dict__.update({{k: v for k, v in globals().items() if not k.startswith("_cg")}})
_cg_sys.modules[{MODULE!r}] = _cg_module


class _CgRaises:
    def __init__(self, expected, *args, **kwargs):
        self.expected = expected

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        if kind is None:
            raise AssertionError("DID NOT RAISE")
        return issubclass(kind, self.expected)


def _cg_xfail(*args, **kwargs):
    def wrap(test):
        def run():
            try:
                test()
            except Exception:
                return
            raise AssertionError("expected failure did not fail")

        return run

    if args and callable(args[0]) and not kwargs:
        return wrap(args[0])
    return wrap


class _CgApprox:
    def __init__(self, expected, rel=None, abs=None, nan_ok=False):
        self.expected, self.rel, self.tolerance = expected, 1e-6 if rel is None else rel, 1e-12 if abs is None else abs

    def __eq__(self, other):
        if isinstance(self.expected, (list, tuple)):
            return (isinstance(other, (list, tuple)) and len(other) == len(self.expected)
                    and all(_CgApprox(e, self.rel, self.tolerance) == o for e, o in zip(self.expected, other)))
        try:
            return other == self.expected or abs(other - self.expected) <= max(self.rel * abs(self.expected), self.tolerance)
        except TypeError:
            return False

    __hash__ = None


_cg_pytest = _cg_types.ModuleType("pytest")
_cg_pytest.raises = _CgRaises
_cg_pytest.approx = _CgApprox
_cg_pytest.mark = _cg_types.SimpleNamespace(xfail=_cg_xfail)
_cg_sys.modules["pytest"] = _cg_pytest
'''


class PynguinError(RuntimeError):
    """Pynguin is not installed where expected, or failed as a whole."""


@dataclass(frozen=True)
class PynguinTests:
    """Pynguin's tests for one function, as codegym tests (``test_N()`` calls) and their setup."""

    tests: tuple[str, ...]
    setup: str
    seconds: float
    error: str = ""


def pynguin_executable() -> str:
    """The ``pynguin`` program, or `PynguinError` saying how to install it."""
    path = os.environ.get("CODEGYM_PYNGUIN", "/tmp/pynguin-venv/bin/pynguin")
    if not Path(path).exists():
        raise PynguinError(
            f"Pynguin not found at {path}. Install it in its own environment: "
            "python3.10 -m venv /tmp/pynguin-venv && /tmp/pynguin-venv/bin/pip install pynguin "
            "(or set CODEGYM_PYNGUIN to its pynguin executable)"
        )
    return path


def _convert(source: str) -> tuple[list[str], str]:
    """(test calls, setup) from a Pynguin test module: imports of the module under test removed
    (``import pytest`` stays: it finds the shim)."""
    tree = ast.parse(source)
    body, names = [], []
    for node in tree.body:
        if isinstance(node, ast.Import) and any(a.name == MODULE for a in node.names):
            for alias in node.names:
                if alias.name == MODULE and alias.asname:
                    body.append(ast.parse(f"{alias.asname} = _cg_module").body[0])
            continue
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
            names.append(f"{node.name}()")
        body.append(node)
    code = ast.unparse(ast.Module(body=body, type_ignores=[]))
    code = re.sub(r'sys\.modules\[["\']' + MODULE + r'["\']\]', "_cg_module", code)
    return names, SHIMS + "\n\n" + code + "\n"


def pynguin_tests(function: MinedFunction, seconds: float = 10.0, seed: int = 0) -> PynguinTests:
    """Run Pynguin on one function (its whole program as module ``cg_target``) in a temporary folder."""
    executable = pynguin_executable()
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="codegym-pynguin-"))
    try:
        (work / "project").mkdir()
        (work / "project" / f"{MODULE}.py").write_text(function.program, encoding="utf-8")
        env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "PYNGUIN_DANGER_AWARE": "1", "PYTHONHASHSEED": "0"}
        command = [executable, "--project-path", str(work / "project"), "--module-name", MODULE,
                   "--output-path", str(work / "out"), "--maximum-search-time", str(int(seconds)),
                   "--seed", str(seed)]  # fmt: skip
        try:
            done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=seconds + 120)
        except subprocess.TimeoutExpired:
            return PynguinTests((), "", time.perf_counter() - started, "pynguin timed out")
        output = work / "out" / f"test_{MODULE}.py"
        if not output.exists():
            return PynguinTests((), "", time.perf_counter() - started, (done.stderr or done.stdout)[-300:])
        tests, setup = _convert(output.read_text(encoding="utf-8"))
        return PynguinTests(tuple(tests), setup, time.perf_counter() - started)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_pynguin(
    sources: Iterable[str], out: str | os.PathLike[str], options: Any, workers: int | None = None,
    seconds: float = 10.0, console: Any = None,
) -> Any:  # fmt: skip
    """``generate-data --backend pynguin``: problems whose tests Pynguin wrote (those that pass)."""
    from codegym.data_gen.emit import task_id_of
    from codegym.data_gen.pipeline import Summary, collect

    pynguin_executable()
    started = time.perf_counter()
    summary = Summary()
    problems: list[Problem] = []
    with Executor(workers=workers) as executor:
        for item in collect(sources, options):
            if isinstance(item, Skipped):
                summary.add(item)
                continue
            if options.max_functions is not None and summary.functions >= options.max_functions:
                break
            summary.functions += 1
            result = pynguin_tests(item, seconds, options.explore.seed)
            if not result.tests:
                summary.add(Skipped(item.key, "pynguin", "no tests", result.error))
                continue
            verdict = executor.run(item.program + "\n\n" + result.setup, result.tests)
            tests = tuple(t for t, ok in zip(result.tests, verdict.test_passed) if ok)
            if not tests:
                summary.add(Skipped(item.key, "pynguin", "tests fail on the reference"))
                continue
            problem = Problem(task_id_of(item, options.emit.task_prefix), item.prompt, item.entry, tests, item.program,
                              result.setup, item.split, {**item.source, "generator": "pynguin",
                                                         "seconds": round(result.seconds, 2)})  # fmt: skip
            problems.append(problem)
            summary.kept += 1
            if console is not None:
                console.print(f"{problem.task_id}: {len(tests)} tests in {result.seconds:.1f}s")
    write_jsonl(problems, out)
    summary.seconds = time.perf_counter() - started
    return summary
