"""Agents for codegym's code-synthesis problems, all behind one protocol.

    from codegym import agents
    agent = agents.make("actor_critic", policy="default", preset="tiny", critic="sync")
    agent.fit("simple", steps=10)               # a source name, a path or a list of Problem
    agent.generate(["def add(a, b):\\n"], n=4)   # list[list[str]]
    agent.save("runs/ac"); agents.load("runs/ac")

Agents: ``actor_critic`` (the paper's method), ``ppo_lm`` (PPO on the LM with a value head),
``ppo_sb3`` (Stable-Baselines3 PPO on ``codegym/CodeSynthesis-v0``), ``coderl`` (CodeRL-style
critic-weighted policy gradient), ``grpo`` and ``rloo`` (critic-free policy gradients with a group
baseline, `codegym.agents.critic_free`), ``rft`` (rejection-sampling fine-tuning on the policy's own
passing samples: the compute-matched control, `codegym.agents.rft`), ``clm`` (the pretrained LM, no RL). `evaluate_agent` measures
pass@k, `evaluate_repair` self-repair against resampling at the same budget; ``codegym train`` and ``codegym evaluate`` drive them from the command line.
"""

from codegym.agents.base import Agent, InexactRollout, TrainingDiverged
from codegym.agents.passk import estimate_pass_at_k, evaluate_agent, evaluate_repair, pass_at_k
from codegym.agents.registry import AGENTS, load, make

__all__ = ["AGENTS", "Agent", "InexactRollout", "TrainingDiverged", "estimate_pass_at_k", "evaluate_agent", "evaluate_repair", "load", "make", "pass_at_k"]
