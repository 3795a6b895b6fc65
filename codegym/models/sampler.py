"""Batched sampling of function bodies that records each sampled token and its log-probability.

`sample_rows` completes a left-padded batch of distinct prompts, ``counts[i]`` times each, and returns
per completion the sampled ids (up to and including the token that ended the row) and the
log-probability of each id under the distribution it was drawn from. Two engines give the same output:

- **codegym's loop** (`supports_fast_sampling`: the shipped GPT-2 and any ``transformers`` causal LM
  whose forward takes a pre-allocated `StaticCache`, e.g. GPT-2, Llama and Qwen2). Each distinct
  prompt is prefilled once and its KV cache is copied to its ``counts[i]`` rows (``transformers``
  prefills every copy); the cache is allocated once for prompt + ``max_new_tokens``; rows that ended
  their function are compacted out of the batch once they are a quarter of it (a compaction copies
  the whole cache: compacting at every finished row measured slower, never compacting 1.6x slower,
  on 8 MBPP prompts x 8 samples); the per-token work
  is a few tensor operations plus one "how many rows ended" read.
- **``transformers.generate``** for any other model (``output_scores`` gives the processed scores the
  token was drawn from), with an explicit generation config (`clean_generation_config`) and none of the
  model's own ``generation_config`` defaults: a repetition penalty, ``no_repeat_ngram_size``,
  ``min_new_tokens``, suppressed or forced tokens or ``top_k`` there would change the distribution
  drawn from, which the update does not model.

The end of a row: an end id (``<eof>``/eos), a token that starts a non-indented line (`StopRule`), or
``max_new_tokens``. Log-probabilities: ``log_softmax(logits / temperature)``; with ``top_p < 1`` the
same over the nucleus, renormalised (tokens outside it are never drawn); greedy (``temperature=0``):
``log_softmax(logits)``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from transformers import GenerationConfig, PreTrainedModel, StaticCache, StoppingCriteria
from transformers.cache_utils import StaticLayer

__all__ = ["EndOfFunction", "StopRule", "clean_generation_config", "sample_rows", "supports_fast_sampling"]

# Compact finished rows out of the batch once they are this share of it.
_COMPACT_SHARE = 0.25


@dataclass(frozen=True)
class StopRule:
    """Where a completion ends, as per-token tables (from `codegym.models.policy.line_flags`) and end ids.

    The per-row state is one boolean, "the text so far ends a line"; a token ends the function body
    when it is an end id, starts code at a line start, or holds a newline followed by code.
    """

    ends_newline: torch.Tensor  # the token's text ends with a newline
    empty: torch.Tensor  # the token adds no text (special tokens included)
    starts_code: torch.Tensor  # the token's text starts with a character that is not whitespace
    newline_code: torch.Tensor  # the token holds a newline followed by code (tokens that span lines)
    is_end: torch.Tensor  # the token is an end id (<eof>, eos)

    @classmethod
    def build(cls, flags: tuple[list[bool], ...], end_ids: list[int], device: torch.device) -> StopRule:
        is_end = torch.zeros(len(flags[0]), dtype=torch.bool)
        is_end[[i for i in end_ids if i < len(flags[0])]] = True
        return cls(*(torch.tensor(column, device=device) for column in flags), is_end.to(device))

    def step(self, tokens: torch.Tensor, at_line_start: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(whether each token ends its row, the new line-start state)."""
        tokens = tokens.clamp(max=self.is_end.numel() - 1)
        stop = self.is_end[tokens] | (at_line_start & self.starts_code[tokens]) | self.newline_code[tokens]
        return stop, self.ends_newline[tokens] | (at_line_start & self.empty[tokens])


def supports_fast_sampling(model: PreTrainedModel) -> bool:
    """Whether codegym's loop can drive ``model``: a decoder-only ``transformers`` model that works with a
    pre-allocated `StaticCache` (``_can_compile_fullgraph``, which the library sets for such models) of
    full-attention layers only (sliding-window and recurrent layers take the ``generate`` path)."""
    config = model.config
    if config.is_encoder_decoder or getattr(config, "add_cross_attention", False):
        return False
    if getattr(model, "_is_stateful", False) or not getattr(model, "_can_compile_fullgraph", False):
        return False
    parameters = inspect.signature(model.forward).parameters
    if not ("cache" in parameters or "past_key_values" in parameters) or "position_ids" not in parameters:
        return False
    try:
        layers = StaticCache(config=config, max_cache_len=1).layers
    except (ValueError, KeyError, TypeError):
        return False
    return all(type(layer) is StaticLayer for layer in layers)


def sample_rows(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    counts: list[int],
    at_line_start: torch.Tensor,
    rule: StopRule,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    pad_id: int,
) -> list[tuple[list[int], list[float]]]:
    """Complete each of the left-padded prompts ``input_ids`` ``counts[i]`` times; rows come prompt by prompt.

    ``at_line_start[i]``: prompt i ends a line. Returns per row (sampled ids, their log-probs).
    """
    engine = _sample_loop if supports_fast_sampling(model) else _sample_generate
    ids, logprobs, lengths = engine(model, input_ids, attention_mask, counts, at_line_start, rule, max_new_tokens,
                                    temperature, top_p, pad_id)
    return [(row[:n], lp[:n]) for row, lp, n in zip(ids.tolist(), logprobs.tolist(), lengths.tolist())]


def _pick(logits: torch.Tensor, temperature: float, top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(token per row, its log-prob under the distribution it was drawn from), from float32 logits."""
    if temperature <= 0:
        tokens = logits.argmax(-1)
        return tokens, logits.log_softmax(-1).gather(1, tokens[:, None]).squeeze(1)
    logprobs = (logits / temperature).log_softmax(-1)
    if top_p < 1.0:
        logprobs = _nucleus(logprobs, top_p)
    return (tokens := _draw(logprobs.exp())), logprobs.gather(1, tokens[:, None]).squeeze(1)


def _draw(probs: torch.Tensor) -> torch.Tensor:
    """One token per row of ``probs`` by inverting its cumulative sum at a uniform draw: one random number
    per row (``torch.multinomial`` drew a random number per vocabulary entry and cost a fifth of the
    model's forward pass here). Tokens of probability
    0 are never drawn: their cumulative sum is flat and the search goes past it."""
    cumulative = probs.cumsum(-1)
    point = torch.rand(probs.shape[0], 1, device=probs.device, dtype=cumulative.dtype) * cumulative[:, -1:]
    return torch.searchsorted(cumulative, point, right=True).squeeze(1).clamp_(max=probs.shape[1] - 1)


def _nucleus(logprobs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Log-probs renormalised over the smallest set of most likely tokens whose mass reaches ``top_p``."""
    sorted_lp, order = logprobs.sort(-1, descending=True)
    probs = sorted_lp.exp()
    outside = probs.cumsum(-1) - probs >= top_p  # the mass of the more likely tokens already reaches top_p
    drop = torch.empty_like(outside).scatter_(1, order, outside)
    return logprobs.masked_fill(drop, float("-inf")).log_softmax(-1)


def _forward(model: PreTrainedModel, options: dict, input_ids: torch.Tensor, mask: torch.Tensor,
             positions: torch.Tensor) -> torch.Tensor:
    """Float32 logits of the last position; ``options`` holds the cache (and ``logits_to_keep`` where accepted)."""
    out = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=True, **options)
    return out.logits[:, -1].float()


@torch.inference_mode()
def _sample_loop(model, input_ids, attention_mask, counts, at_line_start, rule, max_new_tokens, temperature, top_p,
                 pad_id):
    """codegym's loop (see the module docstring); returns (ids, log-probs, lengths) with one row per completion."""
    device = input_ids.device
    prompts, length = input_ids.shape
    parameters = inspect.signature(model.forward).parameters
    cache = StaticCache(config=model.config, max_cache_len=length + max_new_tokens)
    options: dict = {"cache" if "cache" in parameters else "past_key_values": cache}
    if "logits_to_keep" in parameters:
        options["logits_to_keep"] = 1  # the prefill needs the last position's logits only
    # The 2-D mask spans the whole cache: generated positions are ones from the start, and causality
    # hides the ones not written yet, so the mask only changes when rows are compacted.
    mask = torch.cat([attention_mask, attention_mask.new_ones(prompts, max_new_tokens)], dim=1)
    positions = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)
    logits = _forward(model, options, input_ids, mask, positions)

    # Share each prompt's cache across its rows.
    expand = torch.repeat_interleave(torch.arange(prompts, device=device), torch.tensor(counts, device=device))
    cache.reorder_cache(expand)
    logits, mask, at_line = logits[expand], mask[expand], at_line_start.to(device)[expand]
    position = positions[expand, -1:]
    total = expand.numel()

    # Outputs, with one spare row that finished rows write into until they are compacted out.
    out_ids = torch.full((total + 1, max_new_tokens), pad_id, dtype=torch.long, device=device)
    out_lp = torch.zeros((total + 1, max_new_tokens), dtype=torch.float32, device=device)
    lengths = torch.full((total + 1,), max_new_tokens, dtype=torch.long, device=device)
    rows = torch.arange(total, device=device)  # the output row of each batch row
    alive = torch.ones(total, dtype=torch.bool, device=device)
    spare = torch.full_like(rows, total)
    for step in range(max_new_tokens):
        tokens, logprobs = _pick(logits, temperature, top_p)
        target = torch.where(alive, rows, spare)
        out_ids[target, step] = tokens
        out_lp[target, step] = logprobs
        stop, at_line = rule.step(tokens, at_line)
        ended = alive & stop
        lengths[torch.where(ended, rows, spare)] = step + 1
        alive = alive & ~stop
        if step == max_new_tokens - 1:
            break
        live = int(alive.sum())
        if live == 0:
            break
        if live <= (1 - _COMPACT_SHARE) * alive.numel():
            keep = alive.nonzero().squeeze(1)
            cache.reorder_cache(keep)
            tokens, mask, position, at_line, rows = tokens[keep], mask[keep], position[keep], at_line[keep], rows[keep]
            alive, spare = alive[keep], spare[keep]
        position = position + 1
        logits = _forward(model, options, tokens[:, None], mask, position)
    return out_ids[:total], out_lp[:total], lengths[:total]


class EndOfFunction(StoppingCriteria):
    """`StopRule` as a ``transformers.generate`` stopping criterion; records at which step each row ended.

    ``at_line_start``: per row of the generate call, whether its prompt ends a line.
    """

    def __init__(self, rule: StopRule, at_line_start: torch.Tensor, max_new_tokens: int) -> None:
        self.rule = rule
        self.at_line_start = at_line_start
        self.lengths = torch.full_like(at_line_start, max_new_tokens, dtype=torch.long)
        self.done = torch.zeros_like(at_line_start)
        self.step = 0

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: object) -> torch.BoolTensor:
        self.step += 1
        stop, self.at_line_start = self.rule.step(input_ids[:, -1], self.at_line_start)
        self.lengths[stop & ~self.done] = self.step
        self.done |= stop
        return stop


def clean_generation_config(max_new_tokens: int, temperature: float, top_p: float, pad_id: int, end_ids: list[int]) -> GenerationConfig:
    """The generation config of `_sample_generate`: draws from ``softmax(logits / temperature)`` (over the
    nucleus ``top_p``; greedy at ``temperature=0``) and nothing else. Every other logits processor of
    ``transformers`` is at its neutral value (no top-k, repetition penalty, n-gram ban, minimum length,
    suppressed, forced or biased tokens), whatever the model's ``generation_config`` says."""
    sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": 0} if temperature > 0 else {"do_sample": False}
    return GenerationConfig(
        max_new_tokens=max_new_tokens, min_length=0, min_new_tokens=0, pad_token_id=pad_id, eos_token_id=end_ids,
        repetition_penalty=1.0, encoder_repetition_penalty=1.0, no_repeat_ngram_size=0, typical_p=1.0, epsilon_cutoff=0.0,
        eta_cutoff=0.0, num_beams=1, num_return_sequences=1, renormalize_logits=False, remove_invalid_values=False,
        use_cache=True, output_scores=True, return_dict_in_generate=True, **sampling,
    )  # fmt: skip


@torch.inference_mode()
def _sample_generate(model, input_ids, attention_mask, counts, at_line_start, rule, max_new_tokens, temperature, top_p,
                     pad_id):
    """``transformers.generate`` on the prompts repeated ``counts`` times; returns what `_sample_loop` returns."""
    expand = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts)).to(input_ids.device)
    stops = EndOfFunction(rule, at_line_start.to(input_ids.device)[expand], max_new_tokens)
    config = clean_generation_config(max_new_tokens, temperature, top_p, pad_id, rule.is_end.nonzero().flatten().tolist())
    # `generate` fills every field the given config leaves unset from `model.generation_config` (suppressed and
    # forced tokens, bad words, sequence bias, ...): for this call the model's own defaults are a blank config.
    own, model.generation_config = model.generation_config, GenerationConfig()
    try:
        out = model.generate(input_ids=input_ids[expand], attention_mask=attention_mask[expand], generation_config=config,
                             stopping_criteria=[stops])
    finally:
        model.generation_config = own
    ids = out.sequences[:, input_ids.shape[1]:]
    scores = torch.stack(out.scores, dim=1).float()  # rows × steps × vocabulary, as processed for drawing
    logprobs = scores.log_softmax(-1).gather(2, ids[:, :, None]).squeeze(2)
    width = ids.shape[1]
    pad = max_new_tokens - width
    ids = torch.nn.functional.pad(ids, (0, pad), value=pad_id)
    logprobs = torch.nn.functional.pad(logprobs, (0, pad))
    return ids, logprobs, stops.lengths.clamp(max=width)
