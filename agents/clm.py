"""The CLM baseline: the pretrained policy with no RL (the paper's CLM row). ``fit`` only records the call."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from codegym.problems import Problem
from codegym.agents.base import LMAgent
from codegym.agents.config import AgentConfig

__all__ = ["CLM"]


class CLM(LMAgent):
    """The pretrained LM as it is; `fit` trains nothing (each step is recorded with ``trained: 0``)."""

    name = "clm"
    Config = AgentConfig
    learns = False

    def _train(self, problems: list[Problem], steps: int) -> Iterator[dict[str, Any]]:
        for _ in range(steps):
            yield {"trained": 0}
