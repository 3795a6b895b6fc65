"""Problems carried as plain data: dataset columns, and the JSON ``ground_truth`` of exported data sets.

An exported row holds everything needed to judge a completion (prompt, entry point, tests, setup),
so a parquet written by ``codegym export`` is self-contained: the trainer reading it needs no
codegym problem files, only this package and its sandbox.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from codegym.problems import Problem

__all__ = ["FIELDS", "from_ground_truth", "from_record", "to_ground_truth", "to_record"]

FIELDS = ("task_id", "prompt", "entry_point", "tests", "test_setup", "time_limit")
"""What a problem needs to be judged, in every record and ground truth (``time_limit``: its
calibrated seconds, None when it has none)."""


def to_record(problem: Problem) -> dict[str, Any]:
    """The judging fields of ``problem`` as plain values (tests as a list)."""
    return {"task_id": problem.task_id, "prompt": problem.prompt, "entry_point": problem.entry_point,
            "tests": list(problem.tests), "test_setup": problem.test_setup, "time_limit": problem.time_limit}  # fmt: skip


def from_record(record: Mapping[str, Any]) -> Problem:
    """A `Problem` from a record with `FIELDS` (``test_setup``, ``prompt`` and ``time_limit`` may be missing)."""
    missing = [k for k in ("task_id", "entry_point", "tests") if record.get(k) is None]
    if missing:
        raise ValueError(f"a codegym record needs {', '.join(FIELDS)}; missing {', '.join(missing)}")
    tests = record["tests"]
    if isinstance(tests, str) or not all(isinstance(t, str) for t in tests):
        raise ValueError("'tests' must be a list of Python snippets (strings)")
    limit = record.get("time_limit")
    return Problem(str(record["task_id"]), str(record.get("prompt") or ""), str(record["entry_point"]),
                   tuple(tests), test_setup=str(record.get("test_setup") or ""),
                   time_limit=None if limit is None else float(limit))  # fmt: skip


def to_ground_truth(problem: Problem) -> str:
    """``problem`` as the JSON string an exported row carries (verl's ``reward_model.ground_truth``)."""
    return json.dumps(to_record(problem), ensure_ascii=False)


def from_ground_truth(text: str | Mapping[str, Any]) -> Problem:
    """The `Problem` a ground-truth JSON string (or its decoded dict) describes."""
    if isinstance(text, Mapping):
        return from_record(text)
    try:
        record = json.loads(text)
    except (TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"ground truth is not codegym's JSON (write it with `codegym export`): {exc}") from None
    if not isinstance(record, dict):
        raise ValueError("ground truth must be a JSON object with " + ", ".join(FIELDS))
    return from_record(record)
