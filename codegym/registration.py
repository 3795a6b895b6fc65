"""Gymnasium ids of codegym's environments, registered on ``import codegym``.

Entry points are strings, so registering imports nothing from the environments themselves.
"""

from __future__ import annotations

import gymnasium as gym

ENV_IDS = ("codegym/CodeSynthesis-v0", "codegym/CodeSynthesisSeq-v0", "codegym/CodeRepair-v0")


def register_envs() -> None:
    """Register every environment id (idempotent)."""
    if ENV_IDS[0] not in gym.registry:
        gym.register(
            ENV_IDS[0],
            entry_point="codegym.envs.code_synthesis:CodeSynthesisEnv",
            vector_entry_point="codegym.envs.vector:CodeSynthesisVectorEnv",
        )
    if ENV_IDS[1] not in gym.registry:
        gym.register(ENV_IDS[1], entry_point="codegym.envs.code_synthesis:CodeSynthesisSeqEnv")
    if ENV_IDS[2] not in gym.registry:
        gym.register(ENV_IDS[2], entry_point="codegym.envs.repair:CodeRepairEnv")
