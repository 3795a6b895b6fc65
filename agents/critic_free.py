"""Critic-free policy gradients with a group baseline: GRPO and RLOO, the default RL methods for code
and math in TRL, verl and OpenRLHF.

Per step:

1. rollout: ``batch_problems`` problems, ``samples_per_problem`` completions each (the *group*),
   executed and rewarded; each sample keeps its action ids and behaviour log-probs ``log μ(a_t|s_t)``;
2. advantage per sample, from the other rewards of its group (no value network):
   - GRPO (Shao et al. 2024, DeepSeekMath): ``Â = (r − mean_g) / (std_g + ε)``;
     ``scale_rewards=False`` drops the division (Dr. GRPO, Liu et al. 2025);
   - RLOO (Ahmadian et al. 2024, "Back to Basics"): ``Â = r − mean of the other k − 1 rewards``;
3. ``update_epochs`` passes over ``num_minibatches`` minibatches of the clipped surrogate on every action
   token, ``ρ_t = π_θ(a_t|s_t) / μ(a_t|s_t)`` against the behaviour log-probs (so the pipeline's
   one-step lag is corrected exactly):
   ``ℓ_t = −min(ρ_t Â, clip(ρ_t, 1 − ε_low, 1 + ε_high) Â) + β · KL_t``, with ``KL_t`` the k3 estimator
   ``exp(log π_ref − log π) − (log π_ref − log π) − 1`` of GRPO's paper (only when ``kl_coef`` > 0);
4. loss normalisation (``loss_norm``): ``sequence`` — mean over each completion's tokens, then over
   completions (GRPO's paper); ``token`` — sum over every token of the minibatch divided by their
   number, so long completions are not down-weighted (DAPO, Yu et al. 2025).

Recipes behind the defaults: GRPO follows TRL's ``GRPOConfig`` (β = 0, one pass, ε = 0.2, group std
scaling, token-level normalisation as DAPO and TRL's current default, 8 completions per prompt); RLOO
follows Ahmadian et al. and TRL's ``RLOOConfig`` (leave-one-out baseline, no std scaling, β = 0.05 —
here as a loss term like GRPO's rather than a reward penalty —, sequence-level normalisation, ε = 0.2).
DAPO's dynamic sampling is the shared ``filter_groups`` option (`codegym.agents.config.AgentConfig`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from codegym.agents.base import LMAgent
from codegym.agents.config import AgentConfig, ConfigError
from codegym.agents.rollout import Batch, Rollout, group_advantages, masked_mean, reference_logprobs, token_view

__all__ = ["GRPO", "GRPOConfig", "RLOO", "RLOOConfig"]

LOSS_NORMS = ("sequence", "token")


@dataclass
class GRPOConfig(AgentConfig):
    """GRPO settings (beyond `AgentConfig`).

    Attributes:
        samples_per_problem: the group size G (TRL's ``num_generations``).
        update_epochs: passes over each rollout (μ in GRPO's paper, TRL's ``num_iterations``).
        num_minibatches: optimizer steps per pass.
        clip_low, clip_high: ε_low and ε_high of the clipped ratio (DAPO's "clip higher" raises ε_high to 0.28).
        kl_coef: β of the k3 KL estimate to the frozen initial policy (0: no reference model is kept).
        scale_rewards: divide the centred group rewards by their standard deviation (False: Dr. GRPO).
        loss_norm: ``token`` (DAPO: over all tokens of a minibatch) or ``sequence`` (per completion, then mean).
    """

    batch_problems: int = 4
    samples_per_problem: int = 8
    update_epochs: int = 1
    num_minibatches: int = 1
    clip_low: float = 0.2
    clip_high: float = 0.2
    kl_coef: float = 0.0
    scale_rewards: bool = True
    loss_norm: str = "token"

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {**AgentConfig.PRESETS["tiny"], "samples_per_problem": 4, "lr": 1e-4},
        "default": {},
        "paper": {"samples_per_problem": 8, "temperature": 0.8, "max_new_tokens": 256},
        # DAPO (Yu et al. 2025): clip higher, token-level loss, dynamic sampling, no KL.
        "dapo": {"clip_high": 0.28, "loss_norm": "token", "filter_groups": True, "kl_coef": 0.0},
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.loss_norm not in LOSS_NORMS:
            raise ConfigError(f"loss_norm must be one of {', '.join(LOSS_NORMS)}, got {self.loss_norm!r}")
        if self.samples_per_problem < 2:
            raise ConfigError(f"a group needs samples_per_problem >= 2, got {self.samples_per_problem}")


@dataclass
class RLOOConfig(GRPOConfig):
    """RLOO settings: those of `GRPOConfig` and its presets (``scale_rewards`` is not used), with RLOO's defaults."""

    kl_coef: float = 0.05
    loss_norm: str = "sequence"


class GRPO(LMAgent):
    """Group Relative Policy Optimization (see the module docstring)."""

    name = "grpo"
    Config = GRPOConfig
    leave_one_out: ClassVar[bool] = False
    repairs = True

    def __init__(self, config: GRPOConfig, policy: Any = "default", reference: nn.Module | None = None) -> None:
        super().__init__(config, policy, reference)
        self.config: GRPOConfig = config
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)

    def wants_reference(self) -> bool:
        return self.config.kl_coef > 0

    def advantages(self, rollout: Rollout) -> torch.Tensor:
        """Â per sample [B], relative to its group. Multi-turn, the group is the problem's episodes:
        each episode's whole return is compared with the others', and every attempt of the episode
        gets its episode's advantage."""
        if not rollout.trajectories:
            rewards = torch.tensor(rollout.rewards, dtype=torch.float32, device=self.device)
            groups = torch.tensor(rollout.groups, device=self.device)
            return group_advantages(rewards, groups, leave_one_out=self.leave_one_out, scale=self.config.scale_rewards)
        _, returns, groups = rollout.episode_returns()
        per_episode = group_advantages(
            torch.tensor(returns, dtype=torch.float32, device=self.device), torch.tensor(groups, device=self.device),
            leave_one_out=self.leave_one_out, scale=self.config.scale_rewards,
        )  # fmt: skip
        order = {t: n for n, t in enumerate(dict.fromkeys(rollout.trajectories))}
        return per_episode[torch.tensor([order[t] for t in rollout.trajectories], device=self.device)]

    def _loss(self, mb: Batch, advantage: torch.Tensor, stats: dict[str, list[float]]) -> torch.Tensor:
        """The clipped surrogate (plus β·KL) of minibatch ``mb`` with per-sample advantages ``advantage`` [b]."""
        cfg = self.config
        mask = mb.action_mask  # [b, T-1]
        new = token_view(self.model, mb, self.autocast, cfg.temperature)
        log_ratio = (new.logprobs - mb.behaviour_logprobs) * mask  # [b, T-1]
        ratio = log_ratio.exp()
        A = advantage[:, None]  # [b, 1]
        per_token = -torch.min(ratio * A, ratio.clamp(1 - cfg.clip_low, 1 + cfg.clip_high) * A)  # [b, T-1]
        if cfg.kl_coef > 0:
            ref_logprobs = reference_logprobs(self.reference, mb, self.autocast, cfg.temperature)  # [b, T-1]
            delta = (ref_logprobs - new.logprobs) * mask
            kl = delta.exp() - delta - 1  # k3, ≥ 0
            per_token = per_token + cfg.kl_coef * kl
            stats["kl"].append(float(masked_mean(kl.detach(), mask)))
        if cfg.loss_norm == "token":
            loss = masked_mean(per_token, mask)
        else:
            loss = ((per_token * mask).sum(1) / mask.sum(1).clamp(min=1)).mean()
        with torch.no_grad():
            if not stats["initial_ratio_error"]:  # before any step: max |ρ − 1|, 0 up to rounding without lag
                stats["initial_ratio_error"].append(float(((ratio - 1).abs() * mask).max()))
            clipped = ((ratio < 1 - cfg.clip_low) & (A < 0)) | ((ratio > 1 + cfg.clip_high) & (A > 0))
            stats["clipfrac"].append(float(masked_mean(clipped.float(), mask)))
            stats["entropy"].append(float(masked_mean(new.entropy, mask)))
        return loss

    def update(self, rollout: Rollout) -> dict[str, float]:
        cfg = self.config
        advantage = self.advantages(rollout)  # [B]
        stats: dict[str, list[float]] = {"pg_loss": [], "clipfrac": [], "entropy": [], "kl": [], "initial_ratio_error": []}
        batch = self.batch(rollout.samples) if len(rollout) else None
        B = len(rollout)
        for _ in range(cfg.update_epochs):
            order = torch.randperm(B, device=self.device)
            for idx in torch.tensor_split(order, cfg.num_minibatches):
                if len(idx) == 0:  # data-parallel, a rank with too few samples still steps (zero gradient)
                    loss = sum(p.sum() for p in self.model.parameters()) * 0.0
                else:
                    assert batch is not None
                    loss = self._loss(batch[idx], advantage[idx], stats)
                    stats["pg_loss"].append(float(loss.detach()))
                self._optimizer_step(self.optimizer, loss, self.model.parameters(), f"{self.name} loss")
        metrics = {k: sum(v) / len(v) for k, v in stats.items() if v}
        if B:
            metrics["advantage_abs"] = float(advantage.abs().mean())
        return metrics

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.optimizer.load_state_dict(state["optimizer"])


class RLOO(GRPO):
    """REINFORCE Leave-One-Out with a clipped ratio (see the module docstring)."""

    name = "rloo"
    Config = RLOOConfig
    leave_one_out = True
