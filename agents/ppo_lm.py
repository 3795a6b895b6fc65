"""PPO on the LM policy with a value head: the paper's "standard PPO" baseline (implementation ours, after
CleanRL's ``ppo.py`` and the RLHF recipe of Ziegler et al. 2019).

Per step:

1. rollout: ``batch_problems × samples_per_problem`` completions, executed, reward R at the last token;
2. old log-probs are the behaviour log-probs recorded when the actions were sampled (the policy that
   actually drew them, one update older under the pipeline's lag); with the policy frozen: values
   ``V(s_t)`` (a linear head on the policy's last hidden states, sharing its trunk) and the reference
   policy's log-probs, all at the sampling temperature;
3. per-token rewards: ``−β · (log π − log π_ref)`` on every token, plus R on the last one; advantages
   by GAE (γ, λ) over the completion tokens, whitened;
4. ``update_epochs`` epochs over ``num_minibatches`` minibatches of the clipped objective
   ``max(−A·ρ, −A·clip(ρ, 1±ε))`` + ``vf_coef`` × clipped value loss − ``ent_coef`` × entropy;
5. adaptive KL control: β moves towards ``target_kl`` (proportional controller, Ziegler et al.).

PAPER.md gives the standard values used in the ``paper`` preset (ε 0.2, λ 0.95, γ 1, KL to the frozen
LM); everything else is ours. Without lag the first epoch's ratio is exactly 1; with the pipeline's
one-step lag (see `codegym.agents.base`) the ratio starts where the behaviour policy left off, and
clipping bounds how far the update follows samples of the older policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from codegym.agents.base import LMAgent
from codegym.agents.config import AgentConfig
from codegym.agents.rollout import Rollout, masked_mean, reference_logprobs, token_view

__all__ = ["PPOLM", "PPOLMConfig"]


@dataclass
class PPOLMConfig(AgentConfig):
    """PPO settings (beyond `AgentConfig`); ours unless the ``paper`` preset sets them.

    Attributes:
        update_epochs: passes over each rollout.
        num_minibatches: minibatches per pass.
        clip_coef: ε of the clipped ratio (and of the value clipping).
        gamma, gae_lambda: GAE over completion tokens.
        vf_coef, ent_coef: weights of the value loss and of the entropy bonus.
        kl_coef: initial β of the per-token KL penalty to the frozen pretrained policy.
        target_kl, kl_horizon: adaptive KL control (β is adjusted towards ``target_kl``; 0 keeps β fixed).
    """

    update_epochs: int = 4
    num_minibatches: int = 2
    clip_coef: float = 0.2
    gamma: float = 1.0
    gae_lambda: float = 0.95
    vf_coef: float = 0.5
    ent_coef: float = 0.0
    kl_coef: float = 0.05
    target_kl: float = 6.0
    kl_horizon: int = 10000

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {**AgentConfig.PRESETS["tiny"], "update_epochs": 2, "num_minibatches": 2, "lr": 1e-4},
        "default": {},
        "paper": {"clip_coef": 0.2, "gae_lambda": 0.95, "gamma": 1.0, "lr": 1e-5, "samples_per_problem": 8, "max_new_tokens": 256},
    }


class PPOLM(LMAgent):
    """PPO on the LM with a value head (see the module docstring)."""

    name = "ppo_lm"
    Config = PPOLMConfig
    needs_reference = True

    def __init__(self, config: PPOLMConfig, policy: Any = "default", reference: nn.Module | None = None) -> None:
        super().__init__(config, policy, reference)
        self.config: PPOLMConfig = config
        self.value_head = nn.Linear(self.model.config.hidden_size, 1).to(self.device)
        self.params = list(self.model.parameters()) + list(self.value_head.parameters())
        self.optimizer = torch.optim.Adam(self.params, lr=config.lr, eps=1e-5)
        self.beta = config.kl_coef

    def _gae(self, rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Advantages [B, T-1] by GAE, computed backwards over positions; zero outside the completion."""
        cfg = self.config
        advantages = torch.zeros_like(rewards)
        last = torch.zeros_like(rewards[:, 0])  # [B]
        for t in reversed(range(rewards.shape[1])):
            next_mask = mask[:, t + 1] if t + 1 < rewards.shape[1] else torch.zeros_like(last)
            next_value = values[:, t + 1] if t + 1 < rewards.shape[1] else torch.zeros_like(last)
            delta = rewards[:, t] + cfg.gamma * next_value * next_mask - values[:, t]
            last = delta + cfg.gamma * cfg.gae_lambda * next_mask * last
            advantages[:, t] = last
        return advantages * mask

    def update(self, rollout: Rollout) -> dict[str, float]:
        cfg = self.config
        batch = self.batch(rollout.samples)
        mask = batch.action_mask  # [B, T-1]
        B = mask.shape[0]
        T = cfg.temperature

        # 1. the behaviour policy's log-probs (recorded at sampling); values and reference log-probs (no gradient).
        old_logprobs = batch.behaviour_logprobs  # [B, T-1]
        with torch.no_grad():
            view = token_view(self.model, batch, self.autocast, T)
            old_values = self.value_head(view.hidden).squeeze(-1) * mask  # [B, T-1]
            ref_logprobs = reference_logprobs(self.reference, batch, self.autocast, T)  # [B, T-1]
            kl_tokens = (old_logprobs - ref_logprobs) * mask  # [B, T-1] sample estimate of KL per token

            # 2. per-token rewards: KL penalty everywhere, the test reward on the last completion token.
            rewards = -self.beta * kl_tokens
            last = (mask * torch.arange(mask.shape[1], device=self.device)).argmax(dim=1)  # [B]
            rewards[torch.arange(B), last] += torch.tensor(rollout.rewards, device=self.device)
            advantages = self._gae(rewards, old_values, mask)
            returns = advantages + old_values
            mean, std = advantages[mask.bool()].mean(), advantages[mask.bool()].std()
            advantages = (advantages - mean) / (std + 1e-8) * mask

        # 3. clipped PPO epochs over minibatches.
        minibatch = max(1, B // cfg.num_minibatches)
        stats: dict[str, list[float]] = {"pg_loss": [], "value_loss": [], "entropy": [], "approx_kl": [], "clipfrac": [], "initial_ratio_error": []}
        for _ in range(cfg.update_epochs):
            order = torch.randperm(B, device=self.device)
            for start in range(0, B, minibatch):
                idx = order[start : start + minibatch]
                mb = batch[idx]
                new = token_view(self.model, mb, self.autocast, T)
                log_ratio = new.logprobs - old_logprobs[idx]  # [b, T-1]
                ratio = log_ratio.exp()
                if not stats["initial_ratio_error"]:  # before any step: max |ρ − 1|, 0 up to rounding without lag
                    stats["initial_ratio_error"].append(float(((ratio.detach() - 1).abs() * mb.action_mask).max()))
                pg_loss = masked_mean(torch.max(-advantages[idx] * ratio, -advantages[idx] * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef)), mb.action_mask)
                values = self.value_head(new.hidden).squeeze(-1)
                clipped = old_values[idx] + (values - old_values[idx]).clamp(-cfg.clip_coef, cfg.clip_coef)
                value_loss = 0.5 * masked_mean(torch.max((values - returns[idx]) ** 2, (clipped - returns[idx]) ** 2), mb.action_mask)
                entropy = masked_mean(new.entropy, mb.action_mask)
                loss = pg_loss + cfg.vf_coef * value_loss - cfg.ent_coef * entropy
                self._optimizer_step(self.optimizer, loss, self.params, "PPO loss")
                with torch.no_grad():
                    stats["approx_kl"].append(float(masked_mean((ratio - 1) - log_ratio, mb.action_mask)))
                    stats["clipfrac"].append(float(masked_mean(((ratio - 1).abs() > cfg.clip_coef).float(), mb.action_mask)))
                stats["pg_loss"].append(float(pg_loss.detach()))
                stats["value_loss"].append(float(value_loss.detach()))
                stats["entropy"].append(float(entropy.detach()))

        # 4. adaptive KL control towards target_kl (KL summed over a completion).
        kl = float(kl_tokens.sum(1).mean())
        if cfg.target_kl > 0:
            error = max(-0.2, min(0.2, kl / cfg.target_kl - 1))
            self.beta *= 1 + error * B / cfg.kl_horizon
        value_error = float(masked_mean((old_values - torch.tensor(rollout.rewards, device=self.device)[:, None]) ** 2, mask))
        return {**{k: sum(v) / len(v) for k, v in stats.items()}, "kl": kl, "kl_beta": self.beta, "value_error": value_error}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "value_head": self.value_head.state_dict(), "optimizer": self.optimizer.state_dict(), "beta": self.beta}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.value_head.load_state_dict(state["value_head"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.beta = state["beta"]
