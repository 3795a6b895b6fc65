"""The Ray backend: sandbox pools on every node of a Ray cluster, fed with batches of programs.

Why Ray: a cluster engine that users already run (on-premises, KubeRay, cloud autoscalers) gives us
placement, node-failure detection, actor restarts and data transfer; codegym adds only what is
specific to it. Each Ray actor (`_SandboxHost`) hosts an ordinary `LocalPool` (the same hardened,
fork-per-program workers as on a laptop) and receives *batches* of raw jobs, so Ray's per-call cost
(about a millisecond) is paid once per batch, not once per program. Verdicts are still decided by
the `Executor` in the driver, from the raw outcomes, so they are the same as with the local pool.

Scheduling (`RayBackend._scheduled`): at most ``in_flight`` calls wait at each actor (back-pressure:
a batch is sent when an actor has room, so neither the driver nor the object store fills up with
queued work, and a slow node gets less of it). When an actor dies (its process was killed, its node
was lost), Ray raises `RayActorError` (or `ObjectLostError` for a result that lived on a lost
node) for the calls it held; each such call is sent again, to
another actor, up to ``retries`` times. Results are stored by their index, once, when a call
returns, so a retried batch is never counted twice. Ray restarts the dead actor (``max_restarts=-1``,
on any node with room; a fresh `LocalPool`), and it gets work again once it answers a ping.
Actor calls are not retried by Ray itself (``max_task_retries=0``), so that a batch does not wait
for its own actor to come back when another one is free.

Requires the optional extra: ``pip install 'codegym[ray]'``. Every node must have codegym installed
in the same Python environment as the driver (or use a Ray ``runtime_env``).
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from codegym.execution.pool import Limits, LocalPool, RawJob, RawOutcome

__all__ = ["RayBackend", "RayNotInstalled", "import_ray"]

_PLACEMENT_TIMEOUT = 120.0  # seconds to wait for the sandbox actors to be placed and started


class RayNotInstalled(ImportError):
    """Ray is needed for this and is not installed."""


def import_ray() -> Any:
    """The ``ray`` module, or an error telling the user how to install it."""
    try:
        import ray
    except ImportError:
        raise RayNotInstalled(
            "the Ray backend needs Ray, which is not installed: pip install 'codegym[ray]'"
        ) from None
    return ray


class _Lost:
    """Marks a call whose actor died more than ``retries`` times."""


LOST = _Lost()


class _SandboxHost:
    """A Ray actor that owns a `LocalPool` on its node (made remote in `RayBackend._start`)."""

    def __init__(self, workers: int, pool_options: dict[str, Any]) -> None:
        self.pool = LocalPool(workers, **pool_options)
        self.pool.start()
        self._executors: dict[Limits, Any] = {}

    def ping(self) -> int:
        return os.getpid()

    def capabilities(self) -> dict[str, Any]:
        return self.pool.capabilities()

    def run(self, jobs: Sequence[RawJob]) -> list[RawOutcome]:
        return self.pool.run_raw(jobs)

    def call(self, fn: Callable[..., Any], limits: Limits, args: tuple[Any, ...]) -> Any:
        """``fn(executor, *args)`` with an `Executor` over this actor's pool (a whole pipeline stage here)."""
        from codegym.execution.executor import Executor

        executor = self._executors.get(limits)
        if executor is None:
            executor = self._executors[limits] = Executor(backend=self.pool, limits=limits)
        return fn(executor, *args)

    def close(self) -> None:
        self.pool.close()


class RayBackend:
    """Runs programs on a Ray cluster: one sandbox pool per actor, batches, back-pressure, retries.

    Args:
        address: the cluster. None: the Ray instance this process is already connected to, else
            whatever ``ray.init()`` finds (``RAY_ADDRESS``, or a new local instance); ``"auto"``: a
            running cluster on this machine; ``"ray://host:10001"``: a remote cluster (Ray client).
        workers: sandbox processes in all (default: one per CPU of the cluster).
        workers_per_actor: sandbox processes per actor; each actor reserves that many CPUs
            (default: ``min(4, workers)``). Actors are spread over the nodes.
        batch_size: most programs per actor call (smaller when a call has few programs, so that
            every actor gets some).
        in_flight: most calls waiting at one actor (back-pressure).
        retries: times a call is sent again after its actor died; after that its programs count
            as lost (``runtime_error`` verdicts, as for a lost local worker).
        pool_options: passed to each `LocalPool` (``isolate_network``, ``drop_privileges``, ``landlock``).
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        workers: int | None = None,
        workers_per_actor: int | None = None,
        batch_size: int = 64,
        in_flight: int = 2,
        retries: int = 3,
        **pool_options: Any,
    ) -> None:
        for name, value in (("workers", workers), ("workers_per_actor", workers_per_actor)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if batch_size < 1 or in_flight < 1 or retries < 0:
            raise ValueError("batch_size and in_flight must be at least 1, retries at least 0")
        self._ray = import_ray()
        self.address = address
        self._workers = workers
        self._workers_per_actor = workers_per_actor
        self.batch_size = batch_size
        self.in_flight = in_flight
        self.retries = retries
        self._pool_options = pool_options
        self._actors: list[Any] = []
        self._owns_ray = False
        self._closed = False
        self.resubmitted = 0
        """Calls sent again because their actor died (for diagnostics and tests)."""

    # -- life cycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Connect to Ray and start the sandbox actors (done lazily by the first job)."""
        if self._closed:
            raise RuntimeError("this executor is closed; create a new one")
        if self._actors:
            return
        ray = self._ray
        if not ray.is_initialized():
            ray.init(address=self.address)
            self._owns_ray = True
        cpus = int(ray.cluster_resources().get("CPU", 0))
        total = self._workers or cpus
        if total < 1:
            raise RuntimeError("the Ray cluster has no CPU; give workers=N or add nodes")
        per_actor = self._workers_per_actor or min(4, total)
        n_actors = max(1, total // per_actor)
        host = ray.remote(_SandboxHost).options(
            num_cpus=per_actor, max_restarts=-1, max_task_retries=0, scheduling_strategy="SPREAD"
        )
        self._actors = [host.remote(per_actor, self._pool_options) for _ in range(n_actors)]
        ready, _ = ray.wait([a.ping.remote() for a in self._actors], num_returns=n_actors, timeout=_PLACEMENT_TIMEOUT)
        if len(ready) < n_actors:
            self.close()
            raise RuntimeError(
                f"Ray placed only {len(ready)} of {n_actors} sandbox actors ({per_actor} CPUs each) within "
                f"{_PLACEMENT_TIMEOUT:.0f} s; the cluster has {cpus} CPUs. Lower workers or workers_per_actor, "
                "or add nodes"
            )
        ray.get(ready)  # raises if an actor failed to start its pool (e.g. a node without codegym)

    def actor_pids(self) -> list[int]:
        """Process ids of the sandbox actors (on their own nodes; for diagnostics and tests)."""
        self.start()
        return self._ray.get([a.ping.remote() for a in self._actors])

    def capabilities(self) -> dict[str, Any]:
        """What the sandbox enforces, as reported by one actor's pool, plus the cluster's shape."""
        self.start()
        caps = dict(self._ray.get(self._actors[0].capabilities.remote()))
        caps.update(backend="ray", actors=len(self._actors), nodes=sum(n["Alive"] for n in self._ray.nodes()))
        return caps

    def close(self) -> None:
        """Stop the actors and their pools (and Ray itself when this backend started it)."""
        if self._closed:
            return
        self._closed = True
        ray = self._ray
        if self._actors:
            try:
                ray.wait([a.close.remote() for a in self._actors], num_returns=len(self._actors), timeout=30)
            finally:
                for actor in self._actors:
                    ray.kill(actor, no_restart=True)
                self._actors.clear()
        if self._owns_ray:
            ray.shutdown()

    # -- running --------------------------------------------------------------------------------

    def run_raw(self, jobs: Sequence[RawJob], on_done: Callable[[int], None] | None = None) -> list[RawOutcome]:
        """Run every job on the cluster in batches; results in input order."""
        self.start()
        size = max(1, min(self.batch_size, math.ceil(len(jobs) / (2 * len(self._actors)))))
        batches = [list(range(i, min(i + size, len(jobs)))) for i in range(0, len(jobs), size)]
        results: list[RawOutcome | None] = [None] * len(jobs)
        calls = [("run", ([jobs[j] for j in batch],)) for batch in batches]
        for b, outcomes in self._scheduled(calls):
            lost = outcomes is LOST
            for position, j in enumerate(batches[b]):
                if results[j] is not None:  # never counted twice
                    continue
                results[j] = RawOutcome(worker_lost=True) if lost else outcomes[position]
                if on_done:
                    on_done(j)
        return results  # type: ignore[return-value]

    def map(self, fn: Callable[..., Any], items: Iterable[Any], limits: Limits, window: int | None = None) -> Iterator[Any]:
        """``fn(executor, item)`` for each item, each on some actor with an `Executor` over its pool,
        results in input order. ``fn`` must be importable on the nodes (a module-level function).

        At most ``window`` items (default: four per actor) are past the oldest unfinished one, so
        results waiting for an earlier item stay few. An item whose actor died more than
        ``retries`` times raises `RuntimeError`.
        """
        self.start()
        calls = [("call", (fn, limits, (item,))) for item in items]
        window = window or 4 * len(self._actors)
        ready: dict[int, Any] = {}
        following = 0
        for index, result in self._scheduled(calls, window=window):
            if result is LOST:
                raise RuntimeError(
                    f"item {index} was lost: its Ray actor died {self.retries + 1} times; check the nodes' logs"
                )
            ready[index] = result
            while following in ready:
                yield ready.pop(following)
                following += 1

    def _scheduled(self, calls: list[tuple[str, tuple[Any, ...]]], window: int | None = None) -> Iterator[tuple[int, Any]]:
        """(index, result or LOST) for each (actor method, args) call, as they finish."""
        ray = self._ray
        pending = deque(range(len(calls)))
        attempts = [0] * len(calls)
        load = [0] * len(self._actors)
        down: dict[Any, int] = {}  # ping of an actor that died → its index
        running: dict[Any, tuple[int, int]] = {}  # call's ref → (call index, actor index)
        unfinished = set(range(len(calls)))
        while pending or running:
            while pending and (window is None or pending[0] < min(unfinished) + window):
                live = [a for a in range(len(self._actors)) if load[a] < self.in_flight and a not in down.values()]
                if not live:
                    break
                actor = min(live, key=load.__getitem__)
                index = pending.popleft()
                method, args = calls[index]
                running[getattr(self._actors[actor], method).remote(*args)] = (index, actor)
                load[actor] += 1
            done, _ = ray.wait([*running, *down], num_returns=1)
            ref = done[0]
            if ref in down:
                actor = down.pop(ref)
                try:
                    ray.get(ref)
                except ray.exceptions.RayActorError:
                    down[self._ping(actor)] = actor  # still restarting: ask again
                continue
            index, actor = running.pop(ref)
            load[actor] -= 1
            try:
                result = ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.ObjectLostError):
                if actor not in down.values():
                    down[self._ping(actor)] = actor
                attempts[index] += 1
                if attempts[index] <= self.retries:
                    self.resubmitted += 1
                    pending.appendleft(index)
                    continue
                result = LOST
            unfinished.discard(index)
            yield index, result

    def _ping(self, actor: int) -> Any:
        """A ping that Ray retries until the restarted actor answers."""
        return self._actors[actor].ping.options(max_task_retries=-1).remote()
