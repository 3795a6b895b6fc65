"""Turning sampled completions into training tensors, and the policy's per-token view of them.

Completions come back from sampling as text (cut at the end of the function body), and the replay
buffer stores text too, so every update re-tokenizes them. As `codegym.models.Policy.generate` does,
the prompt's trailing whitespace belongs to the actions: BPE merges a newline with the indentation
after it, so the prompt without it is tokenized on its own and ``trailing whitespace + completion``
gives the action tokens, followed by the end-of-function token when the completion ended on its own
(so the policy also learns where to stop). Sequences are right-padded; prompts too long for the
model's context lose their beginning, as in sampling.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from codegym.execution import ExecResult
from codegym.problems import Problem

__all__ = ["Batch", "Rollout", "TokenView", "action_logits", "encode", "kl_to_reference", "masked_mean", "scatter_actions", "token_view"]


@dataclass
class Rollout:
    """One step's samples: which problem, what was written, how it ran and what it earned (all length B).

    ``infos`` holds each sample's extra reward metrics (a dict reward's keys beyond ``"score"``)."""

    problems: list[Problem]
    completions: list[str]
    results: list[ExecResult]
    rewards: list[float]
    infos: list[dict[str, float]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.completions)

    def info_means(self) -> dict[str, float]:
        """The mean of each extra reward metric over the samples that report it (logged with the step's metrics)."""
        keys = {k for info in self.infos for k in info}
        return {k: sum(i[k] for i in self.infos if k in i) / sum(k in i for i in self.infos) for k in sorted(keys)}

    @property
    def pass_rate(self) -> float:
        return sum(r.passed for r in self.results) / max(1, len(self.results))


@dataclass
class Batch:
    """Token tensors for B (prompt, completion) pairs, right-padded to length T."""

    input_ids: torch.Tensor  # [B, T] long
    attention_mask: torch.Tensor  # [B, T] long, 1 on real tokens
    action_mask: torch.Tensor  # [B, T-1] float, 1 where input_ids[:, 1:] is a completion token (an action)


def encode(tokenizer, prompts: Sequence[str], completions: Sequence[str], context: int, max_new_tokens: int, eof_id: int | None, device: torch.device) -> Batch:
    """Tokenize each prompt without its trailing whitespace (with the start token) and that whitespace plus
    the completion (without), append ``eof_id`` when the completion is shorter than ``max_new_tokens``
    tokens, and left-truncate prompts to fit ``context``."""
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
    length = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(rows), length), pad, dtype=torch.long)
    attention = torch.zeros((len(rows), length), dtype=torch.long)
    actions = torch.zeros((len(rows), length - 1))
    for i, (row, start) in enumerate(zip(rows, starts)):
        ids[i, : len(row)] = torch.tensor(row)
        attention[i, : len(row)] = 1
        actions[i, start - 1 : len(row) - 1] = 1.0  # position t predicts token t+1
    return Batch(ids.to(device), attention.to(device), actions.to(device))


@dataclass
class TokenView:
    """What the policy says about each action of a `Batch` ([B, T-1], zero where there is no action, unless noted)."""

    logprobs: torch.Tensor  # log π(a_t | s_t)
    entropy: torch.Tensor  # H(π(· | s_t))
    hidden: torch.Tensor  # [B, T-1, H] last-layer hidden state of s_t, at every position
    action_logits: torch.Tensor  # [N, V] logits at the N action positions (batch.action_mask, row-major)


def action_logits(model, batch: Batch, autocast: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's logits at the action positions only ([N, V]) and its last hidden states ([B, T-1, H]).

    The output layer runs on the completion positions alone: prompts are several times longer than
    completions, and the vocabulary-sized logits over them (with their softmax, entropy and KL) were
    most of an update's time and memory. Uses ``model.base_model`` and the output embeddings, which
    is exactly the forward pass of a plain causal LM (GPT-2, CodeGen, Llama families).
    """
    device_type = batch.input_ids.device.type
    with torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=autocast):
        hidden = model.base_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state[:, :-1]
        logits = model.get_output_embeddings()(hidden[batch.action_mask.bool()])
    return logits.float(), hidden.float()


def scatter_actions(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-action ``values`` ([N]) laid out as [B, T-1], zero where ``mask`` is 0."""
    return torch.zeros(mask.shape, dtype=values.dtype, device=values.device).masked_scatter(mask.bool(), values)


def token_view(model, batch: Batch, autocast: bool) -> TokenView:
    """One forward pass of ``model`` over ``batch``; mixed precision (bfloat16) when ``autocast`` (CUDA)."""
    logits, hidden = action_logits(model, batch, autocast)
    mask = batch.action_mask
    logp_all = F.log_softmax(logits, dim=-1)  # [N, V]
    actions = batch.input_ids[:, 1:][mask.bool()]  # [N]
    logprobs = logp_all.gather(-1, actions[:, None]).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return TokenView(scatter_actions(logprobs, mask), scatter_actions(entropy, mask), hidden, logits)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over the positions where ``mask`` is 1."""
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


def kl_to_reference(logits: torch.Tensor, ref_logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Exact per-token KL(π ‖ π_ref) over the vocabulary from logits at the action positions ([N, V]), as [B, T-1]."""
    logp = F.log_softmax(logits, dim=-1)
    ref = F.log_softmax(ref_logits.float(), dim=-1)
    return scatter_actions((logp.exp() * (logp - ref)).sum(-1), mask)
