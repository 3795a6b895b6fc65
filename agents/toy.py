"""A toy problem set and a tiny fresh policy on which RL visibly works in seconds on a CPU (tests, demos).

The problems ask for a constant: ``def answer_<i>():`` must ``return <i % 4>``... but the policy is
fine-tuned to answer each of them with ``return 0``, ``1``, ``2`` or ``3`` uniformly, so it starts at
a pass rate of about 1/4 and any working RL agent raises it within a few steps. The tokenizer (a
byte-level BPE trained on the toy texts) and the model (a one-layer GPT-2) are built from scratch, so
the toy does not depend on the model shipped with codegym.
"""

from __future__ import annotations

import torch

from codegym.problems import Problem

__all__ = ["toy_policy", "toy_problems"]

CHOICES = ("0", "1", "2", "3")


def toy_problems(n: int = 1) -> list[Problem]:
    """``n`` problems; problem i is correct only with the body ``return i % 4``."""
    return [
        Problem(
            task_id=f"toy/{i}",
            prompt=f"def answer_{i}():\n",
            entry_point=f"answer_{i}",
            tests=(f"assert answer_{i}() == {CHOICES[i % 4]}",),
            reference=f"def answer_{i}():\n    return {CHOICES[i % 4]}\n",
            split="train",
        )
        for i in range(n)
    ]


def toy_policy(n_problems: int = 1, seed: int = 0, sft_steps: int = 150):
    """A `codegym.models.Policy` (CPU) that answers every toy problem with a uniformly random constant."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from codegym.models.policy import Policy
    from codegym.models.tokenizer import EOF, train_tokenizer
    from codegym.agents.rollout import encode, masked_mean, token_view

    problems = toy_problems(n_problems)
    bodies = [f"    return {c}\n" for c in CHOICES]
    texts = [p.prompt + b for p in problems for b in bodies]
    tokenizer = train_tokenizer(texts * 4, vocab_size=300, min_frequency=1)
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=32, n_embd=32, n_layer=1, n_head=2,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.convert_tokens_to_ids(EOF), pad_token_id=tokenizer.pad_token_id,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )
    model = GPT2LMHeadModel(config)
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    # Train on prompt and body tokenized separately, exactly as sampling and RL updates see them.
    prompts = [p.prompt for p in problems for _ in bodies]
    batch = encode(tokenizer, prompts, bodies * n_problems, config.n_positions, 16, config.eos_token_id, torch.device("cpu"))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(sft_steps):
        view = token_view(model, batch, autocast=False)
        loss = -masked_mean(view.logprobs, batch.action_mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return Policy(model.eval(), tokenizer, torch.device("cpu"))
