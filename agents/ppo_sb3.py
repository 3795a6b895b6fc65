"""Stable-Baselines3 PPO on ``codegym/CodeSynthesis-v0``: the off-the-shelf baseline a Gymnasium user would try first.

By default (``sb3_policy="lm"``) SB3's policy is `codegym.agents.sb3.LMPolicy`: the pretrained LM is the
actor (a Categorical over its next-token logits / temperature) with a linear value head on its hidden
state, started at the mean return of the first rollout (`ValueInit`). ``sb3_policy="mlp"`` keeps SB3's
``MultiInputPolicy``, an MLP over the raw token ids trained from scratch: the from-scratch control.

SB3's PPO optimises, per token, the clipped surrogate with GAE (γ, λ) over the episode's tokens, the
environment's reward at the last token; with ``kl_coef > 0`` each token's reward also pays
``−kl_coef · (log π − log π_ref)``, the KL to the frozen initial LM (`codegym.agents.sb3.KLPenalty`;
off by default: plain SB3 PPO has none, and its per-token estimate is logged as ``ref_kl`` either way). One agent step is one SB3
iteration: ``n_steps × n_envs`` environment steps, then ``n_epochs`` of PPO updates over minibatches
of ``batch_size`` steps (the LM policy's default, 512 = one minibatch per epoch, lets the steps of one
episode share a forward pass in the update). An episode truncated at ``max_new_tokens`` is reported
to SB3 as terminated: the env pays the whole program's reward then, so there is nothing to bootstrap
(SB3 would add γ·V(last observation) to it). Consecutive ``fit`` calls on the same problems carry the
episodes in progress over, as one long ``learn`` would. Settings not listed keep SB3's defaults.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

from codegym.problems import Problem
from codegym.agents.base import STATE_FILE, Agent, TrainingDiverged
from codegym.agents.config import AgentConfig

__all__ = ["PPOSB3", "PPOSB3Config"]


@dataclass
class PPOSB3Config(AgentConfig):
    """SB3 PPO settings (beyond `AgentConfig`; ``lr``, ``max_grad_norm``, ``max_new_tokens``, ``reward``,
    ``timeout``, ``seed``, and for the LM policy ``temperature`` (training) and ``eval_top_p`` (evaluation)
    are used; ``batch_problems``, ``samples_per_problem``, ``top_p`` and the pipeline settings are not).

    Attributes:
        sb3_policy: ``"lm"`` (`LMPolicy` on the initial policy, the default) or ``"mlp"`` (SB3's
            ``MultiInputPolicy`` from scratch, the control; give it ``lr=3e-4, batch_size=64``, its old defaults).
        value_features: the LM policy's value head reads ``"detached"`` hidden states (the value loss
            leaves the LM alone; ours, as nothing anchors this PPO to the pretrained LM) or ``"shared"`` ones.
        train_layers: the LM policy trains only its top k blocks (0: every layer).
        value_lr_scale: the LM policy's value head learns at ``lr`` times this.
        n_envs: environments stepped together.
        n_steps: environment steps per env per iteration.
        batch_size, n_epochs: SB3's minibatch size and epochs per iteration.
        gamma, gae_lambda, clip_range, ent_coef, vf_coef: SB3 PPO's (γ = 1: reward only at the end).
        kl_coef: the LM policy's per-token KL penalty to the frozen initial LM, folded into the reward
            (`codegym.agents.sb3.KLPenalty`); 0 switches it off (the KL is still measured and logged as ``ref_kl``).
        max_prompt_tokens: prompt tokens in the observation.
    """

    sb3_policy: str = "lm"
    value_features: str = "detached"
    train_layers: int = 0
    value_lr_scale: float = 1.0
    lr: float = 2e-5
    max_grad_norm: float = 0.5
    n_envs: int = 8
    n_steps: int = 64
    batch_size: int = 512
    n_epochs: int = 4
    gamma: float = 1.0
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    kl_coef: float = 0.0
    max_prompt_tokens: int = 128

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {**AgentConfig.PRESETS["tiny"], "n_envs": 2, "n_steps": 16, "batch_size": 32, "n_epochs": 2, "max_prompt_tokens": 32},
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
            self.lengths: list[int] = []  # tokens
            self.extra: dict[str, list[float]] = {}  # a dict reward's extra metrics

        def _on_step(self) -> bool:
            for info, reward in zip(self.locals["infos"], self.locals["rewards"]):
                if "outcome" in info:
                    self.rewards.append(float(reward))
                    self.passed.append(info["outcome"] == "passed")
                    self.lengths.append(int(info["episode"]["l"]))
                    for key, value in info.get("reward_info", {}).items():
                        self.extra.setdefault(key, []).append(value)
            return True

    return EpisodeStats()


class EndsAtTruncation(gym.Wrapper):
    """Reports a truncated episode as terminated: the env pays the program's whole reward when it truncates."""

    def step(self, action: Any) -> Any:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated or truncated, False, info


def _log_in_memory(model: Any) -> None:
    """Give ``model`` a logger that keeps its values in memory (``fit`` reads them) and writes nothing:
    SB3's default one makes an empty folder in the temporary directory at every ``learn``, hundreds a run."""
    from stable_baselines3.common.logger import Logger

    model.set_logger(Logger(folder=None, output_formats=[]))


class PPOSB3(Agent):
    """SB3 PPO on the token-level environment (see the module docstring)."""

    name = "ppo_sb3"
    Config = PPOSB3Config

    def __init__(self, config: PPOSB3Config, policy: Any = "default", model: Any = None, reference: Any = None) -> None:
        """``policy``: the initial LM (and tokenizer): ``"default"``, a model directory or hub name, or a `Policy`;
        with ``sb3_policy="mlp"`` only its tokenizer is used (a tokenizer works too). ``reference``: the frozen
        LM of the KL penalty (default: a copy of the initial LM; a loaded checkpoint passes its saved one)."""
        super().__init__(config)
        from codegym.envs.tokens import load_tokenizer
        from codegym.models.policy import DEFAULT_DIR, Policy, load_policy

        if config.sb3_policy not in ("lm", "mlp"):
            raise ValueError(f"sb3_policy must be 'lm' (the LM as SB3's policy) or 'mlp' (SB3's MultiInputPolicy from scratch), got {config.sb3_policy!r}")
        self.config: PPOSB3Config = config
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = model
        self.lm: Any = None  # the LM policy's causal LM, the same module as SB3's ``policy.lm`` once that exists
        if config.sb3_policy == "lm" and model is not None:
            self.lm = model.policy.lm
            self.tokenizer = policy
        elif config.sb3_policy == "lm":
            if not isinstance(policy, (str, os.PathLike, Policy)):
                raise TypeError("the LM policy needs a language model: pass 'default', a model directory or hub name, or a Policy")
            loaded = load_policy(policy, device="cpu") if isinstance(policy, (str, os.PathLike)) else policy
            self.lm, self.tokenizer = loaded.model.float(), loaded.tokenizer
        elif isinstance(policy, (str, os.PathLike)):
            self.tokenizer = load_tokenizer(str(DEFAULT_DIR) if policy == "default" else policy)
        else:  # a codegym Policy (its tokenizer is used), or a tokenizer
            self.tokenizer = policy.tokenizer if isinstance(policy, Policy) else policy
        self._sampler: Policy | None = None
        self._value_init: Any = None
        self._env_for: tuple[tuple[str, ...], Any] | None = None  # (task ids, executor) of the model's env
        self._kl: Any = None
        if config.sb3_policy == "lm":
            from codegym.agents.sb3 import KLPenalty

            self._kl = KLPenalty(config.kl_coef, reference if reference is not None else copy.deepcopy(self.lm))
        self.timing = {"wall_s": 0.0, "episodes": 0}  # the env runs each program synchronously: no overlap to measure

    @staticmethod
    def policy_kwargs(cfg: PPOSB3Config, lm: Any) -> dict[str, Any]:
        """`LMPolicy`'s keyword arguments for ``cfg``, with ``lm`` the causal LM (or where to load it from)."""
        return {"lm": lm, "temperature": cfg.temperature, "value_features": cfg.value_features, "train_layers": cfg.train_layers or None,
                "value_lr_scale": cfg.value_lr_scale}

    def _env(self, problems: Sequence[Problem], n: int) -> Any:
        from stable_baselines3.common.monitor import Monitor
        from stable_baselines3.common.vec_env import DummyVecEnv

        from codegym.envs import CodeSynthesisEnv

        cfg = self.config

        def make() -> Any:
            env = CodeSynthesisEnv(problems=list(problems), split=None, tokenizer=self.tokenizer, reward=cfg.reward,
                                   max_new_tokens=cfg.max_new_tokens, max_prompt_tokens=cfg.max_prompt_tokens,
                                   timeout=cfg.timeout, executor=self.executor)
            return Monitor(EndsAtTruncation(env))

        return DummyVecEnv([make for _ in range(n)])

    def _train(self, problems: list[Problem], steps: int) -> Iterator[dict[str, Any]]:
        from stable_baselines3 import PPO

        from codegym.agents.sb3 import LMPolicy, ValueInit

        cfg = self.config
        # Another fit on the same problems continues the episodes in progress: a new env (SB3's set_env)
        # would reset every env, abandoning the unfinished episodes, the long ones, and the next
        # rollout would then count only the short ones, which pass more often.
        env_for = (tuple(p.task_id for p in problems), self.executor)
        if self.model is None:
            env = self._env(problems, cfg.n_envs)
            lm = cfg.sb3_policy == "lm"
            self.model = PPO(
                LMPolicy if lm else "MultiInputPolicy", env, learning_rate=cfg.lr, n_steps=cfg.n_steps, batch_size=cfg.batch_size,
                n_epochs=cfg.n_epochs, gamma=cfg.gamma, gae_lambda=cfg.gae_lambda, clip_range=cfg.clip_range, ent_coef=cfg.ent_coef,
                vf_coef=cfg.vf_coef, max_grad_norm=cfg.max_grad_norm, seed=cfg.seed, device=self.device, verbose=0,
                policy_kwargs=self.policy_kwargs(cfg, self.lm) if lm else None,
            )
            _log_in_memory(self.model)
            if lm:  # SB3 pickles policy_kwargs into its zip: name the LM there instead of embedding the module
                self.model.policy_kwargs = self.policy_kwargs(cfg, self.model.policy.lm_source)
        elif self._env_for is None or self._env_for[0] != env_for[0] or self._env_for[1] is not env_for[1]:
            self.model.set_env(self._env(problems, cfg.n_envs))
        self._env_for = env_for
        if cfg.sb3_policy == "lm" and self._value_init is None:
            self._value_init = ValueInit()
        for _ in range(steps):
            start = time.perf_counter()
            stats = _episode_stats()
            callbacks = [stats] + [c for c in (self._kl, self._value_init) if c is not None]  # KLPenalty before ValueInit
            self.model.learn(cfg.n_steps * cfg.n_envs, callback=callbacks, reset_num_timesteps=False)
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
                "episode_length": float(np.mean(stats.lengths)) if episodes else float("nan"),
                **({"ref_kl": self._kl.mean_kl} if self._kl is not None else {}),
                **{k: float(np.mean(v)) for k, v in stats.extra.items()},
            }

    def generate(self, prompts: Sequence[str], n: int = 1, temperature: float | None = None, seed: int | None = None) -> list[list[str]]:
        """``n`` completions per prompt (``temperature`` None: the training one; 0: greedy).

        The LM policy samples its LM with codegym's sampler, as every LM agent evaluates (same
        distribution, logits / temperature, with the ``eval_top_p`` nucleus); the MLP control is
        rolled out in the environment, all rows stepped together.
        """
        cfg = self.config
        if cfg.sb3_policy == "lm":
            from codegym.models.policy import Policy

            if self._sampler is None or self._sampler.model is not self.lm:
                self._sampler = Policy(self.lm, self.tokenizer, next(self.lm.parameters()).device)
            rows = self._sampler.sample(list(prompts), n=n, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature if temperature is None else temperature,
                                        top_p=cfg.eval_top_p, seed=cfg.seed if seed is None else seed)
            return [[s.text for s in row] for row in rows]
        return self._generate_mlp(prompts, n, temperature, seed)

    def _generate_mlp(self, prompts: Sequence[str], n: int, temperature: float | None, seed: int | None) -> list[list[str]]:
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
        if self.config.sb3_policy == "lm":  # the trained LM on its own, loadable by every codegym tool (load_policy)
            self.lm.save_pretrained(directory / "policy")
            self.tokenizer.save_pretrained(directory / "policy")
            self._kl.reference.save_pretrained(directory / "reference")  # the KL penalty's anchor, for resumed runs
        torch.save({"timing": self.timing}, directory / STATE_FILE)

    @classmethod
    def _from_files(cls, directory: Path, config: AgentConfig) -> PPOSB3:
        from stable_baselines3 import PPO

        from codegym.envs.tokens import load_tokenizer

        assert isinstance(config, PPOSB3Config)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        tokenizer = load_tokenizer(str(directory / "tokenizer"))
        if not (directory / "policy").is_dir():  # an MLP checkpoint (also those saved before sb3_policy existed)
            config = dataclasses.replace(config, sb3_policy="mlp")
        custom = {"policy_kwargs": cls.policy_kwargs(config, str(directory / "policy"))} if config.sb3_policy == "lm" else {}
        model = PPO.load(directory / "sb3_ppo.zip", device=device, custom_objects=custom)  # the LM policy rebuilt around the saved LM
        _log_in_memory(model)
        reference = None
        if config.sb3_policy == "lm" and (directory / "reference").is_dir():
            from transformers import AutoModelForCausalLM

            reference = AutoModelForCausalLM.from_pretrained(directory / "reference").float()
        agent = cls(config, tokenizer, model=model, reference=reference)
        agent.timing.update(torch.load(directory / STATE_FILE, weights_only=False)["timing"])
        return agent
