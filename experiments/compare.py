"""``codegym compare``: train agents on the same data with the same sample budget and compare them.

Answers the questions of PAPER.md (one table each, see ``experiments/studies.yaml``) at the scale of
a preset (``experiments/presets/``): ``smoke`` (CI), ``quick`` (the README's first command, minutes),
``standard`` (the procgen study, 3 seeds, hours on 2 CPU cores), ``tune`` (learning-rate sweeps on
validation problems) and ``paper`` (a GPU and a real code model, ``--model``). Results go to ``--out``: per-study tables (Markdown, CSV, JSON), plots (PNG + data),
``report.md`` (and ``report_STUDY.md`` per study), and ``runs/`` with every run's checkpoint, log and evaluation. Rerunning the same
command resumes: finished runs and evaluations are read back, an interrupted run continues from its
last checkpoint.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import time
from pathlib import Path
from typing import Any, Optional

import typer
import yaml

__all__ = ["compare", "run_comparison"]


def _machine() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"cpus": len(os.sched_getaffinity(0)), "platform": platform.platform(), "processor": platform.processor() or platform.machine()}
    try:
        info["ram_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name"))
        info["processor"] = model
    except (OSError, StopIteration):
        pass
    info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return info


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("codegym", "torch", "transformers", "gymnasium", "stable-baselines3"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def run_comparison(
    preset_name: str,
    out: Path,
    *,
    agents: list[str] | None = None,
    train: list[str] | None = None,
    seeds: list[int] | None = None,
    studies: list[str] | None = None,
    model: str | None = None,
    workers: int | None = None,
    jobs: int = 1,
    threads: int = 1,
    command: str = "",
    console: Any = None,
) -> dict[str, Any]:
    """Run (or resume) a comparison into ``out``; returns ``{"tables": [...], "report": path, ...}``.

    ``jobs``: runs (and pass@k curves, repair evaluations) at once, each in a worker process with
    ``threads`` torch threads and a sandbox of ``workers`` processes (default: the CPUs shared out
    among the jobs); 1 runs everything in this process. Results do not depend on it.
    """
    from dataclasses import replace

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from codegym.agents.registry import AGENTS
    from codegym.execution import Executor
    from codegym.experiments.data import parse_spec
    from codegym.experiments.jobs import Call, Jobs, prepare
    from codegym.experiments.plan import load_preset, load_studies, plan, study_eval_sets
    from codegym.experiments.report import build_tables, write_outputs
    from codegym.experiments.runner import RunContext

    console = console or Console(stderr=True)
    preset = load_preset(preset_name)
    changes: dict[str, Any] = {}
    if train:
        changes["train"] = tuple(train)
    if seeds:
        changes["seeds"] = tuple(seeds)
    if studies:
        changes["studies"] = tuple(studies)
    if model:
        changes["model"] = model
    preset = replace(preset, **changes)
    unknown = sorted(set(agents or []) - set(AGENTS))
    if unknown:
        raise ValueError(f"unknown agent(s) {', '.join(unknown)}; choose from {', '.join(AGENTS)}")
    all_studies = load_studies()
    runs, cells = plan(preset, all_studies, agents)
    if not runs:
        raise ValueError("nothing to run: no variant of the chosen studies uses the chosen --agents")
    for spec in {s for r in runs for s in r.train} | {s for specs in preset.eval_sets.values() for s in specs}:
        parse_spec(spec)  # a mistyped spec fails now, not after the first hour of runs

    out.mkdir(parents=True, exist_ok=True)
    config = {"preset": preset.to_dict(), "agents": agents, "command": command}
    (out / "config.json").write_text(json.dumps(config, indent=2))
    saved = {k: v for k, v in preset.to_dict().items() if k != "name"}  # `--preset OUT/preset.yaml` reruns exactly this
    (out / "preset.yaml").write_text(f"# codegym compare --preset {preset.name}, as run\n" + yaml.safe_dump(saved, sort_keys=False, allow_unicode=True))
    started = time.perf_counter()
    notes: list[str] = []
    with Executor(workers=workers) as executor:
        ctx = RunContext.for_preset(preset, out, executor, notes)
        if jobs > 1:
            prepare(ctx, runs)  # every +band cache on disk before the workers read it
        results: dict[str, dict[str, Any]] = {}
        by_id = {run.id: run for run in runs}
        worker_sandbox = workers or max(1, len(os.sched_getaffinity(0)) // jobs)
        with Jobs(ctx, jobs, preset=preset, workers=worker_sandbox, threads=threads) as pool, \
                Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console) as bar:
            overall = bar.add_task(f"compare --preset {preset.name}" + (f", {jobs} jobs" if jobs > 1 else ""), total=len(runs))
            calls: list[Call] = [("execute", run, ()) for run in runs]

            def running(i: int) -> None:
                bar.update(overall, description=f"{calls[i][1].agent} seed {calls[i][1].seed}")

            for i, result in pool.map(calls, started=running):
                results[calls[i][1].id] = result
                bar.advance(overall)
            for name in preset.studies:  # studies scored by repair episodes instead of pass@k
                study = all_studies[name]
                if study.evaluate != "repair":
                    continue
                size = preset.study_repair(name)
                calls = [("repair_eval", by_id[c.run_id], (list(study_eval_sets(study, preset)), size["n"], study.max_turns, size["limit"]))
                         for c in cells if c.study == name]  # fmt: skip
                episodes = bar.add_task(f"{name}: repair episodes", total=len(calls))
                for i, scored in pool.map(calls):
                    results[calls[i][1].id].setdefault("repair", {})[name] = scored
                    bar.advance(episodes)
            for table in build_tables(preset, all_studies, cells, results):  # pass@k curves of clm and the best RL agent, where asked for
                labels = [label for label in table.passk_labels() if label is not None] if table.passk_spec else []
                if len(labels) < 2:
                    continue
                spec = table.passk_spec
                todo = [(c, name) for c in cells if c.study == table.study.name and c.label in labels for name in spec["sets"]]
                calls = [("passk_curve", by_id[c.run_id], (name, int(spec["n"]), spec.get("limit"))) for c, name in todo]
                curves = bar.add_task(f"{table.study.name}: pass@k curves", total=len(calls))
                for i, curve in pool.map(calls):
                    cell, name = todo[i]
                    results[cell.run_id].setdefault("passk", {})[name] = curve
                    bar.advance(curves)
    header = _header(preset, command, runs, results, time.perf_counter() - started)
    tables = build_tables(preset, all_studies, cells, results)
    report = write_outputs(tables, out, header, notes)
    return {"tables": tables, "report": report, "runs": len(runs), "seconds": time.perf_counter() - started, "notes": notes}


def _header(preset: Any, command: str, runs: list[Any], results: dict[str, dict[str, Any]], seconds: float) -> str:
    machine = _machine()
    compute = sum(r["train"]["train_s"] + sum((s or {}).get("eval_s", 0.0) for s in r["scores"].values())
                  + sum(s["eval_s"] for study in r.get("repair", {}).values() for s in study.values()) for r in results.values())  # fmt: skip
    lines = [
        f"# codegym compare — preset `{preset.name}`",
        "",
        preset.description,
        "",
        f"Command: `{command}`" if command else "",
        f"Runs: {len(runs)} (seeds {', '.join(map(str, preset.seeds))}); sample budget {preset.budget} training episodes per run"
        + (f" ({', '.join(f'{k}: {v}' for k, v in preset.scale.items())})" if preset.scale else "") + "; "
        f"evaluation: {preset.eval['n']} samples per problem at temperature {preset.eval['temperature']}, pass@k by the unbiased estimator.",
        f"Training data: {', '.join(preset.train)}" + (f" (each capped at {preset.train_limit} problems)" if preset.train_limit else "")
        + "; evaluation sets: " + "; ".join(f"{k} = {', '.join(v)}" for k, v in preset.eval_sets.items()) + ".",
        f"Initial policy: `{preset.model}`; agent preset `{preset.agent_preset}` with {json.dumps(preset.settings)}"
        + (f"; per agent: {json.dumps(preset.agent_settings)}" if preset.agent_settings else "") + ".",
        f"Learning curves: pass@1 on `{preset.curve['set']}` (first {preset.curve.get('limit') or 'all'} problems, n = {preset.curve['n']}) "
        f"at {preset.curve['points']} points of training and at 0 samples." if preset.curve.get("points") else None,
        f"Preset notes: {preset.notes.strip()}" if preset.notes.strip() else None,
        f"Training and evaluation time of all runs, summed: {compute:.0f} s; wall clock of this invocation: {seconds:.0f} s "
        "(runs read back from an earlier invocation take no time).",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in _versions().items()) + ".",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()) + ".",
        "",
        "Cells are mean ± standard deviation over seeds (a single seed shows no spread). `train samples` is the",
        "number of training completions run against tests; `train s` and `eval s` are wall-clock seconds.",
        "The full configuration is in config.json; `codegym compare --preset preset.yaml` (the file next to this report)",
        "reruns it exactly; each run's own configuration is in runs/RUN_ID/run.json.",
    ]
    return "\n".join(line for line in lines if line is not None)


def _split(items: Optional[list[str]]) -> list[str] | None:
    if not items:
        return None
    return [x.strip() for item in items for x in item.split(",") if x.strip()]


def compare(
    preset: str = typer.Option("quick", "--preset", help="smoke (CI, <1 min), quick (procgen study, ~7 min), standard (procgen study, 3 seeds, 4,096/2,048 samples per run), tune (lr sweeps on validation), paper (GPU, --model), or a YAML file."),
    agents: Optional[list[str]] = typer.Option(None, "--agents", help="Only these agents, comma-separated (default: every agent of the preset's studies)."),
    problems: Optional[list[str]] = typer.Option(None, "--problems", help="Training data specs, comma-separated, e.g. mbpp:train,basic:train@500 (default: the preset's)."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Seeds, comma-separated, e.g. 0,1,2 (default: the preset's)."),
    studies: Optional[list[str]] = typer.Option(None, "--studies", help="Studies to run, comma-separated: procgen, agents, sb3, data, critic, replay, rewards, tests, lr, procgen_lr (default: the preset's)."),
    model: Optional[str] = typer.Option(None, "--model", help="Initial policy: 'default' (shipped), a model directory or a hub name."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output directory (default: runs/compare-PRESET). Rerun with the same one to resume."),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", help="Sandbox workers (default: one per CPU)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch CPU threads per job (default: half the CPUs over --jobs, at least 1, so the sandbox keeps the rest)."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Runs trained and evaluated at once, each in its own process (2 on 2 cores halves the wall clock of standard). Results do not depend on it."),
) -> None:
    """Train agents on the same data with the same sample budget, evaluate pass@k, write tables, plots and report.md."""
    import torch
    from rich.console import Console
    from rich.table import Table

    from transformers.utils import logging as hf_logging

    from codegym.agents import TrainingDiverged
    from codegym.experiments.report import display
    from codegym.models.policy import PolicyLoadError

    hf_logging.disable_progress_bar()  # one bar per weight load and save would bury ours
    console = Console(stderr=True)
    torch_threads = threads or max(1, len(os.sched_getaffinity(0)) // 2 // jobs)
    torch.set_num_threads(torch_threads)
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()] if seeds else None
    except ValueError:
        raise typer.BadParameter(f"--seeds expects integers separated by commas, got {seeds!r}") from None
    name = Path(preset).stem if preset.endswith((".yaml", ".yml")) else preset
    target = out or Path("runs") / f"compare-{name}"
    given = {"--preset": preset, "--agents": ",".join(_split(agents) or []), "--problems": ",".join(_split(problems) or []), "--seeds": seeds,
             "--studies": ",".join(_split(studies) or []), "--model": model, "--out": str(target), "--workers": workers, "--threads": threads, "--jobs": jobs if jobs > 1 else None}  # fmt: skip
    command = "codegym compare " + " ".join(f"{k} {shlex.quote(str(v))}" for k, v in given.items() if v not in (None, ""))
    try:
        outcome = run_comparison(preset, target, agents=_split(agents), train=_split(problems), seeds=seed_list,
                                 studies=_split(studies), model=model, workers=workers, jobs=jobs, threads=torch_threads, command=command, console=console)  # fmt: skip
    except (ValueError, PolicyLoadError) as exc:
        raise typer.BadParameter(str(exc)) from None
    except TrainingDiverged as exc:
        console.print(f"[red]error:[/red] {exc} Finished runs are kept in {target}; rerunning the command resumes.")
        raise typer.Exit(1) from None
    screen = Console()
    for table in outcome["tables"]:  # means only, to fit a terminal; report.md has the spread over seeds
        metrics = " / ".join(table.metrics)
        view = Table(title=table.study.title, title_justify="left", caption=f"cells: {metrics}, mean over seeds", caption_justify="left")
        view.add_column("variant", no_wrap=True)
        for name in table.eval_sets:
            view.add_column(display(name), justify="right", no_wrap=True)
        view.add_column("train s", justify="right")
        for label in table.labels:
            cells = [" / ".join(table.mean_text(label, f"{name} {m}") for m in table.metrics) for name in table.eval_sets]
            view.add_row(label, *cells, table.mean_text(label, "train s", digits=0))
        screen.print(view)
    for note in outcome["notes"]:
        console.print(f"[yellow]note:[/yellow] {note}")
    console.print(f"{outcome['runs']} runs in {outcome['seconds']:.0f} s; report: {outcome['report']}")
