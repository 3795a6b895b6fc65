"""Stable-Baselines3 PPO (``MultiInputPolicy``) on ``codegym/CodeSynthesis-v0``: the off-the-shelf
baseline a Gymnasium user would try first.

The SB3 policy is a fresh MLP over the token-id observation (it does not start from the pretrained
LM; only the tokenizer is shared), acting one token per step; the env runs the finished program and
pays the reward. One agent step is one SB3 iteration: ``n_steps × n_envs`` environment steps, then
``n_epochs`` of PPO updates. Settings not listed keep SB3's defaults.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from codegym.problems import Problem
from codegym.agents.base import STATE_FILE, Agent, TrainingDiverged
from codegym.agents.config import AgentConfig

__all__ = ["PPOSB3", "PPOSB3Config"]


@dataclass
class PPOSB3Config(AgentConfig):
    """SB3 PPO settings (beyond `AgentConfig`; ``lr``, ``max_grad_norm``, ``max_new_tokens``, ``reward``,
    ``timeout`` and ``seed`` are used, the LM sampling settings are not).

    Attributes:
        n_envs: environments stepped together.
        n_steps: environment steps per env per iteration.
        batch_size, n_epochs: SB3's minibatch size and epochs per iteration.
        gamma, gae_lambda, clip_range, ent_coef, vf_coef: SB3 PPO's (γ = 1: reward only at the end).
        max_prompt_tokens: prompt tokens in the observation.
    """

    lr: float = 3e-4
    max_grad_norm: float = 0.5
    n_envs: int = 4
    n_steps: int = 128
    batch_size: int = 64
    n_epochs: int = 4
    gamma: float = 1.0
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_prompt_tokens: int = 128

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {**AgentConfig.PRESETS["tiny"], "n_envs": 2, "n_steps": 16, "batch_size": 16, "n_epochs": 2, "max_prompt_tokens": 32},
        "default": {},
        "paper": dict(AgentConfig.PRESETS["paper"]),
    }


def _episode_stats():
    """An SB3 callback that records the reward and verdict of every finished episode."""
    from stable_baselines3.common.callbacks import BaseCallback

    class EpisodeStats(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.rewards: list[float] = []
            self.passed: list[bool] = []
            self.extra: dict[str, list[float]] = {}  # a dict reward's extra metrics

        def _on_step(self) -> bool:
            for info, reward in zip(self.locals["infos"], self.locals["rewards"]):
                if "outcome" in info:
                    self.rewards.append(float(reward))
                    self.passed.append(info["outcome"] == "passed")
                    for key, value in info.get("reward_info", {}).items():
                        self.extra.setdefault(key, []).append(value)
            return True

    return EpisodeStats()


class PPOSB3(Agent):
    """SB3 PPO on the token-level environment (see the module docstring)."""

    name = "ppo_sb3"
    Config = PPOSB3Config

    def __init__(self, config: PPOSB3Config, policy: Any = "default", model: Any = None) -> None:
        """``policy`` only provides the tokenizer: ``"default"``, a model directory, a `Policy` or a tokenizer."""
        super().__init__(config)
        from codegym.envs.tokens import load_tokenizer
        from codegym.models.policy import DEFAULT_DIR, Policy

        self.config: PPOSB3Config = config
        if isinstance(policy, (str, os.PathLike)):
            self.tokenizer = load_tokenizer(str(DEFAULT_DIR) if policy == "default" else policy)
        else:  # a codegym Policy (its tokenizer is used), or a tokenizer
            self.tokenizer = policy.tokenizer if isinstance(policy, Policy) else policy
        self.model = model
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.timing = {"wall_s": 0.0, "episodes": 0}  # the env runs each program synchronously: no overlap to measure

    def _env(self, problems: Sequence[Problem], n: int) -> Any:
        from stable_baselines3.common.monitor import Monitor
        from stable_baselines3.common.vec_env import DummyVecEnv

        from codegym.envs import CodeSynthesisEnv

        cfg = self.config

        def make() -> Any:
            return Monitor(CodeSynthesisEnv(problems=list(problems), split=None, tokenizer=self.tokenizer, reward=cfg.reward,
                                            max_new_tokens=cfg.max_new_tokens, max_prompt_tokens=cfg.max_prompt_tokens,
                                            timeout=cfg.timeout, executor=self.executor))

        return DummyVecEnv([make for _ in range(n)])

    def _train(self, problems: list[Problem], steps: int) -> Iterator[dict[str, Any]]:
        from stable_baselines3 import PPO

        cfg = self.config
        env = self._env(problems, cfg.n_envs)
        if self.model is None:
            self.model = PPO(
                "MultiInputPolicy", env, learning_rate=cfg.lr, n_steps=cfg.n_steps, batch_size=cfg.batch_size, n_epochs=cfg.n_epochs,
                gamma=cfg.gamma, gae_lambda=cfg.gae_lambda, clip_range=cfg.clip_range, ent_coef=cfg.ent_coef, vf_coef=cfg.vf_coef,
                max_grad_norm=cfg.max_grad_norm, seed=cfg.seed, device=self.device, verbose=0,
            )
        else:
            self.model.set_env(env)
        for _ in range(steps):
            start = time.perf_counter()
            stats = _episode_stats()
            self.model.learn(cfg.n_steps * cfg.n_envs, callback=stats, reset_num_timesteps=False)
            self.timing["wall_s"] += time.perf_counter() - start
            self.timing["episodes"] += len(stats.rewards)
            logged = {k.split("/")[-1]: float(v) for k, v in self.model.logger.name_to_value.items() if k.startswith("train/")}
            loss = logged.get("loss", 0.0)
            if not np.isfinite(loss) or abs(loss) > cfg.max_loss:
                raise TrainingDiverged(f"SB3 PPO loss is {loss}")
            episodes = len(stats.rewards)
            yield {
                **logged,
                "reward": float(np.mean(stats.rewards)) if episodes else float("nan"),
                "pass_rate": float(np.mean(stats.passed)) if episodes else float("nan"),
                "episodes": episodes,
                **{k: float(np.mean(v)) for k, v in stats.extra.items()},
            }

    def generate(self, prompts: Sequence[str], n: int = 1, temperature: float | None = None, seed: int | None = None) -> list[list[str]]:
        """Roll the SB3 policy out for each prompt, ``n`` times, all rows stepped together (``temperature=0``: deterministic)."""
        from codegym.envs import CodeSynthesisEnv

        if self.model is None:
            raise RuntimeError("the ppo_sb3 agent has no policy yet: call fit() first (or load a checkpoint)")
        cfg = self.config
        stub = [Problem(f"prompt/{i}", p, "f", ("True",)) for i, p in enumerate(prompts)]
        envs = [CodeSynthesisEnv(problems=stub, split=None, tokenizer=self.tokenizer, max_new_tokens=cfg.max_new_tokens, max_prompt_tokens=cfg.max_prompt_tokens)
                for _ in range(len(prompts) * n)]
        for row, env in enumerate(envs):
            env.reset(options={"task_id": f"prompt/{row // n}"})
        completions = [""] * len(envs)
        alive = list(range(len(envs)))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed if seed is None else seed)
            while alive:
                obs = {key: np.stack([envs[i].observation()[key] for i in alive]) for key in envs[0].observation_space.spaces}
                actions, _ = self.model.predict(obs, deterministic=temperature == 0)
                still = []
                for i, action in zip(alive, actions):
                    completion, terminated, truncated = envs[i].advance(int(action))
                    if terminated or truncated:
                        completions[i] = completion
                    else:
                        still.append(i)
                alive = still
        return [completions[i * n : (i + 1) * n] for i in range(len(prompts))]

    def _save_files(self, directory: Path) -> None:
        if self.model is None:
            raise RuntimeError("nothing to save: the ppo_sb3 agent has not been trained yet (call fit first)")
        self.model.save(directory / "sb3_ppo.zip")
        self.tokenizer.save_pretrained(directory / "tokenizer")
        torch.save({"timing": self.timing}, directory / STATE_FILE)

    @classmethod
    def _from_files(cls, directory: Path, config: AgentConfig) -> PPOSB3:
        from stable_baselines3 import PPO

        from codegym.envs.tokens import load_tokenizer

        device = "cuda" if torch.cuda.is_available() else "cpu"
        agent = cls(config, load_tokenizer(str(directory / "tokenizer")), model=PPO.load(directory / "sb3_ppo.zip", device=device))  # type: ignore[arg-type]
        agent.timing.update(torch.load(directory / STATE_FILE, weights_only=False)["timing"])
        return agent
