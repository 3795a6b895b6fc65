"""Pre-training hyper-parameters: one dataclass, named presets.

``default`` is the shipped model: GPT-2 shape, 4 layers × 256 wide, 8k vocabulary, 384-token
context (≈5.3M parameters, ≈21 MB in float32), trained for 2,000 steps of 8 × 384 tokens (6.1M tokens),
half of the functions drawn from the exercises (synthetic and the training split's templates): ≈1.05 s
per step on 2 idle CPU cores, so ≈36 minutes; then ``procgen``, a 1,500-step warm start of it on
procgen training programs (the shipped weights are the result of both). ``tiny`` is for tests;
``small`` and ``base`` are for a GPU.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["PRESETS", "PretrainConfig", "preset"]


@dataclass(frozen=True)
class PretrainConfig:
    """Everything that decides what `codegym.models.pretrain.pretrain` produces."""

    # Model shape.
    arch: Literal["gpt2", "llama"] = "gpt2"
    vocab_size: int = 8192
    n_layer: int = 4
    n_head: int = 4
    d_model: int = 256
    context: int = 384  # positions the model knows; also the training block size
    # Tokenizer: trained on this many training functions when no tokenizer is given.
    tokenizer_functions: int = 40000
    # Data.
    synthetic_fraction: float = 0.5  # share of training *functions* drawn from the exercises (synthetic and templates)
    procgen_fraction: float = 0.0  # share drawn from the corpus's procgen programs (0: they are not used at all)
    # Optimisation.
    steps: int = 2000
    batch_size: int = 8
    learning_rate: float = 2e-3
    min_lr_ratio: float = 0.1  # cosine decay down to learning_rate × this
    warmup_steps: int = 100
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    # Bookkeeping.
    eval_every: int = 250
    eval_functions: int = 200  # held-out functions scored at each evaluation
    checkpoint_every: int = 250
    seed: int = 0

    def replace(self, **changes: Any) -> PretrainConfig:
        """A copy with ``changes``; ``None`` values are ignored (so CLI options can pass through)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def hf_config(self, pad_id: int, bos_id: int, eos_ids: list[int]) -> Any:
        """The ``transformers`` model config for this shape."""
        from transformers import GPT2Config, LlamaConfig

        if self.arch == "gpt2":
            return GPT2Config(
                vocab_size=self.vocab_size, n_positions=self.context, n_embd=self.d_model, n_layer=self.n_layer,
                n_head=self.n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                bos_token_id=bos_id, eos_token_id=eos_ids, pad_token_id=pad_id,
            )
        return LlamaConfig(
            vocab_size=self.vocab_size, hidden_size=self.d_model, intermediate_size=4 * self.d_model,
            num_hidden_layers=self.n_layer, num_attention_heads=self.n_head, max_position_embeddings=self.context,
            tie_word_embeddings=True, bos_token_id=bos_id, eos_token_id=eos_ids, pad_token_id=pad_id,
        )


PRESETS: dict[str, PretrainConfig] = {
    "tiny": PretrainConfig(vocab_size=512, n_layer=1, n_head=2, d_model=32, context=64, tokenizer_functions=2000,
                           steps=4, batch_size=2, warmup_steps=1, eval_every=2, eval_functions=4, checkpoint_every=2),
    "default": PretrainConfig(),
    # The warm start of the shipped model for procgen (issue 23): `default`'s weights (--init), 1,500 steps
    # on a mixture of 70% procgen training programs, 15% exercises and 15% real code
    # (codegym/models/pretrain.py; its length chosen on procgen:validation, experiments/RESULTS.md).
    "procgen": PretrainConfig(steps=1500, learning_rate=1e-3, warmup_steps=50, min_lr_ratio=0.1, synthetic_fraction=0.15,
                              procgen_fraction=0.7, eval_every=250, checkpoint_every=250),
    "small": PretrainConfig(vocab_size=16384, n_layer=8, n_head=8, d_model=512, context=512, steps=20000,
                            batch_size=32, learning_rate=6e-4, warmup_steps=500, eval_every=1000, checkpoint_every=1000),
    "base": PretrainConfig(arch="llama", vocab_size=16384, n_layer=12, n_head=12, d_model=768, context=1024,
                           steps=50000, batch_size=32, learning_rate=3e-4, warmup_steps=1000, eval_every=2000,
                           checkpoint_every=2000),
}


def preset(name: str) -> PretrainConfig:
    """The preset called ``name``; the error lists the choices."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}") from None
