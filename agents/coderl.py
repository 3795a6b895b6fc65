"""CodeRL (Le et al., 2022) as PAPER.md summarises it, on our policy.

Per step:

1. rollout: sampled completions, executed, scored with the ``coderl`` reward preset
   (−1 compile error, −0.6 runtime error or timeout, −0.3 failed tests, +1 all passed);
2. baseline: one greedy completion per problem, executed and scored the same way;
3. critic: a linear classifier on the decoder's (detached) hidden states gives per-token logits over
   the four outcomes; max-pooled over the completion they are trained with cross-entropy on the
   observed outcome (its own optimizer);
4. RL loss ``−mean_t[w_t · q_t(outcome) · (R − R_greedy) · log π(a_t|s_t)]``, where ``q_t`` is the critic's
   per-token probability of the observed outcome and ``w_t = min(importance_cap, π/μ)`` the truncated
   importance weight for the pipeline's one-step lag (1 without lag);
5. every ``lm_every`` steps, an LM cross-entropy step on the reference solutions of the batch's
   problems (problems without a reference are skipped).

Ours: the critic is trained online, alongside the policy (CodeRL trains it beforehand on samples),
and its size; ``paper`` preset values come from CodeRL's repository (lr 2e-5, T 0.6, 512 tokens).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from codegym import scoring
from codegym.problems import Problem
from codegym.agents.base import LMAgent
from codegym.agents.config import AgentConfig
from codegym.agents.rollout import Rollout, encode, masked_mean, token_view, truncated_importance_weights

__all__ = ["CodeRL", "CodeRLConfig"]

OUTCOME_CLASSES = {"syntax_error": 0, "runtime_error": 1, "timeout": 1, "failed": 2, "passed": 3}


@dataclass
class CodeRLConfig(AgentConfig):
    """CodeRL settings (beyond `AgentConfig`).

    Attributes:
        critic_lr: learning rate of the outcome classifier.
        lm_every: run an LM cross-entropy step on reference solutions every this many RL steps (0: never).
    """

    reward: Any = "coderl"
    critic_lr: float = 1e-4
    lm_every: int = 1

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {**AgentConfig.PRESETS["tiny"], "lr": 1e-4, "critic_lr": 1e-3},
        "default": {},
        "paper": {"lr": 2e-5, "temperature": 0.6, "max_new_tokens": 512},
    }


class CodeRL(LMAgent):
    """CodeRL-style critic-weighted policy gradient with a greedy baseline (see the module docstring)."""

    name = "coderl"
    Config = CodeRLConfig

    def __init__(self, config: CodeRLConfig, policy: Any = "default", reference: nn.Module | None = None) -> None:
        super().__init__(config, policy, reference)
        self.config: CodeRLConfig = config
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.critic = nn.Linear(self.model.config.hidden_size, len(set(OUTCOME_CLASSES.values()))).to(self.device)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=config.critic_lr)
        self._updates = 0

    def _greedy_rewards(self, problems: list[Problem]) -> dict[str, float]:
        """The reward of each distinct problem's greedy completion under the current policy."""
        unique = list({p.task_id: p for p in problems}.values())
        greedy = self.sample([p.prompt for p in unique], 1, temperature=0.0)
        assert self.executor is not None
        scores = scoring.score(unique, [g[0].text for g in greedy], reward=self.config.reward, executor=self.executor, timeout=self.config.timeout, mode="body")
        return {p.task_id: s.reward for p, s in zip(unique, scores)}

    def update(self, rollout: Rollout) -> dict[str, float]:
        cfg = self.config
        baseline = self._greedy_rewards(rollout.problems)
        batch = self.batch(rollout.samples)
        mask = batch.action_mask  # [B, T-1]
        outcome = torch.tensor([OUTCOME_CLASSES[r.outcome] for r in rollout.results], device=self.device)  # [B]
        returns = torch.tensor(rollout.rewards, device=self.device)
        greedy = torch.tensor([baseline[p.task_id] for p in rollout.problems], device=self.device)

        view = token_view(self.model, batch, self.autocast, cfg.temperature)
        critic_logits = self.critic(view.hidden.detach())  # [B, T-1, 4]
        pooled = critic_logits.masked_fill(mask[..., None] == 0, float("-inf")).max(dim=1).values  # [B, 4]
        critic_loss = F.cross_entropy(pooled, outcome)
        q = critic_logits.detach().softmax(-1).gather(-1, outcome[:, None, None].expand(-1, mask.shape[1], 1)).squeeze(-1)  # [B, T-1]
        importance = truncated_importance_weights(view.logprobs, batch.behaviour_logprobs, mask, cfg.importance_cap)  # [B, T-1]
        weight = importance * q * (returns - greedy)[:, None]  # per-token return, critic-weighted, greedy baseline
        rl_loss = -masked_mean(weight * view.logprobs, mask)
        self._optimizer_step(self.optimizer, rl_loss, self.model.parameters(), "CodeRL policy loss")
        self._optimizer_step(self.critic_optimizer, critic_loss, self.critic.parameters(), "CodeRL critic loss")
        self._updates += 1
        metrics = {"rl_loss": float(rl_loss.detach()), "critic_loss": float(critic_loss.detach()), "greedy_reward": float(greedy.mean())}
        if cfg.lm_every and self._updates % cfg.lm_every == 0:
            metrics["lm_loss"] = self._lm_step(rollout.problems)
        return metrics

    def _lm_step(self, problems: list[Problem]) -> float:
        """One cross-entropy step on the reference bodies of ``problems`` (NaN when none has a usable reference)."""
        pairs = list({p.task_id: (p.prompt, p.reference[len(p.prompt) :]) for p in problems if p.reference and p.reference.startswith(p.prompt)}.values())
        if not pairs:
            return float("nan")
        batch = encode(self.tokenizer, [a for a, _ in pairs], [b for _, b in pairs], self.policy.context, self.config.max_new_tokens, self.eof_id, self.device)
        loss = -masked_mean(token_view(self.model, batch, self.autocast).logprobs, batch.action_mask)
        self._optimizer_step(self.optimizer, loss, self.model.parameters(), "CodeRL LM loss")
        return float(loss.detach())

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "optimizer": self.optimizer.state_dict(), "critic": self.critic.state_dict(), "critic_optimizer": self.critic_optimizer.state_dict(), "updates": self._updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.optimizer.load_state_dict(state["optimizer"])
        self.critic.load_state_dict(state["critic"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self._updates = state["updates"]
