"""Reward presets."""

from __future__ import annotations

import pytest

from codegym.execution import ExecResult
from codegym.rewards import PRESETS, get_reward


def r(outcome, passed):
    return ExecResult(outcome, tuple(passed))


CASES = [
    (r("syntax_error", [False, False]), {"paper": -1.0, "binary": 0.0, "pass_ratio": 0.0, "coderl": -1.0, "rltf": -1.0}),
    (r("runtime_error", [False, False]), {"paper": -0.6, "binary": 0.0, "pass_ratio": 0.0, "coderl": -0.6, "rltf": -0.6}),
    (r("timeout", [False, False]), {"paper": -0.6, "binary": 0.0, "pass_ratio": 0.0, "coderl": -0.6, "rltf": -0.6}),
    (r("timeout", [True, False]), {"paper": 0.5, "binary": 0.0, "pass_ratio": 0.5, "coderl": -0.6, "rltf": -0.6}),
    (r("failed", [True, False, False, False]), {"paper": 0.25, "binary": 0.0, "pass_ratio": 0.25, "coderl": -0.3, "rltf": -0.3 + 1.3 * 0.25}),
    (r("failed", [False, False]), {"paper": 0.0, "binary": 0.0, "pass_ratio": 0.0, "coderl": -0.3, "rltf": -0.3}),
    (r("passed", [True, True]), {"paper": 1.0, "binary": 1.0, "pass_ratio": 1.0, "coderl": 1.0, "rltf": 1.0}),
]


@pytest.mark.parametrize(("result", "expected"), CASES)
def test_presets(result, expected):
    for name, value in expected.items():
        assert PRESETS[name](result) == pytest.approx(value), name
        assert get_reward(name)(None, "", result) == pytest.approx(value), name  # wrapped: (problem, completion, result)


def test_ordering_and_callables():
    for fn in PRESETS.values():
        rewards = [fn(c[0]) for c in CASES]
        assert rewards[-1] == max(rewards)
        assert rewards[0] == min(rewards)
    custom = lambda problem, completion, res: 42.0  # noqa: E731
    assert get_reward(custom) is custom
    assert get_reward(lambda res: 41.0)(None, "", CASES[0][0]) == 41.0
    with pytest.raises(ValueError, match="unknown reward 'nope'; choose one of paper"):
        get_reward("nope")
