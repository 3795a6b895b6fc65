"""Hyperparameters: one dataclass per agent, named presets, and overrides from the CLI or YAML.

Every agent config derives from `AgentConfig`. A preset is a dict of overrides on the dataclass
defaults: ``tiny`` (CI: seconds on a laptop CPU), ``default`` (the defaults themselves) and, where
PAPER.md gives a value, ``paper``. Values PAPER.md leaves open are ours and say so in the field docs.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from codegym import rewards

__all__ = ["ENVS", "AgentConfig", "ConfigError", "build_config", "parse_assignments"]

ENVS = ("synthesis", "repair")
"""What an episode is: one program (``synthesis``), or up to ``max_turns`` attempts with feedback (``repair``)."""


class ConfigError(ValueError):
    """A configuration value or key is wrong; the message lists what is accepted."""


@dataclass
class AgentConfig:
    """Settings every agent shares. Defaults are ours unless a preset says otherwise.

    Attributes:
        seed: seeds sampling, problem order and initialisation.
        reward: a registered `codegym.rewards` name, or a callable ``(problem, completion, result) -> float | dict``
            (or ``ExecResult -> float``); an agent whose reward is a callable can be saved only once it is
            registered (`codegym.rewards.register`), as checkpoints store the reward's name.
        batch_problems: problems drawn per step.
        samples_per_problem: completions sampled per problem per step.
        max_new_tokens: longest completion, in tokens.
        temperature: sampling temperature of training completions; updates score their actions at the
            same temperature (``log_softmax(logits / temperature)``), so the gradient is that of the
            distribution that was sampled.
        top_p: nucleus of training sampling. 1.0 (the default) keeps the recorded log-probs those of
            ``logits / temperature``; below 1 the sampler truncates a distribution the update does not
            model, which biases the gradient (a warning says so).
        eval_top_p: nucleus of `generate` (evaluation and pass@k), where no gradient is taken.
        pipeline: sample batch t+1 while batch t's programs run in the sandbox (faster; the behaviour
            policy is then one update older than the trained one, which PPO-style agents correct with
            the recorded log-probs and REINFORCE-style ones with ``importance_cap``). False: strictly on-policy.
        importance_cap: ρ̄ of the truncated per-token importance weight ``min(ρ̄, π/μ)`` that
            REINFORCE-style agents (actor_critic, coderl) apply to samples from an older policy μ;
            0 switches the correction off.
        filter_groups: DAPO's dynamic sampling: drop the samples of every drawn problem whose rewards
            are all equal (they carry no group-relative signal) before the update. Dropped samples
            still count in the sample budget and are logged as ``filtered``.
        timeout: seconds per program in the sandbox; None (the default): each problem's calibrated
            ``time_limit`` (`codegym calibrate`), else the executor's default. A policy under RL
            writes loops that never end, and each one holds a worker for the whole limit.
        lr: learning rate of the policy (Adam).
        max_grad_norm: gradient clipping of every optimizer.
        max_loss: a loss above this (or not finite) stops training as diverged.
        save_every: steps between checkpoints when training with a checkpoint directory (0: only at the end).
        env: ``synthesis`` (one program per episode) or ``repair`` (multi-turn: after a failed attempt
            the policy reads the feedback of the visible tests and tries again, `codegym/CodeRepair-v0`;
            grpo, rloo and actor_critic). Each attempt counts as one sample of the budget.
        max_turns: with ``env=repair``, the most attempts per episode.
        feedback: with ``env=repair``, the feedback form (`codegym.feedback.FORMS`).
        visible_tests: with ``env=repair``, None (the prompt's examples) or the first k tests.
        turn_penalty: with ``env=repair``, subtracted from the return per attempt after the first.
    """

    seed: int = 0
    reward: Any = "paper"
    batch_problems: int = 8
    samples_per_problem: int = 4
    max_new_tokens: int = 128
    temperature: float = 0.8
    top_p: float = 1.0
    eval_top_p: float = 0.95
    pipeline: bool = True
    importance_cap: float = 1.0
    filter_groups: bool = False
    timeout: float | None = None
    lr: float = 1e-5
    max_grad_norm: float = 1.0
    max_loss: float = 1e6
    save_every: int = 50
    env: str = "synthesis"
    max_turns: int = 3
    feedback: str = "first_failure"
    visible_tests: int | None = None
    turn_penalty: float = 0.0

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"batch_problems": 2, "samples_per_problem": 4, "max_new_tokens": 24, "save_every": 2},
        "default": {},
        # PAPER.md's standard choices where the paper gives none: 4–16 samples per prompt, T 0.6–1.0, 256–512 new tokens.
        "paper": {"samples_per_problem": 8, "temperature": 0.8, "max_new_tokens": 256},
    }

    def __post_init__(self) -> None:
        self.check_env()

    def check_env(self) -> None:
        """Reject env settings that cannot work (called by every config's ``__post_init__``)."""
        if self.env not in ENVS:
            raise ConfigError(f"env must be one of {', '.join(ENVS)}, got {self.env!r}")
        if self.max_turns < 1:
            raise ConfigError(f"max_turns must be at least 1, got {self.max_turns}")
        from codegym.feedback import FORMS

        if self.feedback not in FORMS:
            raise ConfigError(f"feedback must be one of {', '.join(FORMS)}, got {self.feedback!r}")

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain JSON values (a callable reward by its registered name, else as ``<callable NAME>``)."""
        out = dataclasses.asdict(self)
        if callable(out["reward"]):
            try:
                out["reward"] = rewards.name_of(self.reward)
            except ValueError:
                out["reward"] = f"<callable {getattr(self.reward, '__qualname__', 'reward')}>"
        return out


def _coerce(name: str, kind: Any, value: Any) -> Any:
    """``value`` (a string from the CLI, or a YAML scalar) as the field's type."""
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if origin in (typing.Union, types.UnionType) and type(None) in args and len(args) == 2:  # X | None
        if value is None or str(value).strip().lower() in {"none", "null", ""}:
            return None
        return _coerce(name, next(a for a in args if a is not type(None)), value)
    if kind is Any or origin in (typing.Union, types.UnionType):
        return value
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in {"1", "true", "yes", "on"}:
            return True
        if text in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    if kind in (int, float, str):
        try:
            if kind is int and isinstance(value, str):
                return int(float(value)) if "e" in value.lower() else int(value)
            return kind(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be {kind.__name__}, got {value!r}") from None
    return value


def build_config(
    cls: type[AgentConfig], preset: str = "default", overrides: Mapping[str, Any] | None = None, yaml_file: str | Path | None = None
) -> AgentConfig:
    """A ``cls`` config: the preset, then the keys of ``yaml_file``, then ``overrides`` (later wins)."""
    if preset not in cls.PRESETS:
        raise ConfigError(f"unknown preset {preset!r} for {cls.__name__}; choose one of {', '.join(cls.PRESETS)}")
    values: dict[str, Any] = dict(cls.PRESETS[preset])
    if yaml_file is not None:
        import yaml

        loaded = yaml.safe_load(Path(yaml_file).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{yaml_file}: expected a mapping of setting: value at the top level")
        values.update(loaded)
    values.update(overrides or {})
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(unknown)} for {cls.__name__}; valid: {', '.join(names)}")
    return cls(**{k: _coerce(k, hints[k], v) for k, v in values.items()})


def parse_assignments(items: list[str] | None) -> dict[str, str]:
    """``["lr=1e-5", "critic=frozen"]`` → ``{"lr": "1e-5", "critic": "frozen"}``."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out

