"""A byte-level BPE tokenizer for Python code, trained with ``tokenizers``, saved in Hugging Face format.

Byte-level, so any text round-trips (tabs, unicode, odd whitespace). The pre-tokenizer is GPT-2's
regex, which keeps runs of whitespace together (``"\\n        "`` before ``" return"``), so BPE learns
newline-plus-indentation and runs of spaces as single tokens: indentation costs one token per line.

Special tokens: ``<pad>`` (padding), ``<bos>`` (start of a function; added in front of every encoded
text), ``<eos>`` (end of a document) and ``<eof>`` (end of function: the model writes it after a
function body, and generation stops there).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

__all__ = ["BOS", "EOF", "EOS", "PAD", "SPECIAL_TOKENS", "train_tokenizer", "wrap"]

PAD, BOS, EOS, EOF = "<pad>", "<bos>", "<eos>", "<eof>"
SPECIAL_TOKENS = [PAD, BOS, EOS, EOF]


def train_tokenizer(texts: Iterable[str], vocab_size: int = 8192, min_frequency: int = 2) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with ``vocab_size`` entries (special tokens included) learnt from ``texts``."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    bos = tokenizer.token_to_id(BOS)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos)]
    )
    return wrap(tokenizer)


def wrap(tokenizer: Tokenizer) -> PreTrainedTokenizerFast:
    """``tokenizer`` as a ``transformers`` tokenizer with codegym's special tokens (left padding, for generation)."""
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        additional_special_tokens=[EOF],
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )


def save(tokenizer: PreTrainedTokenizerFast, directory: str | os.PathLike[str]) -> Path:
    """Save in Hugging Face format (``tokenizer.json`` + config) so ``AutoTokenizer.from_pretrained`` loads it."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(path)
    return path
