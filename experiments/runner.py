"""One run of a comparison: train an agent to the sample budget, then evaluate it — resumably.

Everything a run produces lives in ``OUT/runs/RUN_ID/``:

- ``run.json``: the run's full configuration (agent, settings, training data, seed, budget);
- ``checkpoint/``: the agent, saved every ``save_every`` steps (an interrupted run resumes from it);
- ``log.jsonl``: one line per training step (samples so far, reward, pass rate, seconds so far);
- ``train.json``: written when training is done (wall clock, samples, problems);
- ``eval/SET.json`` and ``eval/SET.jsonl``: pass@k on an evaluation set, and per-task results;
- ``curve.jsonl``: the learning curve, when the preset asks for one: pass@1 on the first ``limit``
  problems of the curve set at a few points during training (one line per point). Training stops at
  each point, evaluates, and goes on. The initial policy's point (0 samples) is evaluated once per
  seed and curve set and shared by every run (``runs/initial-sSEED-SET-curve.json``, reused only for the same
  policy weights and tokenizer: `codegym.models.digest`); the last
  point, at the budget, is read from the final evaluation of that set, so the curve costs
  ``points - 1`` small evaluations;
- ``eval/passk-SET.json`` and ``.jsonl``: pass@k for k = 1…n on the first problems of a set, for the
  pass@k curves of a study (`passk_curve`; only clm's and the best RL agent's runs get one);
- ``eval/repair-SET.json`` and ``.jsonl``: self-repair against resampling on a set, for a study with
  ``evaluate: repair`` (`repair_eval`): the summary of `codegym.agents.evaluate_repair` and, per
  problem, the turn at which each episode was solved.

A rerun skips every file that is already there, so ``codegym compare`` resumes where it stopped.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codegym.agents.base import LMAgent
from codegym.execution import Executor
from codegym.models.digest import policy_digest
from codegym.problems import Problem
from codegym.experiments.plan import Run

__all__ = ["RunContext", "execute", "passk_curve", "repair_eval"]


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

    @classmethod
    def for_preset(cls, preset: Any, out: Path, executor: Executor, notes: list[str]) -> RunContext:
        """The context of a comparison at ``preset``'s scale writing to ``out``: data sets resolved
        once per process and cached (the ``+band`` ones also on disk under ``OUT/data``); what
        resolving drops is added to ``notes``."""
        from codegym.experiments.data import resolve

        cache: dict[tuple[tuple[str, ...], int | None], list[Problem]] = {}

        def data(specs: tuple[str, ...], limit: int | None) -> list[Problem]:
            if (specs, limit) not in cache:
                problems, dropped = resolve(specs, limit=limit, cache_dir=out / "data", executor=executor, band=preset.band_config())
                notes.extend(n for n in dropped if n not in notes)
                cache[specs, limit] = problems
            return cache[specs, limit]

        return cls(
            out=out,
            executor=executor,
            agent_preset=preset.agent_preset,
            model=preset.model,
            eval_n=int(preset.eval["n"]),
            eval_ks=tuple(preset.eval["ks"]),
            eval_temperature=float(preset.eval["temperature"]),
            train_data=lambda specs: data(specs, preset.train_limit),
            eval_data=lambda name: data(preset.eval_sets[name], None),
            eval_specs=preset.eval_sets,
        )

    def eval_spec(self, name: str) -> dict[str, Any]:
        """What an evaluation on set ``name`` depends on: a saved one with another spec is redone."""
        return {"data": list(self.eval_specs[name]), "n": self.eval_n, "ks": list(self.eval_ks), "temperature": self.eval_temperature}


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # parallel jobs may write the shared initial curve point at once
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
    if not agent.learns:  # its curve is flat: the initial policy's point
        _curve_point(agent, directory, ctx, run, 0)
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

    targets = curve_points(run.budget, run.curve)
    _curve_point(agent, directory, ctx, run, 0)
    if isinstance(agent, LMAgent) and agent.config.env != "repair":  # a fixed number of episodes per step: one `fit` per curve segment, so sampling overlaps execution
        per_step = agent.config.batch_problems * agent.config.samples_per_problem
        for target in targets:
            steps = math.ceil(max(0, target - agent.timing["episodes"]) / per_step)
            if steps:
                agent.fit(problems, steps, executor=ctx.executor, checkpoint_dir=checkpoint, log=log)
            _curve_point(agent, directory, ctx, run, target)  # the last point comes from the final evaluation
    else:  # samples per step vary (SB3 collects a fixed number of tokens; a repair episode is 1 to max_turns attempts): step until the budget is met
        for target in targets:
            while _short_of(agent, target):
                agent.fit(problems, 1, executor=ctx.executor, log=log)
                if agent.config.save_every and agent.steps_done % agent.config.save_every == 0:
                    agent.save(checkpoint)
            _curve_point(agent, directory, ctx, run, target)
        agent.save(checkpoint)
    _write_json(
        directory / "train.json",
        {"train_s": round(offset + time.perf_counter() - start, 3), "samples": agent.timing["episodes"], "steps": agent.steps_done, "problems": len(problems)},
    )
    return agent


def _short_of(agent: Any, target: int) -> bool:
    """Whether to take another training step towards ``target`` samples. SB3 steps until the target is
    met. Multi-turn repair (``env=repair``) counts generated programs, 1 to ``max_turns`` per episode,
    so stopping only past the target would give it up to a whole step's programs more than the
    single-turn agents it is compared with: it steps while the target is more than half its mean step
    away, which lands within half a step of the budget (``train.json`` records the count reached)."""
    done = agent.timing["episodes"]
    if not (isinstance(agent, LMAgent) and agent.config.env == "repair") or not agent.steps_done:
        return done < target
    return target - done > done / agent.steps_done / 2


def curve_points(budget: int, curve: dict[str, Any]) -> list[int]:
    """Training samples at which training pauses for a learning-curve point; the last is the budget."""
    points = int(curve.get("points", 0)) if curve else 0
    if points < 1:
        return [budget]
    return sorted({max(1, round(budget * i / points)) for i in range(1, points + 1)})


def _curve_point(agent: Any, directory: Path, ctx: RunContext, run: Run, target: int) -> None:
    """Evaluate pass@1 on the curve set once ``target`` training samples are reached (kept in curve.jsonl)."""
    curve = run.curve
    if not curve or not curve.get("points") or target >= run.budget:
        return
    from codegym.agents import evaluate_agent

    path = directory / "curve.jsonl"
    # the initial policy: evaluated once per seed and curve set, shared by all runs
    shared = ctx.out / "runs" / f"initial-s{run.seed}-{curve['set'].replace(':', '-')}-curve.json"
    spec = {"set": curve["set"], "data": list(ctx.eval_specs[curve["set"]]), "n": int(curve["n"]), "limit": curve.get("limit"),
            "temperature": ctx.eval_temperature}  # fmt: skip
    done = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    if any(e["target"] == target and e["spec"] == spec for e in done):
        return
    if target == 0 and agent.learns and agent.steps_done > 0:
        return  # resumed past the start under another curve setting: the initial point is not this agent's any more
    policy = policy_digest(ctx.model) if target == 0 else ""
    if target == 0 and shared.exists():
        initial = json.loads(shared.read_text())
        if initial["spec"] == spec and initial.get("policy") == policy:
            with path.open("a") as fh:
                fh.write(json.dumps({k: v for k, v in initial.items() if k not in ("model", "policy")}) + "\n")
            return
    problems = ctx.eval_data(curve["set"])[: curve.get("limit") or None]
    per_task = directory / "eval" / f"curve-{target}.jsonl"
    summary = evaluate_agent(agent, problems, n=spec["n"], ks=[1], executor=ctx.executor, out=per_task, temperature=ctx.eval_temperature, seed=run.seed)
    entry = {"target": target, "samples": agent.timing["episodes"] if agent.learns else target, "pass@1": summary["pass@1"], "spec": spec}
    with path.open("a") as fh:
        fh.write(json.dumps(entry) + "\n")
    if target == 0:
        _write_json(shared, {**entry, "model": ctx.model, "policy": policy})


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


def passk_curve(run: Run, ctx: RunContext, name: str, n: int, limit: int | None) -> dict[str, Any]:
    """pass@k for every k = 1…``n`` from ``n`` samples per problem on the first ``limit`` problems of
    evaluation set ``name``, by the trained agent of a finished run (read back when done before)."""
    from codegym.agents import evaluate_agent

    directory = ctx.out / "runs" / run.id
    path = directory / "eval" / f"passk-{name}.json"
    spec = {"data": list(ctx.eval_specs[name]), "n": n, "limit": limit, "temperature": ctx.eval_temperature}
    saved = _read_json(path)
    if saved and saved.get("spec") == spec:
        return saved
    agent = _train(run, directory, ctx, lambda: None)  # a finished run: its checkpoint (clm: the initial policy)
    problems = ctx.eval_data(name)[: limit or None]
    start = time.perf_counter()
    summary = evaluate_agent(agent, problems, n=n, ks=range(1, n + 1), executor=ctx.executor, out=directory / "eval" / f"passk-{name}.jsonl",
                             temperature=ctx.eval_temperature, seed=run.seed)  # fmt: skip
    summary.update(eval_s=round(time.perf_counter() - start, 3), spec=spec)
    _write_json(path, summary)
    return summary


def repair_eval(run: Run, ctx: RunContext, names: list[str], n: int, max_turns: int, limit: int | None) -> dict[str, dict[str, Any]]:
    """Self-repair against resampling (`codegym.agents.evaluate_repair`: ``n`` episodes of up to
    ``max_turns`` attempts per problem, feedback of the visible tests) on the first ``limit``
    problems of each evaluation set in ``names``, by the trained agent of a finished run; read back
    when done before with the same spec. Per set: the summary, plus ``per_task`` (task id → the turn
    each episode was solved at, None when never)."""
    from codegym.agents import evaluate_repair

    directory = ctx.out / "runs" / run.id
    out: dict[str, dict[str, Any]] = {}
    agent = None
    for name in names:
        path = directory / "eval" / f"repair-{name}.json"
        spec = {"data": list(ctx.eval_specs[name]), "n": n, "max_turns": max_turns, "limit": limit, "temperature": ctx.eval_temperature}
        summary = _read_json(path)
        if not summary or summary.get("spec") != spec:
            agent = agent or _train(run, directory, ctx, lambda: None)  # a finished run: its checkpoint (clm: the initial policy)
            problems = ctx.eval_data(name)[: limit or None]
            start = time.perf_counter()
            summary = evaluate_repair(agent, problems, n=n, max_turns=max_turns, executor=ctx.executor, out=directory / "eval" / f"repair-{name}.jsonl",
                                      temperature=ctx.eval_temperature, seed=run.seed)  # fmt: skip
            summary.update(eval_s=round(time.perf_counter() - start, 3), spec=spec)
            _write_json(path, summary)
        records = [json.loads(line) for line in (directory / "eval" / f"repair-{name}.jsonl").read_text().splitlines() if line.strip()]
        out[name] = {**summary, "per_task": {r["task_id"]: r["solved_at_turn"] for r in records}}
    return out


def collect(run: Run, directory: Path) -> dict[str, Any]:
    """A finished run's results from its files."""
    trained = _read_json(directory / "train.json") or {"train_s": 0.0, "samples": 0, "steps": 0, "problems": 0}
    scores = {name: _read_json(directory / "eval" / f"{name}.json") for name in run.eval_sets}
    history = _log_lines(directory / "log.jsonl", trained["steps"])
    per_task = {name: _per_task(directory / "eval" / f"{name}.jsonl") for name in run.eval_sets}
    curve_file = directory / "curve.jsonl"
    curve = [json.loads(line) for line in curve_file.read_text().splitlines()] if curve_file.exists() else []
    return {"id": run.id, **run.key, "train": trained, "scores": scores, "history": history, "per_task": per_task, "curve": curve}


def _per_task(path: Path) -> dict[str, float]:
    """Per task id: the share of the evaluation's samples that passed (the per-task pass@1 estimate)."""
    if not path.exists():
        return {}
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {r["task_id"]: r["correct"] / r["n"] for r in records}
