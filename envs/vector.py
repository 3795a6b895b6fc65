"""A vector of token-level environments that runs the programs of all episodes ending in a step as one batch.

``gym.make_vec("codegym/CodeSynthesis-v0", num_envs=16, vectorization_mode="vector_entry_point")``
builds it. It behaves as Gymnasium's `SyncVectorEnv` (next-step autoreset), except that the
programs finished in one step go to the sandbox together through `codegym.scoring.score`, so they run
in parallel on all workers instead of one after another.
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.vector.utils import concatenate, iterate

from codegym import scoring
from codegym.envs.code_synthesis import CodeSynthesisEnv
from codegym.execution import Executor, default_executor

__all__ = ["CodeSynthesisVectorEnv"]


class CodeSynthesisVectorEnv(SyncVectorEnv):
    """``num_envs`` `CodeSynthesisEnv` copies sharing one executor; keyword arguments go to each env."""

    def __init__(self, num_envs: int = 1, executor: Executor | None = None, **kwargs: Any) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        self.executor = executor or default_executor()
        envs = [CodeSynthesisEnv(executor=self.executor, **kwargs) for _ in range(num_envs)]
        super().__init__([lambda env=env: env for env in envs], autoreset_mode=AutoresetMode.NEXT_STEP)

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        infos: dict[str, Any] = {}
        finished: list[tuple[int, str]] = []
        for i, action in enumerate(iterate(self.action_space, actions)):
            env: CodeSynthesisEnv = self.envs[i]  # type: ignore[assignment]
            if self._autoreset_envs[i]:
                self._env_obs[i], info = env.reset()
                self._rewards[i], self._terminations[i], self._truncations[i] = 0.0, False, False
                infos = self._add_info(infos, info, i)
                continue
            completion, terminated, truncated = env.advance(action)
            self._rewards[i], self._terminations[i], self._truncations[i] = -env.step_penalty, terminated, truncated
            self._env_obs[i] = env.observation()
            if terminated or truncated:
                finished.append((i, completion))
        first: CodeSynthesisEnv = self.envs[0]  # type: ignore[assignment]  (all envs share reward and timeout)
        scores = scoring.score(
            [self.envs[i].problem for i, _ in finished],
            [completion for _, completion in finished],
            reward=first.reward_fn,
            executor=self.executor,
            timeout=first.timeout,
            mode="body",
        ) if finished else []
        for (i, completion), score in zip(finished, scores):
            reward, info = self.envs[i].finish(completion, score)
            self._rewards[i] += reward
            infos = self._add_info(infos, info, i)
        self._observations = concatenate(self.single_observation_space, self._env_obs, self._observations)
        self._autoreset_envs = np.logical_or(self._terminations, self._truncations)
        observations = deepcopy(self._observations) if self.copy else self._observations
        return observations, np.copy(self._rewards), np.copy(self._terminations), np.copy(self._truncations), infos
