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

## Multi-turn repair: `RepairInteraction`

A ``verl.interactions.base.BaseInteraction`` for verl's multi-turn rollouts: after each assistant
turn verl calls ``generate_response``, which runs the answer in the sandbox and replies with the
feedback of the visible tests (`codegym.feedback`, the same text as ``codegym/CodeRepair-v0``); the
episode ends when every test passes or after ``max_turns`` answers. verl masks the reply's tokens
out of the loss. ``calculate_score`` is RLEF's reward: the preset on the last answer, on all tests.

```yaml
# interaction_config.yaml  (actor_rollout_ref.rollout.multi_turn.interaction_config_path)
interaction:
  - name: codegym_repair
    class_name: codegym.integrations.verl.RepairInteraction
    config: {max_turns: 3, feedback: first_failure, reward: paper, visible_tests: null, turn_penalty: 0.0}
```

Rows need ``extra_info.interaction_kwargs`` (``{"name": "codegym_repair", "ground_truth": ...}``):
``codegym export SOURCE --format verl --interaction codegym_repair``. Checked against verl's
``BaseInteraction`` and ``Gsm8kInteraction`` (``verl/interactions/``, volcengine/verl commit
10a6180, read 2026-12-02): ``start_interaction(instance_id=None, **kwargs) -> str``,
``generate_response(instance_id, messages, **kwargs) -> (should_terminate, content, score, extra)``,
``calculate_score(instance_id, **kwargs) -> float``, ``finalize_interaction(instance_id, **kwargs)``,
all coroutines; verl's agent loop passes ``extra_info["interaction_kwargs"]`` to
``start_interaction``. verl itself is not installed in CI (see above): the test runs this class
against a stand-in base class with those signatures.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from uuid import uuid4

from codegym import feedback, scoring
from codegym.execution import Executor
from codegym.integrations.records import from_ground_truth, to_ground_truth
from codegym.problems import Problem

__all__ = ["INSTRUCTION", "RepairInteraction", "compute_score", "rows", "write_parquet"]

try:  # verl's base class when verl is installed; the same interface otherwise, so this module always imports
    from verl.interactions.base import BaseInteraction
except ImportError:

    class BaseInteraction:  # type: ignore[no-redef]
        """Stand-in for ``verl.interactions.base.BaseInteraction`` (verl is not installed)."""

        def __init__(self, config: dict[str, Any]) -> None:
            self.config = config
            self.name: str = config.get("name", "interaction_agent")

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


class RepairInteraction(BaseInteraction):
    """Multi-turn repair in verl: each answer is run, the reply is the visible tests' feedback (module docstring).

    ``config`` (the interaction's ``config`` in verl's YAML): ``max_turns`` (3), ``feedback``
    (``first_failure``), ``visible_tests`` (None: the prompt's examples), ``reward`` (``paper``),
    ``turn_penalty`` (0), ``timeout`` (None: the problem's limit), ``executor`` (default: the shared pool).
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.max_turns = int(config.get("max_turns", 3))
        self.form = str(config.get("feedback", "first_failure"))
        self.visible = config.get("visible_tests")
        self.reward = config.get("reward", "paper")
        self.turn_penalty = float(config.get("turn_penalty", 0.0))
        self.timeout = config.get("timeout")
        self.executor: Executor | None = config.get("executor")
        if self.form not in feedback.FORMS or self.max_turns < 1:
            raise ValueError(f"RepairInteraction: feedback must be one of {', '.join(feedback.FORMS)} and max_turns >= 1, got {config!r}")
        self._instances: dict[str, dict[str, Any]] = {}

    async def start_interaction(self, instance_id: str | None = None, ground_truth: str | None = None, **kwargs: Any) -> str:
        """Begin an episode on the problem in ``ground_truth`` (codegym's JSON, as ``codegym export`` writes it)."""
        if ground_truth is None:
            raise ValueError("RepairInteraction needs interaction_kwargs.ground_truth (write the data with `codegym export --interaction NAME`)")
        instance_id = instance_id or str(uuid4())
        self._instances[instance_id] = {"problem": from_ground_truth(ground_truth), "attempts": []}
        return instance_id

    async def generate_response(self, instance_id: str, messages: list[dict[str, Any]], **kwargs: Any) -> tuple[bool, str, float, dict[str, Any]]:
        """Run the last assistant message; reply with its feedback. Returns (should_terminate, reply, this turn's reward, extra)."""
        state = self._instances[instance_id]
        answer = next((str(m.get("content") or "") for m in reversed(messages) if m.get("role") == "assistant"), "")
        future = feedback.submit(
            [state["problem"]], [answer], visible=self.visible, form=self.form, reward=self.reward, executor=self.executor, timeout=self.timeout
        )
        attempt = (await asyncio.wrap_future(future))[0]
        state["attempts"].append(attempt)
        done = attempt.score.result.passed or len(state["attempts"]) >= self.max_turns
        reply = attempt.feedback.text if done else f"{attempt.feedback.text}\n\nFix the function. Answer with the whole function in one ```python code block."
        extra = {"turn": len(state["attempts"]), "outcome": attempt.score.result.outcome, "pass_ratio": attempt.score.result.pass_ratio, "feedback": attempt.feedback.to_dict()}
        return done, reply, attempt.score.reward, extra

    async def calculate_score(self, instance_id: str, **kwargs: Any) -> float:
        """RLEF's reward: the preset on the last answer, on all tests, minus ``turn_penalty`` per extra turn (0 before any answer)."""
        attempts = self._instances[instance_id]["attempts"]
        return attempts[-1].score.reward - self.turn_penalty * (len(attempts) - 1) if attempts else 0.0

    async def finalize_interaction(self, instance_id: str, **kwargs: Any) -> None:
        self._instances.pop(instance_id, None)


def rows(problems: Sequence[Problem], data_source: str = "codegym", interaction: str | None = None, visible_tests: int | None = None) -> list[dict[str, Any]]:
    """verl RL-data rows: ``data_source``, chat ``prompt``, ``ability``, ``reward_model`` and ``extra_info``.

    ``interaction``: the name of a `RepairInteraction` in verl's interaction config; each row's
    ``extra_info.interaction_kwargs`` then names it and carries the ground truth, and the prompt is
    the one the repair episode shows (``visible_tests``: `codegym.feedback.shown_prompt`).
    """
    out = []
    for i, p in enumerate(problems):
        extra: dict[str, Any] = {"task_id": p.task_id, "split": p.split or "", "index": i}
        prompt = p.prompt
        if interaction is not None:
            extra["interaction_kwargs"] = {"name": interaction, "ground_truth": to_ground_truth(p)}
            prompt = feedback.shown_prompt(p, visible_tests)
        out.append(
            {
                "data_source": data_source,
                "prompt": [{"role": "user", "content": INSTRUCTION.format(prompt=prompt)}],
                "ability": "code",
                "reward_model": {"style": "rule", "ground_truth": to_ground_truth(p)},
                "extra_info": extra,
            }
        )
    return out


def write_parquet(
    problems: Sequence[Problem], path: str | os.PathLike[str], data_source: str = "codegym", interaction: str | None = None, visible_tests: int | None = None
) -> Path:
    """Write `rows` of ``problems`` to a parquet file (atomically: a temporary file, then renamed)."""
    import pandas as pd

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    pd.DataFrame(rows(problems, data_source, interaction, visible_tests)).to_parquet(tmp, index=False)
    tmp.replace(target)
    return target
