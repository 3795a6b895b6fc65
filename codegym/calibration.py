"""Per-problem time limits measured from the reference solution (``codegym calibrate``).

A constant time limit is generous for ``add(a, b)`` and tight for a slow but correct reference on a
slow machine, so verdicts end up depending on the machine (EvalPlus users saw pass@1 move from 0.40
to 0.23). Following EvalPlus, each problem gets

    time_limit = max(T_MIN, FACTOR x T_reference)

where T_reference is the median over ``k`` runs of its reference in the sandbox (the whole test
list, program start included). ``FACTOR = 4.0`` is EvalPlus's. EvalPlus's floor is 4 s *per test*
with no second chance; ours, ``T_MIN = 0.5`` s, bounds the whole test list and can be low because
a timeout under it is only provisional: 0.5 s is about 100x the fork-to-exit cost of a trivial
program and far above every HumanEval and MBPP reference on our 2-core machine, yet a sixth of the
3 s a looping program held a worker for before.
The executor re-runs a program that times out under a calibrated limit once under its generous
default before ``timeout`` is final (`codegym.execution.Executor.run_many`), so a limit measured on
a faster machine costs time, never a verdict.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from codegym.execution import Executor
from codegym.problems import Problem, write_jsonl

__all__ = ["FACTOR", "T_MIN", "Calibration", "calibrate", "machine", "write_limits"]

T_MIN = 0.5
"""Seconds: the smallest limit, whatever the reference's speed."""
FACTOR = 4.0
"""How many times the reference's median time a program may take (EvalPlus's default)."""


@dataclass(frozen=True)
class Calibration:
    """The measured times of one problem's reference and the limit they give.

    Attributes:
        task_id: the problem.
        total: median seconds of the whole test list (k runs).
        per_test: median seconds of each test run alone after the program (k runs each).
        time_limit: max(t_min, factor x total), or None when the reference did not pass.
        outcome: the reference's outcome (``passed`` unless something is wrong with the problem).
    """

    task_id: str
    total: float
    per_test: tuple[float, ...]
    time_limit: float | None
    outcome: str


def calibrate(
    problems: Sequence[Problem],
    executor: Executor,
    *,
    k: int = 3,
    t_min: float = T_MIN,
    factor: float = FACTOR,
    per_test: bool = True,
    timeout: float = 60.0,
    progress: bool = False,
) -> list[Calibration]:
    """Measure each problem's reference ``k`` times in the sandbox and derive its time limit.

    Runs go through ``executor`` with its cache bypassed (each run is a fresh measurement), under
    the explicit ``timeout``. Problems without a reference are skipped.
    """
    if k < 1 or t_min <= 0 or factor <= 0:
        raise ValueError(f"need k >= 1, t_min > 0 and factor > 0 (got k={k}, t_min={t_min}, factor={factor})")
    chosen = [p for p in problems if p.reference is not None]
    jobs: list[tuple[str, list[str], float]] = []
    for problem in chosen:
        program = problem.reference_program()
        for run in range(k):
            jobs.append((_fresh(program, run, -1), list(problem.tests), timeout))
            if per_test:
                jobs += [(_fresh(program, run, i), [test], timeout) for i, test in enumerate(problem.tests)]
    results = iter(executor.run_many(jobs, progress=progress))
    out = []
    for problem in chosen:
        totals, outcome = [], "passed"
        tests: list[list[float]] = [[] for _ in problem.tests]
        for _ in range(k):
            whole = next(results)
            totals.append(whole.duration)
            if not whole.passed:
                outcome = whole.outcome
            if per_test:
                for i in range(len(problem.tests)):
                    tests[i].append(next(results).duration)
        total = statistics.median(totals)
        limit = round(max(t_min, factor * total), 3) if outcome == "passed" else None
        out.append(Calibration(problem.task_id, total, tuple(statistics.median(t) for t in tests if t), limit, outcome))
    return out


def _fresh(program: str, run: int, test: int) -> str:
    """The program with a comment that makes each measurement its own cache entry."""
    return f"{program}\n# calibration run {run} test {test}\n"


def machine() -> str:
    """A one-line description of this machine: CPU model, usable cores, OS."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), model)
    except OSError:
        pass
    return f"{model}, {len(os.sched_getaffinity(0))} usable cores, {platform.system()} {platform.release()}"


def write_limits(
    calibrations: Sequence[Calibration],
    problems: Sequence[Problem],
    out: str | os.PathLike[str],
    *,
    source: str,
    k: int,
    t_min: float,
    factor: float,
    note: str = "",
) -> Path:
    """Write the limits: a ``.jsonl`` target gets the problems as codegym JSONL with
    ``time_limit`` set; a ``.json`` target gets a sidecar ``{"limits": {task_id: seconds}, ...}``
    with the factor and the machine (the form bundled sets ship in, ``codegym/data/limits/``)."""
    target = Path(out)
    limits = {c.task_id: c.time_limit for c in calibrations if c.time_limit is not None}
    if target.name.endswith(".jsonl"):
        return write_jsonl([replace(p, time_limit=limits.get(p.task_id, p.time_limit)) for p in problems], target)
    if not target.name.endswith(".json"):
        raise ValueError(f"{target}: write limits to a .json sidecar or a .jsonl problems file")
    record: dict[str, Any] = {
        "source": source,
        "rule": "time_limit = max(t_min, factor * median seconds of the reference over k runs, whole test list)",
        "t_min": t_min,
        "factor": factor,
        "k": k,
        "machine": machine(),
        "measured": datetime.date.today().isoformat(),
        "note": note,
        "limits": limits,
        "reference_seconds": {c.task_id: round(c.total, 5) for c in calibrations},
        "per_test_seconds": {c.task_id: [round(t, 5) for t in c.per_test] for c in calibrations if c.per_test},
        "not_passed": {c.task_id: c.outcome for c in calibrations if c.outcome != "passed"},
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(record, fh, sort_keys=True, separators=(",", ":"))
        fh.write("\n")
    os.chmod(tmp, 0o644)  # mkstemp makes it private; limits are data for every user
    os.replace(tmp, target)
    return target
