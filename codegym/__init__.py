"""codegym: code synthesis as a reinforcement-learning problem.

``import codegym`` registers the Gymnasium environments ``codegym/CodeSynthesis-v0`` (token level)
and ``codegym/CodeSynthesisSeq-v0`` (sequence level).
"""

from codegym.registration import ENV_IDS, register_envs

__version__ = "0.1.0"
__all__ = ["ENV_IDS", "__version__", "register_envs"]

register_envs()
