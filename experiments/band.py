"""Difficulty-band selection: keep the problems a policy sometimes, but not always, solves.

A policy that never solves a problem gets no learning signal from it, and one that always solves it
has nothing left to learn there (DAPO's dynamic sampling and SimpleRL-Zoo filter their training
problems for this reason). `pass_rates` estimates each problem's pass rate under a policy from
``samples`` completions at temperature 0.8, run against the problem's tests in the sandbox;
`in_band` keeps those with ``low < p < high`` (``0 < p < 1`` by default). It is done once, offline:

    codegym band basic:train+examples --policy default --samples 8 --out band.jsonl

writes the kept problems as codegym JSONL (each with ``metadata["pass_rate"]``) and every problem's
rate to ``band.rates.jsonl``. In a comparison, a data spec ending in ``+band`` (``basic:train+band``)
does the same with the preset's initial policy and caches the result with the other data
(`codegym.experiments.data`).

Estimates from 8 samples are coarse (a problem with p = 0.05 shows no success in 8 samples two
times in three); the band is a filter for training data, not a measurement.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

import typer

from codegym import scoring
from codegym.problems import Problem

__all__ = ["BandConfig", "band", "in_band", "pass_rates", "sample_completions", "select"]


@dataclass(frozen=True)
class BandConfig:
    """How pass rates are estimated and which problems are kept.

    Attributes:
        policy: the policy to estimate under: ``default`` (shipped), a model directory or a hub name.
        samples: completions per problem (the rate's denominator).
        low, high: keep problems with ``low < p < high`` (``low <= p <= high`` with ``inclusive``).
        inclusive: include the bounds.
        temperature: sampling temperature (0.8: the temperature of evaluation and of training).
        max_new_tokens: longest completion, in tokens (match the training runs' setting).
        seed: sampling seed (results are reproducible for the same problems and settings).
        timeout: seconds per program in the sandbox.
    """

    policy: str = "default"
    samples: int = 8
    low: float = 0.0
    high: float = 1.0
    inclusive: bool = False
    temperature: float = 0.8
    max_new_tokens: int = 64
    seed: int = 0
    timeout: float = 5.0

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise ValueError("band: samples must be at least 1")
        if not 0.0 <= self.low <= self.high <= 1.0:
            raise ValueError(f"band: need 0 <= low <= high <= 1, got low={self.low}, high={self.high}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sample_completions(policy: Any, prompts: Sequence[str], n: int, *, temperature: float, max_new_tokens: int, seed: int) -> list[list[str]]:
    """``n`` completions per prompt: the one place where band selection samples from a policy, as
    training samples do (``top_p = 1``), so the rates are those RL will see."""
    rows = policy.sample(list(prompts), n=n, max_new_tokens=max_new_tokens, temperature=temperature, top_p=1.0, seed=seed)
    return [[s.text for s in row] for row in rows]


def pass_rates(problems: Sequence[Problem], config: BandConfig, *, policy: Any = None, executor: Any = None, progress: bool = True, chunk: int = 16) -> list[float]:
    """Each problem's share of ``config.samples`` completions that pass all its tests.

    ``policy`` (default: ``load_policy(config.policy)``) samples; programs run in ``executor``
    (default: a shared sandbox pool). Problems go in chunks of ``chunk`` so the progress bar moves.
    """
    from tqdm.auto import tqdm  # not rich: `codegym compare` computes bands under its own rich progress display

    from codegym.execution import Executor

    policy = policy if policy is not None else _load_policy(config.policy)
    own = executor is None
    executor = executor or Executor()
    rates: list[float] = []
    try:
        with tqdm(total=len(problems), desc="band: pass rates", unit="problem", disable=not progress) as bar:
            for start in range(0, len(problems), chunk):
                part = problems[start : start + chunk]
                rows = sample_completions(policy, [p.prompt for p in part], config.samples, temperature=config.temperature,
                                          max_new_tokens=config.max_new_tokens, seed=config.seed + start)  # fmt: skip
                flat = [(p, c) for p, row in zip(part, rows) for c in row]
                scores = scoring.score([p for p, _ in flat], [c for _, c in flat], reward="binary", executor=executor, timeout=config.timeout, mode="body")
                results = [s.result for s in scores]
                n = config.samples
                rates += [sum(r.passed for r in results[i * n : (i + 1) * n]) / n for i in range(len(part))]
                bar.update(len(part))
    finally:
        if own:
            executor.close()
    return rates


def _load_policy(name: str) -> Any:
    from codegym.models import load_policy

    return load_policy(name)


def in_band(rate: float, config: BandConfig) -> bool:
    """Whether a pass rate lies inside the band."""
    if config.inclusive:
        return config.low <= rate <= config.high
    return config.low < rate < config.high


def select(problems: Sequence[Problem], rates: Sequence[float], config: BandConfig) -> list[Problem]:
    """The problems inside the band, each with its rate in ``metadata["pass_rate"]``."""
    from dataclasses import replace

    return [replace(p, metadata={**p.metadata, "pass_rate": r}) for p, r in zip(problems, rates) if in_band(r, config)]


def write_rates(path: Path, problems: Sequence[Problem], rates: Sequence[float], config: BandConfig) -> None:
    """One JSON line per problem: task id, pass rate, samples, whether it is in the band."""
    lines = [json.dumps({"task_id": p.task_id, "pass_rate": r, "samples": config.samples, "in_band": in_band(r, config)}) for p, r in zip(problems, rates)]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in lines))
    tmp.replace(path)


def rates_path(out: Path) -> Path:
    """Where the per-problem rates of a band file go: ``FILE.rates.jsonl`` next to ``FILE.jsonl``."""
    name = out.name.removesuffix(".gz").removesuffix(".jsonl")
    return out.with_name(name + ".rates.jsonl")


def band(
    source: str = typer.Argument(..., help="Problems: a name or JSONL path, or a data spec such as basic:train@200+examples."),
    out: Path = typer.Option(..., "--out", "-o", help="Codegym JSONL of the problems inside the band; rates of all go to OUT's stem + .rates.jsonl."),
    policy: str = typer.Option("default", "--policy", help="Policy to estimate pass rates under: 'default', a model directory or a hub name."),
    samples: int = typer.Option(8, "--samples", "-n", min=1, help="Completions per problem."),
    low: float = typer.Option(0.0, "--low", help="Keep problems with pass rate above this."),
    high: float = typer.Option(1.0, "--high", help="Keep problems with pass rate below this."),
    inclusive: bool = typer.Option(False, "--inclusive", help="Keep rates equal to --low or --high too (--low 0 --high 1 --inclusive keeps all: rates only)."),
    temperature: float = typer.Option(0.8, help="Sampling temperature."),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens", help="Longest completion, in tokens."),
    seed: int = typer.Option(0, help="Sampling seed."),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", help="Sandbox workers (default: one per CPU)."),
) -> None:
    """Estimate each problem's pass rate under a policy and keep those inside a band (default 0 < p < 1); prints a JSON summary last."""
    from codegym.execution import Executor
    from codegym.experiments.data import parse_spec, resolve

    try:
        config = BandConfig(policy, samples, low, high, inclusive, temperature, max_new_tokens, seed)
        if parse_spec(source).band:
            raise ValueError("SOURCE already ends in +band; give the problems to filter, e.g. basic:train")
        with Executor(workers=workers) as executor:
            problems, notes = resolve([source], cache_dir=out.parent / ".band-cache", executor=executor)
            rates = pass_rates(problems, config, executor=executor)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    from codegym.problems import write_jsonl

    kept = select(problems, rates, config)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(kept, out)
    write_rates(rates_path(out), problems, rates, config)
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    summary = {"source": source, "problems": len(problems), "kept": len(kept), "mean_pass_rate": sum(rates) / max(1, len(rates)),
               "never_solved": sum(r == 0 for r in rates), "always_solved": sum(r == 1 for r in rates), "out": str(out),
               "rates": str(rates_path(out)), **{k: v for k, v in config.to_dict().items() if k != "timeout"}}  # fmt: skip
    typer.echo(json.dumps(summary))
