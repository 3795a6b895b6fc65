"""Gymnasium environments for code synthesis (registered as ``codegym/CodeSynthesis-v0``,
``codegym/CodeSynthesisSeq-v0`` and ``codegym/CodeRepair-v0`` on ``import codegym``)."""

from codegym.envs.code_synthesis import CodeSynthesisEnv, CodeSynthesisSeqEnv, resolve_problems
from codegym.envs.repair import CodeRepairEnv, render_messages, render_prompt
from codegym.envs.vector import CodeSynthesisVectorEnv

__all__ = ["CodeRepairEnv", "CodeSynthesisEnv", "CodeSynthesisSeqEnv", "CodeSynthesisVectorEnv", "render_messages", "render_prompt", "resolve_problems"]
