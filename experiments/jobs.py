"""A comparison's independent work, one item at a time in this process or ``jobs`` at a time in
worker processes (``codegym compare --jobs N``).

An item is a call of one of `codegym.experiments.runner`'s functions on a run: ``execute`` (train
and evaluate), ``passk_curve`` or ``repair_eval``. Items of one stage share nothing in memory and each
writes only under its own ``runs/RUN_ID/``, so they can run side by side.

Why processes: one run keeps about one core busy (a small LM on one or two torch threads, then a
wait on the sandbox), so on 2 cores two runs at once take about half the wall clock of one after
the other (experiments/RESULTS.md). Each worker loads its own policy, sandbox and data; the data
they read is resolved by the parent first (`prepare`), so no two workers compute the same
``+band`` cache at once. Workers are spawned, not forked: a forked child inherits torch's thread pool
in an undefined state.
"""

from __future__ import annotations

import atexit
import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from codegym.experiments import runner
from codegym.experiments.plan import Run
from codegym.experiments.runner import RunContext

__all__ = ["Call", "Jobs", "prepare"]

Call = tuple[str, Run, tuple[Any, ...]]
"""A runner function's name (``execute``, ``passk_curve``, ``repair_eval``), the run, further arguments."""

_CONTEXT: RunContext | None = None  # a worker's own context, built once by `_start`


def prepare(ctx: RunContext, runs: Sequence[Run]) -> None:
    """Resolve (and cache under ``OUT/data``) every data set the runs train or are evaluated on, so
    workers only read it back."""
    for specs in dict.fromkeys(run.train for run in runs):
        ctx.train_data(specs)
    curve_sets = [run.curve["set"] for run in runs if run.curve and run.curve.get("points")]
    for name in dict.fromkeys([name for run in runs for name in run.eval_sets] + curve_sets):
        ctx.eval_data(name)


def _start(preset: Any, out: Path, workers: int | None, threads: int) -> None:
    import torch
    from transformers.utils import logging as hf_logging

    from codegym.execution import Executor

    global _CONTEXT
    torch.set_num_threads(threads)
    hf_logging.disable_progress_bar()
    executor = Executor(workers=workers)
    atexit.register(executor.close)
    _CONTEXT = RunContext.for_preset(preset, out, executor, notes=[])


def _call(name: str, run: Run, args: tuple[Any, ...]) -> Any:
    return getattr(runner, name)(run, _CONTEXT, *args)


class Jobs:
    """Runs `Call` items for one comparison: in this process with ``ctx`` when ``jobs`` is 1, else in
    ``jobs`` spawned workers, each with its own sandbox of ``workers`` processes and ``threads`` torch
    threads, built from ``preset`` like ``ctx`` was. Use as a context manager."""

    def __init__(self, ctx: RunContext, jobs: int = 1, *, preset: Any = None, workers: int | None = None, threads: int = 1):
        if jobs < 1:
            raise ValueError(f"--jobs must be at least 1, got {jobs}")
        self.ctx = ctx
        self.pool = None
        if jobs > 1:
            self.pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_start,
                                            initargs=(preset, ctx.out, workers, threads))  # fmt: skip

    def map(self, calls: Sequence[Call], started: Callable[[int], None] = lambda i: None) -> Iterator[tuple[int, Any]]:
        """``(index into calls, result)`` for every call, in the order they finish. A failure in
        one call is raised once the calls already running have finished (theirs are kept on disk);
        the calls not yet started are cancelled. ``started(i)`` is called as call ``i`` begins in
        this process (workers report nothing until they finish)."""
        if self.pool is None:
            for i, (name, run, args) in enumerate(calls):
                started(i)
                yield i, getattr(runner, name)(run, self.ctx, *args)
            return
        pending: dict[Future, int] = {self.pool.submit(_call, name, run, args): i for i, (name, run, args) in enumerate(calls)}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    i = pending.pop(future)
                    yield i, future.result()
        finally:
            for future in pending:
                future.cancel()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Jobs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
