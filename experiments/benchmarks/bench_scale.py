"""Scaling out: the local sandbox pool against the Ray backend on one machine, and a projection.

One run, a local Ray instance started in this process (``ray.init(num_cpus=CPUS)``):

1. Executor: HumanEval canonical solutions plus AST mutants (`bench_sandbox.corpus`; the programs
   that hit the time limit in a first local pass are left out, as they only measure the timeout)
   through ``Executor(workers=CPUS)`` and ``Executor(backend="ray")`` (one actor hosting a pool of
   CPUS workers), alternately, ``--rounds`` times each; programs/s is the median round. Verdicts of
   both backends are compared program by program. ``ray_overhead_ratio = local_per_s / ray_per_s``.
2. Scheduling cost: the round trip of one empty actor call (ping), and the CPU time the driver
   process spends per program on Ray (serialising batches, receiving outcomes, deciding verdicts):
   the driver is the one part that does not grow with the cluster.
3. Data generation: ``--functions`` HumanEval functions (tests regenerated) through
   `codegym.data_gen.pipeline.run` with each backend; functions/s, driver CPU per function, and
   whether the two output files are byte-identical.
4. Projection to 10 and 100 nodes like this one: ``min(nodes × per-node rate, 1 / driver CPU per
   item)`` (see RESULTS.md for the assumptions).

The last line printed is one JSON object with the figures.

    python experiments/benchmarks/bench_scale.py            # full run (a few minutes on 2 cores)
    python experiments/benchmarks/bench_scale.py --quick    # a smaller run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from codegym import problems
from codegym.data_gen.pipeline import Options, run
from codegym.execution import Executor
from codegym.experiments.benchmarks.bench_sandbox import corpus


def timed(fn):
    """(result, wall seconds, CPU seconds of this process) of ``fn()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def project(per_node: float, driver_cpu_per_item: float, nodes: int) -> float:
    """Items/s on ``nodes`` nodes: every node as fast as the measured one, capped by the driver."""
    return min(nodes * per_node, 1.0 / driver_cpu_per_item if driver_cpu_per_item > 0 else float("inf"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer programs and functions (CI-sized)")
    parser.add_argument("--cpus", type=int, default=None, help="CPUs for both backends (default: this machine's)")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per backend (default 3, quick 2)")
    parser.add_argument("--functions", type=int, default=None, help="functions for data generation (default 100, quick 30)")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds per program")
    args = parser.parse_args()
    import ray

    cpus = args.cpus or len(os.sched_getaffinity(0))
    rounds = args.rounds or (2 if args.quick else 3)
    n_functions = args.functions or (30 if args.quick else 100)
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)

    he = {p.task_id: p for p in problems.load("humaneval")}
    jobs = [(program + "\n" + he[p["task_id"]].test_setup, list(he[p["task_id"]].tests)) for p, program in corpus(1 if args.quick else 3)]
    with Executor(workers=cpus, cache_size=0) as local, Executor(backend="ray", cache_size=0) as remote:
        first = local.run_many(jobs, timeout=args.timeout)
        jobs = [job for job, r in zip(jobs, first) if r.outcome != "timeout"]
        remote.run("pass", ["assert True"])  # start the actors outside the timing
        print(f"{len(jobs)} programs (HumanEval references and mutants that finish), {cpus} CPUs, {rounds} rounds")
        local_rates, ray_rates, driver_cpu = [], [], []
        for _ in range(rounds):
            local_results, seconds, _ = timed(lambda: local.run_many(jobs, timeout=args.timeout))
            local_rates.append(len(jobs) / seconds)
            ray_results, seconds, cpu = timed(lambda: remote.run_many(jobs, timeout=args.timeout))
            ray_rates.append(len(jobs) / seconds)
            driver_cpu.append(cpu / len(jobs))
        same = [(a.outcome, a.test_status) == (b.outcome, b.test_status) for a, b in zip(local_results, ray_results)]
        pings = []
        for _ in range(200):
            _, seconds, _ = timed(remote.backend.actor_pids)
            pings.append(seconds)
    local_per_s, ray_per_s = statistics.median(local_rates), statistics.median(ray_rates)
    driver_ms = statistics.median(driver_cpu) * 1e3
    print(f"executor: local {local_per_s:.1f} programs/s, ray {ray_per_s:.1f} programs/s, ratio {local_per_s / ray_per_s:.2f}, "
          f"verdicts identical {sum(same)}/{len(same)}")  # fmt: skip
    print(f"actor call round trip p50 {statistics.median(pings) * 1e3:.2f} ms; driver CPU {driver_ms:.3f} ms per program on Ray")

    options = Options(max_functions=n_functions)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        with Executor(workers=cpus) as local:
            local_summary, dg_local_s, _ = timed(lambda: run(["humaneval"], out / "local.jsonl", options, executor=local))
        with Executor(backend="ray") as remote:
            remote.run("pass", ["assert True"])
            ray_summary, dg_ray_s, dg_cpu = timed(lambda: run(["humaneval"], out / "ray.jsonl", options, executor=remote))
        identical = (out / "local.jsonl").read_bytes() == (out / "ray.jsonl").read_bytes()
    functions = local_summary.functions
    dg_local, dg_ray = functions / dg_local_s, functions / dg_ray_s
    dg_driver_ms = dg_cpu / functions * 1e3
    print(f"data generation ({functions} functions, {local_summary.kept} kept): local {dg_local:.2f} functions/s, "
          f"ray {dg_ray:.2f} functions/s, outputs identical: {identical}; driver CPU {dg_driver_ms:.1f} ms per function")  # fmt: skip

    figures = {
        "benchmark": "scale",
        "programs": len(jobs),
        "cpus": cpus,
        "rounds": rounds,
        "local_per_s": round(local_per_s, 1),
        "ray_per_s": round(ray_per_s, 1),
        "ray_overhead_ratio": round(local_per_s / ray_per_s, 3),
        "verdicts_identical": sum(same) == len(same),
        "actor_call_ms_p50": round(statistics.median(pings) * 1e3, 3),
        "driver_cpu_ms_per_program": round(driver_ms, 4),
        "datagen_functions": functions,
        "datagen_kept": local_summary.kept,
        "datagen_local_per_s": round(dg_local, 2),
        "datagen_ray_per_s": round(dg_ray, 2),
        "datagen_identical": identical and ray_summary.kept == local_summary.kept,
        "datagen_driver_cpu_ms_per_function": round(dg_driver_ms, 2),
    }
    for nodes in (10, 100):
        figures[f"projected_{nodes}_nodes_per_s"] = round(project(ray_per_s, driver_ms / 1e3, nodes), 1)
        figures[f"projected_datagen_{nodes}_nodes_per_s"] = round(project(dg_ray, dg_driver_ms / 1e3, nodes), 1)
    figures["machine"] = platform.machine()
    ray.shutdown()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
