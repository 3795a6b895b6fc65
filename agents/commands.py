"""The ``codegym train`` and ``codegym evaluate`` commands (registered in `codegym.cli`).

torch and transformers are imported inside the functions so that ``codegym --help`` stays fast.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import typer

__all__ = ["evaluate", "train"]


class _Log:
    """Training metrics to TensorBoard when ``tensorboard`` is installed, and always to ``log.jsonl``."""

    def __init__(self, directory: Path, bar: Any) -> None:
        self.bar = bar
        self.file = (directory / "log.jsonl").open("a")
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer: Any = SummaryWriter(str(directory / "tensorboard"))
        except ImportError:
            self.writer = None

    def __call__(self, metrics: dict[str, Any]) -> None:
        self.file.write(json.dumps(metrics) + "\n")
        self.file.flush()
        if self.writer is not None:
            for key, value in metrics.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.writer.add_scalar(key, value, metrics["step"])
        self.bar.update(1)
        self.bar.set_postfix(reward=f"{metrics.get('reward', 0):+.3f}", pass_rate=f"{metrics.get('pass_rate', 0):.2f}")

    def close(self) -> None:
        self.file.close()
        if self.writer is not None:
            self.writer.close()


DISTRIBUTED_AGENTS = ("actor_critic", "grpo", "rloo")
"""Agents whose update is safe to run data-parallel (every rank takes the same optimizer steps)."""


def train(
    agent: str = typer.Option(..., "--agent", "-a", help="actor_critic, ppo_lm, ppo_sb3, coderl, grpo, rloo, rft or clm."),
    problems: str = typer.Option(..., "--problems", "-p", help="Problem source: a name (mbpp, humaneval, simple, basic) or a JSONL path."),
    split: Optional[str] = typer.Option(None, help="Train on this split only (default: every problem of the source)."),
    steps: int = typer.Option(100, help="Train until the agent has done this many steps in total (resumed runs included)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run directory: checkpoint/, log.jsonl, tensorboard/ (default: runs/AGENT)."),
    preset: str = typer.Option("default", help="Hyperparameter preset: tiny, default, or paper (where the paper gives values)."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Override a setting, key=value (repeatable), e.g. --set lr=1e-5."),
    config: Optional[Path] = typer.Option(None, "--config", exists=True, dir_okay=False, help="YAML file of settings (applied before --set)."),
    policy: str = typer.Option("default", help="The initial policy: 'default' (shipped model), a model directory or a hub name."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoint (its settings, then --set on top)."),
    distributed: bool = typer.Option(
        False, "--distributed",
        help=f"Data-parallel training with torch.distributed ({', '.join(DISTRIBUTED_AGENTS)}): starts --nproc local "
        "processes, or is one rank when launched by torchrun.",
    ),
    nproc: Optional[int] = typer.Option(None, "--nproc", min=1, help="With --distributed: local processes (default: one per GPU, else 2)."),
    env: Optional[str] = typer.Option(
        None, "--env", help="synthesis (one program per episode, the default) or repair (multi-turn: retry after the visible tests' feedback; grpo, rloo, actor_critic)."
    ),
    max_turns: Optional[int] = typer.Option(None, "--max-turns", min=1, help="With --env repair: the most attempts per episode (default 3)."),
) -> None:
    """Train an agent on problems, with checkpoints, a progress bar and logs; prints a JSON summary last."""
    from codegym.agents.config import ConfigError

    if max_turns is not None and env is None:
        env = "repair"  # --max-turns alone means repair episodes
    extra = ([f"env={env}"] if env is not None else []) + ([f"max_turns={max_turns}"] if max_turns is not None else [])
    job = _TrainJob(agent, problems, split, steps, out or Path("runs") / agent, preset, extra + list(set_ or []), config, policy, resume)
    try:
        if distributed:
            if agent not in DISTRIBUTED_AGENTS:
                raise typer.BadParameter(f"--distributed trains {', '.join(DISTRIBUTED_AGENTS)}, not {agent!r}", param_hint="--agent")
            from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

            from codegym.agents import distributed as dist
            from codegym.agents.config import build_config, parse_assignments
            from codegym.agents.registry import agent_class

            build_config(agent_class(agent).Config, preset, parse_assignments(set_), config)  # bad settings: say so before starting ranks
            try:
                summary = dist.run(_train_job, job, nproc=nproc)
            except ChildFailedError as exc:
                message = exc.get_first_failure()[1].message
                message = message.get("message", message) if isinstance(message, dict) else message
                typer.echo(f"error: a training process failed (its traceback is above): {message}", err=True)
                raise typer.Exit(1) from None
        else:
            if nproc is not None:
                raise typer.BadParameter("--nproc goes with --distributed", param_hint="--nproc")
            summary = _train_job(job)
    except (ConfigError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from None
    except _Diverged as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if summary is not None:  # None on ranks other than 0 under torchrun
        typer.echo(json.dumps(summary))


@dataclass(frozen=True)
class _TrainJob:
    """The ``train`` command's settings, as one picklable value (sent to each rank by `distributed.run`)."""

    agent: str
    problems: str
    split: Optional[str]
    steps: int
    out: Path
    preset: str
    set_: list[str]
    config: Optional[Path]
    policy: str
    resume: bool


class _Diverged(RuntimeError):
    """Training diverged (the message says what to do)."""


def _train_job(job: _TrainJob) -> dict[str, Any] | None:
    """Build or resume the agent, train it, save it; the summary (None on ranks other than 0)."""
    from tqdm.auto import tqdm

    from codegym import agents
    from codegym import problems as sources
    from codegym.agents import distributed
    from codegym.agents.config import parse_assignments
    from codegym.execution import Executor

    checkpoint = job.out / "checkpoint"
    overrides = parse_assignments(job.set_)
    if job.resume:
        if not (checkpoint / "agent.json").exists():
            raise typer.BadParameter(f"nothing to resume: {checkpoint} holds no checkpoint; run without --resume first", param_hint="--resume")
        learner = agents.load(checkpoint, **overrides)
        if learner.name != job.agent:
            raise typer.BadParameter(f"{checkpoint} holds a {learner.name!r} agent, not {job.agent!r}", param_hint="--agent")
    else:
        learner = agents.make(job.agent, policy=job.policy, preset=job.preset, config_file=job.config, **overrides)
    chosen = sources.load(job.problems, split=job.split)
    remaining = max(0, job.steps - learner.steps_done)
    lead = distributed.rank() == 0
    world = distributed.world_size()
    # each rank runs its own programs; the ranks on one machine share its cores
    local = int(os.environ.get("LOCAL_WORLD_SIZE", 1)) if world > 1 else 1
    executor = Executor(max(1, len(os.sched_getaffinity(0)) // local)) if world > 1 else None
    if lead:
        job.out.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=job.steps, initial=learner.steps_done, desc=f"train {job.agent}", unit="step", disable=not lead)
    log = _Log(job.out, bar) if lead else None
    try:
        history = learner.fit(chosen, remaining, executor=executor, checkpoint_dir=checkpoint, log=log)
    except agents.TrainingDiverged as exc:
        raise _Diverged(str(exc)) from None
    finally:
        if log is not None:
            log.close()
        bar.close()
        if executor is not None:
            executor.close()
    in_sync = distributed.in_sync(learner)
    if not in_sync:
        raise RuntimeError("the ranks' weights differ after training; this is a bug, please report it")
    if not lead:
        return None
    last = history[-1] if history else {}
    summary: dict[str, Any] = {"agent": job.agent, "steps_done": learner.steps_done, "checkpoint": str(checkpoint)}
    summary.update({k: last[k] for k in ("reward", "pass_rate") if k in last})
    if world > 1:
        summary.update(world_size=world, ranks_in_sync=in_sync)
    return summary


def evaluate(
    agent: Optional[str] = typer.Option(None, "--agent", "-a", help="Evaluate a fresh agent of this kind (e.g. clm: the pretrained policy)."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", "-c", help="Evaluate the agent saved here: the --out directory of `codegym train` (or its checkpoint/)."),
    problems: str = typer.Option(..., "--problems", "-p", help="Problem source: a name or a JSONL path."),
    split: Optional[str] = typer.Option(None, help="Evaluate on this split only, e.g. test (default: every problem of the source)."),
    n: int = typer.Option(10, help="Completions sampled per problem."),
    k: str = typer.Option("1,5,10", help="Comma-separated k values for pass@k (each at most n)."),
    temperature: Optional[float] = typer.Option(None, help="Sampling temperature (default: the agent's; 0 is greedy)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write per-task results (JSONL) here."),
    policy: str = typer.Option("default", help="With --agent: the policy to start from."),
    seed: int = typer.Option(0, help="Sampling seed."),
    repair: bool = typer.Option(False, "--repair", help="Self-repair instead of pass@k: --n episodes per problem with feedback of the visible tests; pass@1 after each turn, repair rate, resample@T."),
    max_turns: int = typer.Option(3, "--max-turns", min=1, help="With --repair: attempts per episode (T)."),
    visible_tests: Optional[int] = typer.Option(None, "--visible-tests", min=0, help="With --repair: the first K tests are visible (default: the prompt's examples)."),
) -> None:
    """pass@k of an agent with the unbiased estimator (or, with --repair, self-repair vs resampling at equal budget); the last line printed is a JSON object."""
    from codegym import agents
    from codegym import problems as sources

    if (agent is None) == (checkpoint is None):
        raise typer.BadParameter("give exactly one of --agent NAME or --checkpoint DIR")
    try:
        ks = [int(x) for x in k.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(f"--k expects integers separated by commas, got {k!r}") from None
    try:
        learner = agents.load(checkpoint) if checkpoint is not None else agents.make(agent, policy=policy)  # type: ignore[arg-type]
        chosen = sources.load(problems, split=split)
        if repair:
            summary = agents.evaluate_repair(learner, chosen, n=n, max_turns=max_turns, out=out, temperature=temperature, seed=seed, visible_tests=visible_tests)
            summary.update({"agent": learner.name, "checkpoint": str(checkpoint) if checkpoint else None})
            typer.echo(json.dumps(summary))
            return
        summary = agents.evaluate_agent(learner, chosen, n=n, ks=[x for x in ks if x <= n], out=out, temperature=temperature, seed=seed)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        raise typer.BadParameter(str(exc)) from None
    summary.update({f"pass@{x}": None for x in {*ks, 1, 10} if x > n})  # not estimable from n samples
    summary.update({"agent": learner.name, "checkpoint": str(checkpoint) if checkpoint else None})
    typer.echo(json.dumps(summary))
