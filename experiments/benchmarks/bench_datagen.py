"""Benchmark of codegym's unit-test generation (`codegym.data_gen`).

Measures, and prints as a table then as ONE JSON line at the end:

1. throughput: functions per second end to end (explore → select → emit → confirm, sandbox
   start-up included) on functions mined from the standard library, with ``--workers`` sandbox
   workers; and CPU seconds per function, from which the rate on free cores is estimated (the
   wall-clock rate depends on what else the machine runs); the same functions again without the
   branch-directed stage, as the reference for what that stage costs and brings;
2. coverage of MBPP train (374 functions): how many get tests from their reference alone, and the
   skip reasons (``--report FILE`` writes the skipped ones, one JSON line each);
3. HumanEval: tests generated from each problem's reference alone (HumanEval's tests are never
   looked at), then: share of canonical solutions they accept; share of the mutants rejected by
   HumanEval's own tests that they also reject; mutants they reject that HumanEval's tests miss;
4. the same measures for Pynguin on the first N HumanEval functions (mutation score on the same
   mutants, branch coverage with the same ``sys.settrace`` arc collector, seconds per function).

Mutants for the evaluation are drawn with a different seed from the ones used during generation.
Also reported: equivalent mutants left out of the mutation score (same bytecode as the original; no
input distinguished), the mutation score over all mutants, where kept tests' inputs came from
(``branch_directed_share``) and, per engine of the branch-directed stage, the outcomes it was asked
for and reached.
Run ``python experiments/benchmarks/bench_datagen.py --quick`` for a one-minute check.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from statistics import mean
from typing import Any

from codegym.data_gen.branches import branch_points, covered_outcomes
from codegym.data_gen.emit import _benchmark_index as contamination_index
from codegym.data_gen.mine import MinedFunction, mine, mine_problems
from codegym.data_gen.mutate import Mutant, MutateOptions, mutants
from codegym.data_gen.oracle import HARNESS
from codegym.data_gen.pipeline import Options, generate
from codegym.execution import Executor
from codegym.problems import Problem, join_program, load

COVER = '''

def _bench_cover(reference, setup, tests):
    import sys
    namespace = {"__name__": "__cg_target__"}
    exec(compile(reference, "<cg-target>", "exec", dont_inherit=True), namespace)
    exec(compile(setup, "<cg-setup>", "exec", dont_inherit=True), namespace)
    arcs = set()
    for test in tests:
        try:
            sys.settrace(_cg_tracer(arcs, "<cg-target>"))
            exec(compile(test, "<cg-test>", "exec", dont_inherit=True), namespace)
        except BaseException:
            pass
        finally:
            sys.settrace(None)
    return sorted(arcs)
'''


def branch_coverage(executor: Executor, function: MinedFunction, setup: str, tests: list[str]) -> float:
    """Branch coverage of ``tests`` on the reference, measured in the sandbox like the generator does."""
    points = branch_points(function.program, function.entry)
    args = repr((function.program, setup, list(tests)))
    result = executor.evaluate(HARNESS + COVER, [f"_bench_cover(*{args})"], timeout=60)
    value = result.values[0]
    if value.status != "ok":
        return 0.0
    start, end = function.lines
    arcs = [tuple(a) for a in value.value if start <= abs(a[0]) <= end or start <= abs(a[1]) <= end]
    if not points:
        return 1.0 if arcs else 0.0
    return len(covered_outcomes(points, arcs)) / (2 * len(points))


def rejected(executor: Executor, mutant_list: list[Mutant], setup: str, tests: list[str], timeout: float) -> list[bool]:
    """For each mutant, whether ``tests`` reject it."""
    jobs = [(join_program(m.program, setup), list(tests)) for m in mutant_list]
    return [not r.passed for r in executor.run_many(jobs, timeout=timeout)]


def eval_mutants(function: MinedFunction, seed: int, limit: int) -> list[Mutant]:
    return mutants(function.program, function.entry, function.lines, MutateOptions(max_mutants=limit, seed=seed))


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def throughput(workers: int, n: int, options: Options) -> dict[str, Any]:
    """End to end on ``n`` stdlib functions, sandbox start-up included. Also the CPU seconds spent
    (this process + the sandbox workers, counted when they exit): on a machine shared with other
    jobs, 2 cores / (CPU seconds per function) estimates the rate on 2 free cores."""
    import sysconfig

    functions = [f for f in mine([sysconfig.get_paths()["stdlib"]]) if isinstance(f, MinedFunction)][:n]
    started, cpu = time.perf_counter(), _cpu()
    with Executor(workers=workers) as executor:
        results = list(generate(functions, executor, options))
    seconds, cpu = time.perf_counter() - started, _cpu() - cpu
    kept = [r for r in results if isinstance(r, Problem)]
    return {
        "functions": len(functions),
        "kept": len(kept),
        "problems": kept,
        "seconds": seconds,
        "functions_per_s": len(functions) / seconds,
        "cpu_seconds_per_function": cpu / len(functions),
        "functions_per_s_free_cores": workers * len(functions) / cpu,
        "mean_mutation_score": mean(float(p.metadata["mutation_score"]) for p in kept) if kept else 0.0,
        "mean_branch_coverage": mean(float(p.metadata["branch_coverage"]) for p in kept) if kept else 0.0,
    }


def coverage(executor: Executor, name: str, split: str | None, options: Options, report: str | None) -> dict[str, Any]:
    """How many functions of a benchmark set get tests from their reference alone, the skip reasons
    (and a ``generate-data --report`` style file of the skipped ones), and where kept tests came from."""
    from collections import Counter

    from codegym.data_gen.mine import Skipped
    from codegym.data_gen.pipeline import write_report

    functions = [f for f in mine_problems(load(name, split=split)) if isinstance(f, MinedFunction)]
    started = time.perf_counter()
    results = list(generate(functions, executor, options))
    seconds = time.perf_counter() - started
    kept = [r for r in results if isinstance(r, Problem)]
    skipped = [r for r in results if isinstance(r, Skipped)]
    if report:
        write_report(skipped, report)
    return {
        "functions": len(functions),
        "covered": len(kept),
        "seconds": seconds,
        "skipped": dict(Counter(f"{s.stage}: {s.reason}" for s in skipped).most_common()),
        "kept": kept,
    }


def provenance(problems: list[Problem]) -> dict[str, Any]:
    """Equivalent mutants left out of the scores, and where the kept tests' inputs came from."""
    same = sum(int(p.metadata.get("equivalent_mutants", {}).get("same_bytecode", 0)) for p in problems)
    undistinguished = sum(int(p.metadata.get("equivalent_mutants", {}).get("undistinguished", 0)) for p in problems)
    origins: dict[str, int] = {}
    for p in problems:
        for origin, n in p.metadata.get("test_origins", {}).items():
            origins[origin] = origins.get(origin, 0) + int(n)
    engines: dict[str, dict[str, float]] = {}
    for p in problems:
        for engine, record in p.metadata.get("branch_directed", {}).items():
            total = engines.setdefault(engine, {"functions": 0, "wanted": 0, "reached": 0, "inputs": 0, "examples": 0, "paths": 0})
            total["functions"] += 1
            for key in ("wanted", "reached", "inputs", "examples", "paths"):
                total[key] += record.get(key, 0)
    return {
        "same_bytecode": same,
        "undistinguished": undistinguished,
        "origins": origins,
        "engines": engines,
        "mutation_score_all": mean(float(p.metadata.get("mutation_score_all", 0.0)) for p in problems) if problems else 0.0,
    }


def humaneval(executor: Executor, n: int, options: Options, mutant_limit: int, timeout: float) -> dict[str, Any]:
    problems = load("humaneval")[:n]
    functions = {f.task_id: f for f in mine_problems(problems) if isinstance(f, MinedFunction)}
    started = time.perf_counter()
    generated = {p.task_id: p for p in generate(list(functions.values()), executor, options) if isinstance(p, Problem)}
    seconds = time.perf_counter() - started
    accepted = sum(executor.run(g.reference_program(), g.tests).passed for g in generated.values())
    he_rejects = both = extra = total_mutants = 0
    per_function: dict[str, dict[str, Any]] = {}
    for problem in problems:
        function = functions.get(problem.task_id)
        if function is None:
            continue
        mutant_list = eval_mutants(function, seed=12345, limit=mutant_limit)
        total_mutants += len(mutant_list)
        he = rejected(executor, mutant_list, problem.test_setup, list(problem.tests), timeout)
        gen = generated.get(problem.task_id)
        ours = rejected(executor, mutant_list, gen.test_setup, list(gen.tests), timeout) if gen else [False] * len(he)
        he_rejects += sum(he)
        both += sum(h and o for h, o in zip(he, ours))
        extra += sum(o and not h for h, o in zip(he, ours))
        per_function[problem.task_id] = {"mutants": mutant_list, "ours": ours, "generated": gen}
    return {
        "problems": len(problems),
        "generated": list(generated.values()),
        "with_tests": len(generated),
        "seconds": seconds,
        "canonical_accept_rate": accepted / len(generated) if generated else 0.0,
        "mutants": total_mutants,
        "humaneval_rejects": he_rejects,
        "mutant_reject_rate": both / he_rejects if he_rejects else 0.0,
        "extra_rejects": extra,
        "per_function": per_function,
        "functions": functions,
    }


def pynguin_comparison(executor: Executor, he: dict[str, Any], n: int, seconds: float, timeout: float) -> dict[str, Any]:
    from codegym.data_gen.pynguin_backend import PynguinError, pynguin_tests

    ids = list(he["per_function"])[:n]
    ours_score, ours_cover, theirs_score, theirs_cover, theirs_time = [], [], [], [], []
    error = None
    for task_id in ids:
        entry = he["per_function"][task_id]
        function: MinedFunction = he["functions"][task_id]
        mutant_list = entry["mutants"]
        gen: Problem | None = entry["generated"]
        ours_score.append(sum(entry["ours"]) / len(mutant_list) if mutant_list else 1.0)
        ours_cover.append(branch_coverage(executor, function, gen.test_setup, list(gen.tests)) if gen else 0.0)
        try:
            result = pynguin_tests(function, seconds)
        except PynguinError as exc:
            error = str(exc)
            break
        theirs_time.append(result.seconds)
        tests = list(result.tests)
        if tests:  # keep the tests that pass on the reference, as the codegym backend does
            verdict = executor.run(join_program(function.program, result.setup), tests, timeout=30)
            tests = [t for t, ok in zip(tests, verdict.test_passed) if ok]
        if not tests:
            theirs_score.append(0.0)
            theirs_cover.append(0.0)
            continue
        killed = rejected(executor, mutant_list, result.setup, tests, timeout)
        theirs_score.append(sum(killed) / len(mutant_list) if mutant_list else 1.0)
        theirs_cover.append(branch_coverage(executor, function, result.setup, tests))
    return {
        "functions": len(theirs_time),
        "codegym_mutation_score": mean(ours_score[: len(theirs_time)]) if theirs_time else None,
        "codegym_branch_coverage": mean(ours_cover[: len(theirs_time)]) if theirs_time else None,
        "pynguin_mutation_score": mean(theirs_score) if theirs_score else None,
        "pynguin_branch_coverage": mean(theirs_cover) if theirs_cover else None,
        "pynguin_seconds_per_function": mean(theirs_time) if theirs_time else None,
        "pynguin_error": error,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: about a minute")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--throughput-functions", type=int, default=300)
    parser.add_argument("--humaneval", type=int, default=164, help="HumanEval problems to test")
    parser.add_argument("--pynguin", type=int, default=100, help="functions compared with Pynguin (0: skip)")
    parser.add_argument("--pynguin-seconds", type=float, default=5.0, help="Pynguin search time per function")
    parser.add_argument("--mutants", type=int, default=40, help="evaluation mutants per function")
    parser.add_argument("--mutant-timeout", type=float, default=1.0, help="seconds per mutant test run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--symbolic", action="store_true", help="also run CrossHair in the branch-directed stage")
    parser.add_argument("--report", default=None, help="write the skipped MBPP train/HumanEval functions here (JSONL)")
    args = parser.parse_args(argv)
    if args.quick:
        args.throughput_functions, args.humaneval, args.pynguin, args.pynguin_seconds = 40, 20, 3, 2.0
    options = Options()
    options = replace(options, explore=replace(options.explore, seed=args.seed, symbolic=args.symbolic))
    report: dict[str, Any] = {}
    contamination_index()  # built once per process (loads HumanEval and MBPP): not per function
    tp = throughput(args.workers, args.throughput_functions, options)
    # the same functions without the branch-directed stage: what the stage costs, end to end
    reference = throughput(args.workers, args.throughput_functions, replace(options, explore=replace(options.explore, hunt=False)))
    stage_cpu = tp["cpu_seconds_per_function"] - reference["cpu_seconds_per_function"]
    print(f"without the branch-directed stage: {reference['kept']} kept, "
          f"{reference['cpu_seconds_per_function'] * 1000:.0f} ms CPU per function; the stage costs "
          f"{stage_cpu * 1000:.0f} ms CPU per function on average ({tp['kept'] - reference['kept']:+d} kept)")  # fmt: skip
    print(f"throughput: {tp['functions']} stdlib functions in {tp['seconds']:.1f}s = "
          f"{tp['functions_per_s']:.1f} functions/s ({tp['kept']} kept; mutation score "
          f"{tp['mean_mutation_score']:.3f}, branch coverage {tp['mean_branch_coverage']:.3f}); "
          f"{tp['cpu_seconds_per_function'] * 1000:.0f} ms CPU per function, i.e. "
          f"{tp['functions_per_s_free_cores']:.1f} functions/s on {args.workers} free cores")  # fmt: skip
    with Executor(workers=args.workers) as executor:
        executor.run("x = 1", ["assert x == 1"])  # start the workers before timing
        mbpp = coverage(executor, "mbpp", "train", options, args.report)
        print(f"MBPP train: tests for {mbpp['covered']}/{mbpp['functions']} in {mbpp['seconds']:.1f}s; "
              f"skipped: {mbpp['skipped']}")  # fmt: skip
        he = humaneval(executor, args.humaneval, options, args.mutants, args.mutant_timeout)
        print(f"HumanEval: tests for {he['with_tests']}/{he['problems']} problems in {he['seconds']:.1f}s "
              f"({he['problems'] / he['seconds']:.1f} functions/s); canonical solutions accepted: "
              f"{he['canonical_accept_rate']:.1%}")  # fmt: skip
        print(f"  {he['mutants']} mutants, {he['humaneval_rejects']} rejected by HumanEval's tests; codegym's tests "
              f"reject {he['mutant_reject_rate']:.1%} of those, plus {he['extra_rejects']} that HumanEval's tests miss")  # fmt: skip
        py: dict[str, Any] = {"pynguin_error": "not run (--pynguin 0)"}
        if args.pynguin:
            py = pynguin_comparison(executor, he, args.pynguin, args.pynguin_seconds, args.mutant_timeout)
            if py["pynguin_error"]:
                print(f"Pynguin: could not run: {py['pynguin_error']}")
            else:
                cg_seconds = he["seconds"] / max(1, he["problems"])
                py["codegym_seconds_per_function"] = cg_seconds
                py["speedup_vs_pynguin"] = py["pynguin_seconds_per_function"] / cg_seconds
                print(f"on {py['functions']} HumanEval functions: mutation score codegym "
                      f"{py['codegym_mutation_score']:.3f} vs Pynguin {py['pynguin_mutation_score']:.3f}; branch "
                      f"coverage {py['codegym_branch_coverage']:.3f} vs {py['pynguin_branch_coverage']:.3f}; seconds "
                      f"per function {cg_seconds:.3f} vs {py['pynguin_seconds_per_function']:.2f} "
                      f"({py['speedup_vs_pynguin']:.0f}x)")  # fmt: skip
    kept = tp["problems"] + mbpp["kept"] + he["generated"]
    origin = provenance(kept)
    tests = sum(origin["origins"].values())
    directed = sum(origin["origins"].get(e, 0) for e in ("hypothesis", "crosshair"))
    print(f"equivalent mutants left out of the scores: {origin['same_bytecode']} with the original's bytecode, "
          f"{origin['undistinguished']} no input distinguished; mutation score over all mutants "
          f"{origin['mutation_score_all']:.3f}; test origins {origin['origins']}")  # fmt: skip
    for engine, total in origin["engines"].items():
        print(f"  branch-directed, {engine}: ran on {total['functions']} kept functions, reached "
              f"{total['reached']} of {total['wanted']} missing branch outcomes with {total['inputs']} inputs, "
              f"{total['examples']} examples, {total['paths']} paths")  # fmt: skip
    report = {
        "mbpp_train_covered": mbpp["covered"],
        "mbpp_train_functions": mbpp["functions"],
        "humaneval_covered": he["with_tests"],
        "equivalent_mutants": origin["same_bytecode"] + origin["undistinguished"],
        "equivalent_mutants_same_bytecode": origin["same_bytecode"],
        "equivalent_mutants_undistinguished": origin["undistinguished"],
        "mutation_score_all_mutants": round(origin["mutation_score_all"], 4),
        "branch_directed_share": round(directed / tests, 4) if tests else 0.0,
        "operand_share": round(origin["origins"].get("operand", 0) / tests, 4) if tests else 0.0,
        "branch_directed": origin["engines"],
        "branch_directed_cpu_seconds_per_function": round(stage_cpu, 4),
        "kept_without_branch_directed": reference["kept"],
        "functions_per_s": round(tp["functions_per_s"], 2),
        "cpu_seconds_per_function": round(tp["cpu_seconds_per_function"], 4),
        "functions_per_s_free_cores": round(tp["functions_per_s_free_cores"], 2),
        "humaneval_functions_per_s": round(he["problems"] / he["seconds"], 2),
        "mean_mutation_score": round(tp["mean_mutation_score"], 4),
        "mean_mutation_score_all_mutants": round(provenance(tp["problems"])["mutation_score_all"], 4),
        "mean_branch_coverage": round(tp["mean_branch_coverage"], 4),
        "humaneval_canonical_accept_rate": round(he["canonical_accept_rate"], 4),
        "humaneval_mutant_reject_rate": round(he["mutant_reject_rate"], 4),
        "humaneval_extra_rejects": he["extra_rejects"],
        "humaneval_problems_with_tests": he["with_tests"],
        "pynguin_mutation_score": py.get("pynguin_mutation_score"),
        "pynguin_branch_coverage": py.get("pynguin_branch_coverage"),
        "pynguin_seconds_per_function": py.get("pynguin_seconds_per_function"),
        "pynguin_functions": py.get("functions"),
        "codegym_mutation_score_same_functions": py.get("codegym_mutation_score"),
        "codegym_branch_coverage_same_functions": py.get("codegym_branch_coverage"),
        "codegym_seconds_per_function": py.get("codegym_seconds_per_function"),
        "speedup_vs_pynguin": py.get("speedup_vs_pynguin"),
        "pynguin_error": py.get("pynguin_error"),
        "workers": args.workers,
    }
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
