"""Where a sandboxed program's time goes: the cost of each stage of a child's life.

Runs small HumanEval-like programs one at a time through a one-worker `LocalPool(profile=True)`,
whose worker records the clock at each stage (see ``_worker.STAGES``): fork, session and
descriptors, resource limits, Landlock, the uid switch (or capability drop), the harness (program
and tests), exit and reaping, killing leftovers, emptying the working directory. The rest of the
per-program time, measured at the parent, is the parent <-> worker round trip (framing, JSON,
verdict). Wall-clock stages swing with the machine's load, so it also measures CPU time per
program in a batch on two workers, split by process (parent, workers, children): 2 cores divided
by that is the throughput ceiling on an idle 2-core machine. For scale: the fork-and-exit floor of
a bare ``python -I`` process. The last line printed is one JSON object (microseconds).

    python experiments/benchmarks/profile_sandbox.py [--programs 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

from codegym.execution import Limits, LocalPool
from codegym.execution._worker import STAGES
from codegym.execution.pool import RawJob

PROGRAM = "def add(a, b):\n    return a + b\n"
STEPS = [(0, "e", "add(1, 2)"), (1, "e", "add(-1, 1)"), (2, "e", "add(2, 2)")]
FORK_FLOOR = """
import os, time
n = {n}
start = time.perf_counter()
for _ in range(n):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
print((time.perf_counter() - start) / n)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=2000, help="programs to profile (one at a time)")
    args = parser.parse_args()

    floor = float(subprocess.run([sys.executable, "-I", "-c", FORK_FLOOR.format(n=args.programs)], capture_output=True, text=True, check=True).stdout)
    pool = LocalPool(1, profile=True)
    try:
        pool.start()
        caps = pool.capabilities()
        job = RawJob(PROGRAM, STEPS, 5.0, Limits())
        per_stage: list[list[float]] = [[] for _ in STAGES]
        totals = []
        for i in range(args.programs):
            start = time.perf_counter()
            (raw,) = pool.run_raw([RawJob(PROGRAM + f"# {i}\n", job.steps, job.timeout, job.limits)])
            totals.append(time.perf_counter() - start)
            marks = raw.stages
            for s in range(len(STAGES)):
                per_stage[s].append(marks[s + 1] - marks[s])
    finally:
        pool.close()
    cpu = cpu_per_program(args.programs)
    medians = {name: statistics.median(values) * 1e6 for name, values in zip(STAGES, per_stage)}
    total = statistics.median(totals) * 1e6
    medians["parent_round_trip"] = total - sum(medians.values())
    print(f"{args.programs} programs, one worker; uid switch: {caps['sandbox_uid'] is not None}, Landlock ABI {caps['landlock_abi']}, "
          f"seccomp {caps['seccomp_unix_sockets']}, tmpfs {caps['disk_bytes']}")
    print(f"{'stage':28} {'median us':>10} {'share':>7}")
    for name, value in medians.items():
        print(f"{name:28} {value:10.1f} {value / total:7.1%}")
    print(f"{'total per program':28} {total:10.1f}   ({1e6 / total:.0f} programs/s on one worker)")
    print(f"fork-and-exit floor of a bare python -I: {floor * 1e6:.1f} us")
    print("CPU per program, batch on 2 workers: " + ", ".join(f"{k} {v:.0f} us" for k, v in cpu.items())
          + f" -> at most {2e6 / cpu['total']:.0f} programs/s on 2 idle cores")
    print(json.dumps({"benchmark": "sandbox_profile", "programs": args.programs, "total_us": round(total, 1),
                      "fork_exit_floor_us": round(floor * 1e6, 1), **{f"{k}_us": round(v, 1) for k, v in medians.items()},
                      **{f"cpu_{k}_us": round(v, 1) for k, v in cpu.items()}, "machine": platform.machine()}))  # fmt: skip


def cpu_per_program(n: int) -> dict[str, float]:
    """CPU microseconds per program of the parent, the workers and their children, over ``n``
    programs run as one batch on two workers."""
    from codegym.execution import Executor

    tick = os.sysconf("SC_CLK_TCK")

    def times(pid: int) -> tuple[float, float]:
        with open(f"/proc/{pid}/stat") as fh:
            f = fh.read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / tick, (int(f[13]) + int(f[14])) / tick  # own, reaped children

    jobs = [(f"def f(x):\n    return x + {i}\n", [f"assert f(1) == {i + 1}", "assert f(2) > 0", "assert f(0) != -1"]) for i in range(n)]
    with Executor(workers=2, cache_size=0) as ex:
        ex.run("pass", ["assert True"])
        pids = ex.backend.worker_pids()
        before, self_before = [times(p) for p in pids], resource.getrusage(resource.RUSAGE_SELF)
        ex.run_many(jobs)
        after, self_after = [times(p) for p in pids], resource.getrusage(resource.RUSAGE_SELF)
    out = {
        "parent": (self_after.ru_utime + self_after.ru_stime - self_before.ru_utime - self_before.ru_stime) / n * 1e6,
        "worker": sum(b[0] - a[0] for a, b in zip(before, after)) / n * 1e6,
        "child": sum(b[1] - a[1] for a, b in zip(before, after)) / n * 1e6,
    }
    out["total"] = sum(out.values())
    return out


if __name__ == "__main__":
    main()
