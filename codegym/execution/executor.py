"""The `Executor`: run untrusted programs against unit tests and decide verdicts outside the sandbox."""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import signal
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from codegym.execution.plans import Plan, judge, plan_test
from codegym.execution.pool import Backend, Limits, LocalPool, RawJob, RawOutcome
from codegym.execution.result import ExecResult
from codegym.execution.values import MalformedValue, decode, encode_expected, loads

if TYPE_CHECKING:
    from codegym.problems import Problem

__all__ = ["DEFAULT_TIMEOUT", "EvalResult", "Evaluated", "Executor", "default_executor"]

Job = tuple[str, "Sequence[str] | Problem"] | tuple[str, "Sequence[str] | Problem", float]

DEFAULT_TIMEOUT = 5.0
"""Seconds per program when neither the caller nor the problem gives a limit; also the generous
limit a program that timed out under a calibrated limit is re-run under."""


def _normal(job: Any, timeout: float | None) -> tuple[str, tuple[str, ...], float, str]:
    """(program, tests, seconds, which limit) of a job: see `Executor.run_many`."""
    if not isinstance(job, (tuple, list)) or len(job) not in (2, 3):
        raise TypeError("a job is (program: str, tests: list[str] | Problem[, timeout: float])")
    program, tests = job[0], job[1]
    calibrated = getattr(tests, "time_limit", None)
    if hasattr(tests, "tests") and hasattr(tests, "task_id"):  # a Problem
        tests = tests.tests
    tests = tuple(tests)
    if not isinstance(program, str) or not all(isinstance(t, str) for t in tests):
        raise TypeError("a job is (program: str, tests: list[str] | Problem[, timeout: float])")
    if len(job) == 3:
        seconds, which = float(job[2]), "given"
    elif timeout is not None:
        seconds, which = float(timeout), "given"
    elif calibrated is not None:
        seconds, which = float(calibrated), "calibrated"
    else:
        seconds, which = DEFAULT_TIMEOUT, "default"
    if not seconds > 0:
        raise ValueError(f"timeout must be positive, got {seconds}")
    return program, tests, seconds, which


@dataclass(frozen=True)
class Evaluated:
    """One expression's fate: ``ok`` (``value`` holds it), ``error`` (``error`` names the exception
    type), ``unserializable`` (not made only of builtin types) or ``not_run``."""

    status: str
    value: Any = None
    error: str = ""


@dataclass(frozen=True)
class EvalResult:
    """The values of expressions evaluated after a program ran in the sandbox.

    ``outcome``: ``ok``, ``syntax_error``, ``runtime_error`` (the program itself raised, crashed or
    broke the protocol) or ``timeout``.
    """

    outcome: str
    values: tuple[Evaluated, ...]
    duration: float = 0.0
    stderr_tail: str = ""


class _Protocol(Exception):
    """The child's messages are not what the harness sends: tampering or a crash mid-write."""


def _messages(payload: bytes) -> list[Any]:
    out = []
    view = memoryview(payload)
    while view:
        if len(view) < 4:
            raise _Protocol("truncated frame")
        size = int.from_bytes(view[:4], "big")
        if len(view) < 4 + size:
            raise _Protocol("truncated frame")
        try:
            out.append(loads(bytes(view[4 : 4 + size])))
        except MalformedValue as exc:
            raise _Protocol(str(exc)) from None
        view = view[4 + size :]
    return out


@dataclass
class _Parsed:
    """A child's report, checked against the exact sequence the harness must have sent."""

    program: str  # "ok", "syntax", "x", or "missing"
    steps: dict[int, list[Any]]
    complete: bool  # ended with ["end"] and a clean exit


def _parse(raw: RawOutcome, expected_steps: Sequence[int], fail_fast: bool = False) -> _Parsed:
    if raw.overflow:
        raise _Protocol("the program reported more than the message cap")
    messages = _messages(raw.payload)
    if not messages:
        return _Parsed("missing", {}, False)
    first = messages[0]
    if not (isinstance(first, list) and len(first) >= 2 and first[0] == "p" and first[1] in ("ok", "syntax", "x")):
        raise _Protocol("first message is not the program's")
    if first[1] != "ok":
        if len(messages) > 1:
            raise _Protocol("messages after the program failed")
        return _Parsed(first[1], {}, raw.exit_code == 0)
    steps: dict[int, list[Any]] = {}
    order = iter(expected_steps)
    complete = False
    for position, message in enumerate(messages[1:], start=1):
        if message == ["end"]:
            stopped_early = fail_fast and steps and _is_failure(messages[position - 1])
            if position != len(messages) - 1 or (len(steps) != len(expected_steps) and not stopped_early):
                raise _Protocol("end message out of place")
            complete = raw.exit_code == 0 and not raw.timed_out
            break
        index = next(order, None)
        if not (isinstance(message, list) and len(message) >= 2 and message[0] == index and index is not None):
            raise _Protocol("step message out of order")
        steps[index] = message
    if raw.stopped and fail_fast and not complete and steps and not raw.timed_out:
        complete = True  # the worker stopped it at a certainly wrong value: ended on purpose
    return _Parsed("ok", steps, complete)


def _is_failure(message: Any) -> bool:
    """A step message after which the fail-fast harness stops (raised, assertion failed, unsendable)."""
    return isinstance(message, list) and len(message) >= 2 and message[1] in ("x", "f", "u")


def _step_value(message: list[Any]) -> tuple[str, Any, str]:
    """(status, value, error) of an expression step's message."""
    kind = message[1]
    if kind == "v" and len(message) == 3:
        try:
            return "ok", decode(message[2]), ""
        except MalformedValue as exc:
            raise _Protocol(str(exc)) from None
    if kind == "u" and len(message) == 2:
        return "unserializable", None, ""
    if kind == "x" and len(message) == 3 and isinstance(message[2], str):
        return "error", None, message[2][:100]
    raise _Protocol("malformed step message")


class Executor:
    """Runs untrusted programs against tests in a pool of hardened sandbox processes.

    Each test is a Python snippet that raises on failure, typically ``assert f(x) == y``. For
    assert-shaped tests only the call is evaluated in the sandbox and the expected value is compared
    outside it (see `codegym.execution.plans`), so a program can neither see nor forge it. Verdicts
    are cached by content hash. Use as a context manager, or call `close`.

    Args:
        workers: sandbox processes (default: one per usable CPU; with Ray, one per CPU of the cluster).
        limits: resource limits per program (`Limits`).
        cache_size: how many results to remember (0 turns the cache off).
        backend: where programs run: ``"local"`` (default) a `LocalPool` of ``workers`` processes on
            this machine; ``"ray"`` a `codegym.execution.ray_backend.RayBackend` over a Ray cluster
            (``pip install 'codegym[ray]'``); or any `Backend` instance.
        address: with ``backend="ray"``, the cluster: None (the connected or a new local Ray
            instance), ``"auto"`` (a running cluster on this machine) or ``"ray://host:port"``.
        rerun_timeouts: re-run a program that timed out under a calibrated limit once under
            `DEFAULT_TIMEOUT` before ``timeout`` is final (default). Off, a calibrated limit is
            final, as in EvalPlus: cheaper on programs that never end, but a verdict may then
            depend on the machine's speed or load.
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        limits: Limits | None = None,
        cache_size: int = 4096,
        backend: Backend | str | None = None,
        address: str | None = None,
        rerun_timeouts: bool = True,
    ) -> None:
        self.limits = limits or Limits()
        self.rerun_timeouts = rerun_timeouts
        self.backend: Backend = _backend(backend, workers, address, self.limits)
        self._cache: OrderedDict[str, ExecResult] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._background: ThreadPoolExecutor | None = None
        self._closed = False
        self._pid = os.getpid()  # a forked child adopts the executor anew (`_adopt_after_fork`)
        self.reruns = 0
        """Programs re-run under `DEFAULT_TIMEOUT` after timing out under a calibrated limit."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the sandbox processes; nothing is left running.

        In a process forked from the one that started them, the parent's workers are left to the
        parent: only the workers this process started are stopped."""
        if self._pid != os.getpid() and not hasattr(self.backend, "after_fork"):
            self._closed = True  # the parent's connection (Ray): nothing of it is this process's to stop
            return
        self._check_pid()
        self._closed = True
        if self._background is not None:
            self._background.shutdown(wait=True)
        with self._lock:
            self.backend.close()

    def capabilities(self) -> dict[str, Any]:
        """What the sandbox enforces here (Landlock ABI, network namespace, uid, limits)."""
        self._check_pid()
        with self._lock:
            caps = self.backend.capabilities()
        caps["limits"] = self.limits.as_dict()
        return caps

    # -- tests ----------------------------------------------------------------------------------

    def run(
        self, program: str, tests: Sequence[str] | Problem, timeout: float | None = None, *, fail_fast: bool = False
    ) -> ExecResult:
        """Run ``program`` then each test; the verdict is decided here, never by the program.

        ``tests`` is a list of test snippets, or a `Problem` (its tests, and its calibrated
        ``time_limit`` when ``timeout`` is not given). See `run_many` for how the limit is chosen.
        """
        return self.run_many([(program, tests)], timeout=timeout, fail_fast=fail_fast)[0]

    def run_many(
        self, jobs: Iterable[Job], timeout: float | None = None, progress: bool = False, *, fail_fast: bool = False, values: bool = False
    ) -> list[ExecResult]:
        """Run many (program, tests[, timeout]) jobs on all workers; results in input order.

        Each job's time limit, in this order: its own third element; else ``timeout``; else the
        calibrated ``time_limit`` of a `Problem` given as its tests; else `DEFAULT_TIMEOUT`. A job
        that times out under a calibrated limit below `DEFAULT_TIMEOUT` is re-run once under
        `DEFAULT_TIMEOUT` before ``timeout`` is final (unless ``rerun_timeouts=False``), so a loaded
        or slow machine does not decide a verdict; `ExecResult.limit` says which limit decided and
        `reruns` counts the re-runs.

        ``fail_fast``: stop each program at its first failing test, for callers that only need
        "all passed" (the binary reward, pass@k); the tests after it are ``not_run``. The worker
        stops a ``CALL == LITERAL`` test only when the value certainly differs; the verdict is
        still decided here.

        ``values``: each result also carries, per test, what its ``CALL`` returned or raised
        (`ExecResult.values`, for feedback to a repairing model).
        """
        self._check_open()
        normal = [_normal(j, timeout) for j in jobs]
        keys = [self._key(p, t, limit, fail_fast, values) for p, t, limit, _ in normal]
        results: list[ExecResult | None] = [self._cached(k) for k in keys]
        todo = [i for i, r in enumerate(results) if r is None]
        plans = {i: [plan_test(t) for t in normal[i][1]] for i in todo}
        raw_jobs = [self._raw_job(normal[i][0], plans[i], normal[i][2], fail_fast) for i in todo]
        raws = self._run_raw(raw_jobs, progress, len(normal), len(normal) - len(todo))
        for i, raw in zip(todo, raws):
            results[i] = self._verdict(plans[i], raw, normal[i][3], normal[i][2], fail_fast, values)
        again = [i for i in todo if self._provisional(normal[i][3], normal[i][2], results[i])]  # type: ignore[arg-type]
        if again:
            with self._lock:
                self.reruns += len(again)
            raws = self._run_raw([self._raw_job(normal[i][0], plans[i], DEFAULT_TIMEOUT, fail_fast) for i in again], False, 0, 0)
            for i, raw in zip(again, raws):
                results[i] = self._verdict(plans[i], raw, "generous", DEFAULT_TIMEOUT, fail_fast, values)
        for i in todo:
            self._remember(keys[i], results[i])  # type: ignore[arg-type]
        return results  # type: ignore[return-value]

    def _provisional(self, which: str, seconds: float, result: ExecResult) -> bool:
        """A timeout under a calibrated limit below the default: re-run before it is final."""
        return self.rerun_timeouts and which == "calibrated" and seconds < DEFAULT_TIMEOUT and result.outcome == "timeout"

    def _raw_job(self, program: str, plans: Sequence[Plan], limit: float, fail_fast: bool) -> RawJob:
        steps = [(n, p.step, p.source) for n, p in enumerate(plans) if p.kind != "const"]
        expect: dict[int, Any] = {}
        if fail_fast:
            for n, plan in enumerate(plans):
                if plan.expect:
                    try:
                        expect[n] = encode_expected(plan.expect[0])
                    except MalformedValue:
                        pass
        return RawJob(program, steps, limit, self.limits, fail_fast, expect)

    def submit(
        self, jobs: Iterable[Job], timeout: float | None = None, *, fail_fast: bool = False, values: bool = False
    ) -> Future[list[ExecResult]]:
        """`run_many` in the background: returns at once, so generation can overlap execution."""
        self._check_open()
        if self._background is None:
            self._background = ThreadPoolExecutor(1, thread_name_prefix="codegym-executor")
        return self._background.submit(self.run_many, list(jobs), timeout, fail_fast=fail_fast, values=values)

    @staticmethod
    def _verdict(plans: Sequence[Plan], raw: RawOutcome, limit: str, seconds: float, fail_fast: bool = False, values: bool = False) -> ExecResult:
        """The verdict on one raw outcome; ``limit`` and ``seconds`` name the time limit it ran under."""
        result = Executor._judge(plans, raw, fail_fast)
        got = Executor._test_values(plans, raw, result) if values else ()
        return replace(result, limit=limit, time_limit=seconds, values=got)

    @staticmethod
    def _test_values(plans: Sequence[Plan], raw: RawOutcome, result: ExecResult) -> tuple[Evaluated, ...]:
        """Per test, what its CALL returned (value and truth plans) or raised; ``not_run`` otherwise.
        Only for a report whose verdict was accepted (a refused protocol gives every test ``not_run``)."""
        out = [Evaluated("not_run")] * len(plans)
        if result.outcome == "syntax_error":
            return tuple(out)
        try:
            parsed = _parse(raw, [i for i, p in enumerate(plans) if p.kind != "const"])
        except _Protocol:
            return tuple(out)
        for i, plan in enumerate(plans):
            message = parsed.steps.get(i)
            if message is None:
                continue
            if plan.kind == "statement":
                if message[1] == "x" and len(message) == 3 and isinstance(message[2], str):
                    out[i] = Evaluated("error", error=message[2][:100])
                continue
            try:
                out[i] = Evaluated(*_step_value(message))
            except _Protocol:
                pass
        return tuple(out)

    @staticmethod
    def _judge(plans: Sequence[Plan], raw: RawOutcome, fail_fast: bool) -> ExecResult:
        n = len(plans)
        status = ["not_run"] * n
        trusted = tuple(p.trusted for p in plans)
        stderr = raw.stderr_tail
        try:
            parsed = _parse(raw, [i for i, p in enumerate(plans) if p.kind != "const"], fail_fast)
        except _Protocol as exc:
            stderr += f"\n[codegym] verdict refused: {exc}"
            return ExecResult("runtime_error", (False,) * n, tuple(status), trusted, raw.duration, stderr)
        if parsed.program == "syntax":
            return ExecResult("syntax_error", (False,) * n, tuple(status), trusted, raw.duration, stderr)
        if parsed.program == "ok":
            for i, plan in enumerate(plans):
                if plan.kind == "const":
                    status[i] = "passed" if plan.verdict else "failed"
                elif i in parsed.steps:
                    status[i] = _test_status(plan, parsed.steps[i])
        if raw.worker_lost:
            stderr += "\n[codegym] the sandbox worker was lost and replaced"
        passed = tuple(s == "passed" for s in status)
        if parsed.complete and n and all(passed):
            outcome = "passed"
        elif raw.timed_out or raw.signal == signal.SIGXCPU:
            outcome = "timeout"
        elif not parsed.complete or all(s in ("error", "not_run") for s in status):
            outcome = "runtime_error"
        else:
            outcome = "failed"
        return ExecResult(outcome, passed, tuple(status), trusted, raw.duration, stderr)

    # -- values ---------------------------------------------------------------------------------

    def evaluate(self, program: str, expressions: Sequence[str], timeout: float = DEFAULT_TIMEOUT) -> EvalResult:
        """Run ``program``, then evaluate each expression in its namespace and return the values."""
        return self.evaluate_many([(program, expressions)], timeout=timeout)[0]

    def evaluate_many(
        self, jobs: Iterable[tuple[str, Sequence[str]]], timeout: float = DEFAULT_TIMEOUT, progress: bool = False
    ) -> list[EvalResult]:
        """`evaluate` for many (program, expressions) jobs on all workers; results in input order."""
        self._check_open()
        jobs = [(p, tuple(e)) for p, e in jobs]
        raw_jobs = [RawJob(p, [(i, "e", src) for i, src in enumerate(e)], float(timeout), self.limits) for p, e in jobs]
        raws = self._run_raw(raw_jobs, progress, total=len(raw_jobs), done=0)
        return [self._values(len(e), raw) for (_, e), raw in zip(jobs, raws)]

    @staticmethod
    def _values(n: int, raw: RawOutcome) -> EvalResult:
        not_run = (Evaluated("not_run"),) * n
        try:
            parsed = _parse(raw, list(range(n)))
            values = [Evaluated(*_step_value(parsed.steps[i])) if i in parsed.steps else Evaluated("not_run") for i in range(n)]
        except _Protocol as exc:
            return EvalResult("runtime_error", not_run, raw.duration, raw.stderr_tail + f"\n[codegym] {exc}")
        if parsed.program == "syntax":
            return EvalResult("syntax_error", not_run, raw.duration, raw.stderr_tail)
        if raw.timed_out or raw.signal == signal.SIGXCPU:
            outcome = "timeout"
        elif parsed.program != "ok" or not parsed.complete:
            outcome = "runtime_error"
        else:
            outcome = "ok"
        return EvalResult(outcome, tuple(values), raw.duration, raw.stderr_tail)

    # -- plumbing -------------------------------------------------------------------------------

    def _check_open(self) -> None:
        self._check_pid()
        if self._closed:
            raise RuntimeError("this Executor is closed; create a new one")

    def _check_pid(self) -> None:
        if self._pid != os.getpid():
            self._adopt_after_fork()

    def _adopt_after_fork(self) -> None:
        """In a process forked from the one that made this executor: drop the parent's background
        thread (gone after ``fork()``), lock (possibly held by it) and sandbox workers (the parent's
        to use), so this process starts its own on first use instead of waiting forever."""
        pid = self._pid
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._background = None
        after_fork = getattr(self.backend, "after_fork", None)
        if after_fork is None:
            self._closed = True
            raise RuntimeError(
                f"this Executor was created in process {pid}, and its {type(self.backend).__name__} backend cannot be "
                "used from a forked child process; create the Executor in the child, or start child processes with "
                "multiprocessing's 'spawn' context (for gymnasium's async vector envs: vector_kwargs={'context': 'spawn'})"
            )
        after_fork()

    def _run_raw(self, raw_jobs: list[RawJob], progress: bool, total: int, done: int) -> list[RawOutcome]:
        if not raw_jobs:
            return []
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, initial=done, desc="executing", unit="program")
        try:
            with self._lock:
                return self.backend.run_raw(raw_jobs, on_done=(lambda _: bar.update(1)) if bar else None)
        finally:
            if bar is not None:
                bar.close()

    def _key(self, program: str, tests: Sequence[str], timeout: float, fail_fast: bool = False, values: bool = False) -> str:
        blob = json.dumps([program, list(tests), timeout, self.limits.as_dict(), fail_fast] + ([True] if values else []))
        return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()

    def _cached(self, key: str) -> ExecResult | None:
        with self._lock:
            hit = self._cache.get(key)
            if hit is None:
                return None
            self._cache.move_to_end(key)
        return replace(hit, cached=True)

    def _remember(self, key: str, result: ExecResult) -> None:
        if self._cache_size <= 0:
            return
        with self._lock:
            self._cache[key] = result
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)


BACKENDS = ("local", "ray")


def _backend(backend: Backend | str | None, workers: int | None, address: str | None, limits: Limits) -> Backend:
    """The backend an `Executor` was asked for, by name or as an instance."""
    if backend == "ray":
        from codegym.execution.ray_backend import RayBackend

        return RayBackend(address, workers=workers)
    if address is not None:
        raise ValueError("address= is for backend='ray' (a Ray cluster); the local pool has no address")
    if backend is None or backend == "local":
        return LocalPool(workers, disk_bytes=limits.disk_bytes)
    if isinstance(backend, str):
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}, or pass a Backend instance")
    return backend


def _test_status(plan: Plan, message: list[Any]) -> str:
    if plan.kind == "statement":
        if message[1:] == ["ok"]:
            return "passed"
        if message[1:] == ["f"]:
            return "failed"
        if message[1] == "x" and len(message) == 3:
            return "error"
        raise _Protocol("malformed statement step")
    status, value, _ = _step_value(message)
    if status == "ok":
        return "passed" if judge(plan, value) else "failed"
    return "failed" if status == "unserializable" else "error"


_shared: Executor | None = None
_shared_lock = threading.Lock()


def default_executor() -> Executor:
    """The process-wide shared executor (started on first use, closed at exit).

    Fork-safe: a process forked after this one used it (multiprocessing's default ``fork`` context,
    e.g. gymnasium's async vector environments) starts a fresh executor of its own on first use; the
    parent's threads, which do not survive ``fork()``, and its sandbox workers are never used there.
    """
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Executor()
        return _shared


@atexit.register
def _close_shared() -> None:
    if _shared is not None:
        _shared.close()


def _forget_shared_in_child() -> None:
    """After ``fork()``, in the child: forget the parent's shared executor (its lock may be held by a
    thread that no longer exists); the child's first `default_executor` call starts its own."""
    global _shared, _shared_lock
    inherited, _shared, _shared_lock = _shared, None, threading.Lock()
    if inherited is not None and hasattr(inherited.backend, "after_fork"):
        inherited._adopt_after_fork()  # closes this process's copies of the parent's worker pipes


os.register_at_fork(after_in_child=_forget_shared_in_child)
