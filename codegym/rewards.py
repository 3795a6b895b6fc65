"""Rewards: functions from an `ExecResult` to a float, selected by name or passed as a callable.

The paper (Gorinski et al., 2023) gives partial credit for passing some of the tests, but its exact
values were never published. Our ``paper`` preset therefore borrows CodeRL's penalties for programs
that do not work at all (−1 for a syntax error, −0.6 when the program errors or times out without
passing a single test) and otherwise pays the fraction of tests passed, so that 1.0 means "all
passed". This keeps working programs always above broken ones, and broken-but-parseable programs
above unparseable ones, which is the ordering every reward in this family shares.
"""

from __future__ import annotations

from collections.abc import Callable

from codegym.execution.result import ExecResult

RewardFn = Callable[[ExecResult], float]

__all__ = ["PRESETS", "RewardFn", "binary", "coderl", "get_reward", "paper", "pass_ratio", "rltf"]


def paper(result: ExecResult) -> float:
    """Partial credit (our reading of the paper): −1 syntax error; −0.6 if it errors or times out
    without passing any test; otherwise the fraction of tests passed (1.0 only when all pass)."""
    if result.outcome == "syntax_error":
        return -1.0
    if result.outcome in ("runtime_error", "timeout") and result.n_passed == 0:
        return -0.6
    return result.pass_ratio


def binary(result: ExecResult) -> float:
    """1.0 when every test passes, else 0.0."""
    return 1.0 if result.passed else 0.0


def pass_ratio(result: ExecResult) -> float:
    """The fraction of tests passed, in [0, 1]."""
    return result.pass_ratio


def coderl(result: ExecResult) -> float:
    """CodeRL (Le et al., 2022): −1 compile error, −0.6 runtime error or timeout, −0.3 failed tests, +1 all passed."""
    return {"syntax_error": -1.0, "runtime_error": -0.6, "timeout": -0.6, "failed": -0.3, "passed": 1.0}[result.outcome]


def rltf(result: ExecResult) -> float:
    """RLTF-style fine-grained reward: +1 all passed; −1 syntax error; −0.6 runtime error or timeout;
    otherwise −0.3 + 1.3 × fraction passed."""
    if result.outcome == "passed":
        return 1.0
    if result.outcome == "syntax_error":
        return -1.0
    if result.outcome in ("runtime_error", "timeout"):
        return -0.6
    return -0.3 + 1.3 * result.pass_ratio


PRESETS: dict[str, RewardFn] = {
    "paper": paper,
    "binary": binary,
    "pass_ratio": pass_ratio,
    "coderl": coderl,
    "rltf": rltf,
}


def get_reward(reward: str | RewardFn) -> RewardFn:
    """The reward function for a preset name, or ``reward`` itself if it is callable."""
    if callable(reward):
        return reward
    try:
        return PRESETS[reward]
    except KeyError:
        raise ValueError(f"unknown reward preset {reward!r}; choose one of {', '.join(PRESETS)} or pass a callable") from None
