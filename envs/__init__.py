"""Gymnasium environments for code synthesis (registered as ``codegym/CodeSynthesis-v0`` and
``codegym/CodeSynthesisSeq-v0`` on ``import codegym``)."""

from codegym.envs.code_synthesis import CodeSynthesisEnv, CodeSynthesisSeqEnv, resolve_problems
from codegym.envs.vector import CodeSynthesisVectorEnv

__all__ = ["CodeSynthesisEnv", "CodeSynthesisSeqEnv", "CodeSynthesisVectorEnv", "resolve_problems"]
