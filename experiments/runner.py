"""One run of a comparison: train an agent to the sample budget, then evaluate it — resumably.

Everything a run produces lives in ``OUT/runs/RUN_ID/``:

- ``run.json``: the run's full configuration (agent, settings, training data, seed, budget);
- ``checkpoint/``: the agent, saved every ``save_every`` steps (an interrupted run resumes from it);
- ``log.jsonl``: one line per training step (samples so far, reward, pass rate, seconds so far);
- ``train.json``: written when training is done (wall clock, samples, problems);
- ``eval/SET.json`` and ``eval/SET.jsonl``: pass@k on an evaluation set, and per-task results.

A rerun skips every file that is already there, so ``codegym compare`` resumes where it stopped.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codegym.agents.base import LMAgent
from codegym.execution import Executor
from codegym.problems import Problem
from codegym.experiments.plan import Run

__all__ = ["RunContext", "execute"]


@dataclass
class RunContext:
    """What every run of one comparison shares: where files go, the sandbox, the data, the scale."""

    out: Path
    executor: Executor
    agent_preset: str
    model: str
    eval_n: int
    eval_ks: tuple[int, ...]
    eval_temperature: float
    train_data: Callable[[tuple[str, ...]], list[Problem]]
    eval_data: Callable[[str], list[Problem]]
    eval_specs: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def eval_spec(self, name: str) -> dict[str, Any]:
        """What an evaluation on set ``name`` depends on: a saved one with another spec is redone."""
        return {"data": list(self.eval_specs[name]), "n": self.eval_n, "ks": list(self.eval_ks), "temperature": self.eval_temperature}


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


def _log_lines(path: Path, upto_step: int) -> list[dict[str, Any]]:
    """The log's entries up to ``upto_step`` (later ones belong to steps lost with an interruption)."""
    if not path.exists():
        return []
    entries = []
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if entry.get("step", 0) <= upto_step:
            entries.append(entry)
    return entries


def _train(run: Run, directory: Path, ctx: RunContext, on_step: Callable[[], None]) -> Any:
    """The agent trained to the run's budget (resumed from its checkpoint when there is one)."""
    from codegym import agents

    checkpoint = directory / "checkpoint"
    if (checkpoint / "agent.json").exists():
        agent = agents.load(checkpoint)
    else:
        agent = agents.make(run.agent, policy=ctx.model, preset=ctx.agent_preset, **{**run.settings, "seed": run.seed})
    if (directory / "train.json").exists() or not agent.learns:
        return agent
    log_path = directory / "log.jsonl"
    history = _log_lines(log_path, agent.steps_done)
    log_path.write_text("".join(json.dumps(e) + "\n" for e in history))
    problems = ctx.train_data(run.train)
    offset = history[-1]["elapsed_s"] if history else 0.0
    start = time.perf_counter()

    def log(metrics: dict[str, Any]) -> None:
        entry = {**metrics, "samples": agent.timing["episodes"], "elapsed_s": round(offset + time.perf_counter() - start, 3)}
        with log_path.open("a") as fh:
            fh.write(json.dumps(entry) + "\n")
        on_step()

    if isinstance(agent, LMAgent):  # a fixed number of episodes per step: one `fit`, so sampling overlaps execution
        per_step = agent.config.batch_problems * agent.config.samples_per_problem
        steps = math.ceil(max(0, run.budget - agent.timing["episodes"]) / per_step)
        agent.fit(problems, steps, executor=ctx.executor, checkpoint_dir=checkpoint, log=log)
    else:  # episodes per step vary (SB3 collects a fixed number of tokens): step until the budget is met
        while agent.timing["episodes"] < run.budget:
            agent.fit(problems, 1, executor=ctx.executor, log=log)
            if agent.config.save_every and agent.steps_done % agent.config.save_every == 0:
                agent.save(checkpoint)
        agent.save(checkpoint)
    _write_json(
        directory / "train.json",
        {"train_s": round(offset + time.perf_counter() - start, 3), "samples": agent.timing["episodes"], "steps": agent.steps_done, "problems": len(problems)},
    )
    return agent


def execute(run: Run, ctx: RunContext, on_step: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """Train and evaluate ``run`` (skipping what is already on disk); returns its results."""
    directory = ctx.out / "runs" / run.id
    (directory / "eval").mkdir(parents=True, exist_ok=True)
    _write_json(directory / "run.json", {**run.key, "id": run.id, "eval_sets": list(run.eval_sets)})
    todo = [name for name in run.eval_sets if (_read_json(directory / "eval" / f"{name}.json") or {}).get("spec") != ctx.eval_spec(name)]
    agent = None
    if todo or not (directory / "train.json").exists():
        agent = _train(run, directory, ctx, on_step)
    for name in todo:
        from codegym.agents import evaluate_agent

        start = time.perf_counter()
        problems = ctx.eval_data(name)
        summary = evaluate_agent(
            agent, problems, n=ctx.eval_n, ks=ctx.eval_ks, executor=ctx.executor,
            out=directory / "eval" / f"{name}.jsonl", temperature=ctx.eval_temperature, seed=run.seed,
        )  # fmt: skip
        summary["eval_s"] = round(time.perf_counter() - start, 3)
        summary["spec"] = ctx.eval_spec(name)
        _write_json(directory / "eval" / f"{name}.json", summary)
    return collect(run, directory)


def collect(run: Run, directory: Path) -> dict[str, Any]:
    """A finished run's results from its files."""
    trained = _read_json(directory / "train.json") or {"train_s": 0.0, "samples": 0, "steps": 0, "problems": 0}
    scores = {name: _read_json(directory / "eval" / f"{name}.json") for name in run.eval_sets}
    history = _log_lines(directory / "log.jsonl", trained["steps"])
    return {"id": run.id, **run.key, "train": trained, "scores": scores, "history": history}
