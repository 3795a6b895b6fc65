"""Rejection-sampling fine-tuning (RFT): the compute-matched control for the RL agents.

Expert iteration as in STaR (Zelikman et al. 2022), ReST-EM (Singh et al. 2023) and RFT (Yuan et al.
2023): sample, keep what passes, imitate it. Without this control a gain of RL over ``clm`` cannot be
told apart from "fine-tuned on its own successes".

Per step:

1. rollout (E-step), exactly as the RL agents collect theirs: ``batch_problems`` problems,
   ``samples_per_problem`` completions each (the n of ReST-EM), every one run against the problem's
   tests in the sandbox, so every completion counts in the sample budget;
2. filter: a sample is kept when its program passed *all* tests (the verdict, not the reward: the
   ``reward`` setting only shows in the logged reward); a passing sample whose normalised syntax tree
   (`codegym.agents.replay.normalized_ast`) is already in the pool for the same problem is dropped
   as a duplicate, and at most ``max_per_problem`` distinct ones are kept per problem (ReST-EM's
   cut-off, so easy problems do not dominate the data);
3. every ``collect_steps`` steps (M-step): ``sft_epochs`` passes over the pooled samples in
   minibatches of ``sft_batch_size``, each an optimizer step on the LM loss
   ``−mean_t log π(a_t | s_t)`` over every completion token of the minibatch (temperature 1: the
   model's own distribution, as in pretraining); then the pool is emptied.

The loss uses the sampled ids themselves (the prompt ids the model was fed and the action ids it
drew, `codegym.models.Sample`), so nothing is re-tokenized. ``collect_steps = 1`` (the default)
fine-tunes on each batch's successes at once (online RFT, RAFT of Dong et al. 2023); larger values
pool several batches first, as ReST-EM's iterations do. Ours, and a difference from STaR and ReST-EM:
the policy keeps training from where it is instead of restarting from the base model every
iteration, and there is no rationalisation step (STaR's hints), since problems carry no hints.
Not data-parallel (``codegym train --distributed``): ranks would pool different numbers of samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from codegym.agents.base import LMAgent
from codegym.agents.config import AgentConfig, ConfigError
from codegym.agents.replay import Experience, normalized_ast
from codegym.agents.rollout import Rollout, Trajectory, masked_mean, token_view

__all__ = ["RFT", "RFTConfig"]


@dataclass
class RFTConfig(AgentConfig):
    """RFT settings (beyond `AgentConfig`). Defaults are ours unless noted.

    Attributes:
        samples_per_problem: n, completions sampled per problem per step (ReST-EM samples 32 per
            problem per iteration on its much larger problems; 8 keeps steps the size of GRPO's).
        collect_steps: sampling steps whose passing samples are pooled before a fine-tuning pass
            (1: fine-tune on each step's successes at once).
        sft_epochs: passes over the pooled samples per fine-tuning round.
        sft_batch_size: samples per optimizer step of the LM loss.
        max_per_problem: at most this many distinct passing samples per problem in a pool
            (ReST-EM's cut-off of 10 per problem, scaled to our smaller n); 0: no cap.
    """

    batch_problems: int = 8
    samples_per_problem: int = 8
    collect_steps: int = 1
    sft_epochs: int = 1
    sft_batch_size: int = 16
    max_per_problem: int = 4

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {**AgentConfig.PRESETS["tiny"], "lr": 1e-4, "sft_batch_size": 4},
        "default": {},
        "paper": {"samples_per_problem": 8, "temperature": 0.8, "max_new_tokens": 256},
    }

    def __post_init__(self) -> None:
        for name in ("collect_steps", "sft_epochs", "sft_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_per_problem < 0:
            raise ConfigError(f"max_per_problem must be >= 0 (0: no cap), got {self.max_per_problem}")


class RFT(LMAgent):
    """Rejection-sampling fine-tuning / expert iteration (see the module docstring)."""

    name = "rft"
    Config = RFTConfig

    def __init__(self, config: RFTConfig, policy: Any = "default", reference: nn.Module | None = None) -> None:
        super().__init__(config, policy, reference)
        self.config: RFTConfig = config
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.pool: dict[tuple[str, str], Experience] = {}  # (task id, normalised AST) → a distinct passing sample
        self._generator = torch.Generator().manual_seed(config.seed)  # minibatch order
        self._updates = 0

    def keep(self, rollout: Rollout) -> tuple[int, int]:
        """Add the rollout's distinct passing samples to the pool; returns (added, duplicates dropped)."""
        cap = self.config.max_per_problem
        per_problem: dict[str, int] = {}
        for task_id, _ in self.pool:
            per_problem[task_id] = per_problem.get(task_id, 0) + 1
        added = duplicates = 0
        for problem, sample, result, reward in zip(rollout.problems, rollout.samples, rollout.results, rollout.rewards):
            if not result.passed:
                continue
            key = (problem.task_id, normalized_ast(problem.program(sample.text)))
            if key in self.pool or (cap and per_problem.get(problem.task_id, 0) >= cap):
                duplicates += key in self.pool
                continue
            self.pool[key] = Experience(problem.task_id, sample.text, float(reward), result.outcome, tuple(sample.prompt_ids), tuple(sample.token_ids), tuple(sample.logprobs))
            per_problem[problem.task_id] = per_problem.get(problem.task_id, 0) + 1
            added += 1
        return added, duplicates

    def lm_loss(self, samples: Sequence[Trajectory]) -> torch.Tensor:
        """``−mean log π(a_t | s_t)`` over every completion token of ``samples`` (temperature 1)."""
        batch = self.batch(samples)
        return -masked_mean(token_view(self.model, batch, self.autocast).logprobs, batch.action_mask)

    def fine_tune(self, samples: Sequence[Trajectory]) -> list[float]:
        """``sft_epochs`` passes of LM-loss steps over ``samples``; the loss of each step."""
        cfg = self.config
        losses = []
        for _ in range(cfg.sft_epochs):
            order = torch.randperm(len(samples), generator=self._generator).tolist()
            for start in range(0, len(order), cfg.sft_batch_size):
                loss = self.lm_loss([samples[i] for i in order[start : start + cfg.sft_batch_size]])
                self._optimizer_step(self.optimizer, loss, self.model.parameters(), "RFT LM loss")
                losses.append(float(loss.detach()))
        return losses

    def update(self, rollout: Rollout) -> dict[str, float]:
        added, duplicates = self.keep(rollout)
        self._updates += 1
        metrics: dict[str, float] = {"kept": added, "duplicates": duplicates}
        if self._updates % self.config.collect_steps == 0:
            samples = list(self.pool.values())
            self.pool.clear()
            losses = self.fine_tune(samples)
            metrics["sft_samples"] = len(samples)
            if losses:
                metrics["lm_loss"] = sum(losses) / len(losses)
        metrics["pool"] = len(self.pool)  # waiting for the next fine-tuning round
        return metrics

    def state_dict(self) -> dict[str, Any]:
        pool = [(list(k), {**vars(e), "prompt_ids": list(e.prompt_ids), "token_ids": list(e.token_ids), "logprobs": list(e.logprobs)}) for k, e in self.pool.items()]
        return {**super().state_dict(), "optimizer": self.optimizer.state_dict(), "pool": pool, "generator": self._generator.get_state(), "updates": self._updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.optimizer.load_state_dict(state["optimizer"])
        self.pool = {tuple(k): Experience(**{**e, **{f: tuple(e[f]) for f in ("prompt_ids", "token_ids", "logprobs")}}) for k, e in state["pool"]}
        self._generator.set_state(state["generator"])
        self._updates = state["updates"]
