"""codegym's embedded default policy: a small Python code LM and its tokenizer, shipped in the package.

``load_policy()`` gives a working policy right after ``pip install``, with no network and no GPU;
any Hugging Face causal LM (local directory, or hub name when online) can take its place:

    from codegym.models import load_policy
    policy = load_policy()                      # codegym/models/default/
    policy.generate(["def add(a, b):\\n    \\"\\"\\"Return a + b.\\"\\"\\"\\n"], n=4)
    policy.sample(prompts, n=8)                 # Samples: text, prompt/sampled ids, behaviour log-probs

Modules: `tokenizer` (byte-level BPE for Python), `corpus` (offline corpus with provenance and
decontamination), `synthetic` (simple exercise-style functions), `config` (model and training
presets), `pretrain` (training loop), `policy` (loading, `Sample`, batched generation), `sampler`
(the sampling loop), `evaluate`
(held-out loss, parse rate, pass@k), `commands` (the ``build-corpus`` and ``pretrain`` CLI commands).

The shipped model is rebuilt with the commands in `codegym.models.pretrain`'s docstring.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["Policy", "Sample", "load_policy"]

if TYPE_CHECKING:
    from codegym.models.policy import Policy, Sample, load_policy


def __getattr__(name: str) -> Any:
    # torch and transformers load only when a policy is asked for, so `import codegym` stays fast.
    if name in __all__:
        from codegym.models import policy

        return getattr(policy, name)
    raise AttributeError(f"module 'codegym.models' has no attribute {name!r}")
