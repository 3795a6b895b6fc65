"""Load a code LM as a policy and sample function bodies from it, batched, with the KV cache.

`load_policy("default")` loads the model shipped in ``codegym/models/default/``; any local Hugging
Face model directory, or a hub name when online, works the same way. `Policy.sample` completes
prompts that end inside a function (a ``def`` line and docstring) and stops each completion at the end
of the function body (so that prompt + completion is the whole function): the ``<eof>`` token (or the
tokenizer's end of sequence), or the first non-blank line that is not indented, i.e. a new top-level
statement, which is stripped. Each `Sample` keeps the prompt ids, the sampled ids and their behaviour
log-probs; `Policy.generate` gives the texts only.

Sampling is `codegym.models.sampler`'s loop (each prompt prefilled once for its n samples, static KV
cache, finished rows compacted out) or, for models it cannot drive, ``transformers``' ``generate``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from codegym.models import tokenizer as tok
from codegym.models.sampler import StopRule, sample_rows
from codegym.sourcecode import TOP_LEVEL_LINE as _TOP_LEVEL
from codegym.sourcecode import truncate_completion

__all__ = ["DEFAULT_DIR", "Policy", "PolicyLoadError", "Sample", "completion_after", "line_flags", "load_policy", "truncate_completion"]

DEFAULT_DIR = Path(__file__).resolve().parent / "default"


class PolicyLoadError(OSError):
    """A policy cannot be loaded; the message says what to do instead."""


def line_flags(tokenizer: PreTrainedTokenizerBase) -> tuple[list[bool], list[bool], list[bool], list[bool]]:
    """Per token id: its text ends with a newline; it adds no text (special tokens included); it
    starts with a non-whitespace character; it holds a newline followed by code. Together with
    "does the text so far end a line", these tell whether a token ends a function body."""
    special = set(tokenizer.all_special_ids)
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    decoded = ["" if t is None or i in special else tokenizer.convert_tokens_to_string([t]) for i, t in enumerate(tokens)]
    rows = [(d.endswith("\n"), d == "", bool(d[:1].strip()), bool(_TOP_LEVEL.search(d))) for d in decoded]
    ends_newline, empty, starts_code, newline_code = (list(column) for column in zip(*rows))
    return ends_newline, empty, starts_code, newline_code


@dataclass(frozen=True)
class Sample:
    """One sampled completion, with the actions that produced it.

    ``text``: the completion as `Policy.generate` gives it (cut at the end of the function body, without
    the prompt's trailing whitespace). ``prompt_ids``: the prompt's token ids exactly as the model was fed
    them (the prompt without trailing whitespace, with the tokenizer's special tokens, after
    left-truncation to the prompt budget). ``token_ids``: the sampled ids in order, up to and including
    the token that ended the row (``<eof>``/eos when sampled, or the token that began a new top-level
    line); decoding them gives ``text`` before the cut at the end of the function. ``logprobs[i]``: the
    log-probability of ``token_ids[i]`` given ``prompt_ids + token_ids[:i]`` under the distribution it was
    drawn from: ``log_softmax(logits / temperature)`` when ``top_p == 1``; over the renormalised nucleus
    when ``top_p < 1``; ``log_softmax(logits)`` when greedy (``temperature == 0``).
    """

    text: str
    prompt_ids: list[int]
    token_ids: list[int]
    logprobs: list[float]


class Policy:
    """A causal LM and its tokenizer on a device, with batched sampling of function bodies."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, device: torch.device, batch_size: int = 64) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.device = device
        self.batch_size = batch_size  # rows (prompts × samples) sampled together
        tokenizer.padding_side = "left"
        tokenizer.truncation_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        stop_ids = [tokenizer.convert_tokens_to_ids(tok.EOF)] if tok.EOF in tokenizer.get_vocab() else []
        eos = model.generation_config.eos_token_id
        stop_ids += eos if isinstance(eos, list) else [eos] if eos is not None else []
        stop_ids += [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
        self.stop_ids = sorted(set(stop_ids))
        config = model.config
        self.context = getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None) or 2048
        self._rule: StopRule | None = None

    def generate(
        self,
        prompts: list[str],
        n: int = 1,
        max_new_tokens: int = 128,
        temperature: float = 0.8,
        top_p: float = 0.95,
        seed: int | None = None,
    ) -> list[list[str]]:
        """``n`` completions for each prompt, each cut at the end of the function body: the texts of `sample`."""
        return [[s.text for s in row] for row in self.sample(prompts, n, max_new_tokens, temperature, top_p, seed)]

    @torch.no_grad()
    def sample(
        self,
        prompts: list[str],
        n: int = 1,
        max_new_tokens: int = 128,
        temperature: float = 0.8,
        top_p: float = 1.0,
        seed: int | None = None,
    ) -> list[list[Sample]]:
        """``n`` `Sample` objects for each prompt: completion text, prompt and sampled ids, and behaviour log-probs.

        ``temperature=0`` decodes greedily. ``top_p`` defaults to 1.0 because training needs the
        log-probs of ``logits / temperature``, the distribution an update computes; ``top_p < 1`` (for
        evaluation) records log-probs over the renormalised nucleus instead. With ``seed`` the result
        is reproducible (same prompts, n and settings); the global torch random state is left as it was.
        Prompts longer than the context minus ``max_new_tokens`` keep their last tokens.
        """
        # Trailing whitespace is left for the model to write: BPE merges a newline with the indentation
        # after it, so a prompt cut after "\n" ends on a token the model rarely saw followed by a body.
        heads = [p.rstrip() for p in prompts]
        max_new_tokens = min(max_new_tokens, self.context - 1)
        prompt_budget = self.context - max_new_tokens
        if self._rule is None:
            self._rule = StopRule.build(line_flags(self.tokenizer), self.stop_ids, self.device)
        # Pieces of at most batch_size rows (prompt index, rows), packed into batches of at most batch_size rows.
        pieces = [(i, min(self.batch_size, n - k)) for i in range(len(prompts)) for k in range(0, n, self.batch_size)]
        batches: list[list[tuple[int, int]]] = [[]]
        for piece in pieces:
            if sum(c for _, c in batches[-1]) + piece[1] > self.batch_size:
                batches.append([])
            batches[-1].append(piece)
        samples: list[list[Sample]] = [[] for _ in prompts]
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            if seed is not None:
                torch.manual_seed(seed)
            for batch in batches:
                if not batch:
                    continue
                enc = self.tokenizer([heads[i] for i, _ in batch], return_tensors="pt", padding=True, truncation=True,
                                     max_length=prompt_budget).to(self.device)
                at_line_start = torch.tensor([heads[i].endswith("\n") for i, _ in batch])
                rows = iter(sample_rows(self.model, enc["input_ids"], enc["attention_mask"], [c for _, c in batch],
                                        at_line_start, self._rule, max_new_tokens, temperature, top_p,
                                        self.tokenizer.pad_token_id))
                for (i, count), ids, mask in zip(batch, enc["input_ids"].tolist(), enc["attention_mask"].tolist()):
                    prompt_ids = [t for t, m in zip(ids, mask) if m]
                    for _ in range(count):
                        token_ids, logprobs = next(rows)
                        samples[i].append(Sample(self._text(prompts[i], heads[i], token_ids), prompt_ids, token_ids, logprobs))
        return samples

    def _text(self, prompt: str, head: str, token_ids: list[int]) -> str:
        """The completion that ``token_ids`` stand for, cut at the end of the function body."""
        ids = token_ids[:-1] if token_ids and token_ids[-1] in self.stop_ids else token_ids
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        return completion_after(prompt[len(head) :], truncate_completion(text, head.endswith("\n")))


def completion_after(suffix: str, text: str) -> str:
    """``text`` without the prompt's trailing whitespace ``suffix`` it begins with ("" when it does not)."""
    return text[len(suffix) :] if text.startswith(suffix) else ""


def _resolve(name_or_path: str | os.PathLike[str]) -> tuple[str, bool]:
    """(what to pass to from_pretrained, whether it is local)."""
    text = os.fspath(name_or_path)
    if text == "default":
        if not (DEFAULT_DIR / "model.safetensors").exists():
            raise PolicyLoadError(
                f"the default model is missing from {DEFAULT_DIR}: reinstall codegym, or train one with "
                "`codegym pretrain` and pass its output directory (…/final) to load_policy"
            )
        return str(DEFAULT_DIR), True
    path = Path(text).expanduser()
    if path.is_dir():
        return str(path), True
    if path.exists() or text.startswith((".", "/", "~")):
        raise PolicyLoadError(f"{text!r} is not a model directory (expected config.json and weights in a folder)")
    return text, False


def load_policy(name_or_path: str | os.PathLike[str] = "default", device: str | torch.device | None = None) -> Policy:
    """A `Policy` from ``"default"`` (the model shipped with codegym), a local model directory, or a hub name.

    ``device``: CUDA when available, else CPU. Hub names need the network: with ``HF_HUB_OFFLINE=1``
    or no connection, only models already in the local Hugging Face cache load.
    """
    source, local = _resolve(name_or_path)
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local or offline)
        dtype = torch.bfloat16 if dev.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
        model = AutoModelForCausalLM.from_pretrained(source, local_files_only=local or offline, dtype=dtype)
    except OSError as exc:
        if local:
            raise PolicyLoadError(f"cannot load the model in {source}: {exc}") from None
        raise PolicyLoadError(
            f"cannot load {source!r}: it is not a local directory, and the Hugging Face hub is not reachable "
            f"({'HF_HUB_OFFLINE is set' if offline else 'no network or unknown name'}). Download the model where "
            f"there is network (`huggingface-cli download {source} --local-dir DIR`) and pass DIR, or use "
            "load_policy('default'), the model shipped with codegym."
        ) from None
    return Policy(model.to(dev), tokenizer, dev)
