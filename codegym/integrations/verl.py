"""verl: ``compute_score`` for ``custom_reward_function``, and the RL parquet of ``codegym export --format verl``.

```yaml
data:
  train_files: mbpp_train.parquet        # codegym export mbpp --split train --format verl --out mbpp_train.parquet
custom_reward_function:
  path: /path/to/site-packages/codegym/integrations/verl.py   # python -c "import codegym.integrations.verl as m; print(m.__file__)"
  name: compute_score
  reward_kwargs: {reward: paper}          # optional: any registered codegym reward, and timeout (default: calibrated limits)
```

verl's reward managers call ``compute_score(data_source=..., solution_str=..., ground_truth=...,
extra_info=...)`` once per response, with the response decoded from its tokens (special tokens
included, e.g. a trailing ``<|im_end|>``; `codegym.scoring.program` removes them). The parquet is
self-contained: each row's ``reward_model.ground_truth`` is a JSON string with the problem's code
prompt, entry point, tests, setup and calibrated time limit, so the trainer needs no codegym
problem files. Each program runs under that limit (else the executor's default); with an
all-or-nothing reward (``binary``) programs stop at their first failing test.

verl itself is not a codegym dependency, nor in the dev extra: verl 0.9.1 does install on CPU from
PyPI with codegym's torch pin, but it requires ``transformers<5.11`` (pip would downgrade the
project's transformers for everything else) and brings wandb, ``ray[default]``, tensorboard, peft and
hydra. CI therefore calls ``compute_score`` with exactly the keyword arguments of verl's
``NaiveRewardManager``. Checked once by hand (2026-12-01): verl 0.9.1's ``NaiveRewardManager``, given
a ``DataProto`` of two responses tokenized by the shipped tokenizer and this ``compute_score``,
returned the rewards 1.0 (a fenced reference) and −0.6 (a body that raises) with ``score``,
``passed`` and ``pass_ratio`` in its ``reward_extra_info``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from codegym import scoring
from codegym.execution import Executor
from codegym.integrations.records import from_ground_truth, to_ground_truth
from codegym.problems import Problem

__all__ = ["INSTRUCTION", "compute_score", "rows", "write_parquet"]

INSTRUCTION = "Complete the following Python function. Answer with the whole function in one ```python code block.\n\n```python\n{prompt}```"
"""The chat prompt of an exported row; ``{prompt}`` is the problem's code prompt."""


def compute_score(data_source: str, solution_str: str, ground_truth: str, extra_info: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    """Run ``solution_str`` against the tests in ``ground_truth`` in the sandbox.

    Returns ``{"score": reward, "passed": 0 or 1, "pass_ratio": ...}`` plus a dict reward's extra
    keys (verl logs every key). ``kwargs`` may set ``reward`` (a registered codegym reward name,
    default ``paper``), ``timeout`` (seconds; default: the ground truth's calibrated ``time_limit``,
    else the executor's default) and ``executor`` (an `Executor`; default codegym's shared pool);
    verl passes ``custom_reward_function.reward_kwargs`` this way.
    """
    problem = from_ground_truth(ground_truth)
    executor: Executor | None = kwargs.get("executor")
    timeout = kwargs.get("timeout")
    s = scoring.score([problem], [solution_str], reward=kwargs.get("reward", "paper"), executor=executor,
                      timeout=None if timeout is None else float(timeout))[0]  # fmt: skip
    return {"score": s.reward, "passed": float(s.result.passed), "pass_ratio": s.result.pass_ratio, **s.info}


def rows(problems: Sequence[Problem], data_source: str = "codegym") -> list[dict[str, Any]]:
    """verl RL-data rows: ``data_source``, chat ``prompt``, ``ability``, ``reward_model`` and ``extra_info``."""
    return [
        {
            "data_source": data_source,
            "prompt": [{"role": "user", "content": INSTRUCTION.format(prompt=p.prompt)}],
            "ability": "code",
            "reward_model": {"style": "rule", "ground_truth": to_ground_truth(p)},
            "extra_info": {"task_id": p.task_id, "split": p.split or "", "index": i},
        }
        for i, p in enumerate(problems)
    ]


def write_parquet(problems: Sequence[Problem], path: str | os.PathLike[str], data_source: str = "codegym") -> Path:
    """Write `rows` of ``problems`` to a parquet file (atomically: a temporary file, then renamed)."""
    import pandas as pd

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    pd.DataFrame(rows(problems, data_source)).to_parquet(tmp, index=False)
    tmp.replace(target)
    return target
