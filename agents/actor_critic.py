"""The paper's method: REINFORCE on the LM with a learned feed-forward critic, and an AST-filtered replay buffer.

Per step (see PAPER.md, "Actor-critic method"):

1. rollout: sample ``samples_per_problem`` completions for ``batch_problems`` problems, run them, reward R;
2. form the update batch: the fresh samples plus ``replay_samples`` drawn from the replay buffer
   (earlier samples), then store the fresh ones (a program already there up to its normalised AST
   is skipped);
3. critic: ``V(s_t) = MLP(h_t)`` on the actor's last hidden states (detached: the critic does not
   move the actor), per token, or per sequence (the state before the first token);
4. actor loss ``−mean_t[w_t · (R − V(s_t)) · log π(a_t|s_t)]`` with the advantage detached, where
   ``w_t = min(importance_cap, π/μ)`` is the truncated importance weight of the token under the
   policy μ that sampled it (IMPALA's ρ̄; it corrects the pipeline's one-step lag and replayed
   samples, and is 1 for fresh samples without lag), plus
   ``kl_coef · KL(π ‖ π_pretrained)`` and minus ``entropy_coef · H(π)``;
   critic loss ``mean_t[(V(s_t) − R)²]`` with its own optimizer.

``critic`` selects the paper's ablation: ``sync`` (trained in step with the actor — the paper's
choice, confirmed), ``frozen`` (pre-trained for ``critic_pretrain_steps`` steps on samples of the
initial policy, then fixed), ``none`` (plain REINFORCE with the batch's mean reward as baseline).

Confirmed by the paper: REINFORCE with a learned baseline, feed-forward critic, sync beats frozen,
AST-filtered replay. Ours (not given by the paper): critic on detached last-layer hidden states,
critic size, per-token mean of the loss, KL and entropy terms and their weights, learning rates,
replay sizes and mixing, no advantage normalisation by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from codegym.problems import Problem
from codegym.agents.base import LMAgent
from codegym.agents.config import AgentConfig, ConfigError
from codegym.agents.replay import Experience, ReplayBuffer
from codegym.agents.rollout import Rollout, action_logits, kl_to_reference, masked_mean, token_view, truncated_importance_weights

__all__ = ["ActorCritic", "ActorCriticConfig", "Critic"]

CRITIC_MODES = ("sync", "frozen", "none")


@dataclass
class ActorCriticConfig(AgentConfig):
    """Actor-critic settings (beyond `AgentConfig`). All values are ours unless noted.

    Attributes:
        critic: ``sync`` | ``frozen`` | ``none`` (the paper's ablation; ``sync`` is the paper's method).
        value_level: ``token`` (a value per generated token) or ``sequence`` (one per sample).
        critic_hidden: width of the critic's two hidden layers (0: the policy's hidden size).
        critic_lr: the critic's learning rate (Adam; 1e-4 as usual for heads, PAPER.md).
        critic_pretrain_steps: rollout batches the ``frozen`` critic is fitted on before RL.
        replay_buffer: buffer size in samples (0 switches it off).
        replay_samples: samples drawn from the buffer into each update, besides the fresh ones.
        ast_filter: skip programs whose normalised AST is already buffered for the problem.
        kl_coef: weight of the exact per-token KL to the frozen pretrained policy (0: off).
        entropy_coef: weight of the entropy bonus.
        normalize_advantage: scale advantages to unit standard deviation per batch.
    """

    critic: str = "sync"
    value_level: str = "token"
    critic_hidden: int = 0
    critic_lr: float = 1e-4
    critic_pretrain_steps: int = 20
    replay_buffer: int = 2048
    replay_samples: int = 16
    ast_filter: bool = True
    kl_coef: float = 0.02
    entropy_coef: float = 0.0
    normalize_advantage: bool = False

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {**AgentConfig.PRESETS["tiny"], "critic_hidden": 32, "critic_pretrain_steps": 2, "replay_buffer": 64, "replay_samples": 4, "lr": 1e-4, "critic_lr": 1e-3},
        "default": {},
        # PAPER.md gives ranges only: lr 1e-6–2e-5 (LM), 1e-4 (head), 4–16 samples per prompt, T 0.6–1.0, 256–512 new tokens.
        "paper": {"lr": 1e-5, "critic_lr": 1e-4, "samples_per_problem": 8, "temperature": 0.8, "max_new_tokens": 256, "critic": "sync"},
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.critic not in CRITIC_MODES:
            raise ConfigError(f"critic must be one of {', '.join(CRITIC_MODES)}, got {self.critic!r}")
        if self.value_level not in ("token", "sequence"):
            raise ConfigError(f"value_level must be 'token' or 'sequence', got {self.value_level!r}")


class Critic(nn.Module):
    """A small feed-forward value network: hidden state [.., H] → value [..]."""

    def __init__(self, hidden_size: int, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(hidden_size, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(), nn.Linear(width, 1))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.net(hidden).squeeze(-1)


class ActorCritic(LMAgent):
    """The paper's actor-critic (see the module docstring)."""

    name = "actor_critic"
    Config = ActorCriticConfig
    repairs = True

    def __init__(self, config: ActorCriticConfig, policy: Any = "default", reference: nn.Module | None = None) -> None:
        super().__init__(config, policy, reference)
        self.config: ActorCriticConfig = config
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        hidden = self.model.config.hidden_size
        self.critic = Critic(hidden, config.critic_hidden or hidden).to(self.device)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=config.critic_lr)
        self.critic_frozen = False
        self.buffer = ReplayBuffer(config.replay_buffer, config.ast_filter, seed=config.seed)

    def wants_reference(self) -> bool:
        return self.config.kl_coef > 0

    # -- the critic ------------------------------------------------------------------------------

    def _values(self, hidden: torch.Tensor, action_mask: torch.Tensor) -> torch.Tensor:
        """V(s_t) for every position [B, T-1]; per sequence, the value of the state before the first action, broadcast."""
        values = self.critic(hidden.detach())  # [B, T-1]
        if self.config.value_level == "sequence":
            first = action_mask.argmax(dim=1)  # [B] index of the first action
            values = values.gather(1, first[:, None]).expand_as(values)
        return values

    def before_training(self, problems: list[Problem]) -> None:
        """``frozen``: fit the critic on samples of the initial policy, then freeze it (once, not on resume)."""
        if self.config.critic != "frozen" or self.critic_frozen:
            return
        for _ in range(self.config.critic_pretrain_steps):
            rollout = self._collect(self._launch(problems))
            batch = self.batch(rollout.samples)
            with torch.no_grad():
                view = token_view(self.model, batch, self.autocast, self.config.temperature)
            returns = torch.tensor(rollout.rewards, device=self.device)[:, None]  # [B, 1]
            value_loss = masked_mean((self._values(view.hidden, batch.action_mask) - returns) ** 2, batch.action_mask)
            self._optimizer_step(self.critic_optimizer, value_loss, self.critic.parameters(), "critic pre-training loss")
        self.critic.requires_grad_(False)
        self.critic_frozen = True

    # -- one update ------------------------------------------------------------------------------

    def update(self, rollout: Rollout) -> dict[str, float]:
        cfg = self.config
        # 1. replay: the batch is the fresh samples plus draws from earlier ones; then the fresh ones are
        #    stored (AST-filtered).
        fresh = [
            Experience(p.task_id, s.text, r, res.outcome, tuple(s.prompt_ids), tuple(s.token_ids), tuple(s.logprobs))
            for p, s, r, res in zip(rollout.problems, rollout.samples, rollout.rewards, rollout.results)
        ]
        samples = fresh + self.buffer.draw(cfg.replay_samples)
        added = sum(self.buffer.add(s, p.program(s.completion)) for s, p in zip(fresh, rollout.problems))
        batch = self.batch(samples)
        mask = batch.action_mask  # [B, T-1]
        returns = torch.tensor([s.reward for s in samples], device=self.device)[:, None]  # [B, 1], γ = 1, reward at the end

        # 2. forward the actor; the critic reads its hidden states.
        view = token_view(self.model, batch, self.autocast, cfg.temperature)  # logprobs [B, T-1], hidden [B, T-1, H]
        if cfg.critic == "none":
            values = returns.mean().expand_as(mask)  # mean-reward baseline
        else:
            values = self._values(view.hidden, mask)  # [B, T-1]
        advantage = (returns - values).detach()  # [B, T-1]
        if cfg.normalize_advantage:
            advantage = advantage / (advantage[mask.bool()].std() + 1e-8)

        # 3. actor loss: REINFORCE with baseline, KL to the pretrained policy, entropy bonus.
        weight = truncated_importance_weights(view.logprobs, batch.behaviour_logprobs, mask, cfg.importance_cap)  # [B, T-1]
        pg_loss = -masked_mean(weight * advantage * view.logprobs, mask)
        entropy = masked_mean(view.entropy, mask)
        kl = torch.zeros((), device=self.device)
        if self.reference is not None and cfg.kl_coef > 0:
            with torch.no_grad():
                ref_logits, _ = action_logits(self.reference, batch, self.autocast, cfg.temperature)  # [N, V]
            kl = masked_mean(kl_to_reference(view.action_logits, ref_logits, mask), mask)
        actor_loss = pg_loss + cfg.kl_coef * kl - cfg.entropy_coef * entropy
        self._optimizer_step(self.optimizer, actor_loss, self.model.parameters(), "actor loss")

        # 4. critic loss: squared error to the observed reward (sync only; frozen and none do not learn).
        value_error = masked_mean((values.detach() - returns) ** 2, mask)
        if cfg.critic == "sync":
            value_loss = masked_mean((values - returns) ** 2, mask)
            self._optimizer_step(self.critic_optimizer, value_loss, self.critic.parameters(), "critic loss")
        return {
            "actor_loss": float(actor_loss.detach()),
            "pg_loss": float(pg_loss.detach()),
            "value_error": float(value_error),
            "kl": float(kl.detach()),
            "entropy": float(entropy.detach()),
            "buffer_size": len(self.buffer),
            "buffer_added": added,
            "importance_weight": float(masked_mean(weight, mask)),
        }

    # -- checkpoints -----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "critic_frozen": self.critic_frozen,
            "buffer": self.buffer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.optimizer.load_state_dict(state["optimizer"])
        self.critic.load_state_dict(state["critic"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.critic_frozen = state["critic_frozen"]
        self.critic.requires_grad_(not self.critic_frozen)
        self.buffer.load_state_dict(state["buffer"])
