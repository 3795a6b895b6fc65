"""Shared fixtures. Tests that run hostile programs work from a temporary directory.

The suite tests an installed codegym (the top-level folders become ``codegym.*`` only through the
install). In a Python without it or its test requirements, only ``test_install.py`` is collected,
and it fails with the command that installs them, instead of every module failing to import.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest
from packaging.requirements import Requirement

if TYPE_CHECKING:
    from codegym.execution import Executor


def missing_requirements() -> list[str]:
    """What of codegym and its test requirements (``.[dev]``) the Python running the tests lacks."""
    try:
        requirements = importlib.metadata.requires("codegym") or []
    except importlib.metadata.PackageNotFoundError:
        return ["codegym"]
    missing = []
    for text in requirements:
        requirement = Requirement(text)
        if requirement.marker and not requirement.marker.evaluate({"extra": "dev"}):
            continue
        try:
            importlib.metadata.distribution(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(requirement.name)
    return missing


MISSING = missing_requirements()
if MISSING:
    collect_ignore = [p.name for p in Path(__file__).parent.glob("test_*.py") if p.name != "test_install.py"]


def pytest_report_header(config: pytest.Config) -> str | None:
    if MISSING:
        return f"not installed in this Python: {', '.join(MISSING)}; only test_install.py is collected"
    return None


def pytest_configure(config: pytest.Config) -> None:
    if not MISSING:
        import torch

        # Two cores are shared by the test process, the sandbox workers and torch: one torch thread
        # keeps the small models fast instead of fighting the sandbox for the CPU.
        torch.set_num_threads(1)


@pytest.fixture(scope="session")
def executor() -> Iterator[Executor]:
    """One sandbox pool for the whole session (2 workers), closed at the end."""
    from codegym.execution import Executor

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


@functools.cache
def worker_module() -> ModuleType:
    """The sandbox worker script (``codegym/execution/_worker.py``, never imported by codegym) as a
    module, for tests of its parts."""
    import importlib.util

    import codegym.execution

    path = Path(codegym.execution.__file__).with_name("_worker.py")
    spec = importlib.util.spec_from_file_location("_codegym_worker_for_tests", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def is_root() -> bool:
    return os.geteuid() == 0


ORDINARY_UID = 199_000
"""The uid `ordinary_executor` starts its workers under: an ordinary user with no home and no groups."""


def ordinary_user_python(uid: int = ORDINARY_UID) -> str:
    """A Python interpreter ``uid`` can run (this venv's may sit under a private /root)."""
    import shutil
    import subprocess
    import sys

    candidates = [sys.executable, getattr(sys, "_base_executable", ""), shutil.which("python3") or "", "/usr/bin/python3"]
    for python in dict.fromkeys(c for c in candidates if c):
        try:
            probe = subprocess.run(
                [python, "-I", "-c", "import ctypes, json, resource"],
                user=uid, group=uid, extra_groups=[], env={}, cwd="/", capture_output=True, timeout=60,
            )  # fmt: skip
        except OSError:
            continue
        if probe.returncode == 0:
            return python
    raise RuntimeError(
        f"no Python interpreter is usable by uid {uid} (tried {', '.join(dict.fromkeys(candidates))}); "
        "install one outside private home directories (e.g. apt-get install python3) so the "
        "ordinary-user sandbox tests can run"
    )


@pytest.fixture(scope="session")
def ordinary_executor() -> Iterator[Executor]:
    """A sandbox pool whose workers run as an ordinary user (no uid switch per program), as a
    non-root user would run codegym. Needs root to start; the suite runs as root in CI."""
    from codegym.execution import Executor, LocalPool

    if not is_root():
        with Executor(workers=1) as ex:  # we are the ordinary user already
            yield ex
        return
    with Executor(backend=LocalPool(1, run_as=ORDINARY_UID, python=ordinary_user_python())) as ex:
        yield ex


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread for a module's tiny models: on 2 busy cores more threads only spin (and run
    10× slower). Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
