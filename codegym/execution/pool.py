"""The local backend: a pool of sandbox workers on this machine.

A backend has one job: take raw jobs (program, steps, timeout, limits), run each in a sandbox and
hand back what the worker observed (`RawOutcome`). Verdicts are the `Executor`'s business, so a
cluster backend (Ray) only has to implement `run_raw` and `close` to slot in beside this one.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import selectors
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

__all__ = ["Backend", "Limits", "LocalPool", "RawJob", "RawOutcome", "SandboxStartError", "unreadable_paths"]

_WORKER_SCRIPT = Path(__file__).with_name("_worker.py")
_HEADER = struct.Struct(">I")
_GRACE = 3.0  # seconds past a job's timeout before the parent stops trusting its worker
# codegym's packages with folders of their own (pyproject.toml's package-dir: in a checkout, the
# top-level folders; in site-packages, all inside codegym/).
_PACKAGES = ("codegym", "codegym.envs", "codegym.agents", "codegym.data_gen", "codegym.experiments")


def unreadable_paths() -> list[str]:
    """codegym's own folders, which no program may read even where they sit among the files it may
    (an install into site-packages): its packages, whose bundled problems hold the hidden tests'
    expected values, and, for an install from a checkout (``pip install -e .``), the whole checkout."""
    folders = set()
    for name in _PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is not None:
            folders.update(spec.submodule_search_locations or [])
    for folder in list(folders):
        checkout = os.path.dirname(folder)
        try:
            project = Path(checkout, "pyproject.toml").read_text(encoding="utf-8")
        except OSError:
            continue
        if re.search(r"^name\s*=\s*[\"']codegym[\"']", project, re.MULTILINE):
            folders.add(checkout)
    return sorted({os.path.realpath(f) for f in folders})


class SandboxStartError(RuntimeError):
    """A sandbox worker could not start."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed program (per child process unless said otherwise)."""

    memory_bytes: int = 1 << 30
    file_size_bytes: int = 16 << 20
    open_files: int = 64
    processes: int = 32
    """Processes and threads the sandbox user may run at once."""
    message_bytes: int = 16 << 20
    """Cap on everything the child reports back."""
    disk_bytes: int = 64 << 20
    """Total bytes a program may keep in its working directory (the size of the worker's tmpfs,
    set when the workers start; where the kernel allows no private mount, only ``file_size_bytes``
    per file bounds writing)."""

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class RawJob:
    program: str
    steps: Sequence[tuple[int, str, str]]
    """(test index, "e" to evaluate an expression or "s" to run a statement, source)."""
    timeout: float
    limits: Limits
    fail_fast: bool = False
    """Stop at the first step that fails: the child stops itself after a step that raised, and the
    worker stops it at the first value that certainly differs from its ``expect``."""
    expect: dict[int, Any] = field(default_factory=dict)
    """Step index -> the encoded expected value of a ``CALL == EXPECTED`` test (fail-fast only)."""


@dataclass
class RawOutcome:
    """What a worker saw of one child: its messages (unparsed), how it ended, its stderr tail."""

    payload: bytes = b""
    timed_out: bool = False
    overflow: bool = False
    exit_code: int | None = None
    signal: int | None = None
    duration: float = 0.0
    stderr_tail: str = ""
    worker_lost: bool = False
    stopped: bool = False
    """Fail fast: the worker stopped the child at a step whose value was certainly wrong."""
    stages: tuple[float, ...] = ()
    """With ``LocalPool(profile=True)``: the clock at each stage of the job (``_worker.STAGES``)."""


class Backend(Protocol):
    """What the `Executor` needs from a place that runs programs."""

    def run_raw(self, jobs: Sequence[RawJob], on_done: Callable[[int], None] | None = None) -> list[RawOutcome]: ...

    def capabilities(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


@dataclass
class _Worker:
    proc: subprocess.Popen[bytes]
    capabilities: dict[str, Any]
    buffer: bytearray = field(default_factory=bytearray)
    frames: list[bytes] = field(default_factory=list)
    job: int | None = None
    deadline: float = 0.0

    @property
    def fd(self) -> int:
        assert self.proc.stdout is not None
        return self.proc.stdout.fileno()

    def send(self, *bodies: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"".join(_HEADER.pack(len(body)) + body for body in bodies))
        self.proc.stdin.flush()

    def read_available(self) -> bool:
        """Read what is there into frames; False when the worker has gone."""
        chunk = os.read(self.fd, 1 << 20)
        if not chunk:
            return False
        self.buffer += chunk
        while len(self.buffer) >= 4:
            size = _HEADER.unpack_from(self.buffer)[0]
            if len(self.buffer) < 4 + size:
                break
            self.frames.append(bytes(self.buffer[4 : 4 + size]))
            del self.buffer[: 4 + size]
        return True


class LocalPool:
    """Pre-started sandbox workers on this machine, each forking one child per program.

    Args:
        workers: number of worker processes (default: the CPUs this process may use).
        isolate_network: give the workers an empty network namespace when the kernel allows it.
        drop_privileges: when running as root, run programs under an unprivileged uid.
        landlock: confine writes, TCP and signals with Landlock when the kernel has it.
        seccomp: refuse unix-domain sockets (and io_uring, memfd) with a seccomp filter.
        disk_bytes: size of each worker's tmpfs working directory, in its own mount namespace.
        run_as: start the workers under this uid instead of the caller's (needs root). Programs then
            run as that ordinary user, with no uid switch: how the tests exercise the non-root path.
        python: the interpreter the workers run (default: this one). The worker needs only the
            standard library, so any CPython >= 3.10 the workers' uid can read will do.
        profile: record the clock at each stage of every job in `RawOutcome.stages`
            (``experiments/benchmarks/profile_sandbox.py``).
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        isolate_network: bool = True,
        drop_privileges: bool = True,
        landlock: bool = True,
        seccomp: bool = True,
        disk_bytes: int = Limits.disk_bytes,
        run_as: int | None = None,
        python: str | None = None,
        profile: bool = False,
    ) -> None:
        self.size = workers or len(os.sched_getaffinity(0))
        if self.size < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self._config = json.dumps(
            {
                "isolate_network": isolate_network,
                "drop_privileges": drop_privileges,
                "landlock": landlock,
                "seccomp": seccomp,
                "disk_bytes": int(disk_bytes),
                "profile": profile,
                "uid_base": 200_000,
                "tmp_root": tempfile.gettempdir(),
                "hidden": unreadable_paths(),
            }
        )
        if run_as is not None and os.geteuid() != 0:
            raise ValueError("run_as= starts workers under another uid, which needs root")
        self._run_as = run_as
        self._python = python or sys.executable
        # Another uid may not be able to read the installed script (a checkout under a private home):
        # it gets a world-readable copy of its own, removed on close.
        self._script_dir = tempfile.mkdtemp(prefix="codegym-worker-") if run_as is not None else None
        self._script = _WORKER_SCRIPT
        if self._script_dir is not None:
            os.chmod(self._script_dir, 0o755)
            self._script = Path(shutil.copy(_WORKER_SCRIPT, self._script_dir))
            os.chmod(self._script, 0o644)
        self._workers: list[_Worker] = []
        self._closed = False
        self._pid = os.getpid()

    # -- life cycle -----------------------------------------------------------------------------

    def _spawn(self) -> _Worker:
        proc = subprocess.Popen(
            [self._python, "-I", "-X", "utf8", str(self._script), self._config],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={},
            cwd="/",
            close_fds=True,
            start_new_session=True,
            user=self._run_as,
            group=self._run_as,
            extra_groups=[] if self._run_as is not None else None,
        )
        return _Worker(proc, {})

    def _await_hello(self, worker: _Worker, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(worker.fd, selectors.EVENT_READ)
            while not worker.frames:
                if not sel.select(max(0.0, deadline - time.monotonic())) or not worker.read_available():
                    self._kill(worker)
                    raise SandboxStartError(
                        f"a sandbox worker ({_WORKER_SCRIPT}) did not start; run `codegym doctor` to see "
                        "what this machine supports"
                    )
        hello = json.loads(worker.frames.pop(0))
        worker.capabilities = hello["capabilities"]

    def after_fork(self) -> None:
        """In a process forked from the one that started the workers: let go of them without stopping
        them (they are the parent's, and serve its jobs); the next job starts this process's own."""
        self._pid = os.getpid()
        null = os.open(os.devnull, os.O_RDWR)
        try:
            for worker in self._workers:
                for stream in (worker.proc.stdin, worker.proc.stdout):
                    if stream is not None:
                        # Our copy of the pipe becomes /dev/null before closing: bytes the parent had
                        # buffered when it forked must not reach its worker a second time.
                        os.dup2(null, stream.fileno())
                        stream.close()
                worker.proc.returncode = -1  # not this process's child: never waited for here
        finally:
            os.close(null)
        self._workers = []
        self._script_dir = None  # the parent's copy of the worker script: the parent removes it

    def _check_pid(self) -> None:
        if self._pid != os.getpid():
            self.after_fork()

    def start(self) -> None:
        """Start the missing workers (done lazily by the first job)."""
        self._check_pid()
        if self._closed:
            raise RuntimeError("this executor is closed; create a new one")
        fresh = [self._spawn() for _ in range(self.size - len(self._workers))]
        for worker in fresh:
            self._await_hello(worker)
        self._workers += fresh

    def worker_pids(self) -> list[int]:
        """Pids of the running workers (for diagnostics and leak checks)."""
        return [w.proc.pid for w in self._workers]

    def sandbox_uids(self) -> list[int]:
        """The unprivileged uids the workers run programs under (empty when not dropping privileges)."""
        return [int(w.capabilities["sandbox_uid"]) for w in self._workers if w.capabilities.get("sandbox_uid") is not None]

    def capabilities(self) -> dict[str, Any]:
        """What the sandbox enforces on this machine, as reported by a worker."""
        self.start()
        return dict(self._workers[0].capabilities)

    def _kill(self, worker: _Worker) -> None:
        """Kill a worker and everything it started, including programs under its sandbox uid."""
        try:
            os.killpg(worker.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        worker.proc.kill()
        worker.proc.wait()
        for stream in (worker.proc.stdin, worker.proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        uid = worker.capabilities.get("sandbox_uid")
        if uid is not None:
            _kill_uid(int(uid))

    def _replace(self, worker: _Worker) -> None:
        self._kill(worker)
        fresh = self._spawn()
        self._await_hello(fresh)
        self._workers[self._workers.index(worker)] = fresh

    def close(self) -> None:
        """Stop every worker; no process of the pool is left behind (in a forked child: only the workers
        the child started, never the parent's)."""
        self._check_pid()
        if self._closed:
            return
        self._closed = True
        for worker in self._workers:
            try:
                assert worker.proc.stdin is not None
                worker.proc.stdin.close()
            except OSError:
                pass
        for worker in self._workers:
            try:
                worker.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            self._kill(worker)
        self._workers.clear()
        if self._script_dir is not None:
            shutil.rmtree(self._script_dir, ignore_errors=True)

    # -- running --------------------------------------------------------------------------------

    def run_raw(self, jobs: Sequence[RawJob], on_done: Callable[[int], None] | None = None) -> list[RawOutcome]:
        """Run every job, at most one per worker at a time; results in input order."""
        self.start()
        results: list[RawOutcome | None] = [None] * len(jobs)
        pending = deque(range(len(jobs)))
        with selectors.DefaultSelector() as sel:
            while pending or any(w.job is not None for w in self._workers):
                for worker in self._workers:
                    if worker.job is None and pending:
                        self._dispatch(worker, pending.popleft(), jobs, sel)
                busy = [w for w in self._workers if w.job is not None]
                wait = max(0.0, min(w.deadline for w in busy) - time.monotonic())
                for key, _ in sel.select(wait):
                    worker = key.data
                    alive = worker.read_available()
                    if len(worker.frames) >= 2:
                        self._finish(worker, results, sel, on_done, _outcome(worker.frames))
                    elif not alive:
                        self._lose(worker, results, sel, on_done, timed_out=False)
                now = time.monotonic()
                for worker in busy:
                    if worker.job is not None and now > worker.deadline:
                        self._lose(worker, results, sel, on_done, timed_out=True)
        return results  # type: ignore[return-value]

    def _dispatch(self, worker: _Worker, index: int, jobs: Sequence[RawJob], sel: selectors.BaseSelector) -> None:
        job = jobs[index]
        body = {
            "id": index,
            "program": job.program,
            "steps": [list(s) for s in job.steps],
            "timeout": job.timeout,
            "limits": job.limits.as_dict(),
        }
        # Under fail fast the expected values go in a second frame, which the worker reads only after
        # it has forked the program's child: they are never in the memory the program starts from.
        frames = [body]
        if job.fail_fast:
            body["fail_fast"] = True
            body["expect_follows"] = True
            frames.append([[i, v] for i, v in job.expect.items()])
        worker.job = index
        worker.deadline = time.monotonic() + job.timeout + _GRACE
        worker.frames.clear()
        sel.register(worker.fd, selectors.EVENT_READ, worker)
        try:
            worker.send(*(json.dumps(f).encode() for f in frames))
        except (BrokenPipeError, OSError):
            pass  # the worker died: its EOF is seen by the selector and the job is reported lost

    def _finish(self, worker, results, sel, on_done, outcome: RawOutcome) -> None:
        sel.unregister(worker.fd)
        index, worker.job = worker.job, None
        results[index] = outcome
        if on_done:
            on_done(index)

    def _lose(self, worker, results, sel, on_done, timed_out: bool) -> None:
        """The worker died or stopped answering: the job is lost (never passed) and the worker replaced."""
        self._finish(worker, results, sel, on_done, RawOutcome(timed_out=timed_out, worker_lost=True))
        self._replace(worker)


def _outcome(frames: list[bytes]) -> RawOutcome:
    header = json.loads(frames.pop(0))
    payload = frames.pop(0)
    return RawOutcome(
        payload=payload,
        timed_out=header["timed_out"],
        overflow=header["overflow"],
        exit_code=header["exit_code"],
        signal=header["signal"],
        duration=header["duration"],
        stderr_tail=header["stderr_tail"],
        stopped=header.get("stopped", False),
        stages=tuple(header.get("stages", ())),
    )


def _kill_uid(uid: int) -> None:
    """SIGKILL every process running as ``uid`` (a dead worker's sandbox user), until none is left."""
    for _ in range(100):
        found = False
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if os.stat(f"/proc/{entry}").st_uid != uid:
                    continue
                os.kill(int(entry), signal.SIGKILL)
                found = True
            except OSError:
                pass
        if not found:
            return
        time.sleep(0.01)
