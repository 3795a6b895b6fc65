"""A multi-turn environment: write a function, read the feedback of the tests the prompt shows, try again.

`CodeRepairEnv` is registered as ``codegym/CodeRepair-v0``. Feedback comes from the visible tests
only and the reward from all tests (`codegym.feedback`); `render_prompt` and `render_messages` turn
an observation into the text a base LM continues or the chat a chat model answers.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Sequence
from typing import Any

from gymnasium import spaces

from codegym import feedback as fb
from codegym import scoring
from codegym.execution import Executor
from codegym.problems import Problem
from codegym.rewards import Reward, RewardFn
from codegym.envs.code_synthesis import CHARSET, _ProblemEnv

__all__ = ["REWARD_MODES", "CodeRepairEnv", "attempt_code", "render_messages", "render_prompt"]

REWARD_MODES = ("final", "improvement")
"""``final``: the preset on the last attempt, on all tests (RLEF); ``improvement``: per turn, the change in pass ratio."""

INSTRUCTION = "Complete the following Python function. Answer with the whole function in one ```python code block.\n\n```python\n{prompt}```"
REPAIR_INSTRUCTION = "{feedback}\n\nFix the function. Answer with the whole function in one ```python code block."


def _printable(text: str) -> str:
    return "".join(c if c in CHARSET else "?" for c in text)


def _entry_point(prompt: str) -> str:
    """The name of the prompt's last top-level function (the one to write)."""
    for text in (prompt, prompt.rstrip("\n") + "\n    pass\n"):
        try:
            module = ast.parse(text)
        except SyntaxError:
            continue
        names = [n.name for n in module.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        if names:
            return names[-1]
    return ""


def _header(prompt: str, entry_point: str) -> str:
    """The ``def`` line(s) of the entry point, up to the colon that opens its body."""
    lines = prompt.splitlines()
    opening = (f"def {entry_point}(", f"async def {entry_point}(")
    start = next((i for i in range(len(lines) - 1, -1, -1) if lines[i].lstrip().startswith(opening)), None)
    if start is None:
        return ""
    for end in range(start, len(lines)):
        if lines[end].rstrip().endswith(":"):
            return "\n".join(lines[start : end + 1])
    return lines[start]


def attempt_code(prompt: str, completion: str) -> str:
    """An attempt as a whole function, as `codegym.scoring` reads it: a body after the prompt's
    ``def`` line, or the whole function the completion wrote (without the prompt's imports)."""
    entry = _entry_point(prompt)
    program = scoring.program(Problem("attempt", prompt, entry, ()), completion)
    if program.startswith(prompt):
        return (_header(prompt, entry) + "\n" + program[len(prompt) :].strip("\n")).rstrip() + "\n"
    context = scoring.prompt_context(prompt, entry)
    return (program[len(context) :] if program.startswith(context) else program).strip("\n") + "\n"


def _comment(text: str) -> str:
    return "\n".join(f"# {line}".rstrip() for line in text.splitlines()) + "\n"


def render_prompt(obs: dict[str, Any]) -> str:
    """One text a base LM continues: each previous attempt as a function, its feedback as a comment
    block, then the prompt again (which ends where the body starts)::

        # Attempt 1:
        def add(a, b):
            return a - b
        # Feedback on attempt 1:
        # 0 of 1 tests shown in the prompt pass.
        # Failed: assert add(1, 2) == 3
        #   add(1, 2) returned -1

        def add(a, b):
            \"\"\"Return a + b. ...\"\"\"

    With no previous attempt it is the prompt itself. A model whose context is short loses the
    oldest attempts first (left truncation), never the prompt's docstring.
    """
    prompt = obs["prompt"]
    parts = []
    for i, (attempt, feedback) in enumerate(zip(obs["attempts"], obs["feedback"]), start=1):
        parts.append(f"# Attempt {i}:\n{attempt_code(prompt, attempt)}# Feedback on attempt {i}:\n{_comment(feedback)}\n")
    return "".join(parts) + prompt


def render_messages(obs: dict[str, Any]) -> list[dict[str, str]]:
    """Chat messages for a chat model: the task as the first user message, then per previous attempt
    the model's answer (the attempt as a fenced function) and a user message with its feedback."""
    prompt = obs["prompt"]
    messages = [{"role": "user", "content": INSTRUCTION.format(prompt=prompt)}]
    for attempt, feedback in zip(obs["attempts"], obs["feedback"]):
        messages.append({"role": "assistant", "content": f"```python\n{attempt_code(prompt, attempt)}```"})
        messages.append({"role": "user", "content": REPAIR_INSTRUCTION.format(feedback=feedback)})
    return messages


class CodeRepairEnv(_ProblemEnv):
    """Write a function; when it fails, read the feedback of the visible tests and try again.

    ## Observation
    ``Dict(prompt=Text(max_prompt_chars), attempts=Sequence(Text(max_completion_chars)),
    feedback=Sequence(Text(max_feedback_chars)))``: the prompt (with ``visible_tests=k``, the
    hidden tests' examples removed; non-ASCII characters as ``?``), and one entry per previous turn:
    the completion as given and its feedback (`codegym.feedback`). `render_prompt` and
    `render_messages` turn it into model input.

    ## Action
    ``Text(max_completion_chars, charset=printable ASCII)``: a completion, read by
    `codegym.scoring`'s rules (``mode="auto"``: a function body, a whole function, a fenced chat
    answer). The empty string ends the episode (the agent gives up or stops).

    ## Reward
    ``reward_mode="final"`` (default, RLEF): 0 on every turn but the last; on the last, the reward
    preset on the last attempt against **all** tests. ``"improvement"``: each turn pays the change
    of the pass ratio on all tests since the previous turn (the first turn its pass ratio), so an
    episode returns its final pass ratio. ``turn_penalty`` is subtracted on every turn after the first.
    An empty action pays what the last attempt earned under ``final`` (0 under ``improvement``).

    ## Episode end
    Terminates when the attempt passes every test (hidden ones included) or the action is empty;
    truncates after ``max_turns`` attempts. ``info`` of every step holds ``task_id``, ``turn``,
    ``outcome``, ``pass_ratio`` and ``test_passed`` (all tests), ``feedback`` (text) and
    ``feedback_fields`` (`codegym.feedback.Feedback.to_dict`); at the end also ``turns``,
    ``turn_outcomes``, ``turn_pass_ratios``, ``solved_at_turn`` (None when unsolved), ``program``,
    ``completion`` and ``reward_info`` of the last attempt.

    ## Arguments
    problems, split, tokenizer, reward, timeout, executor, render_mode, num_levels, start_level: as
    `CodeSynthesisSeqEnv` (``problems="procgen"``: generated levels, Procgen's semantics);
    max_turns (default 3); feedback: ``first_failure`` | ``all_failures`` | ``outcome_only``;
    visible_tests: None (the prompt's examples) or k (the first k tests); turn_penalty (default 0);
    reward_mode; max_prompt_chars, max_completion_chars, max_feedback_chars: the Text spaces' sizes.
    """

    def __init__(
        self,
        problems: str | os.PathLike[str] | Sequence[Problem] = "mbpp",
        split: str | None = "train",
        tokenizer: Any = None,
        reward: str | Reward | RewardFn = "paper",
        max_turns: int = 3,
        feedback: str = "first_failure",
        visible_tests: int | None = None,
        turn_penalty: float = 0.0,
        reward_mode: str = "final",
        max_prompt_chars: int = 8192,
        max_completion_chars: int = 4096,
        max_feedback_chars: int = fb.MAX_CHARS,
        timeout: float | None = None,
        executor: Executor | None = None,
        render_mode: str | None = None,
        num_levels: int = 0,
        start_level: int = 0,
    ) -> None:
        if max_turns < 1:
            raise ValueError(f"max_turns must be at least 1, got {max_turns}")
        if feedback not in fb.FORMS:
            raise ValueError(f"feedback must be one of {', '.join(fb.FORMS)}, got {feedback!r}")
        if reward_mode not in REWARD_MODES:
            raise ValueError(f"reward_mode must be one of {', '.join(REWARD_MODES)}, got {reward_mode!r}")
        if visible_tests is not None and visible_tests < 0:
            raise ValueError(f"visible_tests must be None or >= 0, got {visible_tests}")
        super().__init__(problems, split, tokenizer, reward, timeout, executor, render_mode, num_levels, start_level)
        self.max_turns = max_turns
        self.feedback_form = feedback
        self.visible_tests = visible_tests
        self.turn_penalty = turn_penalty
        self.reward_mode = reward_mode
        self.max_feedback_chars = max_feedback_chars
        self.observation_space = spaces.Dict(
            {
                "prompt": spaces.Text(max_prompt_chars, min_length=0, charset=CHARSET),
                "attempts": spaces.Sequence(spaces.Text(max_completion_chars, min_length=0, charset=CHARSET)),
                "feedback": spaces.Sequence(spaces.Text(max_feedback_chars, min_length=0, charset=CHARSET)),
            }
        )
        self.action_space = spaces.Text(max_completion_chars, min_length=0, charset=CHARSET)
        self._done = True
        self._turns: list[fb.Attempt] = []
        self._completions: list[str] = []

    def prompt(self) -> str:
        """The prompt the model sees for the current problem (with ``visible_tests=k``, the hidden tests' examples removed)."""
        assert self.problem is not None
        return fb.shown_prompt(self.problem, self.visible_tests)

    def observation(self) -> dict[str, Any]:
        limit = self.observation_space["prompt"].max_length
        return {
            "prompt": _printable(self.prompt())[:limit],
            "attempts": tuple(self._completions),
            "feedback": tuple(a.feedback.text for a in self._turns),
        }

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        info = self._begin(seed, options)
        self._turns, self._completions = [], []
        return self.observation(), info

    def check(self, completion: str) -> fb.Attempt:
        """Run ``completion`` of the current problem: its score on all tests and its feedback."""
        assert self.problem is not None
        return fb.check(
            [self.problem], [completion], visible=self.visible_tests, form=self.feedback_form, reward=self.reward_fn,
            executor=self.executor, timeout=self.timeout, max_chars=self.max_feedback_chars,
        )[0]  # fmt: skip

    def step(self, action: str) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        if self._done:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        if not self.action_space.contains(action):
            raise ValueError(f"action must be a str of at most {self.action_space.max_length} printable ASCII characters")
        assert self.problem is not None
        if not action.strip():  # the agent stops: the last attempt (if any) is final
            self._done = True
            if not self._turns:
                attempt = self.check(action)
                self._turns.append(attempt)
                self._completions.append(action)
            info = self._info(final=True)
            reward = self._turns[-1].score.reward if self.reward_mode == "final" else 0.0
            return self.observation(), reward, True, False, info
        attempt = self.check(action)
        previous = self._turns[-1].score.result.pass_ratio if self._turns else 0.0
        self._turns.append(attempt)
        self._completions.append(action)
        solved = attempt.score.result.passed
        truncated = not solved and len(self._turns) >= self.max_turns
        self._done = solved or truncated
        if self.reward_mode == "final":
            reward = attempt.score.reward if self._done else 0.0
        else:
            reward = attempt.score.result.pass_ratio - previous
        if len(self._turns) > 1:
            reward -= self.turn_penalty
        info = self._info(final=self._done)
        return self.observation(), reward, solved, truncated, info

    def _info(self, final: bool) -> dict[str, Any]:
        assert self.problem is not None
        attempt = self._turns[-1]
        result = attempt.score.result
        info: dict[str, Any] = {
            "task_id": self.problem.task_id,
            "turn": len(self._turns),
            "outcome": result.outcome,
            "pass_ratio": result.pass_ratio,
            "test_passed": list(result.test_passed),
            "feedback": attempt.feedback.text,
            "feedback_fields": attempt.feedback.to_dict(),
        }
        if final:
            reward, judged = self._judge(self._completions[-1], attempt.score)
            solved = [i for i, a in enumerate(self._turns, start=1) if a.score.result.passed]
            info.update(judged)
            info.update(
                turns=len(self._turns),
                turn_outcomes=[a.score.result.outcome for a in self._turns],
                turn_pass_ratios=[a.score.result.pass_ratio for a in self._turns],
                solved_at_turn=solved[0] if solved else None,
                program=scoring.program(self.problem, self._completions[-1]),
            )
        return info
