"""Does the shipped policy repair better than it resamples? Self-repair vs resampling at the same budget.

For each seed, `codegym.agents.evaluate_repair` runs ``--n`` repair episodes per problem (feedback of
the visible tests, up to ``--max-turns`` attempts) and estimates resample@T from the same episodes'
first attempts. The table gives pass@1 after each turn, the repair rate, resample@T and the
difference repair − resample with a paired bootstrap 95% interval over problems × seeds.

    python -m codegym.experiments.repair_study --problems simple --n 10 --max-turns 3 --seeds 0,1 --out experiments/results/repair

Only the untrained policy (``clm``) is evaluated: the study's second question (does multi-turn RL
raise turn-2+ success beyond single-turn RL at the same budget?) needs training runs this script does
not do.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from codegym import agents
from codegym.experiments.bootstrap import paired_bootstrap
from codegym.experiments.data import parse_spec


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", default="simple", help="a data spec (experiments/data.py), e.g. simple or basic:validation@64+examples")
    parser.add_argument("--n", type=int, default=10, help="repair episodes per problem (and first attempts for resample@T)")
    parser.add_argument("--max-turns", type=int, default=3)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path("runs/repair"))
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    from codegym.execution import Executor

    started = time.time()
    with Executor() as executor:
        chosen = _load(args.problems)
        agent = agents.make("clm", max_new_tokens=args.max_new_tokens)
        runs = []
        for seed in seeds:
            summary = agents.evaluate_repair(agent, chosen, n=args.n, max_turns=args.max_turns, executor=executor, seed=seed, out=args.out / f"episodes_seed{seed}.jsonl")
            runs.append(summary)
    T = args.max_turns
    per_turn = np.zeros((len(chosen), len(seeds), T))
    resample = np.zeros((len(chosen), len(seeds)))
    for s, seed in enumerate(seeds):
        rows = [json.loads(line) for line in (args.out / f"episodes_seed{seed}.jsonl").read_text().splitlines()]
        for p, row in enumerate(rows):
            solved = row["solved_at_turn"]
            per_turn[p, s] = [sum(x is not None and x <= t for x in solved) / row["n"] for t in range(1, T + 1)]
            resample[p, s] = agents.pass_at_k(row["n"], sum(x == 1 for x in solved), T)
    diff = paired_bootstrap(per_turn[:, :, -1], resample)
    turn2 = paired_bootstrap(per_turn[:, :, -1], per_turn[:, :, 0])
    table = {
        "problems": args.problems, "n_problems": len(chosen), "n": args.n, "max_turns": T, "seeds": seeds,
        "pass@1_by_turn": [float(per_turn[:, :, t].mean()) for t in range(T)],
        "pass@1_by_turn_std_over_seeds": [float(per_turn[:, :, t].mean(0).std()) for t in range(T)],
        f"resample@{T}": float(resample.mean()),
        "repair_rate": [r["repair_rate"] for r in runs],
        "programs_per_episode": [r["programs_per_episode"] for r in runs],
        "repair_minus_resample": {"mean": diff.mean, "low": diff.low, "high": diff.high},
        "turn_T_minus_turn_1": {"mean": turn2.mean, "low": turn2.low, "high": turn2.high},
        "wall_s": round(time.time() - started, 1), "machine": f"{platform.node()} {platform.processor() or platform.machine()}",
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table_repair.json").write_text(json.dumps(table, indent=2) + "\n")
    lines = [
        f"# repair: self-repair vs resampling ({args.problems}, {len(chosen)} problems, clm, n = {args.n}, T = {T}, seeds {args.seeds})",
        "",
        "| turn | pass@1 after the turn (mean ± std over seeds) |",
        "|---|---|",
        *[f"| {t + 1} | {table['pass@1_by_turn'][t]:.3f} ± {table['pass@1_by_turn_std_over_seeds'][t]:.3f} |" for t in range(T)],
        "",
        f"- resample@{T} (T fresh first attempts, same number of programs): {table[f'resample@{T}']:.3f}",
        f"- repair rate (failed first attempts fixed later), per seed: {', '.join(f'{r:.3f}' if r is not None else '-' for r in table['repair_rate'])}",
        f"- programs per repair episode, per seed: {', '.join(f'{x:.2f}' for x in table['programs_per_episode'])}",
        f"- repair@{T} − resample@{T}: {diff.text()} (paired bootstrap 95%, problems × seeds)",
        f"- turn {T} − turn 1: {turn2.text()}",
        "",
        f"Wall clock {table['wall_s']} s.",
    ]
    (args.out / "table_repair.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(json.dumps(table))


def _load(spec: str):
    from codegym.experiments.data import _first
    from codegym.problems import load

    parsed = parse_spec(spec)
    chosen = _first(load(parsed.source, split=parsed.split), parsed.limit)
    return [p.with_examples() for p in chosen] if parsed.examples else chosen


if __name__ == "__main__":
    main()
