"""Turning sampled completions into training tensors, and the policy's per-token view of them.

Samples carry their actions: `codegym.models.Sample` holds the prompt ids the model was fed, the
action ids it drew and their behaviour log-probabilities, so an update is built from exactly those
ids — nothing is re-tokenized. The replay buffer stores the same three lists (`Experience`).

One distribution: training samples are drawn from ``softmax(logits / T)`` with ``top_p = 1``
(`AgentConfig.top_p`), and every update scores its actions with ``log_softmax(logits / T)`` at the same
``T`` (`token_view`). ``top_p < 1`` would truncate the sampling distribution, which the update does not
model; it is meant for evaluation (`AgentConfig.eval_top_p`).

`encode` tokenizes text, for supervised targets only (CodeRL's steps on reference solutions, the toy
policy's fine-tuning): the prompt without its trailing whitespace is tokenized on its own and
``trailing whitespace + completion`` gives the target tokens, as `codegym.models.Policy.sample` does.
Sequences are right-padded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F

from codegym.execution import ExecResult
from codegym.problems import Problem

__all__ = [
    "Batch",
    "Rollout",
    "TokenView",
    "Trajectory",
    "UnsupportedModel",
    "action_logits",
    "batch_from_samples",
    "check_update_logits",
    "encode",
    "group_advantages",
    "kl_to_reference",
    "masked_mean",
    "reference_logprobs",
    "scatter_actions",
    "token_view",
    "truncated_importance_weights",
]


class Trajectory(Protocol):
    """What an update needs of a sample: `codegym.models.Sample` and `codegym.agents.replay.Experience` both qualify."""

    prompt_ids: Sequence[int]
    token_ids: Sequence[int]
    logprobs: Sequence[float]


@dataclass
class Rollout:
    """One step's samples: which problem, what was written, how it ran and what it earned (all length B).

    ``groups[i]`` numbers the draw sample i belongs to: the ``samples_per_problem`` samples of one drawn
    problem share it (GRPO's and RLOO's group; a problem drawn twice makes two groups). ``infos`` holds
    each sample's extra reward metrics (a dict reward's keys beyond ``"score"``).

    Multi-turn (``env=repair``): every attempt is one sample (its own exact prompt ids, the rendered
    prompt with the earlier attempts and their feedback, so feedback tokens are never actions);
    ``trajectories[i]`` numbers the episode sample i belongs to (its samples in turn order) and
    ``rewards[i]`` is the episode's return from that turn on. Empty: one sample per episode.
    ``metrics`` holds per-rollout figures logged with the step (repair: pass rate by turn, turns).
    """

    problems: list[Problem]
    samples: list  # list[codegym.models.Sample]
    results: list[ExecResult]
    rewards: list[float]
    groups: list[int]
    infos: list[dict[str, float]] = field(default_factory=list)
    trajectories: list[int] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def completions(self) -> list[str]:
        return [s.text for s in self.samples]

    def info_means(self) -> dict[str, float]:
        """The mean of each extra reward metric over the samples that report it (logged with the step's metrics)."""
        keys = {k for info in self.infos for k in info}
        return {k: sum(i[k] for i in self.infos if k in i) / sum(k in i for i in self.infos) for k in sorted(keys)}

    @property
    def pass_rate(self) -> float:
        return sum(r.passed for r in self.results) / max(1, len(self.results))

    def subset(self, keep: Sequence[int]) -> Rollout:
        """The samples at the indices ``keep``, in that order."""
        return Rollout(
            [self.problems[i] for i in keep],
            [self.samples[i] for i in keep],
            [self.results[i] for i in keep],
            [self.rewards[i] for i in keep],
            [self.groups[i] for i in keep],
            [self.infos[i] for i in keep] if self.infos else [],
            [self.trajectories[i] for i in keep] if self.trajectories else [],
            dict(self.metrics),
        )

    def episode_returns(self) -> tuple[list[int], list[float], list[int]]:
        """(first sample index, return, group) of each episode: the samples themselves when single-turn."""
        if not self.trajectories:
            return list(range(len(self))), list(self.rewards), list(self.groups)
        first: dict[int, int] = {}
        for i, t in enumerate(self.trajectories):
            first.setdefault(t, i)
        index = list(first.values())
        return index, [self.rewards[i] for i in index], [self.groups[i] for i in index]

    def informative_groups(self) -> list[int]:
        """Indices of the samples whose group's rewards are not all equal (DAPO's dynamic sampling keeps these)."""
        by_group: dict[int, list[float]] = {}
        for g, r in zip(self.groups, self.rewards):
            by_group.setdefault(g, []).append(r)
        return [i for i, g in enumerate(self.groups) if max(by_group[g]) > min(by_group[g])]


@dataclass
class Batch:
    """Token tensors for B (prompt, completion) pairs, right-padded to length T."""

    input_ids: torch.Tensor  # [B, T] long
    attention_mask: torch.Tensor  # [B, T] long, 1 on real tokens
    action_mask: torch.Tensor  # [B, T-1] float, 1 where input_ids[:, 1:] is a completion token (an action)
    behaviour_logprobs: torch.Tensor | None = None  # [B, T-1] log μ(a_t | s_t) recorded at sampling, 0 off the actions

    def __getitem__(self, index: torch.Tensor) -> Batch:
        """The rows ``index`` (a minibatch)."""
        behaviour = None if self.behaviour_logprobs is None else self.behaviour_logprobs[index]
        return Batch(self.input_ids[index], self.attention_mask[index], self.action_mask[index], behaviour)


def _pad(rows: Sequence[Sequence[int]], starts: Sequence[int], pad_id: int, device: torch.device) -> Batch:
    """Right-padded tensors for ``rows`` whose actions begin at ``starts``."""
    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), length), dtype=torch.long)
    actions = torch.zeros((len(rows), length - 1))
    for i, (row, start) in enumerate(zip(rows, starts)):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        attention[i, : len(row)] = 1
        actions[i, start - 1 : len(row) - 1] = 1.0  # position t predicts token t+1
    return Batch(ids.to(device), attention.to(device), actions.to(device))


def batch_from_samples(samples: Sequence[Trajectory], pad_id: int | None, device: torch.device) -> Batch:
    """The exact ids of ``samples`` (prompt ids as fed to the model, then the sampled actions) and their
    behaviour log-probs, as a `Batch`. Sampling already fitted prompt + actions into the context."""
    rows = [list(s.prompt_ids) + list(s.token_ids) for s in samples]
    starts = [len(s.prompt_ids) for s in samples]
    batch = _pad(rows, starts, 0 if pad_id is None else pad_id, device)
    behaviour = [float(x) for s in samples for x in s.logprobs]
    batch.behaviour_logprobs = scatter_actions(torch.tensor(behaviour, device=device), batch.action_mask)
    return batch


def encode(tokenizer, prompts: Sequence[str], completions: Sequence[str], context: int, max_new_tokens: int, eof_id: int | None, device: torch.device) -> Batch:
    """Supervised targets: tokenize each prompt without its trailing whitespace (with the start token) and
    that whitespace plus the completion (without), append ``eof_id`` when the completion is shorter than
    ``max_new_tokens`` tokens, and left-truncate prompts to fit ``context``."""
    heads = [p.rstrip() for p in prompts]
    prompt_ids = tokenizer(heads, add_special_tokens=True)["input_ids"]
    completion_ids = tokenizer([p[len(h) :] + c for p, h, c in zip(prompts, heads, completions)], add_special_tokens=False)["input_ids"]
    rows, starts = [], []
    for p, c in zip(prompt_ids, completion_ids):
        c = c[:max_new_tokens]
        if eof_id is not None and len(c) < max_new_tokens:
            c = c + [eof_id]
        c = c[: context - 1]
        p = p[-(context - len(c)) :]
        rows.append(p + c)
        starts.append(len(p))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return _pad(rows, starts, pad, device)


@dataclass
class TokenView:
    """What the policy says about each action of a `Batch` ([B, T-1], zero where there is no action, unless noted)."""

    logprobs: torch.Tensor  # log π(a_t | s_t) at the sampling temperature
    entropy: torch.Tensor  # H(π(· | s_t)) at the sampling temperature
    hidden: torch.Tensor  # [B, T-1, H] last-layer hidden state of s_t, at every position
    action_logits: torch.Tensor  # [N, V] logits / temperature at the N action positions (batch.action_mask, row-major)


def output_transform(config) -> tuple[str, float] | None:
    """What a model's forward does to its output layer's logits, from its configuration: ``("softcap", c)``
    (Gemma 2/3: ``c · tanh(logits / c)``), ``("scale", s)`` (Cohere: ``logits · s``; Granite:
    ``logits / logits_scaling``), or None (a plain causal LM: GPT-2, Llama, Qwen2, Mistral, ...)."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    cap = getattr(text, "final_logit_softcapping", None)
    if cap:
        return "softcap", float(cap)
    scale = getattr(text, "logit_scale", None)
    if isinstance(scale, (int, float)) and not isinstance(scale, bool) and scale != 1:
        return "scale", float(scale)
    divisor = getattr(text, "logits_scaling", None)
    if isinstance(divisor, (int, float)) and not isinstance(divisor, bool) and divisor != 1:
        return "scale", 1.0 / float(divisor)
    return None


def _transformed(logits: torch.Tensor, transform: tuple[str, float] | None) -> torch.Tensor:
    if transform is None:
        return logits
    kind, value = transform
    return value * torch.tanh(logits / value) if kind == "softcap" else logits * value


def action_logits(model, batch: Batch, autocast: bool, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's logits divided by ``temperature`` at the action positions only ([N, V]), and its last hidden states ([B, T-1, H]).

    The output layer runs on the completion positions alone: prompts are several times longer than
    completions, and the vocabulary-sized logits over them (with their softmax, entropy and KL) were
    most of an update's time and memory. Uses ``model.base_model``, the output embeddings and the
    model's logit transform (`output_transform`: Gemma's soft-capping, Cohere's and Granite's
    scaling), which is exactly the model's own forward pass; `check_update_logits` refuses a model
    for which it is not.
    """
    device_type = batch.input_ids.device.type
    with torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=autocast):
        hidden = model.base_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state[:, :-1]
        logits = model.get_output_embeddings()(hidden[batch.action_mask.bool()])
    return _transformed(logits.float(), output_transform(model.config)) / temperature, hidden.float()


class UnsupportedModel(ValueError):
    """The update cannot compute the log-probabilities the model samples from."""


@torch.no_grad()
def check_update_logits(model, device: torch.device, tolerance: float = 1e-3) -> None:
    """Refuse ``model`` unless the update's logits (`action_logits`) are its own forward's, up to ``tolerance``
    in log-probability, on one short sequence: a model whose forward transforms the logits in a way
    `output_transform` does not know would be trained on a distribution it never sampled from."""
    vocab = model.get_output_embeddings().weight.shape[0]
    ids = (torch.arange(1, 9, device=device) * 7919 % vocab)[None]
    mask = torch.ones_like(ids)
    full = model(input_ids=ids, attention_mask=mask).logits[0, :-1].float().log_softmax(-1)
    batch = Batch(ids, mask, torch.ones(1, ids.shape[1] - 1, device=device))
    ours = action_logits(model, batch, autocast=False)[0].log_softmax(-1)
    gap = float((full - ours).abs().max())
    if not gap <= tolerance:
        transform = output_transform(model.config)
        raise UnsupportedModel(
            f"{type(model).__name__} cannot be trained exactly: its forward pass transforms the output layer's logits in a way "
            f"codegym's update does not reproduce (the update computes output_embeddings(base_model(ids))"
            f"{f' with {transform[0]} {transform[1]:g}' if transform else ''}; log-probabilities differ by up to {gap:.3g}), "
            "so updates would score a distribution the samples were not drawn from. Use a causal LM whose logits are its "
            "output layer on the last hidden state (GPT-2, Llama, Qwen2, Mistral, ...; Gemma 2/3's soft-capping and Cohere's "
            "and Granite's logit scaling are reproduced), or add the transform to codegym.agents.rollout.output_transform."
        )


def scatter_actions(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-action ``values`` ([N]) laid out as [B, T-1], zero where ``mask`` is 0."""
    return torch.zeros(mask.shape, dtype=values.dtype, device=values.device).masked_scatter(mask.bool(), values)


def token_view(model, batch: Batch, autocast: bool, temperature: float = 1.0) -> TokenView:
    """One forward pass of ``model`` over ``batch``, scored at ``temperature`` (the one the actions were
    sampled at); mixed precision (bfloat16) when ``autocast`` (CUDA)."""
    logits, hidden = action_logits(model, batch, autocast, temperature)
    logp_all = F.log_softmax(logits, dim=-1)  # [N, V]
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return TokenView(_taken(logp_all, batch), scatter_actions(entropy, batch.action_mask), hidden, logits)


def _taken(logp_all: torch.Tensor, batch: Batch) -> torch.Tensor:
    """From log-probs over the vocabulary at the action positions ([N, V]), those of the tokens taken, as [B, T-1]."""
    mask = batch.action_mask
    actions = batch.input_ids[:, 1:][mask.bool()]  # [N]
    return scatter_actions(logp_all.gather(-1, actions[:, None]).squeeze(-1), mask)


@torch.no_grad()
def reference_logprobs(model, batch: Batch, autocast: bool, temperature: float = 1.0) -> torch.Tensor:
    """log π_ref(a_t | s_t) of a frozen ``model`` for each action of ``batch`` at ``temperature``, as [B, T-1]."""
    logits, _ = action_logits(model, batch, autocast, temperature)
    return _taken(F.log_softmax(logits, dim=-1), batch)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over the positions where ``mask`` is 1."""
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


def kl_to_reference(logits: torch.Tensor, ref_logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Exact per-token KL(π ‖ π_ref) over the vocabulary from logits at the action positions ([N, V]), as [B, T-1]."""
    logp = F.log_softmax(logits, dim=-1)
    ref = F.log_softmax(ref_logits.float(), dim=-1)
    return scatter_actions((logp.exp() * (logp - ref)).sum(-1), mask)


def truncated_importance_weights(logprobs: torch.Tensor, behaviour: torch.Tensor, mask: torch.Tensor, cap: float) -> torch.Tensor:
    """Per-token ``min(cap, π(a|s) / μ(a|s))`` ([B, T-1], detached, 1 off the actions; all 1 when ``cap`` is 0).

    The truncated importance weight of IMPALA's V-trace (ρ̄ = ``cap``): it corrects a REINFORCE-style
    gradient for samples drawn by an older policy μ (the pipeline's one-step lag, replayed samples)
    without the variance of an untruncated ratio.
    """
    if cap <= 0:
        return torch.ones_like(logprobs)
    ratio = torch.exp((logprobs - behaviour).detach()).clamp(max=cap)
    return torch.where(mask.bool(), ratio, torch.ones_like(ratio))


def group_advantages(rewards: torch.Tensor, groups: torch.Tensor, *, leave_one_out: bool = False, scale: bool = True, eps: float = 1e-4) -> torch.Tensor:
    """Per-sample advantages [B] relative to the other samples of the same group.

    GRPO (Shao et al. 2024): ``(r − mean_group) / (std_group + eps)``; ``scale=False`` keeps only the
    centring (Dr. GRPO, Liu et al. 2025). RLOO (Ahmadian et al. 2024, ``leave_one_out``): ``r`` minus the
    mean of the *other* samples of its group, ``(k·r − Σ_group r) / (k − 1)``; a group of one gets 0.
    """
    unique, index = torch.unique(groups, return_inverse=True)
    count = torch.zeros(len(unique), device=rewards.device).index_add_(0, index, torch.ones_like(rewards))
    total = torch.zeros(len(unique), device=rewards.device).index_add_(0, index, rewards)
    k = count[index]
    if leave_one_out:
        return torch.where(k > 1, (k * rewards - total[index]) / (k - 1).clamp(min=1), torch.zeros_like(rewards))
    mean = total[index] / k
    centred = rewards - mean
    if not scale:
        return centred
    var = torch.zeros(len(unique), device=rewards.device).index_add_(0, index, centred**2)[index] / (k - 1).clamp(min=1)
    return centred / (var.sqrt() + eps)
