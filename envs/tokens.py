"""Tokens for the token-level environment: loading a tokenizer and tracking the end of a function in O(1).

A function body ends at the end-of-function token, the end-of-sequence token, or the first token
that starts a non-indented line. Whether a token does that depends only on the token and on whether
the text so far ends a line, so a per-vocabulary table built once answers it without decoding.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

__all__ = ["LineState", "TokenCodec", "load_tokenizer", "split_prompt"]

EOF_TOKEN = "<eof>"


@lru_cache(maxsize=8)
def _load_named(name_or_path: str) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name_or_path)
    except OSError as exc:
        raise ValueError(
            f"cannot load tokenizer {name_or_path!r}: {exc}. Pass a local Hugging Face tokenizer directory, "
            "a hub name while online, or leave tokenizer=None for codegym's embedded one."
        ) from None


def load_tokenizer(tokenizer: Any = None) -> Any:
    """A ``transformers`` tokenizer: the embedded policy's (None), one named by path or hub id, or ``tokenizer`` itself."""
    if tokenizer is None:
        from codegym.models.policy import DEFAULT_DIR

        return _load_named(str(DEFAULT_DIR))
    if isinstance(tokenizer, (str, os.PathLike)):
        return _load_named(os.fspath(tokenizer))
    return tokenizer


def split_prompt(prompt: str) -> tuple[str, str]:
    """(prompt without trailing whitespace, that whitespace). BPE merges a newline with the indentation
    after it, so the model writes the prompt's trailing newline and indentation itself, as in
    `codegym.models.Policy.generate`."""
    head = prompt.rstrip()
    return head, prompt[len(head) :]


@dataclass
class LineState:
    """Whether the text generated so far ends a line (so the next token may start a new one)."""

    at_line_start: bool


class TokenCodec:
    """The environment's view of a tokenizer: ids in, text out, and where a function body ends."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.vocab_size = len(tokenizer)
        eof = tokenizer.convert_tokens_to_ids(EOF_TOKEN) if EOF_TOKEN in tokenizer.get_vocab() else None
        self.end_ids = frozenset(i for i in (eof, tokenizer.eos_token_id) if i is not None)
        if not self.end_ids:
            raise ValueError(
                "the tokenizer has neither an end-of-function token ('<eof>') nor an end-of-sequence token, so an "
                "episode could never end by choice; use a tokenizer that defines eos_token (or <eof>)"
            )
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else min(self.end_ids))
        self._ends_line, self._empty, self._starts_code, self._newline_code = _line_table(tokenizer)

    def encode_prompt(self, prompt: str) -> list[int]:
        """Token ids of ``prompt`` without its trailing whitespace (see `split_prompt`)."""
        return list(self.tokenizer(split_prompt(prompt)[0])["input_ids"])

    def decode(self, ids: np.ndarray | list[int], prompt: str) -> str:
        """The completion of ``prompt`` that generated ids stand for, cut where the function body ends.

        The ids continue ``prompt`` without its trailing whitespace (see `split_prompt`), so the
        whitespace they start with is the prompt's own and is not part of the completion.
        """
        from codegym.models.policy import completion_after, truncate_completion

        head, tail = split_prompt(prompt)
        text = self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=True)
        return completion_after(tail, truncate_completion(text, head.endswith("\n")))

    def new_line_state(self, prompt_ends_line: bool) -> LineState:
        return LineState(prompt_ends_line)

    def ends_function(self, token: int, state: LineState) -> bool:
        """Whether ``token`` ends the function body; updates ``state``. O(1)."""
        if token in self.end_ids:
            return True
        stop = bool((state.at_line_start and self._starts_code[token]) or self._newline_code[token])
        state.at_line_start = bool(self._ends_line[token] or (state.at_line_start and self._empty[token]))
        return stop


_TABLES: dict[tuple[str, int], tuple[np.ndarray, ...]] = {}


def _line_table(tokenizer: Any) -> tuple[np.ndarray, ...]:
    """`codegym.models.policy.line_flags` as boolean arrays, computed once per tokenizer."""
    from codegym.models.policy import line_flags

    key = (getattr(tokenizer, "name_or_path", "") or str(id(tokenizer)), len(tokenizer))
    if key not in _TABLES:
        _TABLES[key] = tuple(np.array(column, dtype=bool) for column in line_flags(tokenizer))
    return _TABLES[key]
