"""The shipped code tokenizer: lossless round trips, whitespace handling, special tokens, HF loading."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from codegym.models import tokenizer as tok
from codegym.models.policy import DEFAULT_DIR


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(DEFAULT_DIR)


SAMPLES = [
    "def add(a, b):\n    \"\"\"Return a + b.\"\"\"\n    return a + b\n",
    "class A:\n    def f(self):\n        if x:\n            return [i for i in range(10)]\n",
    "def g():\n\treturn 1\n\n\n\t\tx = '\\t'\n",  # tabs
    "s = 'héllo wörld ✓ 日本語 🐍'\n",  # unicode, including 4-byte characters
    "x = 1  # trailing spaces   \n   \n\n",
    "",
    "   leading spaces and no newline",
]


@pytest.mark.parametrize("text", SAMPLES)
def test_round_trip(tokenizer, text):
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=False).startswith(tok.BOS)
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_begins_with_bos_and_has_special_tokens(tokenizer):
    assert tokenizer.pad_token == tok.PAD and tokenizer.bos_token == tok.BOS and tokenizer.eos_token == tok.EOS
    assert tok.EOF in tokenizer.all_special_tokens
    ids = {tokenizer.convert_tokens_to_ids(t) for t in tok.SPECIAL_TOKENS}
    assert ids == {0, 1, 2, 3}
    assert tokenizer("x")["input_ids"][0] == tokenizer.bos_token_id


def test_special_tokens_are_single_tokens_and_skipped(tokenizer):
    text = "def f():\n    return 1\n<eof>"
    ids = tokenizer(text)["input_ids"]
    assert ids[-1] == tokenizer.convert_tokens_to_ids(tok.EOF)
    assert tokenizer.decode(ids, skip_special_tokens=True) == "def f():\n    return 1\n"


def test_indentation_is_cheap(tokenizer):
    # A newline plus its indentation (4, 8 or 12 spaces) is one token, whatever the depth.
    for depth in (4, 8, 12):
        ids = tokenizer("\n" + " " * depth + "return x", add_special_tokens=False)["input_ids"]
        assert len(ids) == 3, (depth, tokenizer.convert_ids_to_tokens(ids))
    # A run of spaces inside a line (alignment) costs at most two tokens.
    assert len(tokenizer("x" + " " * 12 + "= 1", add_special_tokens=False)["input_ids"]) <= 5


def test_vocabulary_size(tokenizer):
    assert len(tokenizer) == 8192  # the README's "8,192-token byte-level BPE tokenizer", special tokens included


def test_train_tokenizer_small(tmp_path):
    texts = ["def f(x):\n    return x + 1\n"] * 20 + ["print('ok')\n"] * 5
    trained = tok.train_tokenizer(texts, vocab_size=300)
    tok.save(trained, tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert len(loaded) <= 300
    sample = "def f(x):\n\treturn 'é'\n"
    assert loaded.decode(loaded(sample)["input_ids"], skip_special_tokens=True) == sample
    assert loaded.padding_side == "left"
