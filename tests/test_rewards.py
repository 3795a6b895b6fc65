"""Reward presets."""

from __future__ import annotations

import functools

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


def test_paper_gives_partial_credit_after_an_error_that_passed_some_tests():
    some = r("runtime_error", [True, False, False, False])
    assert PRESETS["paper"](some) == 0.25 and PRESETS["coderl"](some) == -0.6 and PRESETS["rltf"](some) == -0.6
    assert PRESETS["rltf"](r("failed", [True, False])) == pytest.approx(-0.3 + 1.3 * 0.5)


def test_register_names_and_their_errors():
    from codegym import rewards

    def mine(problem, completion, result):
        return 2.0

    name = f"test_rewards_mine_{id(mine)}"
    for bad in ("", "<lambda>", 3):
        with pytest.raises(ValueError, match="a reward name is a non-empty string not starting with '<', got"):
            rewards.register(bad, mine)
    with pytest.raises(TypeError, match=r"register\('x', fn\): fn must be callable, got int"):
        rewards.register("x", 3)
    with pytest.raises(TypeError, match="has 2 required positional parameters"):
        rewards.register("x", lambda a, b: 0.0)
    assert "x" not in rewards.registered()  # nothing half-registered
    rewards.register(name, mine)
    assert rewards.registered()[:5] == ["paper", "binary", "pass_ratio", "coderl", "rltf"] and name in rewards.registered()
    assert rewards.name_of(name) == name and rewards.name_of(mine) == name and rewards.name_of(PRESETS["binary"]) == "binary"
    with pytest.raises(ValueError, match=f"a different reward is already registered as '{name}'; choose another name"):
        rewards.register(name, lambda p, c, r: 0.0)
    with pytest.raises(ValueError, match="unknown reward 'nope'; choose one of paper, binary, pass_ratio, coderl, rltf, .*register one \\(codegym.rewards.register\\) or pass a callable"):
        rewards.name_of("nope")

    def unnamed(result):
        return 0.0

    with pytest.raises(ValueError, match=r"the reward .*unnamed is an unnamed callable, .*register it first: codegym.rewards.register\('my_reward', .*unnamed\)"):
        rewards.name_of(unnamed)


def test_reward_shapes_and_the_wrapper():
    from codegym import rewards

    passed, failed = r("passed", [True]), r("failed", [False])

    def three_with_default(problem, completion, result, scale=2.0):
        return scale * result.pass_ratio

    def one_with_default(result, scale=3.0):
        return scale * result.pass_ratio

    def star(*args):
        return float(len(args))

    def four(a, b, c, d):
        return 0.0

    assert get_reward(three_with_default) is three_with_default and get_reward(star) is star
    assert get_reward(one_with_default)(None, "", passed) == 3.0  # one required positional: the old shape, wrapped
    with pytest.raises(TypeError, match=r"takes \(problem, completion, result\) or \(result\); 'test_reward_shapes_and_the_wrapper.<locals>.four' has 4 "):
        get_reward(four)

    class Scaled:  # a callable object: no __qualname__ of its own
        def __call__(self, result):
            return 2.0 * result.pass_ratio

    class Two:
        def __call__(self, a, b):
            return 0.0

    scaled = Scaled()
    assert get_reward(scaled)(None, "", passed) == 2.0 and get_reward(scaled).__name__ == "reward"
    with pytest.raises(TypeError, match=r"; <.*Two object at 0x\w+> has 2 required positional parameters"):
        get_reward(Two())
    with pytest.raises(ValueError, match="the reward Scaled is an unnamed callable"):
        rewards.name_of(scaled)

    def doubled(fn):  # a decorator that changes the shape: its own signature counts, not the wrapped one's
        @functools.wraps(fn)
        def shaped(problem, completion, result):
            return 2.0 * fn(result)

        return shaped

    twice = doubled(PRESETS["pass_ratio"])
    assert get_reward(twice) is twice and twice(None, "", passed) == 2.0
    wrapped = get_reward(max)  # a builtin without a signature: the one-argument shape
    assert wrapped is not max and wrapped.__name__ == wrapped.__qualname__ == "max"
    binary = get_reward("binary")
    assert binary.__name__ == binary.__qualname__ == "binary" and binary(None, "", passed) == 1.0 and binary(None, "", failed) == 0.0
    assert binary.all_or_nothing is True and get_reward("paper").all_or_nothing is False
    assert rewards.all_or_nothing("binary") and rewards.all_or_nothing(PRESETS["binary"]) and rewards.all_or_nothing(binary)
    assert not rewards.all_or_nothing("paper") and not rewards.all_or_nothing("nope") and not rewards.all_or_nothing(one_with_default)
