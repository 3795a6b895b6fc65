"""TRL: a code reward for ``GRPOTrainer(reward_funcs=...)`` judged in codegym's sandbox, and its data set.

```python
from trl import GRPOConfig, GRPOTrainer
from codegym.integrations.trl import dataset, reward_function

trainer = GRPOTrainer(model="Qwen/Qwen2.5-0.5B", reward_funcs=reward_function(),
                      train_dataset=dataset("mbpp", split="train"), args=GRPOConfig(output_dir="out"))
trainer.train()
```

`reward_function` follows TRL's reward-function contract: ``(prompts, completions, completion_ids,
**columns) -> list[float | None]``, where ``columns`` are the data set's other columns, one value per
completion. It needs ``task_id``, ``entry_point``, ``tests`` and ``test_setup``, and uses
``time_limit`` when there is one (what `dataset` writes); a row whose ``tests`` is None (another
task in a mixed data set) gets None, which TRL ignores. Completions are plain text or chat messages
(the last message's content); the program is built by `codegym.scoring.program` (a fenced
```python answer, a whole function or a body all work; a body is cut at the end of the function,
so one that runs on into a new ``def`` or a line cut off by ``max_completion_length`` scores as the
body alone). Each program runs under its problem's calibrated time limit (the ``time_limit``
column), else the executor's default; with an all-or-nothing reward (``binary``) programs stop at
their first failing test.
For a conversational ``prompt`` the code prompt comes from a ``code_prompt`` column when there is one.

All completions of a call run as one batch on the sandbox pool. A dict reward's extra keys, and the
pass rate, are logged through TRL's ``log_metric`` as ``codegym/<key>``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from typing import Any

from codegym import problems as problem_sources
from codegym import scoring
from codegym.execution import Executor
from codegym.integrations.records import from_record, to_record
from codegym.problems import Problem
from codegym.rewards import Reward, RewardFn, get_reward, name_of

__all__ = ["async_reward_function", "dataset", "reward_function"]


def dataset(source: str | os.PathLike[str] | Sequence[Problem], split: str | None = None) -> Any:
    """A ``datasets.Dataset`` of codegym problems with the columns `reward_function` reads.

    Columns: ``prompt`` (the code prompt the model completes), ``task_id`` (codegym's id),
    ``entry_point``, ``tests`` (list of str), ``test_setup`` and ``time_limit`` (calibrated seconds,
    None where the problem has none). ``source`` is anything
    `codegym.problems.load` reads (a bundled name, a generated JSONL file, ``hf:NAME``) or a list of
    `Problem`.
    """
    from datasets import Dataset

    if isinstance(source, (str, os.PathLike)):
        chosen = problem_sources.load(source, split=split)
    else:
        chosen = [p for p in source if split is None or p.split == split]
    if not chosen:
        raise ValueError(f"no problems in {source!r} (split={split!r}); choose another split or source")
    return Dataset.from_list([to_record(p) for p in chosen])


def reward_function(reward: str | Reward | RewardFn = "paper", executor: Executor | None = None, *, timeout: float | None = None) -> Callable[..., list[float | None]]:
    """A TRL reward function that runs each completion against its problem's tests in the sandbox.

    ``reward``: a registered name or a callable (`codegym.rewards`); ``executor``: the sandbox pool
    (default: codegym's shared one); ``timeout``: seconds per program (None: each problem's
    calibrated ``time_limit`` column, else the executor's default).
    """
    fn = get_reward(reward)

    def codegym_reward(prompts: Sequence[Any], completions: Sequence[Any], completion_ids: Any = None, **columns: Any) -> list[float | None]:
        rows, future = _submit(fn, executor, timeout, prompts, completions, columns)
        return _finish(rows, len(completions), future.result(), columns)

    codegym_reward.__name__ = codegym_reward.__qualname__ = f"codegym_{_label(reward)}"
    return codegym_reward


def async_reward_function(reward: str | Reward | RewardFn = "paper", executor: Executor | None = None, *, timeout: float | None = None) -> Callable[..., Awaitable[list[float | None]]]:
    """`reward_function` as a coroutine function: TRL awaits it next to its other async rewards
    (``asyncio.gather``), so the sandbox run overlaps theirs instead of blocking the event loop."""
    fn = get_reward(reward)

    async def codegym_reward(prompts: Sequence[Any], completions: Sequence[Any], completion_ids: Any = None, **columns: Any) -> list[float | None]:
        rows, future = _submit(fn, executor, timeout, prompts, completions, columns)
        return _finish(rows, len(completions), await asyncio.wrap_future(future), columns)

    codegym_reward.__name__ = codegym_reward.__qualname__ = f"codegym_{_label(reward)}"
    return codegym_reward


def _label(reward: Any) -> str:
    try:
        return name_of(reward)
    except ValueError:
        return getattr(reward, "__name__", "reward")


def _text(item: Any) -> str:
    """A completion or prompt as text: a string, or the content of the last chat message."""
    if isinstance(item, str):
        return item
    if isinstance(item, Sequence) and item and isinstance(item[-1], dict):
        return str(item[-1].get("content", ""))
    raise TypeError(f"expected a string or a list of chat messages, got {type(item).__name__}")


def _submit(fn: Reward, executor: Executor | None, timeout: float | None, prompts: Sequence[Any], completions: Sequence[Any], columns: dict[str, Any]) -> tuple[list[int], Future[list[scoring.Score]]]:
    if "tests" not in columns or "entry_point" not in columns:
        raise ValueError(
            "the codegym reward needs the data set columns task_id, entry_point, tests and test_setup; "
            "build it with codegym.integrations.trl.dataset(source)"
        )
    code_prompts = columns.get("code_prompt")
    rows, chosen, texts = [], [], []
    for i, (prompt, completion) in enumerate(zip(prompts, completions)):
        if columns["tests"][i] is None:
            continue
        record = {k: columns[k][i] for k in ("task_id", "entry_point", "tests", "test_setup", "time_limit") if k in columns}
        record["task_id"] = record.get("task_id", f"row{i}")
        record["prompt"] = code_prompts[i] if code_prompts is not None else (prompt if isinstance(prompt, str) else "")
        rows.append(i)
        chosen.append(from_record(record))
        texts.append(_text(completion))
    return rows, scoring.submit(chosen, texts, reward=fn, executor=executor, timeout=timeout)


def _finish(rows: list[int], n: int, scores: list[scoring.Score], columns: dict[str, Any]) -> list[float | None]:
    out: list[float | None] = [None] * n
    for i, s in zip(rows, scores):
        out[i] = s.reward
    log_metric = columns.get("log_metric")
    if callable(log_metric) and scores:
        log_metric("codegym/pass_rate", sum(s.result.passed for s in scores) / len(scores))
        for key in sorted({k for s in scores for k in s.info}):
            values = [s.info[key] for s in scores if key in s.info]
            log_metric(f"codegym/{key}", sum(values) / len(values))
    return out
