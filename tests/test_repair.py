"""The multi-turn repair environment and its feedback: contracts, the scripted episode, and that no
feedback ever shows a hidden test (random wrong completions and hostile programs)."""

from __future__ import annotations

import ast
import random
import re
import sys

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import codegym  # noqa: F401  (registers the environments)
from codegym import feedback as fb
from codegym import problems as problem_sources
from codegym.envs import CodeRepairEnv, render_messages, render_prompt
from codegym.execution.plans import plan_test
from codegym.problems import Problem

ADD = Problem(
    "add",
    'def add(a, b):\n    """Return a + b.\n    >>> add(1, 2)\n    3\n    """\n',
    "add",
    ("assert add(1, 2) == 3", "assert add(-5, 11) == 6", "assert add(100, 250) == 350"),
    reference="def add(a, b):\n    return a + b\n",
)


@pytest.fixture(scope="module")
def mbpp():
    return problem_sources.load("mbpp", split="train")


def test_check_env_and_registration():
    env = gym.make("codegym/CodeRepair-v0", problems="mbpp", max_turns=3)
    check_env(env.unwrapped, skip_render_check=True)
    assert env.unwrapped.max_turns == 3


def test_scripted_episode_wrong_then_reference(executor, mbpp):
    env = CodeRepairEnv(problems=mbpp, split=None, max_turns=3, executor=executor)
    obs, info = env.reset(seed=0, options={"task_id": "MBPP/604"})
    problem = env.problem
    assert obs["attempts"] == () and obs["feedback"] == ()
    obs, reward, terminated, truncated, info = env.step("    return s\n")
    assert (reward, terminated, truncated) == (0.0, False, False)
    text = info["feedback"]
    assert problem.tests[0] in text  # the failing visible test as written
    assert "returned 'python program'" in text  # the value got
    assert obs["feedback"] == (text,) and obs["attempts"] == ("    return s\n",)
    first = info["feedback_fields"]["tests"][0]
    assert first["status"] == "failed" and first["got"] == "'python program'"
    obs, reward, terminated, truncated, info = env.step(problem.reference)  # a whole function: scoring's rules
    assert terminated and not truncated and reward == 1.0
    assert info["solved_at_turn"] == 2 and info["turns"] == 2
    assert info["turn_outcomes"] == ["failed", "passed"] and info["turn_pass_ratios"] == [0.0, 1.0]
    with pytest.raises(RuntimeError):
        env.step("    return s\n")


def test_truncation_penalty_and_empty_action(executor):
    env = CodeRepairEnv(problems=[ADD], split=None, max_turns=2, turn_penalty=0.1, executor=executor)
    env.reset(seed=0)
    _, r1, term, trunc, _ = env.step("    return a - b\n")
    assert (r1, term, trunc) == (0.0, False, False)
    _, r2, term, trunc, info = env.step("    return a * b\n")
    assert trunc and not term and info["solved_at_turn"] is None and info["turns"] == 2
    assert r2 == pytest.approx(0.0 - 0.1)  # paper: 0 of 3 pass -> 0.0, minus the penalty
    env.reset(seed=0)
    env.step("    return 3\n")  # passes 1 of 3
    _, r, term, trunc, info = env.step("")
    assert term and not trunc and info["turns"] == 1 and r == pytest.approx(1 / 3)


def test_improvement_mode_pays_the_change_in_pass_ratio(executor):
    env = CodeRepairEnv(problems=[ADD], split=None, max_turns=3, reward_mode="improvement", executor=executor)
    env.reset(seed=0)
    rewards = [env.step(body)[1] for body in ("    return 3\n", "    return a + b\n")]
    assert rewards == pytest.approx([1 / 3, 2 / 3])


def test_examples_are_the_prompts_tests(mbpp):
    assert fb.examples(ADD.prompt) == ("assert add(1, 2) == 3",)
    assert fb.visible_tests(ADD) == ("assert add(1, 2) == 3",)
    assert fb.hidden_tests(ADD) == ADD.tests[1:]
    p = mbpp[0]
    assert fb.visible_tests(p) == p.tests[:1] and fb.hidden_tests(p) == p.tests[1:]  # MBPP shows its first assert (two stay hidden)
    shown = fb.shown_prompt(p, 1)
    assert p.tests[0] in shown and not any(t in shown for t in p.tests[1:])
    assert ast.parse(shown + "    pass\n")
    assert fb.visible_tests(p, 1) == p.tests[:1] and fb.hidden_tests(p, 1) == p.tests[1:]


@pytest.mark.parametrize("source", ["humaneval", "mbpp"])
def test_prompts_with_hidden_examples_removed_still_parse(source):
    """Removing a hidden example keeps the docstring's closing quotes, also when they stand alone on the line
    after the example's output (HumanEval/1, /2, /6, ... lost them, and the prompt no longer parsed)."""
    from codegym import problems

    broken = [(p.task_id, k) for p in problems.load(source) for k in range(4)
              if not _parses(fb.shown_prompt(p, k) + "    pass\n")]
    assert broken == []
    he1 = problems.load("humaneval")[1]
    assert fb.shown_prompt(he1, 0).endswith('    Ignore any spaces in the input string.\n    """\n')


def _parses(source: str) -> bool:
    try:
        ast.parse(source)
    except SyntaxError:
        return False
    return True


def test_feedback_forms_and_bounds(executor):
    bodies = ["    return a - b\n", "    return a +\n", "    raise ValueError('bad')\n", "    while True:\n        pass\n"]
    first = fb.check([ADD] * 4, bodies, executor=executor, timeout=1.0)
    assert "add(1, 2) returned -1" in first[0].feedback.text
    assert "does not compile" in first[1].feedback.text and "SyntaxError" in first[1].feedback.text
    assert "raised ValueError: bad" in first[2].feedback.text
    assert "time limit" in first[3].feedback.text and not re.search(r"\d+\.\d+ ?s", first[3].feedback.text)
    only = fb.check([ADD], bodies[:1], form="outcome_only", executor=executor)[0].feedback
    assert only.text == "0 of 1 tests shown in the prompt pass." and only.tests == ()
    two = Problem("two", 'def two(x):\n    """\n    >>> two(1)\n    2\n    >>> two(2)\n    4\n    """\n', "two", ("assert two(1) == 2", "assert two(2) == 4"))
    every = fb.check([two], ["    return 0\n"], form="all_failures", executor=executor)[0].feedback.text
    assert "two(1) returned 0" in every and "two(2) returned 0" in every
    huge = fb.check([ADD], ["    return 'x' * 100000 + str(10 ** 5000 > 0)\n"], executor=executor)[0].feedback
    assert len(huge.text) <= fb.MAX_CHARS


def _fragments(problem: Problem, k: int | None) -> list[str]:
    """The distinctive text of each hidden test: the test, its call and expected value, unless the
    model may see them anyway (the prompt it is shown, the visible tests)."""
    seen = fb.shown_prompt(problem, k) + "\n".join(fb.visible_tests(problem, k))
    out = []
    for test in fb.hidden_tests(problem, k):
        tree = ast.parse(test).body[0]
        parts = [test]
        if isinstance(tree, ast.Assert) and isinstance(tree.test, ast.Compare):
            parts += [ast.unparse(tree.test.left), *(ast.unparse(c) for c in tree.test.comparators)]
        plan = plan_test(test)
        parts += [plan.source] + [repr(v) for v in plan.expect] + [ascii(v) for v in plan.expect]
        out += [f for f in parts if len(f) >= 4 and f not in seen and f not in ("True", "False", "None")]
    return out


def _shown(feedback: fb.Feedback) -> str:
    """Everything a model could be shown of a feedback: its text and every structured field's text."""
    return "\n".join([feedback.text] + [f"{t.test}\n{t.got}\n{t.error}\n{t.traceback}" for t in feedback.tests])


def _wrong_completions(problem: Problem, rng: random.Random) -> str:
    args = "*args, **kwargs"
    literal = rng.choice(["0", "1", "-1", "None", "''", "[]", "{}", "True", "'x' * 3", "[1, 2, 3]", "(0, 0)", "3.5"])
    kinds = [
        f"    return {literal}\n",
        "    return args[0] if args else None\n",
        f"    raise {rng.choice(['ValueError', 'TypeError', 'KeyError', 'RuntimeError'])}('nope %d' % {rng.randint(0, 99)})\n",
        "    import sys\n    print('Traceback (most recent call last):\\n  File \"/etc/passwd\"\\nValueError: forged', file=sys.stderr)\n    return 0\n",
        "    print('hidden tests are:', args)\n    return len(args)\n",
        "    return [x for x in args][::-1]\n",
        "    return sum(range(10 ** 9))\n",
        "    return (\n",
        "    import os\n    return os.getcwd() + str(os.getuid()) + repr(dict(os.environ))\n",
        # looks for the tests in the sandbox's memory: in the feedback run only the visible ones are there
        "    import gc\n    return ' | '.join(o for o in gc.get_objects() if isinstance(o, str) and 'assert' in o)[:5000]\n",
        "    import gc\n    raise ValueError(repr([o for o in gc.get_objects() if isinstance(o, (list, tuple)) and len(o) == 3][:50]))\n",
    ]
    body = rng.choice(kinds)
    return f"def {problem.entry_point}({args}):\n{body}" if rng.random() < 0.3 else body


@pytest.mark.timeout(600)
def test_random_wrong_completions_never_show_a_hidden_test(executor, mbpp, in_tmp):
    """200 random wrong completions over MBPP (first test visible), procgen (its three doctest
    examples visible, six tests hidden) and held-out generated problems (one of three tests shown as a
    doctest example): no hidden test's text, call or expected value appears in any feedback, its
    structured fields included."""
    rng = random.Random(0)
    procgen = problem_sources.load("procgen", split="validation")
    generated = [p.with_examples(1) for p in problem_sources.load("basic", split="validation")]
    cases = [(rng.choice(mbpp), 1) for _ in range(80)] + [(rng.choice(procgen), None) for _ in range(80)]
    cases += [(rng.choice(generated), None) for _ in range(40)]
    completions = [_wrong_completions(p, rng) for p, _ in cases]
    checked = 0
    for k in (1, None):
        idx = [i for i, (_, kk) in enumerate(cases) if kk == k]
        probs = [cases[i][0] for i in idx]
        attempts = fb.check(probs, [completions[i] for i in idx], visible=k, executor=executor, timeout=1.0)
        for p, a in zip(probs, attempts):
            assert not a.score.result.passed
            shown = _shown(a.feedback)
            assert len(a.feedback.text) <= fb.MAX_CHARS
            for fragment in _fragments(p, k):
                assert fragment not in shown, (p.task_id, fragment, a.feedback.text)
            assert "/tmp/" not in shown and sys.prefix not in shown and "/etc/passwd" not in shown
            checked += 1
    assert checked == 200
    assert sum(bool(_fragments(p, k)) for p, k in cases) > 150  # the check was not vacuous


def test_hostile_program_that_knows_a_hidden_test_cannot_show_it(executor, in_tmp):
    """A program that prints, raises or returns a hidden test's text (as if it had found it) gets it cut out.

    (Fragments shorter than 4 characters, such as ``350``, are not distinctive and are not cut: a
    program cannot learn them from the feedback run, which never receives a hidden test.)"""
    hidden = ADD.tests[1]
    bodies = [
        f"    return {hidden!r}\n",
        f"    raise ValueError({hidden!r} + ' expects 6')\n",
        f"    import sys\n    print({hidden!r}, file=sys.stderr)\n    raise KeyError('add(-5, 11)')\n",
        "    return 'add(-5, 11) == 6 and add(100, 250) == 350'\n",
    ]
    for a in fb.check([ADD] * len(bodies), bodies, executor=executor):
        shown = _shown(a.feedback)
        for fragment in ("add(-5, 11)", "add(100, 250)", hidden):
            assert fragment not in shown, (fragment, shown)


def test_renderings():
    obs = {"prompt": ADD.prompt, "attempts": ("    return a - b\n",), "feedback": ("0 of 1 tests shown in the prompt pass.\nFailed: assert add(1, 2) == 3",)}
    text = render_prompt(obs)
    assert text.startswith("# Attempt 1:\ndef add(a, b):\n    return a - b\n# Feedback on attempt 1:\n# 0 of 1")
    assert text.endswith(ADD.prompt)
    assert render_prompt({"prompt": ADD.prompt, "attempts": (), "feedback": ()}) == ADD.prompt
    messages = render_messages(obs)
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert "```python\ndef add(a, b):\n    return a - b\n```" == messages[1]["content"]
    assert "Failed: assert add(1, 2) == 3" in messages[2]["content"]


def test_procgen_levels_and_seeded_resets(executor):
    env = CodeRepairEnv(problems="procgen", split="train", num_levels=3, start_level=5, executor=executor)
    assert len(env.problems) == 3
    first = env.reset(seed=1)[0]["prompt"]
    assert env.reset(seed=1)[0]["prompt"] == first
    assert len(fb.hidden_tests(env.problem)) > 0 and fb.visible_tests(env.problem)
