"""Core CLI commands: ``eval-references``, ``calibrate`` and ``doctor``."""

from __future__ import annotations

import importlib.resources
import json
import time
from collections import Counter
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from codegym import calibration
from codegym import problems as problem_sources
from codegym.execution import Executor


def eval_references(
    source: Annotated[str, typer.Argument(help="Data set name (humaneval, mbpp, ...) or path to a problems file.")],
    split: Annotated[Optional[str], typer.Option(help="Only this split (e.g. test, train).")] = None,
    format: Annotated[Optional[str], typer.Option(help="File format, if detection picks the wrong one.")] = None,
    skip_invalid: Annotated[bool, typer.Option("--skip-invalid", help="Skip malformed lines (each is reported).")] = False,
    timeout: Annotated[
        Optional[float],
        typer.Option(help="Seconds per program (default: each problem's calibrated time_limit, with one re-run under 5 s on a timeout; 5 s where none)."),
    ] = None,
    workers: Annotated[Optional[int], typer.Option(help="Sandbox processes (default: one per CPU).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line: total, passed, not_passed, ...")] = False,
) -> None:
    """Run every reference solution against its own tests in the sandbox and report what did not pass."""
    console = Console(stderr=as_json)
    try:
        loaded = problem_sources.load(source, split=split, format=format, skip_invalid=skip_invalid)
    except problem_sources.ProblemLoadError as exc:
        raise typer.BadParameter(str(exc), param_hint="SOURCE") from None
    with_reference = [p for p in loaded if p.reference is not None]
    without = [p.task_id for p in loaded if p.reference is None]
    start = time.perf_counter()
    with Executor(workers) as executor:
        results = executor.run_many(
            [(p.reference_program(), p) for p in with_reference], timeout=timeout, progress=not as_json
        )
        reruns = executor.reruns
    elapsed = time.perf_counter() - start
    outcomes = Counter(r.outcome for r in results)
    failures = [(p, r) for p, r in zip(with_reference, results) if not r.passed]

    table = Table(title=f"References of {source}" + (f" ({split})" if split else ""))
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("problems", str(len(loaded)))
    table.add_row("passed", str(outcomes["passed"]))
    for outcome in ("failed", "runtime_error", "syntax_error", "timeout"):
        table.add_row(outcome, str(outcomes[outcome]))
    table.add_row("no reference", str(len(without)))
    table.add_row("calibrated limits", str(sum(1 for p in with_reference if p.time_limit is not None)) if timeout is None else "not used")
    table.add_row("re-runs after a calibrated timeout", str(reruns))
    table.add_row("programs/s", f"{len(results) / elapsed:.1f}" if elapsed else "-")
    console.print(table)
    if failures:
        detail = Table(title="Not passed")
        for column in ("task_id", "outcome", "tests passed", "last error line"):
            detail.add_column(column)
        for problem, result in failures:
            last = next((line for line in reversed(result.stderr_tail.splitlines()) if line.strip()), "")
            detail.add_row(problem.task_id, result.outcome, f"{result.n_passed}/{result.n_tests}", last[:80])
        console.print(detail)
    if as_json:
        print(
            json.dumps(
                {
                    "source": source,
                    "split": split,
                    "total": len(loaded),
                    "passed": outcomes["passed"],
                    "not_passed": [p.task_id for p, _ in failures] + without,
                    "outcomes": dict(outcomes),
                    "programs_per_s": len(results) / elapsed if elapsed else None,
                    "reruns": reruns,
                }
            )
        )


def calibrate(
    source: Annotated[str, typer.Argument(help="Data set name (humaneval, mbpp, ...) or path to a problems file.")],
    out: Annotated[
        str, typer.Option(help="Where to write: NAME.json (a limits sidecar, e.g. codegym/data/limits/NAME.json) or NAME.jsonl (the problems with time_limit set).")
    ],
    k: Annotated[int, typer.Option(help="Runs per measurement; the median is kept.")] = 3,
    t_min: Annotated[float, typer.Option(help="Smallest limit in seconds.")] = calibration.T_MIN,
    factor: Annotated[float, typer.Option(help="Limit = max(t-min, factor x the reference's median seconds).")] = calibration.FACTOR,
    per_test: Annotated[bool, typer.Option(help="Also time each test alone (recorded in a .json sidecar).")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds a reference may take while being measured.")] = 60.0,
    note: Annotated[str, typer.Option(help="Free text stored with the limits (e.g. 'machine loaded by other work').")] = "",
    split: Annotated[Optional[str], typer.Option(help="Only this split (e.g. test, train).")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Sandbox processes (default: one per CPU).")] = None,
) -> None:
    """Measure each reference in the sandbox and write its time limit: max(t-min, factor x median seconds)."""
    console = Console(stderr=True)
    try:
        loaded = problem_sources.load(source, split=split)
    except problem_sources.ProblemLoadError as exc:
        raise typer.BadParameter(str(exc), param_hint="SOURCE") from None
    if not out.endswith((".json", ".jsonl")):
        raise typer.BadParameter("write to a .json limits sidecar or a .jsonl problems file", param_hint="--out")
    with Executor(workers) as executor:
        found = calibration.calibrate(
            loaded, executor, k=k, t_min=t_min, factor=factor, per_test=per_test, timeout=timeout, progress=True
        )
    path = calibration.write_limits(found, loaded, out, source=source, k=k, t_min=t_min, factor=factor, note=note)
    limits = [c.time_limit for c in found if c.time_limit is not None]
    bad = [c.task_id for c in found if c.time_limit is None]
    console.print(
        f"{len(limits)} limits written to {path} (max {max(limits, default=0):.3f} s, "
        f"{sum(1 for x in limits if x > t_min)} above t-min {t_min} s); machine: {calibration.machine()}"
    )
    if bad:
        console.print(f"[yellow]{len(bad)} references did not pass and got no limit:[/] {', '.join(bad[:20])}")


def doctor() -> None:
    """Show what the sandbox enforces on this machine (Landlock, seccomp, namespaces, uid, limits)."""
    console = Console()
    bundled = str(importlib.resources.files("codegym") / "data" / "procgen.jsonl.gz")
    with Executor(workers=1) as executor:
        caps = executor.capabilities()
        probe = executor.run("def f():\n    return 1\n", ["assert f() == 1"], timeout=10)
        read = executor.evaluate(_READ_PROBE, [f"read({bundled!r})"], timeout=10).values[0].value
    table = Table(title="codegym sandbox")
    table.add_column("protection")
    table.add_column("status")
    rows = [
        ("fork per program from a warm worker", "yes"),
        ("own session / process group, killed as a whole", "yes"),
        ("resource limits", ", ".join(caps["rlimits"])),
        ("empty environment, only the result pipe open", "yes"),
        ("no privilege gain through execve (no_new_privs)", _yes(caps["no_new_privs"])),
        ("unprivileged uid", f"yes (uid {caps['sandbox_uid']})" if caps["sandbox_uid"] is not None else "no (not root)"),
        ("no network (empty network namespace)", _yes(caps["network_namespace"])),
        ("Landlock ABI", str(caps["landlock_abi"]) if caps["landlock_abi"] else "unavailable"),
        ("writes only in the temporary directory (Landlock)", _yes(caps["landlock_filesystem"])),
        ("codegym's own files unreadable: bundled problems, source, checkout (Landlock)", _hidden(caps["unreadable"], read)),
        ("no TCP bind/connect (Landlock)", _yes(caps["landlock_network"])),
        ("no signals to outside processes (Landlock scope)", _yes(caps["landlock_signals"])),
        ("no unix-domain sockets, io_uring, memfd or new namespaces (seccomp)", _yes(caps["seccomp_unix_sockets"])),
        ("private mount namespace" + (" (in a user namespace)" if caps["user_namespace"] else ""), _yes(caps["mount_namespace"])),
        (
            "total bytes written (tmpfs working directory)",
            f"{caps['disk_bytes'] >> 20} MiB" if caps["disk_bytes"] else "unbounded (only per file: no private mount)",
        ),
        ("orphans collected by the worker (subreaper)", _yes(caps["subreaper"])),
        ("memory limit", f"{caps['limits']['memory_bytes'] >> 20} MiB"),
        ("probe program", probe.outcome),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)


_READ_PROBE = """
def read(path):
    try:
        with open(path, "rb") as fh:
            return "read"
    except OSError as exc:
        return type(exc).__name__
"""


def _hidden(folders: list[str], read: str) -> str:
    """The doctor's answer on codegym's own files, given what a program got trying to read its bundled problems."""
    if read == "read":
        return "no: programs can read the bundled problems with their hidden tests" + ("" if folders else " (no Landlock)")
    tops = [f for f in folders if not any(f.startswith(other.rstrip("/") + "/") for other in folders)]
    return f"yes ({', '.join(tops)})" if tops else f"yes ({read}, by file permissions only)"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no (kernel or permissions do not allow it)"
