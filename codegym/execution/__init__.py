"""Run untrusted programs against unit tests, fast and safely.

`Executor` keeps a pool of pre-started sandbox workers; each forks a locked-down child per program
(see ``_worker.py`` for what the child gives up before the program runs). Verdicts are decided
outside the sandbox. `Limits` sets the resources of one program.
"""

from codegym.execution.executor import DEFAULT_TIMEOUT, EvalResult, Evaluated, Executor, default_executor
from codegym.execution.pool import Backend, Limits, LocalPool, SandboxStartError
from codegym.execution.result import OUTCOMES, ExecResult

__all__ = [
    "DEFAULT_TIMEOUT",
    "OUTCOMES",
    "Backend",
    "EvalResult",
    "Evaluated",
    "ExecResult",
    "Executor",
    "Limits",
    "LocalPool",
    "SandboxStartError",
    "default_executor",
]
