"""The agent protocol and the on-policy LM base class every LM agent builds on.

`Agent` is the protocol (``fit``, ``generate``, ``save``, `codegym.agents.load`) and owns what all agents
share: the training loop's bookkeeping (step count, divergence checks, checkpoints, logging). `LMAgent`
follows Stable-Baselines3's on-policy base class: *rollout collection* (sample completions → execute
them in the sandbox → rewards) is separate from the *update*, which each algorithm writes top to
bottom in its own module. Sampling of the next batch overlaps the sandbox run of the previous one
(`Executor.submit`), so the policy that samples batch t+1 has not yet seen batch t's update: a lag of
one step, as in asynchronous actor-critic (our choice; the paper does not describe its pipeline).
Every sample records the log-probs it was drawn with (`codegym.models.Sample`), so the updates know
the behaviour policy exactly: PPO-style agents put those log-probs in the ratio, REINFORCE-style ones
apply a truncated importance weight (``importance_cap``); ``pipeline=False`` removes the lag.
"""

from __future__ import annotations

import copy
import json
import os
import random
import shutil
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from codegym import rewards, scoring
from codegym.execution import Executor, default_executor
from codegym.problems import Problem
from codegym.agents import distributed
from codegym.agents.config import AgentConfig
from codegym.agents.rollout import Batch, Rollout, Trajectory, batch_from_samples
from codegym.models.policy import Sample

__all__ = ["Agent", "LMAgent", "TrainingDiverged", "resolve_problems"]

AGENT_FILE = "agent.json"
STATE_FILE = "state.pt"


class TrainingDiverged(RuntimeError):
    """A loss or gradient became NaN, infinite or larger than ``max_loss``; no update was applied."""


class InexactRollout(RuntimeError):
    """The first update of a training run scored its samples with log-probabilities other than those they were drawn with."""


RATIO_TOLERANCE = 1e-3
"""Largest ``initial_ratio_error`` (max |π/μ − 1| over the first update's actions, before any step)
accepted on the first update of `fit`, whose samples the current weights drew: above it, the
sampler and the update disagree about the distribution (in float32 they agree to about 1e-6)."""


def resolve_problems(problems: str | os.PathLike[str] | Sequence[Problem], split: str | None = None) -> list[Problem]:
    """Problems from a source name, a path, or a list of `Problem` (optionally one split)."""
    from codegym.envs import resolve_problems as resolve

    return resolve(problems, split)


class Agent:
    """An agent: ``fit`` on problems, ``generate`` completions, ``save`` to a directory.

    Subclasses set ``name`` and ``Config`` and implement `_train` (a generator yielding one dict of
    metrics per step), `generate`, `_save_files` and `_from_files`.
    """

    name: ClassVar[str]
    Config: ClassVar[type[AgentConfig]] = AgentConfig
    learns: ClassVar[bool] = True  # False for baselines whose `fit` changes nothing (clm)

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.steps_done = 0
        self.executor: Executor | None = None

    # -- training -------------------------------------------------------------------------------

    def fit(
        self,
        problems: str | os.PathLike[str] | Sequence[Problem],
        steps: int,
        *,
        split: str | None = None,
        executor: Executor | None = None,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        log: Callable[[dict[str, Any]], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Train for ``steps`` more steps on ``problems``; returns one metrics dict per step.

        With ``checkpoint_dir`` the agent is saved there every ``config.save_every`` steps and at the end.
        A diverged step raises `TrainingDiverged` before touching the weights, so the last checkpoint
        stays good.

        Data-parallel (inside a torch.distributed process group, see `codegym.agents.distributed`):
        every rank calls ``fit``; rank 0's weights are copied to all at the start, metrics are
        averaged over the ranks, and only rank 0 writes checkpoints.
        """
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        chosen = resolve_problems(problems, split)
        self.executor = executor or self.executor or default_executor()
        history: list[dict[str, Any]] = []
        last_saved = None  # the step of the last checkpoint written by this call
        if distributed.rank() != 0:
            checkpoint_dir = None
        distributed.broadcast_modules(self)
        try:
            for metrics in self._train(chosen, steps):
                self.steps_done += 1
                metrics = {"step": self.steps_done, **distributed.mean_metrics(metrics)}
                history.append(metrics)
                if log is not None:
                    log(metrics)
                every = self.config.save_every
                if checkpoint_dir is not None and every and self.steps_done % every == 0:
                    self.save(checkpoint_dir)
                    last_saved = self.steps_done
        except TrainingDiverged as exc:
            where = ""
            if checkpoint_dir is not None and Path(checkpoint_dir, AGENT_FILE).exists():
                saved_step = json.loads(Path(checkpoint_dir, AGENT_FILE).read_text())["steps_done"]
                where = f" The last good checkpoint is {checkpoint_dir} (step {saved_step})."
            raise TrainingDiverged(
                f"training diverged at step {self.steps_done + 1}: {exc}.{where} Lower the learning rate "
                "(e.g. --set lr=...) or max_grad_norm, then resume from the checkpoint (--resume)."
            ) from None
        if checkpoint_dir is not None and last_saved != self.steps_done:
            self.save(checkpoint_dir)
        return history

    def _train(self, problems: list[Problem], steps: int) -> Iterator[dict[str, Any]]:
        raise NotImplementedError

    def _optimizer_step(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor, params: Sequence[torch.nn.Parameter], what: str) -> None:
        """Backpropagate ``loss`` and step ``optimizer``, unless the loss or the gradient norm is not finite (or too large).

        Data-parallel, the ranks decide together (one diverged rank stops all) and the gradients are
        averaged over the ranks before clipping, so every rank takes the same step.
        """
        params = list(params)
        value = float(loss.detach())
        bad = not torch.isfinite(loss.detach()) or abs(value) > self.config.max_loss
        if distributed.any_rank(bad):
            optimizer.zero_grad(set_to_none=True)
            raise TrainingDiverged(f"{what} is {value}" if bad else f"{what} diverged on another rank")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(params)
        norm = torch.nn.utils.clip_grad_norm_(params, self.config.max_grad_norm)
        if not torch.isfinite(norm):
            optimizer.zero_grad(set_to_none=True)
            raise TrainingDiverged(f"the gradient norm of the {what} is {float(norm)}")
        optimizer.step()

    # -- sampling -------------------------------------------------------------------------------

    def generate(self, prompts: Sequence[str], n: int = 1, temperature: float | None = None, seed: int | None = None) -> list[list[str]]:
        """``n`` completions for each prompt; ``temperature`` None means the agent's own, 0 greedy."""
        raise NotImplementedError

    # -- checkpoints ----------------------------------------------------------------------------

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write the agent to ``directory`` (replaced atomically: a crash mid-save keeps the previous one)."""
        target = Path(directory)
        tmp = target.with_name(target.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        meta = {"agent": self.name, "config": {**self.config.to_dict(), "reward": rewards.name_of(self.config.reward)}, "steps_done": self.steps_done}
        (tmp / AGENT_FILE).write_text(json.dumps(meta, indent=2))
        self._save_files(tmp)
        old = target.with_name(target.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
        return target

    def _save_files(self, directory: Path) -> None:
        raise NotImplementedError

    @classmethod
    def _from_files(cls, directory: Path, config: AgentConfig) -> Agent:
        raise NotImplementedError


@dataclass
class _Pending:
    """Samples drawn for a batch, whose programs are running in the sandbox (or, multi-turn, the finished rollout)."""

    problems: list[Problem]
    samples: list[Sample]
    groups: list[int]
    future: Future[list[scoring.Score]] | None
    rollout: Rollout | None = None


class LMAgent(Agent):
    """An agent whose policy is a causal LM (`codegym.models.Policy`).

    Rollout collection: `_launch` draws ``batch_problems`` problems, samples ``samples_per_problem``
    completions each and submits their programs to the executor; `_collect` waits for the verdicts and
    scores them. `_train` runs the pipeline and calls the algorithm's `update` once per step.
    ``reference`` is a frozen copy of the initial policy (for KL penalties), made when ``needs_reference``.
    """

    needs_reference: ClassVar[bool] = False
    repairs: ClassVar[bool] = False  # trains on multi-turn repair episodes (config.env == "repair")

    def __init__(self, config: AgentConfig, policy: Any = "default", reference: torch.nn.Module | None = None) -> None:
        if config.env == "repair" and not self.repairs:
            from codegym.agents.config import ConfigError
            from codegym.agents.registry import AGENTS, agent_class

            able = [n for n in AGENTS if getattr(agent_class(n), "repairs", False)]
            raise ConfigError(f"{self.name} does not train on env=repair; agents that do: {', '.join(able)}")
        super().__init__(config)
        from codegym.models import load_policy

        self.policy = load_policy(policy) if isinstance(policy, (str, os.PathLike)) else policy
        self.device = self.policy.device
        self.autocast = self.device.type == "cuda"  # bfloat16 compute, float32 weights and optimizer state
        self.model = self.policy.model.float()
        self.tokenizer = self.policy.tokenizer
        vocab = self.tokenizer.get_vocab()
        self.eof_id = vocab.get("<eof>", self.tokenizer.eos_token_id)
        self.reference = reference
        if self.reference is None and self.wants_reference():
            self.reference = copy.deepcopy(self.model)
        if self.reference is not None:  # frozen: bfloat16 on CUDA is enough, it only gives log-probs
            self.reference.to(self.device, dtype=torch.bfloat16 if self.autocast else torch.float32).eval().requires_grad_(False)
        if config.max_new_tokens > self.policy.context // 2:
            warnings.warn(
                f"max_new_tokens={config.max_new_tokens} leaves at most {max(1, self.policy.context - config.max_new_tokens)} "
                f"prompt tokens of the model's {self.policy.context}-token context, so prompts lose their beginning; "
                f"lower it (e.g. --set max_new_tokens={self.policy.context // 2}) or use a model with a longer context",
                stacklevel=3,
            )
        if config.top_p < 1.0 and self.learns:
            warnings.warn(
                f"top_p={config.top_p} truncates the training samples' distribution, which the update does not model "
                "(it scores actions with log_softmax(logits / temperature)): the gradient is biased. Keep top_p=1.0 "
                "for training; eval_top_p sets the nucleus of evaluation.",
                stacklevel=3,
            )
        if self.learns:
            from codegym.agents.rollout import check_update_logits

            check_update_logits(self.model, self.device)  # refuses models whose logits the update would not reproduce
        torch.manual_seed(config.seed)  # the critic's and heads' initialisation
        self._rng = random.Random(config.seed)
        self._batches_sampled = 0
        self.timing = {"wall_s": 0.0, "exec_wait_s": 0.0, "episodes": 0}

    def wants_reference(self) -> bool:
        """Whether a frozen copy of the initial policy is needed (a KL penalty is on)."""
        return self.needs_reference

    # -- rollout collection ---------------------------------------------------------------------

    def _draw(self, problems: list[Problem]) -> list[Problem]:
        """``batch_problems`` problems: distinct when there are enough, else drawn with replacement.

        Data-parallel, every rank draws the same ``batch_problems × world_size`` problems (their
        generators stay equal, so rank 0's checkpoint fits all) and keeps its own share."""
        world = distributed.world_size()
        k = self.config.batch_problems * world
        if k <= len(problems):
            drawn = self._rng.sample(problems, k)
        else:
            drawn = [self._rng.choice(problems) for _ in range(k)]
        return drawn[distributed.rank() :: world]

    def sample(self, prompts: Sequence[str], n: int, temperature: float | None = None, top_p: float | None = None, seed: int | None = None) -> list[list[Sample]]:
        """``n`` samples (`codegym.models.Sample`) per prompt from the current policy (training settings unless given)."""
        cfg = self.config
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            return self.policy.sample(
                list(prompts),
                n=n,
                max_new_tokens=cfg.max_new_tokens,
                temperature=cfg.temperature if temperature is None else temperature,
                top_p=cfg.top_p if top_p is None else top_p,
                seed=seed,
            )

    def _launch(self, problems: list[Problem]) -> _Pending:
        """Sample completions for a batch of problems and start running their programs (returns at once;
        multi-turn episodes are played to the end first, as each turn needs the previous one's feedback)."""
        if self.config.env == "repair":
            rollout = self._repair_rollout(self._draw(problems))
            return _Pending(rollout.problems, rollout.samples, rollout.groups, None, rollout)
        chosen = self._draw(problems)
        n = self.config.samples_per_problem
        seed = (self.config.seed * 1_000_003 + self._batches_sampled) * distributed.world_size() + distributed.rank()
        self._batches_sampled += 1
        rows = self.sample([p.prompt for p in chosen], n, seed=seed)
        flat_problems = [p for p in chosen for _ in range(n)]
        samples = [s for row in rows for s in row]
        groups = [i for i in range(len(chosen)) for _ in range(n)]
        assert self.executor is not None
        future = scoring.submit(flat_problems, [s.text for s in samples], reward=self.config.reward, executor=self.executor, timeout=self.config.timeout, mode="body")
        return _Pending(flat_problems, samples, groups, future)

    def _collect(self, pending: _Pending) -> Rollout:
        """Wait for the verdicts of a launched batch and score them (time spent waiting is recorded)."""
        if pending.rollout is not None:
            self.timing["episodes"] += len(pending.rollout)
            return pending.rollout
        assert pending.future is not None
        start = time.perf_counter()
        scores = pending.future.result()
        self.timing["exec_wait_s"] += time.perf_counter() - start
        self.timing["episodes"] += len(scores)
        return Rollout(pending.problems, pending.samples, [s.result for s in scores], [s.reward for s in scores], pending.groups, [s.info for s in scores])

    def _train(self, problems: list[Problem], steps: int) -> Iterator[dict[str, Any]]:
        start = time.perf_counter()
        self.before_training(problems)
        pipeline = self.config.pipeline
        pending = self._launch(problems) if steps else None
        for i in range(steps):
            following = self._launch(problems) if pipeline and i + 1 < steps else None  # overlaps the sandbox run of `pending`
            assert pending is not None
            rollout = self._collect(pending)
            kept = rollout.subset(rollout.informative_groups()) if self.config.filter_groups else rollout
            # Data-parallel, every rank must take the same optimizer steps: a rank left with nothing
            # still updates (on an empty batch, a zero gradient).
            metrics = self.update(kept) if len(kept) or distributed.world_size() > 1 else {}
            if i == 0:
                self._check_exact(metrics.get("initial_ratio_error"))
            metrics.update(reward=sum(rollout.rewards) / len(rollout), pass_rate=rollout.pass_rate, episodes=len(rollout), **rollout.info_means(), **rollout.metrics)
            if self.config.filter_groups:
                metrics["filtered"] = len(rollout) - len(kept)
            now = time.perf_counter()
            self.timing["wall_s"] += now - start
            start = now
            yield metrics
            pending = following if pipeline else (self._launch(problems) if i + 1 < steps else None)

    def _check_exact(self, error: float | None) -> None:
        """Fail loudly when the first update of `fit` (on samples the current weights drew, so π/μ = 1)
        sees a ratio error above `RATIO_TOLERANCE`: the update is not scoring what was sampled.

        Not checked with ``top_p < 1`` (the nucleus is not modelled, as warned at construction); under
        bfloat16 autocast (CUDA) a warning instead of an error, as bfloat16 rounding alone can exceed
        the float32 tolerance (not measured here: codegym's tests run in float32 on CPU)."""
        if error is None or error <= RATIO_TOLERANCE or self.config.top_p < 1.0:
            return
        message = (
            f"initial_ratio_error = {error:.3g} on the first update (tolerance {RATIO_TOLERANCE:g}): the update's log-probabilities "
            "are not those the samples were drawn with, so the gradient is not the policy's. Likely causes: a model whose "
            "logits the update computes differently (codegym.agents.rollout.output_transform), a sampler other than "
            "codegym.models.Policy.sample, or a policy changed between sampling and the update."
        )
        if self.autocast:
            warnings.warn(message + " (bfloat16 autocast: rounding may account for part of it)", stacklevel=2)
            return
        raise InexactRollout(message)

    def _repair_rollout(self, chosen: list[Problem]) -> Rollout:
        """Multi-turn episodes (``env=repair``): ``samples_per_problem`` per drawn problem, each up to
        ``max_turns`` attempts; after a failed attempt the policy is prompted with `render_prompt` of
        the episode so far (its attempts and their feedback from the visible tests, `codegym.feedback`).

        Every attempt is a `Sample` with the exact ids it was fed and drew, so the feedback is in its
        prompt (never an action: no gradient) and its behaviour log-probs are exact. The reward is
        RLEF's: the preset on the last attempt, on all tests, minus ``turn_penalty`` per extra
        attempt; each attempt carries the episode's return from its turn on.
        """
        from codegym import feedback as fb
        from codegym.envs.repair import render_prompt

        cfg = self.config
        n = cfg.samples_per_problem
        episodes = [p for p in chosen for _ in range(n)]
        groups = [i for i in range(len(chosen)) for _ in range(n)]
        prompts = [fb.shown_prompt(p, cfg.visible_tests) for p in episodes]
        history: list[list[tuple[Sample, fb.Attempt]]] = [[] for _ in episodes]
        active = list(range(len(episodes)))
        assert self.executor is not None
        for turn in range(cfg.max_turns):
            if not active:
                break
            seed = (cfg.seed * 1_000_003 + self._batches_sampled) * distributed.world_size() + distributed.rank()
            self._batches_sampled += 1
            if turn == 0:  # one prompt per problem, its n samples share the prefill
                rows = self.sample([prompts[i] for i in range(0, len(episodes), n)], n, seed=seed)
                drawn = [s for row in rows for s in row]
            else:
                obs = [
                    {"prompt": prompts[i], "attempts": tuple(s.text for s, _ in history[i]), "feedback": tuple(a.feedback.text for _, a in history[i])}
                    for i in active
                ]
                drawn = [row[0] for row in self.sample([render_prompt(o) for o in obs], 1, seed=seed)]
            start = time.perf_counter()
            attempts = fb.check(
                [episodes[i] for i in active], [s.text for s in drawn], visible=cfg.visible_tests, form=cfg.feedback,
                reward=cfg.reward, executor=self.executor, timeout=cfg.timeout, mode="body",
            )  # fmt: skip
            self.timing["exec_wait_s"] += time.perf_counter() - start
            for i, s, a in zip(active, drawn, attempts):
                history[i].append((s, a))
            active = [i for i in active if not history[i][-1][1].score.result.passed]
        problems_, samples, results, rewards_, groups_, infos, trajectories = [], [], [], [], [], [], []
        for e, turns in enumerate(history):
            for t, (s, a) in enumerate(turns):
                problems_.append(episodes[e])
                samples.append(s)
                results.append(a.score.result)
                rewards_.append(turns[-1][1].score.reward - cfg.turn_penalty * (len(turns) - max(t, 1)))  # the return from this turn on
                groups_.append(groups[e])
                infos.append(a.score.info)
                trajectories.append(e)
        metrics: dict[str, float] = {"turns": sum(len(h) for h in history) / len(history)}
        for t in range(cfg.max_turns):  # pass@1 after turn t + 1: solved by then (an episode stops once solved)
            metrics[f"pass_after_turn_{t + 1}"] = sum(any(a.score.result.passed for _, a in h[: t + 1]) for h in history) / len(history)
        return Rollout(problems_, samples, results, rewards_, groups_, infos, trajectories, metrics)

    def batch(self, samples: Sequence[Trajectory]) -> Batch:
        """The exact ids and behaviour log-probs of ``samples`` as tensors on the agent's device."""
        return batch_from_samples(samples, self.tokenizer.pad_token_id, self.device)

    def before_training(self, problems: list[Problem]) -> None:
        """Called once at the start of `fit` (e.g. to pre-train a critic)."""

    def update(self, rollout: Rollout) -> dict[str, float]:
        """One learning step on ``rollout``; returns the step's metrics (losses, KL, ...)."""
        raise NotImplementedError

    # -- generation -----------------------------------------------------------------------------

    def generate(self, prompts: Sequence[str], n: int = 1, temperature: float | None = None, seed: int | None = None) -> list[list[str]]:
        """``n`` completions per prompt, sampled at the training temperature unless given (0: greedy) and ``eval_top_p``."""
        rows = self.sample(prompts, n, temperature=temperature, top_p=self.config.eval_top_p, seed=self.config.seed if seed is None else seed)
        return [[s.text for s in row] for row in rows]

    # -- checkpoints ----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything beyond the policy weights needed to resume (optimizers, critics, RNG, counters)."""
        return {"rng": self._rng.getstate(), "batches_sampled": self._batches_sampled, "timing": dict(self.timing)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._rng.setstate(state["rng"])
        self._batches_sampled = state["batches_sampled"]
        self.timing.update(state["timing"])

    def _save_files(self, directory: Path) -> None:
        self.model.save_pretrained(directory / "policy")
        self.tokenizer.save_pretrained(directory / "policy")
        if self.reference is not None:
            self.reference.save_pretrained(directory / "reference")
        torch.save(self.state_dict(), directory / STATE_FILE)

    @classmethod
    def _from_files(cls, directory: Path, config: AgentConfig) -> LMAgent:
        from transformers import AutoModelForCausalLM

        from codegym.models import load_policy

        policy = load_policy(directory / "policy")
        reference = None
        if (directory / "reference").is_dir():
            reference = AutoModelForCausalLM.from_pretrained(directory / "reference").to(policy.device)
        agent = cls(config, policy, reference=reference)
        agent.load_state_dict(torch.load(directory / STATE_FILE, map_location=agent.device, weights_only=False))
        return agent
