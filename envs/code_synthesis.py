"""Gymnasium environments for code synthesis: write a function body token by token, or all at once.

Both draw a problem at each ``reset``, execute the finished program against the problem's unit tests
in codegym's sandbox, and pay the reward of the chosen preset (default ``paper``). See
`CodeSynthesisEnv` and `CodeSynthesisSeqEnv` for the exact contracts.
"""

from __future__ import annotations

import os
import string
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from codegym import problems as problem_sources
from codegym import scoring
from codegym.execution import ExecResult, Executor, default_executor
from codegym.problems import Problem
from codegym.rewards import Reward, RewardFn, get_reward
from codegym.envs.tokens import TokenCodec, load_tokenizer, split_prompt

__all__ = ["CodeSynthesisEnv", "CodeSynthesisSeqEnv", "resolve_levels", "resolve_problems"]

CHARSET = frozenset(string.printable)
"""Characters a sequence-level action may hold: printable ASCII, tabs and newlines."""


def resolve_problems(problems: str | os.PathLike[str] | Sequence[Problem], split: str | None) -> list[Problem]:
    """The problem list for a source name, a path or a list of `Problem` (optionally one split of it)."""
    if isinstance(problems, (str, os.PathLike)):
        return problem_sources.load(problems, split=split)
    chosen = [p for p in problems if split is None or p.split == split]
    if not chosen:
        raise ValueError(f"no problems to draw from (split={split!r}); pass a non-empty list or another split")
    for p in chosen:
        if not isinstance(p, Problem):
            raise TypeError(f"problems must be Problem objects, got {type(p).__name__}")
    return chosen


def resolve_levels(
    problems: str | os.PathLike[str] | Sequence[Problem], split: str | None, num_levels: int, start_level: int
) -> tuple[list[Problem], Callable[[int], Problem] | None]:
    """The problems an environment draws from, with Procgen's ``num_levels``/``start_level`` semantics.

    For ``problems="procgen", split="train"`` (generated levels, `codegym.procgen`): ``num_levels=N``
    gives N training tasks computing distinct functions, from level ``start_level`` on; ``0`` gives
    an unlimited stream (the second value, level seed → problem, draws each episode's level from
    ``[start_level, 2**31)``). For any other source: the problems ``start_level`` to
    ``start_level + num_levels`` of the list (``0``: to its end).
    """
    if num_levels < 0 or start_level < 0:
        raise ValueError(f"num_levels and start_level must be non-negative, got {num_levels} and {start_level}")
    if isinstance(problems, str) and problems == "procgen" and split == "train":
        from codegym import procgen

        if num_levels == 0:
            return [], procgen.level
        return procgen.levels(num_levels, start_level), None
    chosen = resolve_problems(problems, split)
    if num_levels == 0 and start_level == 0:
        return chosen, None
    sliced = chosen[start_level : start_level + num_levels] if num_levels else chosen[start_level:]
    if not sliced:
        raise ValueError(f"start_level={start_level} is past the {len(chosen)} problems of this source; choose a smaller one")
    return sliced, None


class _ProblemEnv(gym.Env):
    """What both environments share: problems, drawing one per episode, execution, reward, rendering."""

    metadata = {"render_modes": ["ansi", "human"], "render_fps": 4}

    def __init__(
        self,
        problems: str | os.PathLike[str] | Sequence[Problem],
        split: str | None,
        tokenizer: Any,
        reward: str | Reward | RewardFn,
        timeout: float | None,
        executor: Executor | None,
        render_mode: str | None,
        num_levels: int = 0,
        start_level: int = 0,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.problems, self._level = resolve_levels(problems, split, num_levels, start_level)
        self.num_levels, self.start_level = num_levels, start_level
        self._by_id = {p.task_id: i for i, p in enumerate(self.problems)}
        self.codec = TokenCodec(load_tokenizer(tokenizer))
        self.reward_fn = get_reward(reward)
        self.timeout = timeout
        self.render_mode = render_mode
        self._executor = executor
        self.problem: Problem | None = None
        self._last: tuple[str, ExecResult | None, float] | None = None

    @property
    def executor(self) -> Executor:
        """The executor programs run on: the one given, or the process-wide shared pool (fetched at each
        use, so an environment forked into a child process runs programs on the child's own pool)."""
        return self._executor if self._executor is not None else default_executor()

    def _draw(self, options: dict[str, Any] | None) -> Problem:
        task_id = (options or {}).get("task_id")
        if self._level is not None:  # an unlimited stream of generated levels
            if task_id is not None:
                seed = str(task_id).rsplit("/", 1)[-1]
                if not seed.isdigit() or int(seed) < self.start_level:
                    raise KeyError(f"unknown task_id {task_id!r}; levels of this stream are procgen/train/SEED, SEED >= {self.start_level}")
                return self._level(int(seed))
            return self._level(int(self.np_random.integers(self.start_level, 2**31)))
        if task_id is not None:
            if task_id not in self._by_id:
                raise KeyError(f"unknown task_id {task_id!r}; this environment has {len(self.problems)} problems")
            return self.problems[self._by_id[task_id]]
        return self.problems[int(self.np_random.integers(len(self.problems)))]

    def prompt(self) -> str:
        """The prompt the model sees for the current problem."""
        assert self.problem is not None
        return self.problem.prompt

    def _begin(self, seed: int | None, options: dict[str, Any] | None) -> dict[str, Any]:
        """Start an episode, as every environment's ``reset`` does: seed the RNG, draw the problem
        (``options={"task_id": ...}`` or the RNG), forget the last verdict; returns ``reset``'s info."""
        gym.Env.reset(self, seed=seed)
        self.problem = self._draw(options)
        self._done = False
        self._last = None
        return {"task_id": self.problem.task_id, "prompt": self.prompt()}

    def _judge(self, completion: str, score: scoring.Score) -> tuple[float, dict[str, Any]]:
        assert self.problem is not None
        program = self.problem.program(completion)
        result = score.result
        self._last = (program, result, score.reward)
        info = {
            "task_id": self.problem.task_id,
            "program": program,
            "completion": completion,
            "outcome": result.outcome,
            "test_passed": list(result.test_passed),
            "pass_ratio": result.pass_ratio,
            "reward_info": score.info,
        }
        if self.render_mode == "human":
            print(self.render())
        return score.reward, info

    def score(self, completion: str) -> scoring.Score:
        """Run the current problem's program for ``completion`` against its tests and apply the reward."""
        assert self.problem is not None
        return scoring.score([self.problem], [completion], reward=self.reward_fn, executor=self.executor, timeout=self.timeout, mode="body")[0]

    def render(self) -> str | None:
        """The last finished program and its verdict (``ansi`` returns it, ``human`` prints it)."""
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='ansi' or 'human'")
            return None
        if self._last is None:
            return f"[{self.problem.task_id if self.problem else '-'}] episode in progress"
        program, result, reward = self._last
        verdict = f"{result.outcome}, {result.n_passed}/{result.n_tests} tests" if result else "not run"
        return f"{program.rstrip()}\n# --- {verdict}, reward {reward:+.2f}\n"


class CodeSynthesisEnv(_ProblemEnv):
    """Write a function body one token at a time; the tests judge it when the episode ends.

    ## Observation
    ``Dict(tokens=Box(0, vocab_size - 1, (max_prompt_tokens + max_new_tokens,), int64),
    mask=Box(0, 1, (same,), int8), length=Box(0, same, (1,), int64))``: the token ids of the prompt
    (without its trailing whitespace, which the model writes itself, as BPE merges a newline with the
    indentation after it) followed by the tokens generated so far, padded on the right with the
    tokenizer's pad id; ``mask``
    is 1 on real tokens and ``length`` counts them. Prompts longer than ``max_prompt_tokens`` keep
    their last ``max_prompt_tokens`` tokens (the end of the prompt, where the body starts, matters most).

    ## Action
    ``Discrete(vocab_size)``: the next token id.

    ## Reward
    0 on every step but the last (minus ``step_penalty`` per token when shaping is on); at the end of
    the episode the program ``prompt + completion + test setup`` runs against the problem's tests in
    the sandbox and the reward preset (default ``paper``) scores the result.

    ## Episode end
    Terminates when the action is the end-of-function token (or end of sequence), or a token that
    starts a new non-indented line (the function is over; that token is not part of the program).
    Truncates after ``max_new_tokens`` tokens; the program is run and rewarded then too.
    ``info`` at the end holds ``task_id``, ``program``, ``completion``, ``outcome``, ``test_passed``
    and ``pass_ratio``, and ``reward_info`` (a dict reward's extra metrics; empty for a float reward).

    ## Arguments
    problems: a data set name, a path or a list of `Problem` (default ``"mbpp"``); split: one split of
    them (default ``"train"``; None for all); tokenizer: a tokenizer, a name or a path (default: the
    embedded policy's); reward: a registered reward name or a callable (`codegym.rewards`); max_new_tokens; max_prompt_tokens; timeout:
    seconds per program (default: each problem's calibrated ``time_limit``, else the executor's default); executor: the sandbox pool (default: the shared one); step_penalty: shaping
    per token (default 0, off); render_mode: ``"ansi"`` or ``"human"``; num_levels, start_level:
    Procgen's (`resolve_levels`): for ``problems="procgen", split="train"``, ``num_levels=N`` distinct
    generated tasks from level ``start_level`` on, ``0`` (default) an unlimited stream; for other
    sources, a slice of the list (``0``: all of it).
    ``reset(options={"task_id": ...})`` chooses the problem; otherwise it is drawn with the env's RNG,
    so the same seed gives the same problems in the same order.
    """

    def __init__(
        self,
        problems: str | os.PathLike[str] | Sequence[Problem] = "mbpp",
        split: str | None = "train",
        tokenizer: Any = None,
        reward: str | Reward | RewardFn = "paper",
        max_new_tokens: int = 128,
        max_prompt_tokens: int = 256,
        timeout: float | None = None,
        executor: Executor | None = None,
        step_penalty: float = 0.0,
        render_mode: str | None = None,
        num_levels: int = 0,
        start_level: int = 0,
    ) -> None:
        if max_new_tokens < 1 or max_prompt_tokens < 1:
            raise ValueError("max_new_tokens and max_prompt_tokens must be at least 1")
        super().__init__(problems, split, tokenizer, reward, timeout, executor, render_mode, num_levels, start_level)
        self.max_new_tokens = max_new_tokens
        self.max_prompt_tokens = max_prompt_tokens
        self.step_penalty = step_penalty
        size = max_prompt_tokens + max_new_tokens
        vocab = self.codec.vocab_size
        self.observation_space = spaces.Dict(
            {
                "tokens": spaces.Box(0, vocab - 1, (size,), np.int64),
                "mask": spaces.Box(0, 1, (size,), np.int8),
                "length": spaces.Box(0, size, (1,), np.int64),
            }
        )
        self.action_space = spaces.Discrete(vocab)
        self._tokens = np.full(size, self.codec.pad_id, dtype=np.int64)
        self._mask = np.zeros(size, dtype=np.int8)
        self._length = 0
        self._prompt_length = 0
        self._line = self.codec.new_line_state(True)
        self._done = True

    def observation(self) -> dict[str, np.ndarray]:
        """The current observation (copies: the env keeps writing into its own buffers)."""
        return {"tokens": self._tokens.copy(), "mask": self._mask.copy(), "length": np.array([self._length], dtype=np.int64)}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        info = self._begin(seed, options)
        assert self.problem is not None
        prompt_ids = self.codec.encode_prompt(self.problem.prompt)[-self.max_prompt_tokens :]
        self._tokens.fill(self.codec.pad_id)
        self._mask.fill(0)
        self._prompt_length = self._length = len(prompt_ids)
        self._tokens[: self._length] = prompt_ids
        self._mask[: self._length] = 1
        self._line = self.codec.new_line_state(split_prompt(self.problem.prompt)[0].endswith("\n"))
        return self.observation(), info

    def step(self, action: int) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        completion, terminated, truncated = self.advance(action)
        reward = -self.step_penalty
        info: dict[str, Any] = {}
        if terminated or truncated:
            end_reward, info = self.finish(completion, self.score(completion))
            reward += end_reward
        return self.observation(), reward, terminated, truncated, info

    def advance(self, action: int) -> tuple[str, bool, bool]:
        """Apply one token without running anything: (completion if the episode ended else "", terminated, truncated).

        O(1) work per token: the text is decoded once, when the episode ends. Vector environments
        call this, then run every finished program in one batch (`finish`).
        """
        if self._done:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        if not self.action_space.contains(action):
            raise ValueError(f"action {action!r} is outside the action space Discrete({self.action_space.n})")
        token = int(action)
        stop = self.codec.ends_function(token, self._line)
        if not stop:
            self._tokens[self._length] = token
            self._mask[self._length] = 1
            self._length += 1
        terminated = stop
        truncated = not stop and self._length - self._prompt_length >= self.max_new_tokens
        if not (terminated or truncated):
            return "", False, False
        self._done = True
        assert self.problem is not None
        completion = self.codec.decode(self._tokens[self._prompt_length : self._length], self.problem.prompt)
        return completion, terminated, truncated

    def finish(self, completion: str, score: scoring.Score) -> tuple[float, dict[str, Any]]:
        """The end-of-episode reward (without shaping) and info for a completion already scored (see `advance`)."""
        return self._judge(completion, score)


class CodeSynthesisSeqEnv(_ProblemEnv):
    """Write the whole function body in one step; the tests judge it at once.

    ## Observation
    ``Dict(prompt=Text(max_prompt_chars), tokens=Box(0, vocab_size - 1, (max_prompt_tokens,), int64),
    length=Box(0, max_prompt_tokens, (1,), int64))``: the prompt as text and as (right-padded) token ids.

    ## Action
    ``Text(max_completion_chars, charset=printable ASCII)``: the completion, i.e. the function body
    that follows the prompt.

    ## Reward, episode end
    One step per episode: the program ``prompt + action + test setup`` runs against the tests and the
    reward preset scores it; the episode terminates. ``info`` as in `CodeSynthesisEnv`.

    ## Arguments
    As `CodeSynthesisEnv`, plus max_prompt_chars and max_completion_chars (the Text spaces' sizes).
    Non-ASCII characters of a prompt show as ``?`` in the Text observation; the token ids carry them
    exactly. Stable-Baselines3 has no algorithm for Text actions, so this environment is for agents
    that sample whole programs (codegym's own, or your own code).
    """

    def __init__(
        self,
        problems: str | os.PathLike[str] | Sequence[Problem] = "mbpp",
        split: str | None = "train",
        tokenizer: Any = None,
        reward: str | Reward | RewardFn = "paper",
        max_prompt_tokens: int = 256,
        max_prompt_chars: int = 8192,
        max_completion_chars: int = 4096,
        timeout: float | None = None,
        executor: Executor | None = None,
        render_mode: str | None = None,
        num_levels: int = 0,
        start_level: int = 0,
    ) -> None:
        super().__init__(problems, split, tokenizer, reward, timeout, executor, render_mode, num_levels, start_level)
        self.max_prompt_tokens = max_prompt_tokens
        vocab = self.codec.vocab_size
        self.observation_space = spaces.Dict(
            {
                "prompt": spaces.Text(max_prompt_chars, min_length=0, charset=CHARSET),
                "tokens": spaces.Box(0, vocab - 1, (max_prompt_tokens,), np.int64),
                "length": spaces.Box(0, max_prompt_tokens, (1,), np.int64),
            }
        )
        self.action_space = spaces.Text(max_completion_chars, min_length=0, charset=CHARSET)
        self._done = True

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        info = self._begin(seed, options)
        return self.observation(), info

    def observation(self) -> dict[str, Any]:
        assert self.problem is not None
        ids = self.codec.encode_prompt(self.problem.prompt)[-self.max_prompt_tokens :]
        tokens = np.full(self.max_prompt_tokens, self.codec.pad_id, dtype=np.int64)
        tokens[: len(ids)] = ids
        text = "".join(c if c in CHARSET else "?" for c in self.problem.prompt)[: self.observation_space["prompt"].max_length]
        return {"prompt": text, "tokens": tokens, "length": np.array([len(ids)], dtype=np.int64)}

    def step(self, action: str) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        if self._done:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        if not self.action_space.contains(action):
            raise ValueError(
                f"action must be a str of at most {self.action_space.max_length} printable ASCII characters"
            )
        self._done = True
        reward, info = self._judge(action, self.score(action))
        return self.observation(), reward, True, False, info
