"""Rewards: what a program's verdict is worth, selected by name or passed as a callable.

A reward is ``fn(problem, completion, result) -> float | dict``: it sees the `Problem`, the text the
model wrote and the `ExecResult`, so it can add length or format penalties on top of the verdict. A
dict holds at least ``"score"`` (the reward); its other keys are extra metrics (numbers), which
`codegym.scoring.Score.info` carries and agents log next to the reward. The presets below, and
every older ``fn(result) -> float`` reward, are wrapped: a callable with exactly one required
positional parameter is taken as an ``ExecResult -> float`` reward.

A reward whose value depends only on whether every test passed says so with the attribute
``all_or_nothing = True`` (``binary`` does; set it on your own function the same way). Scoring then
stops each program at its first failing test (`codegym.scoring.score`'s ``fail_fast``), whichever
form the reward is given in (a name, the function, or `get_reward`'s wrapper of it).

`register` names a reward, so that agents using it can be saved (a checkpoint stores the reward's
name, never a pickled function) and reloaded in any process that registers the same name.

The paper (Gorinski et al., 2023) gives partial credit for passing some of the tests, but its exact
values were never published. Our ``paper`` preset therefore borrows CodeRL's penalties for programs
that do not work at all (−1 for a syntax error, −0.6 when the program errors or times out without
passing a single test) and otherwise pays the fraction of tests passed, so that 1.0 means "all
passed". This keeps working programs always above broken ones, and broken-but-parseable programs
above unparseable ones, which is the ordering every reward in this family shares.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Union

from codegym.execution.result import ExecResult

if TYPE_CHECKING:
    from codegym.problems import Problem

RewardFn = Callable[[ExecResult], float]
"""The older reward shape: the verdict alone to a float (still accepted everywhere, wrapped)."""
Reward = Callable[["Problem", str, ExecResult], Union[float, dict[str, Any]]]
"""A reward: (problem, completion, result) to a float, or to a dict with ``"score"`` and extra metrics."""

__all__ = [
    "PRESETS",
    "Reward",
    "RewardFn",
    "all_or_nothing",
    "binary",
    "coderl",
    "get_reward",
    "name_of",
    "paper",
    "pass_ratio",
    "register",
    "registered",
    "rltf",
]


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


binary.all_or_nothing = True  # type: ignore[attr-defined]


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

_registry: dict[str, Callable[..., Any]] = dict(PRESETS)


def register(name: str, fn: Reward | RewardFn) -> None:
    """Make ``fn`` available as ``reward=name`` (agents, environments, adapters, ``codegym serve --reward``).

    Agents whose reward is ``fn`` (or ``name``) can then be saved: the checkpoint stores ``name``, and
    loading it needs ``register(name, fn)`` to have run in the loading process too. A name cannot be
    given to a second, different function.
    """
    if not isinstance(name, str) or not name or name.startswith("<"):
        raise ValueError(f"a reward name is a non-empty string not starting with '<', got {name!r}")
    if not callable(fn):
        raise TypeError(f"register({name!r}, fn): fn must be callable, got {type(fn).__name__}")
    _arity(fn)  # fails now, not mid-training, if the signature fits neither shape
    if _registry.get(name, fn) is not fn:
        raise ValueError(f"a different reward is already registered as {name!r}; choose another name")
    _registry[name] = fn


def registered() -> list[str]:
    """The names `get_reward` accepts."""
    return list(_registry)


def name_of(reward: str | Callable[..., Any]) -> str:
    """The registered name of ``reward`` (a name, or a registered function), for checkpoints.

    Raises ValueError, saying to `register` it, for a callable that was never registered: a
    checkpoint must name its reward, so that loading it can never fall back to another one.
    """
    if isinstance(reward, str):
        if reward not in _registry:
            raise ValueError(_unknown(reward))
        return reward
    for name, fn in _registry.items():
        if fn is reward:
            return name
    label = getattr(reward, "__qualname__", type(reward).__name__)
    raise ValueError(
        f"the reward {label} is an unnamed callable, so a checkpoint could not say which reward it used; "
        f"register it first: codegym.rewards.register('my_reward', {label}) (and register it again before loading)"
    )


def get_reward(reward: str | Reward | RewardFn) -> Reward:
    """The reward for a registered name or a callable, as ``fn(problem, completion, result)``.

    An ``ExecResult -> float`` callable (exactly one required positional parameter) is wrapped.
    """
    fn = reward if callable(reward) else _registry.get(reward)
    if fn is None:
        raise ValueError(_unknown(reward))
    if _arity(fn) == 3:
        return fn  # type: ignore[return-value]

    def wrapped(problem: Problem, completion: str, result: ExecResult) -> float:
        return fn(result)  # type: ignore[misc]

    wrapped.__qualname__ = wrapped.__name__ = getattr(fn, "__qualname__", "reward")
    wrapped.all_or_nothing = all_or_nothing(fn)  # type: ignore[attr-defined]
    return wrapped


def all_or_nothing(reward: str | Reward | RewardFn) -> bool:
    """Whether ``reward`` (a registered name or a callable) depends only on whether every test passed
    (its ``all_or_nothing`` attribute), so that a program may stop at its first failing test."""
    fn = reward if callable(reward) else _registry.get(reward)
    return bool(getattr(fn, "all_or_nothing", False))


def _arity(fn: Callable[..., Any]) -> int:
    """1 for an ``ExecResult -> float`` reward, 3 for ``(problem, completion, result)``."""
    try:
        params = list(inspect.signature(fn, follow_wrapped=False).parameters.values())
    except (TypeError, ValueError):
        return 1  # builtins without a signature: the old, one-argument shape
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    if any(p.kind is p.VAR_POSITIONAL for p in params) or len(positional) >= 3 and len(required) <= 3:
        return 3
    if len(required) == 1:
        return 1
    raise TypeError(
        f"a reward takes (problem, completion, result) or (result); {getattr(fn, '__qualname__', fn)!r} "
        f"has {len(required)} required positional parameters"
    )


def _unknown(name: Any) -> str:
    return f"unknown reward {name!r}; choose one of {', '.join(_registry)}, register one (codegym.rewards.register) or pass a callable"
