"""The whole pipeline, resumable: sources → mine → explore (inputs + oracle) → select → emit → confirm.

`run` is what ``codegym generate-data`` calls. Every finished function (kept or skipped, with its
reason) is appended at once to ``OUT.progress.jsonl``, so an interrupted run loses nothing: a rerun
skips the functions already there and rewrites ``OUT`` (atomically, with `write_jsonl`) from all
kept problems at the end. ``generate`` is the same pipeline as an iterator, without files.

On a Ray cluster (an `Executor` with ``backend="ray"``), mining stays in this process (it reads the
sources, which may exist only here) and every later stage (explore, select, emit, confirm) runs on
the cluster: each chunk of ``explore.batch`` functions goes through the whole local pipeline on one
Ray actor, next to that actor's sandbox pool, and the chunks' results come back in input order. A
function's result depends only on the function and the seeded options, never on which functions
share its chunk, so the output is the same as the local run's.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codegym.data_gen.emit import EmitOptions, confirm, emit
from codegym.data_gen.mine import MinedFunction, MineOptions, Skipped, mine, mine_problems
from codegym.data_gen.oracle import ExploreOptions, explore
from codegym.data_gen.select import SelectOptions, select
from codegym.execution import Executor
from codegym.execution.ray_backend import RayBackend
from codegym.problems import Problem, available, load, write_jsonl

__all__ = ["Options", "Summary", "collect", "generate", "run", "write_report"]

PROBLEM_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz")


@dataclass(frozen=True)
class Options:
    """All pipeline settings, one dataclass per stage."""

    mine: MineOptions = field(default_factory=MineOptions)
    explore: ExploreOptions = field(default_factory=ExploreOptions)
    select: SelectOptions = field(default_factory=SelectOptions)
    emit: EmitOptions = field(default_factory=EmitOptions)
    max_functions: int | None = None


@dataclass
class Summary:
    """What a run did: problems kept, functions skipped per (stage, reason), time."""

    kept: int = 0
    resumed: int = 0
    skipped: Counter[tuple[str, str]] = field(default_factory=Counter)
    mutation_scores: list[float] = field(default_factory=list)
    coverages: list[float] = field(default_factory=list)
    seconds: float = 0.0
    functions: int = 0

    def add(self, item: Problem | Skipped) -> None:
        if isinstance(item, Skipped):
            self.skipped[(item.stage, item.reason)] += 1
            return
        self.kept += 1
        self.mutation_scores.append(float(item.metadata.get("mutation_score", 0.0)))
        self.coverages.append(float(item.metadata.get("branch_coverage", 0.0)))

    def as_dict(self) -> dict[str, Any]:
        n = max(1, len(self.mutation_scores))
        return {
            "kept": self.kept,
            "resumed": self.resumed,
            "functions": self.functions,
            "skipped": {f"{s}: {r}": c for (s, r), c in self.skipped.most_common()},
            "mean_mutation_score": sum(self.mutation_scores) / n,
            "mean_branch_coverage": sum(self.coverages) / n,
            "seconds": self.seconds,
        }


def is_problem_source(source: str) -> bool:
    """A problems file or a data-set name (regenerate its tests) rather than code to mine."""
    path = Path(source)
    if path.is_file():
        return path.name.endswith(PROBLEM_SUFFIXES)
    return source in available()


def collect(sources: Iterable[str], options: Options = Options()) -> Iterator[MinedFunction | Skipped]:
    """Mined functions (or problems to regenerate) from every source, duplicates removed."""
    seen: set[str] = set()
    for source in sources:
        stream = mine_problems(load(source)) if is_problem_source(source) else mine([source], options.mine)
        for item in stream:
            if isinstance(item, MinedFunction):
                fingerprint = item.program if item.task_id is None else item.key
                if fingerprint in seen:
                    yield Skipped(item.key, "mine", "duplicate function")
                    continue
                seen.add(fingerprint)
            yield item


def generate(
    functions: Iterable[MinedFunction | Skipped], executor: Executor, options: Options = Options()
) -> Iterator[Problem | Skipped]:
    """Problems (or reasons to skip) for already mined functions, in batches on all workers.

    With a Ray executor the chunks run on the cluster's actors (see the module docstring).
    """
    if isinstance(executor.backend, RayBackend):
        return _generate_on_ray(functions, executor.backend, executor, options)
    return _generate_here(functions, executor, options)


def _generate_here(
    functions: Iterable[MinedFunction | Skipped], executor: Executor, options: Options
) -> Iterator[Problem | Skipped]:
    explored = explore(functions, executor, options.explore)
    problems = emit(select(explored, options.select), options.emit)
    return confirm(problems, executor, options.emit, batch=options.explore.batch)


def _generate_on_ray(
    functions: Iterable[MinedFunction | Skipped], backend: RayBackend, executor: Executor, options: Options
) -> Iterator[Problem | Skipped]:
    def chunks() -> Iterator[tuple[list[MinedFunction | Skipped], Options]]:
        stream = iter(functions)
        while chunk := list(itertools.islice(stream, options.explore.batch)):
            yield chunk, options

    for items in backend.map(_generate_chunk, chunks(), executor.limits):
        yield from items


def _generate_chunk(executor: Executor, chunk: tuple[list[MinedFunction | Skipped], Options]) -> list[Problem | Skipped]:
    """One chunk through the whole pipeline, on a Ray actor with ``executor`` over its own pool."""
    functions, options = chunk
    return list(_generate_here(functions, executor, options))


def _progress_path(out: Path) -> Path:
    return out.with_name(out.name + ".progress.jsonl")


def _read_progress(path: Path) -> list[dict[str, Any]]:
    entries = []
    if not path.exists():
        return entries
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut short by a crash: that function is redone
                continue
    return entries


def _entry(item: Problem | Skipped) -> dict[str, Any]:
    if isinstance(item, Skipped):
        return {"key": item.key, "skipped": [item.stage, item.reason, item.detail], "facts": item.facts}
    return {"key": item.metadata.get("function_key", item.task_id), "problem": item.to_dict()}


def run(
    sources: Iterable[str],
    out: str | os.PathLike[str],
    options: Options = Options(),
    workers: int | None = None,
    executor: Executor | None = None,
    fresh: bool = False,
    on_start: Callable[[int], None] | None = None,
    on_item: Callable[[Problem | Skipped], None] | None = None,
    functions: Iterable[MinedFunction | Skipped] | None = None,
    report: str | os.PathLike[str] | None = None,
) -> Summary:
    """Generate problems from ``sources`` into ``out``, resuming from ``out``'s progress file.

    ``functions`` replaces ``sources`` with already mined functions (the template-made set).
    ``report``: a JSONL file with one line per skipped function (`write_report`).

    ``on_start(n)`` is told how many functions will be explored, ``on_item`` sees each result
    (progress bars). Returns the `Summary` of everything in the output, resumed work included.
    """
    started = time.perf_counter()
    out = Path(out)
    progress = _progress_path(out)
    if fresh:
        progress.unlink(missing_ok=True)
    done = {e["key"]: e for e in _read_progress(progress) if "key" in e}
    summary = Summary()
    todo: list[MinedFunction | Skipped] = []
    candidates = 0
    for item in collect(sources, options) if functions is None else functions:
        if isinstance(item, MinedFunction):
            if options.max_functions is not None and candidates >= options.max_functions:
                continue
            candidates += 1
            if item.key in done:
                summary.resumed += 1
                continue
        elif item.key in done:
            continue
        todo.append(item)
    summary.functions = candidates
    if on_start:
        on_start(sum(isinstance(i, MinedFunction) for i in todo))
    owned = executor is None
    executor = executor or Executor(workers=workers)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with progress.open("a", encoding="utf-8") as fh:
            for item in generate(todo, executor, options):
                fh.write(json.dumps(_entry(item), ensure_ascii=False) + "\n")
                fh.flush()
                if on_item:
                    on_item(item)
    finally:
        if owned:
            executor.close()
    problems: dict[str, Problem] = {}
    skipped: list[Skipped] = []
    for entry in _read_progress(progress):
        if "problem" in entry:
            problem = load_record(entry["problem"])
            problems.setdefault(problem.task_id, problem)
            summary.add(problem)
        elif "skipped" in entry:
            stage, reason, detail = entry["skipped"]
            skipped.append(Skipped(entry["key"], stage, reason, detail, entry.get("facts") or {}))
            summary.add(skipped[-1])
    write_jsonl(problems.values(), out)
    if report is not None:
        write_report(skipped, report)
    summary.seconds = time.perf_counter() - started
    return summary


def write_report(skipped: Iterable[Skipped], path: str | os.PathLike[str]) -> None:
    """One JSON line per skipped function: ``key``, ``stage``, ``reason``, ``detail``, and what the
    search saw where it got that far: ``uncovered`` (branch outcomes never reached: decision line,
    taken or not, its source), ``inputs_tried``, ``inputs_dropped`` (why inputs gave no usable
    result), ``inputs`` (a sample, as literals), ``results`` (kinds of result found), ``mutants`` and
    ``mutants_killed``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for item in skipped:
            line = {"key": item.key, "stage": item.stage, "reason": item.reason, "detail": item.detail, **item.facts}
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")


def load_record(record: dict[str, Any]) -> Problem:
    return Problem(
        task_id=record["task_id"], prompt=record["prompt"], entry_point=record["entry_point"],
        tests=tuple(record["tests"]), reference=record.get("reference"), test_setup=record.get("test_setup", ""),
        split=record.get("split"), metadata=record.get("metadata", {}), time_limit=record.get("time_limit"),
    )  # fmt: skip

