"""Data-parallel training of LM agents over processes, GPUs and machines, with torch.distributed.

Each rank holds a full copy of the agent and collects its own rollouts (its share of the step's
problems, sampled with its own seed, run on its own sandbox pool); the gradients of every optimizer
step are averaged over the ranks before clipping, so all copies take the same step and stay
identical. Only rank 0 writes checkpoints and logs; metrics are averaged over the ranks.

Why torch.distributed and not DDP's wrapper or accelerate: the agents use their networks in many
ways (sampling, the critic reading detached hidden states, a frozen reference, several optimizers
stepped at different times), and DDP only syncs gradients through the wrapper's own ``forward``.
One all-reduce per optimizer step at the single place where every agent steps
(`codegym.agents.base.Agent._optimizer_step`) covers all of them, and lets the ranks agree on a
diverged loss before anyone calls ``backward`` (a rank that skipped it would leave the others
waiting forever). accelerate would add a dependency and its own launcher for the same all-reduce.
The backend is NCCL when CUDA is available, else Gloo.

Launch: ``codegym train --distributed`` starts ``--nproc`` local processes with torch's elastic
launcher (the library behind ``torchrun``), or runs as one rank when started by ``torchrun``, which
sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and ``MASTER_ADDR``; across machines, on each one::

    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29400 \
        "$(which codegym)" train --agent actor_critic --problems mbpp --distributed
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import torch
import torch.distributed as dist

__all__ = [
    "any_rank",
    "average_gradients",
    "broadcast_modules",
    "default_nproc",
    "in_sync",
    "launched_by_torchrun",
    "mean_metrics",
    "rank",
    "run",
    "weights_digest",
    "world_size",
]

T = TypeVar("T")


def active() -> bool:
    """Whether this process is one rank of a running process group."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if active() else 0


def world_size() -> int:
    """Number of ranks (1 when not distributed)."""
    return dist.get_world_size() if active() else 1


def launched_by_torchrun() -> bool:
    """Whether ``torchrun`` (or another launcher that sets its variables) started this process."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and "MASTER_ADDR" in os.environ


def default_nproc() -> int:
    """One process per GPU, else 2 (on a CPU, two ranks already show the data-parallel behaviour)."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 2


def _device() -> torch.device:
    """Where collective tensors live: NCCL needs them on this rank's GPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is true on any rank (a collective: every rank must call it)."""
    if not active():
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=_device())
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def average_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """Replace each parameter's gradient by its mean over the ranks (one flat all-reduce)."""
    if not active():
        return
    with_grad = [p for p in params if p.grad is not None]
    if not with_grad:
        return
    flat = torch.cat([p.grad.reshape(-1) for p in with_grad])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= world_size()
    offset = 0
    for p in with_grad:
        n = p.grad.numel()
        p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
        offset += n


def _modules(agent: Any) -> list[torch.nn.Module]:
    """The agent's networks (policy, critic, heads, reference), in a fixed order."""
    return [value for _, value in sorted(vars(agent).items()) if isinstance(value, torch.nn.Module)]


def broadcast_modules(agent: Any) -> None:
    """Copy rank 0's weights to every rank (they start equal by seed; this makes sure)."""
    if not active():
        return
    for module in _modules(agent):
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)


def mean_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """Numeric metrics averaged over the ranks that report them (a rank whose samples were all filtered
    out has no loss to report); others from this rank."""
    if not active():
        return metrics
    mine = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    gathered: list[list[str]] = [[] for _ in range(world_size())]
    dist.all_gather_object(gathered, sorted(mine))
    keys = sorted(set().union(*gathered))
    sums = torch.tensor([[mine.get(k, 0.0) for k in keys], [float(k in mine) for k in keys]], dtype=torch.float64, device=_device())
    dist.all_reduce(sums, op=dist.ReduceOp.SUM)
    means = (sums[0] / sums[1].clamp(min=1)).tolist()
    return {**metrics, **dict(zip(keys, means))}


def weights_digest(agent: Any) -> str:
    """SHA-256 of the agent's weights (to check that the ranks hold the same model)."""
    digest = hashlib.sha256()
    for module in _modules(agent):
        for name, tensor in module.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()


def in_sync(agent: Any) -> bool:
    """Whether every rank holds the same weights (a collective)."""
    if not active():
        return True
    digests: list[Any] = [None] * world_size()
    dist.all_gather_object(digests, weights_digest(agent))
    return len(set(digests)) == 1


def _rank_main(fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    """One rank: join the process group (from the launcher's variables), run ``fn(*args)``, leave."""
    cuda = torch.cuda.is_available()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if cuda:
        torch.cuda.set_device(local_rank)
    else:  # the ranks share this machine's cores
        local = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    try:
        return fn(*args)
    finally:
        dist.destroy_process_group()


def run(fn: Callable[..., T], *args: Any, nproc: int | None = None) -> T | None:
    """Run ``fn(*args)`` data-parallel; returns rank 0's result (None on other ranks under torchrun).

    Started by ``torchrun``: this process is one rank. Otherwise: ``nproc`` local processes
    (default `default_nproc`) are started with torch's elastic launcher (``torchrun --standalone``'s
    machinery) and this one waits for them. ``fn`` must be a module-level function (it is pickled).
    """
    if launched_by_torchrun():
        return _rank_main(fn, args)
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    nproc = nproc or default_nproc()
    if nproc < 1:
        raise ValueError(f"nproc must be at least 1, got {nproc}")
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=str(uuid.uuid4()),
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=0,
        monitor_interval=0.5,
        start_method="spawn",
    )
    results = elastic_launch(config, _rank_main)(fn, args)
    return results[0]
