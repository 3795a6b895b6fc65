"""pass@k with the unbiased estimator of Chen et al. (2021), and evaluation of an agent on problems."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from codegym import scoring
from codegym.execution import Executor
from codegym.problems import Problem

__all__ = ["estimate_pass_at_k", "evaluate_agent", "evaluate_repair", "pass_at_k"]


def pass_at_k(n: int, c: int, k: int) -> float:
    """The probability that at least one of ``k`` samples drawn without replacement from ``n`` (``c`` correct) is correct.

    ``1 - C(n - c, k) / C(n, k)``, computed as a stable product (Chen et al. 2021, Codex paper).
    """
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if k < 1 or k > n:
        raise ValueError(f"k must be between 1 and n={n}, got {k}; sample at least k completions per problem")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def estimate_pass_at_k(ns: Sequence[int], cs: Sequence[int], k: int) -> float:
    """The mean pass@k over problems with ``ns[i]`` samples of which ``cs[i]`` are correct."""
    return float(np.mean([pass_at_k(n, c, k) for n, c in zip(ns, cs)]))


def evaluate_agent(
    agent: Any,
    problems: Sequence[Problem],
    n: int = 10,
    ks: Sequence[int] = (1, 5, 10),
    executor: Executor | None = None,
    out: str | Path | None = None,
    timeout: float | None = None,
    temperature: float | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Sample ``n`` completions per problem from ``agent``, run them, and return pass@k for each k ≤ n.

    ``temperature`` (None: the agent's own) and ``seed`` go to ``agent.generate``. With ``out``, one JSON line per problem (task id, number correct, outcomes, completions) is written there.
    """
    ks = sorted({k for k in ks if k <= n})
    if not ks:
        raise ValueError(f"every k is larger than n={n}; raise --n or lower --k")
    completions = agent.generate([p.prompt for p in problems], n, temperature=temperature, seed=seed)
    flat = [(p, c) for p, row in zip(problems, completions) for c in row]
    scores = scoring.score([p for p, _ in flat], [c for _, c in flat], reward="binary", executor=executor, timeout=timeout, mode="body", fail_fast=True)  # only "all passed" counts
    results = [s.result for s in scores]
    records = []
    for i, (p, row) in enumerate(zip(problems, completions)):
        res = results[i * n : (i + 1) * n]
        records.append(
            {
                "task_id": p.task_id,
                "n": n,
                "correct": sum(r.passed for r in res),
                "outcomes": [r.outcome for r in res],
                "completions": row,
            }
        )
    summary: dict[str, Any] = {
        f"pass@{k}": estimate_pass_at_k([r["n"] for r in records], [r["correct"] for r in records], k) for k in ks
    }
    summary["n_problems"] = len(problems)
    summary["n_samples"] = n
    if out is not None:
        _write_records(Path(out), records)
    return summary


def _write_records(path: Path, records: list[dict[str, Any]]) -> None:
    """One JSON line per problem (the per-task file of `evaluate_agent` and `evaluate_repair`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")


def evaluate_repair(
    agent: Any,
    problems: Sequence[Problem],
    n: int = 10,
    max_turns: int = 3,
    executor: Executor | None = None,
    out: str | Path | None = None,
    timeout: float | None = None,
    temperature: float | None = None,
    seed: int = 0,
    visible_tests: int | None = None,
    feedback: str = "first_failure",
) -> dict[str, Any]:
    """Self-repair against resampling at the same number of programs (Olausson et al., ICLR 2024).

    ``n`` repair episodes per problem (`codegym/CodeRepair-v0`'s rules: the prompt, then after each
    failed attempt `codegym.envs.repair.render_prompt` of the episode so far, up to ``max_turns``
    attempts; an episode stops once every test passes). Returns:

    - ``pass@1_turn_T``: the share of episodes solved by attempt T (mean over problems), for T = 1..max_turns;
    - ``repair_rate``: of the episodes whose first attempt failed, the share a later attempt solved;
    - ``resample@T`` (T = max_turns): the chance that T independent first attempts hold a correct
      one, estimated without bias from the ``n`` first attempts (they are independent samples of
      the prompt): the same number of generated programs as a repair episode's most, so the
      comparison never favours repair;
    - ``repair_minus_resample``: ``pass@1_turn_T − resample@T`` with a paired bootstrap 95% interval over problems;
    - ``programs_per_episode``: generated programs per repair episode (at most ``max_turns``).
    """
    from codegym import feedback as fb
    from codegym.envs.repair import render_prompt
    from codegym.experiments.bootstrap import paired_bootstrap

    if n < max_turns:
        raise ValueError(f"resample@{max_turns} needs n >= max_turns first attempts per problem, got n={n}; raise --n")
    episodes = [p for p in problems for _ in range(n)]
    prompts = [fb.shown_prompt(p, visible_tests) for p in episodes]
    history: list[list[tuple[str, fb.Attempt]]] = [[] for _ in episodes]
    active = list(range(len(episodes)))
    for turn in range(max_turns):
        if not active:
            break
        if turn == 0:
            rows = agent.generate([prompts[i] for i in range(0, len(episodes), n)], n, temperature=temperature, seed=seed)
            texts = [t for row in rows for t in row]
        else:
            obs = [{"prompt": prompts[i], "attempts": tuple(t for t, _ in history[i]), "feedback": tuple(a.feedback.text for _, a in history[i])} for i in active]
            texts = [row[0] for row in agent.generate([render_prompt(o) for o in obs], 1, temperature=temperature, seed=seed + 7919 * turn)]
        attempts = fb.check([episodes[i] for i in active], texts, visible=visible_tests, form=feedback, reward="binary", executor=executor, timeout=timeout, mode="body")
        for i, t, a in zip(active, texts, attempts):
            history[i].append((t, a))
        active = [i for i in active if not history[i][-1][1].score.result.passed]
    solved_at = [next((t + 1 for t, (_, a) in enumerate(h) if a.score.result.passed), None) for h in history]
    records, by_turn, resample = [], [], []
    for j, p in enumerate(problems):
        mine = solved_at[j * n : (j + 1) * n]
        first = sum(s == 1 for s in mine)
        by_turn.append([sum(s is not None and s <= t for s in mine) / n for t in range(1, max_turns + 1)])
        resample.append(pass_at_k(n, first, max_turns))
        records.append({"task_id": p.task_id, "n": n, "solved_at_turn": mine, "attempts": [[t for t, _ in h] for h in history[j * n : (j + 1) * n]]})
    failed_first = [s for s in solved_at if s != 1]
    summary: dict[str, Any] = {f"pass@1_turn_{t}": float(np.mean([row[t - 1] for row in by_turn])) for t in range(1, max_turns + 1)}
    summary["repair_rate"] = sum(s is not None for s in failed_first) / len(failed_first) if failed_first else None
    summary[f"resample@{max_turns}"] = float(np.mean(resample))
    diff = paired_bootstrap([[row[-1]] for row in by_turn], [[r] for r in resample])
    summary["repair_minus_resample"] = {"mean": diff.mean, "low": diff.low, "high": diff.high, "level": diff.level}
    summary["programs_per_episode"] = sum(len(h) for h in history) / len(history)
    summary.update(n_problems=len(problems), n_samples=n, max_turns=max_turns, feedback=feedback, visible_tests=visible_tests)
    if out is not None:
        _write_records(Path(out), records)
    return summary
