"""OpenRLHF: ``reward_func`` for ``--remote_rm_url /path/to/openrlhf.py``; ``codegym serve`` is its HTTP form.

OpenRLHF calls ``reward_func(queries, prompts, labels)``: ``queries`` are the prompts followed by the
responses (decoded with the chat template's special tokens), ``prompts`` the prompts alone and
``labels`` the data set's ``--label_key`` column. A label is either the ``ground_truth`` JSON that
``codegym export`` writes (self-contained), or a codegym task id, looked up in the problem sources
named by the ``CODEGYM_PROBLEMS`` environment variable (comma-separated, e.g. ``mbpp,humaneval``).

The response is what follows the prompt in the query (`codegym.scoring.after_prompt`: compared
without special tokens and whitespace, so BOS and pad tokens decoded into the query but not into
the prompt do not matter); `codegym.scoring.program` turns it into a program, and a code block that
only repeats the problem's prompt (the exported instruction shows the signature in one) is never
graded as the answer. Each program runs under its problem's calibrated time limit (the ``time_limit``
that ``codegym export`` writes into the ground truth, or that a named data set carries), else the
executor's default. With an all-or-nothing reward (``binary``) programs stop at their first
failing test, so ``scores`` is 1.0 exactly when every test passed.
Returned: ``rewards`` (the reward), ``scores`` (the fraction of tests passed, in [0, 1], for
OpenRLHF's dynamic filtering) and ``extra_logs`` (per response: ``passed`` and a dict reward's extra
keys), as torch tensors; ``codegym serve`` returns the same as JSON lists.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from codegym import problems as problem_sources
from codegym import scoring
from codegym.execution import Executor
from codegym.integrations.records import from_ground_truth
from codegym.problems import Problem
from codegym.rewards import Reward, RewardFn

__all__ = ["resolve_label", "responses", "reward_func", "score_queries"]

_lookup: dict[str, Problem] | None = None


def responses(queries: Sequence[str], prompts: Sequence[str]) -> list[str]:
    """Each query without its prompt: what follows the prompt (`codegym.scoring.after_prompt`), or the
    whole query when the prompt is empty or does not occur in it."""
    out = []
    for query, prompt in zip(queries, prompts):
        rest = scoring.after_prompt(query, prompt) if prompt else None
        out.append(query if rest is None else rest)
    return out


def resolve_label(label: Any, problems: Mapping[str, Problem]) -> Problem:
    """The problem a label names: a ground-truth JSON string or dict, or a task id of ``problems``."""
    if isinstance(label, Mapping) or isinstance(label, str) and label.lstrip().startswith("{"):
        return from_ground_truth(label)
    if isinstance(label, str) and label in problems:
        return problems[label]
    known = f"{len(problems)} problems are loaded" if problems else "no problems are loaded"
    raise ValueError(f"label {str(label)[:80]!r} is neither codegym ground-truth JSON nor a known task id ({known})")


def score_queries(
    queries: Sequence[str],
    prompts: Sequence[str],
    labels: Sequence[Any],
    problems: Mapping[str, Problem],
    *,
    reward: str | Reward | RewardFn = "paper",
    executor: Executor | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """OpenRLHF's reward contract as plain lists: ``{"rewards", "scores", "extra_logs"}``.

    ``timeout``: seconds per program (None: each problem's calibrated limit, else the executor's default).
    """
    if not len(queries) == len(prompts) == len(labels):
        raise ValueError(f"query, prompts and labels must have the same length, got {len(queries)}, {len(prompts)} and {len(labels)}")
    chosen = [resolve_label(label, problems) for label in labels]
    scores = scoring.score(chosen, responses(queries, prompts), reward=reward, executor=executor, timeout=timeout)
    extra: dict[str, list[float]] = {"passed": [float(s.result.passed) for s in scores]}
    for key in sorted({k for s in scores for k in s.info}):
        extra[key] = [s.info.get(key, float("nan")) for s in scores]
    return {"rewards": [s.reward for s in scores], "scores": [s.result.pass_ratio for s in scores], "extra_logs": extra}


def reward_func(queries: Sequence[str], prompts: Sequence[str], labels: Sequence[Any], **kw: Any) -> dict[str, Any]:
    """OpenRLHF's custom reward function (``--remote_rm_url`` pointing at this file).

    ``kw`` may set ``reward`` (registered name or callable, default ``paper``), ``timeout`` (seconds
    per program; default: each problem's calibrated limit) and ``executor``; anything else OpenRLHF
    passes is ignored.
    """
    import torch

    timeout = kw.get("timeout")
    out = score_queries(queries, prompts, labels, _problems(), reward=kw.get("reward", "paper"), executor=kw.get("executor"),
                        timeout=None if timeout is None else float(timeout))  # fmt: skip
    return {
        "rewards": torch.tensor(out["rewards"], dtype=torch.float32),
        "scores": torch.tensor(out["scores"], dtype=torch.float32),
        "extra_logs": {k: torch.tensor(v, dtype=torch.float32) for k, v in out["extra_logs"].items()},
    }


def _problems(load: Callable[[str], list[Problem]] = problem_sources.load) -> dict[str, Problem]:
    """The problems of ``CODEGYM_PROBLEMS``, loaded once per process."""
    global _lookup
    if _lookup is None:
        names = [n.strip() for n in os.environ.get("CODEGYM_PROBLEMS", "").split(",") if n.strip()]
        _lookup = {p.task_id: p for name in names for p in load(name)}
    return _lookup
