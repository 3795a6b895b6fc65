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

__all__ = ["estimate_pass_at_k", "evaluate_agent", "pass_at_k"]


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
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w") as fh:
            for r in records:
                fh.write(json.dumps(r) + "\n")
    return summary
