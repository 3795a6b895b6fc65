"""Shared fixtures. Tests that run hostile programs work from a temporary directory."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch

from codegym.execution import Executor

# Two cores are shared by the test process, the sandbox workers and torch: one torch thread keeps
# the small models fast instead of fighting the sandbox for the CPU.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def executor() -> Iterator[Executor]:
    """One sandbox pool for the whole session (2 workers), closed at the end."""
    with Executor(workers=2) as ex:
        yield ex


@pytest.fixture()
def in_tmp(tmp_path, monkeypatch):
    """Run the test from an empty temporary directory, never from the repository."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def sandbox_leftovers(executor: Executor) -> list[int]:
    """Pids of processes a sandbox left behind: children of the workers, or anything under a sandbox uid."""
    import psutil

    pool = executor.backend
    left: list[int] = []
    for pid in pool.worker_pids():
        try:
            left += [c.pid for c in psutil.Process(pid).children(recursive=True) if c.status() != psutil.STATUS_ZOMBIE]
        except psutil.NoSuchProcess:
            pass
    uids = set(pool.sandbox_uids())
    for proc in psutil.process_iter(["uids", "status"]):
        if proc.info["uids"] and proc.info["uids"].real in uids and proc.info["status"] != psutil.STATUS_ZOMBIE:
            left.append(proc.pid)
    return left


def is_root() -> bool:
    return os.geteuid() == 0
