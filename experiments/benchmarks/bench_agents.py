"""Agents head to head: training throughput, time lost waiting on the sandbox, and the pass rate reached.

One run, same problems, same initial policy for the LM agents, same sample budget (completed
episodes) and the same batch shape (problems × samples per problem) for ``actor_critic``, ``ppo_lm``,
``coderl``, ``grpo``, ``rloo`` and ``ppo_sb3``:

- samples/s: completed episodes per second of training wall clock, sandbox execution included;
- ``exec_wait_fraction``: the share of ``actor_critic``'s training wall clock spent blocked on test
  execution (sampling of the next batch overlaps the execution of the previous one);
- pass rate: pass@1 on the training problems after the budget (``--eval-n`` samples per problem);
- ``ratio_vs_ppo_lm``, ``ratio_vs_grpo``: actor_critic's samples/s over theirs;
- ``ppo_sb3_vs_ppo_lm``: ppo_sb3's samples/s (SB3's PPO with `codegym.agents.sb3.LMPolicy`, the same
  LM) over ppo_lm's (target ≥ 0.5), and ``ppo_sb3_first_quarter_pass_rate`` /
  ``ppo_sb3_last_quarter_pass_rate`` (with ``_se``, standard errors): its training pass rate over the first
  and last quarter of its episodes, in order of completion, its first rollout left out (see `quarter_pass_rates`).

The budget is trained in ``--rounds`` rounds, the agents taking turns within each round, so that load
from other processes on a shared machine hits every agent alike. Every agent starts from the same LM
(``ppo_sb3`` through `LMPolicy`; its batch is SB3's ``n_steps × n_envs`` tokens, not problems × samples).
``--agents`` runs a subset (ppo_lm is always kept: the ratios need it). Ends with one JSON line.

    python experiments/benchmarks/bench_agents.py [--quick] [--problems simple] [--budget 512] [--agents ppo_lm,ppo_sb3]
    python experiments/benchmarks/bench_agents.py --quarters runs/ppo_sb3/log.jsonl   # the same quarters for a `codegym train` run
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch

from codegym import agents
from codegym import problems as sources
from codegym.execution import Executor

AGENTS = ("actor_critic", "ppo_lm", "coderl", "grpo", "rloo", "ppo_sb3")


def train_round(agent, problems, episodes: int, per_step: int, executor, history: list[dict]) -> float:
    """Train ``agent`` on about ``episodes`` more episodes (its step metrics go to ``history``); returns the wall-clock seconds it took."""
    start = time.perf_counter()
    if agent.name == "ppo_sb3":  # episodes per SB3 iteration vary: iterate until the count is reached
        target = agent.timing["episodes"] + episodes
        while agent.timing["episodes"] < target:
            history += agent.fit(problems, 1, executor=executor)
    else:
        history += agent.fit(problems, math.ceil(episodes / per_step), executor=executor)
    return time.perf_counter() - start


def quarter_pass_rates(history: list[dict]) -> dict[str, float]:
    """Training pass rate over the first and the last quarter of the episodes, in order of completion, with standard errors.

    The steps' episodes are laid end to end (a step straddling a quarter's edge counts in proportion).
    The first step is left out: with every env starting an episode at once, the episodes that end
    within the first rollout are the short ones, which pass more often on ``simple``; from the
    second rollout on, the episodes in progress at a rollout's start and at its end balance, so the
    episodes that end in a rollout are an unbiased sample of the policy's. The standard error is
    the binomial one, √(p(1−p)/n).
    """
    episodes = [(m["pass_rate"], m["episodes"]) for m in history[1:] if m.get("episodes")]
    total = sum(n for _, n in episodes)

    def rate(lo: float, hi: float) -> tuple[float, float]:
        seen, passed, count = 0, 0.0, 0.0
        for p, n in episodes:
            overlap = max(0.0, min(hi, seen + n) - max(lo, seen))
            passed, count = passed + p * overlap, count + overlap
            seen += n
        if not count:
            return float("nan"), float("nan")
        mean = passed / count
        return round(mean, 4), round(math.sqrt(mean * (1 - mean) / count), 4)

    (first, first_se), (last, last_se) = rate(0, total / 4), rate(3 * total / 4, total)
    return {"first_quarter_pass_rate": first, "first_quarter_se": first_se, "last_quarter_pass_rate": last, "last_quarter_se": last_se,
            "quarter_episodes": round(total / 4, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="A small budget and short completions (a few minutes on 2 busy CPU cores).")
    parser.add_argument("--problems", default="simple", help="Problem source (name or path).")
    parser.add_argument("--split", default=None, help="Split used as the training set (default: all problems of the source).")
    parser.add_argument("--policy", default="default", help="Initial policy of the LM agents (and tokenizer of ppo_sb3).")
    parser.add_argument("--preset", default="default", help="Agent preset.")
    parser.add_argument("--budget", type=int, default=None, help="Completed episodes each agent trains on (default 2048; --quick 512).")
    parser.add_argument("--rounds", type=int, default=None, help="Turns the budget is split into, agents alternating (default 4; --quick 2).")
    parser.add_argument("--batch-problems", type=int, default=8)
    parser.add_argument("--samples-per-problem", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=None, help="Default 64; --quick 32.")
    parser.add_argument("--eval-n", type=int, default=None, help="Samples per problem for the final pass rate (default 4; --quick 2).")
    parser.add_argument("--workers", type=int, default=2, help="Sandbox workers.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--agents", default=",".join(AGENTS), help="Comma-separated agents to run (ppo_lm is always included).")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 avoids oversubscribing cores shared with the sandbox workers).")
    parser.add_argument("--quarters", metavar="LOG", default=None,
                        help="Print the first- and last-quarter training pass rates of a `codegym train` run's log.jsonl (one JSON line) and exit.")
    args = parser.parse_args()
    if args.quarters:
        with open(args.quarters) as f:
            print(json.dumps(quarter_pass_rates([json.loads(line) for line in f if line.strip()])))
        return
    defaults = {"budget": (2048, 512), "rounds": (4, 2), "max_new_tokens": (64, 32), "eval_n": (4, 2)}
    for key, (full, quick) in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, quick if args.quick else full)

    torch.set_num_threads(args.threads)
    chosen = [a for a in AGENTS if a in set(args.agents.split(",")) | {"ppo_lm"}]
    unknown = set(args.agents.split(",")) - set(AGENTS)
    if unknown:
        parser.error(f"unknown agent(s) {', '.join(sorted(unknown))}; choose from {', '.join(AGENTS)}")
    problems = sources.load(args.problems, split=args.split)
    per_step = args.batch_problems * args.samples_per_problem
    lm = {"batch_problems": args.batch_problems, "samples_per_problem": args.samples_per_problem}
    out: dict[str, object] = {"problems": args.problems, "n_problems": len(problems), "budget_episodes": args.budget}
    with Executor(workers=args.workers) as executor:
        learners = {
            name: agents.make(name, policy=args.policy, preset=args.preset, max_new_tokens=args.max_new_tokens, seed=args.seed, **({} if name == "ppo_sb3" else lm))
            for name in chosen
        }
        # Warm-up, not timed: the sandbox pool's start and each model's first call.
        executor.run(problems[0].reference_program() if problems[0].reference else "pass", list(problems[0].tests))
        for name in chosen:
            learners[name].generate([problems[0].prompt], 1)
        wall = dict.fromkeys(chosen, 0.0)
        history: dict[str, list[dict]] = {name: [] for name in chosen}
        for _ in range(args.rounds):
            for name in chosen:
                wall[name] += train_round(learners[name], problems, args.budget // args.rounds, per_step, executor, history[name])
        for name in chosen:
            agent = learners[name]
            episodes = agent.timing["episodes"]
            result = agents.evaluate_agent(agent, problems, n=args.eval_n, ks=[1], executor=executor, seed=args.seed)
            out[f"{name}_samples_per_s"] = round(episodes / wall[name], 3)
            out[f"{name}_pass_rate"] = result["pass@1"]
            out[f"{name}_episodes"] = episodes
            out[f"{name}_wall_s"] = round(wall[name], 2)
            print(f"{name:13s} {episodes / wall[name]:8.2f} samples/s  {episodes} episodes in {wall[name]:.1f}s  pass@1 {result['pass@1']:.3f}", flush=True)
    if "actor_critic" in learners:
        out["actor_critic_exec_wait_s"] = round(learners["actor_critic"].timing["exec_wait_s"], 3)
        out["exec_wait_fraction"] = round(learners["actor_critic"].timing["exec_wait_s"] / wall["actor_critic"], 4)
        out["ratio_vs_ppo_lm"] = round(out["actor_critic_samples_per_s"] / out["ppo_lm_samples_per_s"], 3)  # type: ignore[operator]
        if "grpo" in learners:
            out["ratio_vs_grpo"] = round(out["actor_critic_samples_per_s"] / out["grpo_samples_per_s"], 3)  # type: ignore[operator]
    if "ppo_sb3" in learners:
        out["ppo_sb3_vs_ppo_lm"] = round(out["ppo_sb3_samples_per_s"] / out["ppo_lm_samples_per_s"], 3)  # type: ignore[operator]
        quarters = quarter_pass_rates(history["ppo_sb3"])
        out.update({f"ppo_sb3_{key}": value for key, value in quarters.items()})
        print(f"ppo_sb3 / ppo_lm samples/s: {out['ppo_sb3_vs_ppo_lm']:.3f}; ppo_sb3 training pass rate, first quarter "
              f"{quarters['first_quarter_pass_rate']:.3f} ± {quarters['first_quarter_se']:.3f}, last quarter "
              f"{quarters['last_quarter_pass_rate']:.3f} ± {quarters['last_quarter_se']:.3f}", flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
