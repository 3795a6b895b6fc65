"""Load a code LM as a policy and sample function bodies from it, batched, with the KV cache.

`load_policy("default")` loads the model shipped in ``codegym/models/default/``; any local Hugging
Face model directory, or a hub name when online, works the same way. `Policy.generate` completes
prompts that end inside a function (a ``def`` line and docstring) and stops each completion at the end
of the function body (so that prompt + completion is the whole function): the ``<eof>`` token (or the tokenizer's end of sequence), or the first non-blank
line that is not indented, i.e. a new top-level statement, which is stripped.

Generation is ``transformers``' ``model.generate`` (KV cache, left-padded batches) with a stopping
criterion that tracks line starts as a per-row tensor state, from a per-vocabulary table: no Python
work per token beyond a few tensor operations on the batch.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase, StoppingCriteria

from codegym.models import tokenizer as tok

__all__ = ["DEFAULT_DIR", "Policy", "PolicyLoadError", "completion_after", "line_flags", "load_policy", "truncate_completion"]

DEFAULT_DIR = Path(__file__).resolve().parent / "default"
_TOP_LEVEL = re.compile(r"\n(?=\S)")


class PolicyLoadError(OSError):
    """A policy cannot be loaded; the message says what to do instead."""


def truncate_completion(completion: str, prompt_ends_line: bool = True) -> str:
    """``completion`` up to the end of the function body: cut before the first non-indented, non-blank line
    (and the blank lines before it).

    ``prompt_ends_line``: whether the prompt ended with a newline, so the completion starts a line.
    """
    if prompt_ends_line and completion[:1].strip():
        return ""
    match = _TOP_LEVEL.search(completion)
    if match is None:
        return completion
    body = completion[: match.start()].rstrip()
    return body + "\n" if body else ""


@dataclass(frozen=True)
class _TokenTable:
    """Per-token facts for the end-of-function check, from the decoded vocabulary (computed once per policy)."""

    ends_newline: torch.Tensor  # the token's text ends with a newline
    empty: torch.Tensor  # the token adds no text (special tokens included)
    starts_code: torch.Tensor  # the token's text starts with a character that is not whitespace
    newline_code: torch.Tensor  # the token holds a newline followed by code (tokens that span lines)

    @classmethod
    def build(cls, tokenizer: PreTrainedTokenizerBase, device: torch.device) -> _TokenTable:
        return cls(*(torch.tensor(column, device=device) for column in line_flags(tokenizer)))


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


class _EndOfFunction(StoppingCriteria):
    """Stops a row when it starts a non-indented line; the per-row state is one boolean tensor."""

    def __init__(self, table: _TokenTable, at_line_start: torch.Tensor) -> None:
        self.table = table
        self.at_line_start = at_line_start.to(table.ends_newline.device)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: object) -> torch.BoolTensor:
        table = self.table
        last = input_ids[:, -1].clamp(max=table.ends_newline.numel() - 1)
        stop = (self.at_line_start & table.starts_code[last]) | table.newline_code[last]
        self.at_line_start = table.ends_newline[last] | (self.at_line_start & table.empty[last])
        return stop


class Policy:
    """A causal LM and its tokenizer on a device, with batched sampling of function bodies."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, device: torch.device, batch_size: int = 64) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.device = device
        self.batch_size = batch_size  # rows (prompts × samples) per model.generate call
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
        self._table: _TokenTable | None = None

    @torch.no_grad()
    def generate(
        self,
        prompts: list[str],
        n: int = 1,
        max_new_tokens: int = 128,
        temperature: float = 0.8,
        top_p: float = 0.95,
        seed: int | None = None,
    ) -> list[list[str]]:
        """``n`` completions for each prompt, each cut at the end of the function body.

        ``temperature=0`` decodes greedily. With ``seed`` the result is reproducible (same prompts,
        n and settings); the global torch random state is left as it was.
        """
        # Trailing whitespace is left for the model to write: BPE merges a newline with the indentation
        # after it, so a prompt cut after "\n" ends on a token the model rarely saw followed by a body.
        rows = [p.rstrip() for p in prompts for _ in range(n)]
        suffixes = [p[len(p.rstrip()) :] for p in prompts for _ in range(n)]
        max_new_tokens = min(max_new_tokens, self.context - 1)
        prompt_budget = self.context - max_new_tokens
        texts: list[str] = []
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            if seed is not None:
                torch.manual_seed(seed)
            for start in range(0, len(rows), self.batch_size):
                texts += self._generate_batch(rows[start : start + self.batch_size], max_new_tokens, prompt_budget, temperature, top_p)
        completions = [completion_after(suffix, truncate_completion(t, row.endswith("\n"))) for t, row, suffix in zip(texts, rows, suffixes)]
        return [completions[i * n : (i + 1) * n] for i in range(len(prompts))]

    def _generate_batch(self, rows: list[str], max_new_tokens: int, prompt_budget: int, temperature: float, top_p: float) -> list[str]:
        enc = self.tokenizer(rows, return_tensors="pt", padding=True, truncation=True, max_length=prompt_budget).to(self.device)
        length = enc["input_ids"].shape[1]
        at_line_start = torch.tensor([r.endswith("\n") for r in rows])
        if self._table is None:
            self._table = _TokenTable.build(self.tokenizer, self.device)
        sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": 0} if temperature > 0 else {"do_sample": False}
        output = self.model.generate(
            **enc,
            max_new_tokens=max_new_tokens,
            eos_token_id=self.stop_ids,
            pad_token_id=self.tokenizer.pad_token_id,
            stopping_criteria=[_EndOfFunction(self._table, at_line_start)],
            use_cache=True,
            **sampling,
        )
        texts = []
        for ids in output[:, length:].tolist():
            cut = next((i for i, t in enumerate(ids) if t in self.stop_ids), len(ids))
            texts.append(self.tokenizer.decode(ids[:cut], skip_special_tokens=True))
        return texts


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
