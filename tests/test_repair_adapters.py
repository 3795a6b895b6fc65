"""The repair loop for remote trainers: ``POST /feedback`` of ``codegym serve`` and verl's ``RepairInteraction``."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import sys
import types
from typing import Any, Optional
from uuid import uuid4

import httpx
import pytest

from codegym import feedback as fb
from codegym.integrations.records import to_ground_truth
from codegym.problems import Problem
from codegym.serve import ServeConfig

from .test_serve import serving

ADD = Problem(
    "t/add",
    'def add(a, b):\n    """Return a + b.\n    >>> add(1, 2)\n    3\n    """\n',
    "add",
    ("assert add(1, 2) == 3", "assert add(-5, 11) == 6"),
)


def test_feedback_endpoint_matches_the_environment(monkeypatch):
    import tests.test_serve as ts

    monkeypatch.setitem(ts.PROBLEMS, ADD.task_id, ADD)
    with serving(ServeConfig()) as (url, executor):
        wrong = httpx.post(f"{url}/feedback", json={"task_id": "t/add", "completion": "    return a - b\n"}, timeout=60).json()
        expected = fb.check([ADD], ["    return a - b\n"], executor=executor)[0]
        assert wrong["feedback"] == expected.feedback.text and "add(1, 2) returned -1" in wrong["feedback"]
        assert "add(-5, 11)" not in json.dumps(wrong)  # the hidden test is never shown
        assert wrong["score"] == 0.0 and wrong["outcome"] == "failed" and wrong["accepted"] is False
        assert wrong["fields"]["tests"][0]["got"] == "-1"
        inline = {"prompt": ADD.prompt, "entry_point": "add", "tests": list(ADD.tests)}
        right = httpx.post(f"{url}/feedback", json={"problem": inline, "completion": "def add(a, b):\n    return a + b\n"}, timeout=60).json()
        assert right["score"] == 1.0 and right["accepted"] is True
        bad = httpx.post(f"{url}/feedback", json={"task_id": "t/add", "completion": "x", "feedback": "everything"}, timeout=60)
        assert bad.status_code == 422 and "feedback one of" in bad.json()["error"]
        missing = httpx.post(f"{url}/feedback", json={"task_id": "nope", "completion": "x"}, timeout=60)
        assert missing.status_code == 404


class _StandIn:
    """verl's ``BaseInteraction`` as documented (verl/interactions/base.py, commit 10a6180): the same signatures."""

    def __init__(self, config: dict[str, Any]):
        self.config = config
        self.name: str = config.get("name", "interaction_agent")

    async def start_interaction(self, instance_id: Optional[str] = None, **kwargs) -> str:
        return instance_id or str(uuid4())

    async def generate_response(self, instance_id: str, messages: list[dict[str, Any]], **kwargs) -> tuple[bool, str, float, dict[str, Any]]:
        return False, "", 0.0, {}

    async def calculate_score(self) -> float:
        return 0.0

    async def finalize_interaction(self) -> None:
        pass


@pytest.fixture()
def verl_interaction(monkeypatch):
    """`codegym.integrations.verl` imported with a stand-in ``verl.interactions.base`` module."""
    for name in ("verl", "verl.interactions"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    base = types.ModuleType("verl.interactions.base")
    base.BaseInteraction = _StandIn
    monkeypatch.setitem(sys.modules, "verl.interactions.base", base)
    import codegym.integrations.verl as module

    module = importlib.reload(module)
    yield module
    monkeypatch.undo()
    importlib.reload(module)


def test_verl_repair_interaction(verl_interaction, executor):
    cls = verl_interaction.RepairInteraction
    assert issubclass(cls, _StandIn)
    for method in ("start_interaction", "generate_response", "calculate_score", "finalize_interaction"):
        assert inspect.iscoroutinefunction(getattr(cls, method))
        ours, theirs = inspect.signature(getattr(cls, method)), inspect.signature(getattr(_StandIn, method))
        for name, param in theirs.parameters.items():  # everything verl passes is accepted, in the same place
            if param.kind is param.VAR_KEYWORD:
                assert any(p.kind is p.VAR_KEYWORD for p in ours.parameters.values())
            else:
                assert name in ours.parameters
    row = verl_interaction.rows([ADD], interaction="codegym_repair")[0]
    kwargs = row["extra_info"]["interaction_kwargs"]
    assert kwargs["name"] == "codegym_repair"
    interaction = cls({"name": "codegym_repair", "max_turns": 2, "executor": executor})

    async def episode() -> list[Any]:
        iid = await interaction.start_interaction("req-1", **kwargs)  # as verl's agent loop calls it
        messages = [*row["prompt"], {"role": "assistant", "content": "```python\ndef add(a, b):\n    return a - b\n```"}]
        first = await interaction.generate_response(iid, messages)
        messages += [{"role": "user", "content": first[1]}, {"role": "assistant", "content": "```python\ndef add(a, b):\n    return a + b\n```"}]
        second = await interaction.generate_response(iid, messages)
        score = await interaction.calculate_score(iid)
        await interaction.finalize_interaction(iid)
        return [first, second, score]

    first, second, score = asyncio.run(episode())
    assert first[0] is False and "add(1, 2) returned -1" in first[1] and "Fix the function" in first[1] and first[2] == 0.0
    assert "add(-5, 11)" not in first[1]
    assert second[0] is True and second[2] == 1.0 and second[3]["turn"] == 2
    assert score == 1.0 and interaction._instances == {}
