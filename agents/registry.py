"""Agents by name: `make` builds one, `load` restores one from a checkpoint directory."""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Any

from codegym import rewards
from codegym.agents.base import AGENT_FILE, Agent
from codegym.agents.config import build_config

__all__ = ["AGENTS", "agent_class", "load", "make"]

AGENTS: dict[str, str] = {
    "actor_critic": "codegym.agents.actor_critic:ActorCritic",
    "ppo_lm": "codegym.agents.ppo_lm:PPOLM",
    "ppo_sb3": "codegym.agents.ppo_sb3:PPOSB3",
    "coderl": "codegym.agents.coderl:CodeRL",
    "grpo": "codegym.agents.critic_free:GRPO",
    "rloo": "codegym.agents.critic_free:RLOO",
    "rft": "codegym.agents.rft:RFT",
    "clm": "codegym.agents.clm:CLM",
}


def agent_class(name: str) -> type[Agent]:
    """The class registered as ``name``."""
    if name not in AGENTS:
        raise ValueError(f"unknown agent {name!r}; choose one of {', '.join(AGENTS)}")
    module, _, attr = AGENTS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def make(name: str, policy: Any = "default", *, preset: str = "default", config_file: str | os.PathLike[str] | None = None, **config: Any) -> Agent:
    """A fresh agent: ``policy`` is ``"default"``, a model directory/hub name, or a `codegym.models.Policy`;
    settings come from ``preset``, then ``config_file`` (YAML), then the keyword arguments."""
    cls = agent_class(name)
    cfg = build_config(cls.Config, preset, config, config_file)
    return cls(cfg, policy)  # type: ignore[call-arg]


def load(directory: str | os.PathLike[str], **overrides: Any) -> Agent:
    """The agent saved in ``directory`` by ``agent.save``; ``overrides`` replace saved settings.

    ``directory`` may also be a run directory of ``codegym train --out DIR``: its ``checkpoint/`` is read.
    The saved reward is a registered name (`codegym.rewards.register`): register it in this process
    before loading, or pass ``reward=`` explicitly. Loading never substitutes another reward.
    """
    path = Path(directory)
    if not (path / AGENT_FILE).exists() and (path / "checkpoint" / AGENT_FILE).exists():
        path = path / "checkpoint"
    meta_file = path / AGENT_FILE
    if not meta_file.exists():
        raise FileNotFoundError(
            f"{path} is not an agent checkpoint (no {AGENT_FILE} in it or in {path / 'checkpoint'}); "
            "pass the directory given to `codegym train --out` (or its checkpoint/), or to agent.save"
        )
    meta = json.loads(meta_file.read_text())
    cls = agent_class(meta["agent"])
    settings = {**meta["config"], **overrides}
    if "reward" not in overrides:
        try:
            rewards.get_reward(settings["reward"])
        except ValueError:
            raise ValueError(
                f"{path} was trained with the reward {settings['reward']!r}, which is not registered in this process; "
                "call codegym.rewards.register(name, fn) before loading, or pass reward=... to load"
            ) from None
    cfg = build_config(cls.Config, "default", settings)
    agent = cls._from_files(path, cfg)
    agent.steps_done = meta["steps_done"]
    return agent
