"""Is a policy in procgen's learnable band? The measurement behind issue 23's targets.

For each held-out split it samples completions at T = 0.8 (64 new tokens, ``top_p`` = 1: the
settings of training and of `codegym.experiments.band`) and runs them against every test in the
sandbox:

- pass@1 on the first ``--problems`` (200) problems of ``none``, ``length``, ``compose`` and
  ``new_op`` with ``--samples`` (10) completions each (the unbiased estimate c/n, averaged);
- pass@64 on the first ``--k-problems`` (100) of ``length``, ``compose`` and ``new_op`` with 64
  completions each (the share of problems solved at least once).

"First N" is the fixed seed-0 shuffle of data specs (``procgen:none@200``), so every policy is
measured on the same problems. The targets (issue 23, item 3): ``none`` pass@1 in [0.15, 0.60];
each of ``length``, ``compose`` and ``new_op`` pass@1 >= 0.02 and pass@64 >= 0.10. Choose between
checkpoints with ``--splits validation`` (an i.i.d. split that no result reports), never on these.

    python -m codegym.experiments.procgen_band --policy runs/warm/final [--out band.json]

Ends with one JSON line: ``none_pass1``, ``length_pass1``, ``compose_pass1``, ``new_op_pass1``,
``length_pass64``, ``compose_pass64``, ``new_op_pass64`` (keys pinned by issue 23), plus per-split
problem counts, the policy's digest, the settings, the wall time and the load.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["TARGETS", "main", "measure", "meets_targets"]

PASS1_SPLITS = ("none", "length", "compose", "new_op")
PASS64_SPLITS = ("length", "compose", "new_op")
TARGETS = {"none_pass1": (0.15, 0.60), "length_pass1": (0.02, 1.0), "compose_pass1": (0.02, 1.0), "new_op_pass1": (0.02, 1.0),
           "length_pass64": (0.10, 1.0), "compose_pass64": (0.10, 1.0), "new_op_pass64": (0.10, 1.0)}  # fmt: skip
"""Issue 23's band: each key's closed interval."""


def meets_targets(line: dict) -> dict[str, bool]:
    """For each pinned key present in ``line``: whether its value lies in `TARGETS`."""
    return {k: lo <= line[k] <= hi for k, (lo, hi) in TARGETS.items() if line.get(k) is not None}


def measure(policy: str, *, splits: Sequence[str] = PASS1_SPLITS, k_splits: Sequence[str] = PASS64_SPLITS,
            problems: int = 200, samples: int = 10, k_problems: int = 100, k: int = 64, seed: int = 0,
            others: Sequence[str] = (), model: Any = None, progress: bool = True) -> dict:
    """The band line of ``policy`` (see the module docstring); ``k_splits=()`` skips pass@k.

    ``others``: data specs of other sets (``simple``, ``mbpp:test@100``) whose pass@1 is measured
    the same way, under the key ``"{spec} pass@1"`` (the old sets, before and after a new policy).
    ``model``: an already loaded policy to sample from (default: ``load_policy(policy)``).
    """
    from codegym.execution import Executor
    from codegym.experiments.band import BandConfig, pass_rates
    from codegym.experiments.data import resolve
    from codegym.models import load_policy
    from codegym.models.digest import policy_digest

    model = model if model is not None else load_policy(policy)
    line: dict = {}
    started = time.time()
    with Executor() as executor, tempfile.TemporaryDirectory() as cache:  # the cache of +band/+generated-tests specs in `others`

        def rates(spec: str, n: int, seed: int) -> list[float]:
            """Each problem's pass rate over ``n`` samples (the same sampling as `codegym band`)."""
            chosen, _ = resolve([spec], cache_dir=Path(cache), executor=executor)
            return pass_rates(chosen, BandConfig(policy=policy, samples=n, seed=seed), policy=model, executor=executor, progress=progress)

        for split in splits:
            r = rates(f"procgen:{split}@{problems}", samples, seed)
            line[f"{split}_pass1"] = round(sum(r) / len(r), 4)
            line[f"{split}_pass1_problems"] = len(r)
            line[f"{split}_solved_once"] = sum(x > 0 for x in r)
        for split in k_splits:
            r = rates(f"procgen:{split}@{k_problems}", k, seed + 1)
            line[f"{split}_pass{k}"] = round(sum(x > 0 for x in r) / len(r), 4)  # with n = k samples, pass@k is the share solved at least once
            line[f"{split}_pass{k}_problems"] = len(r)
        for spec in others:
            r = rates(spec, samples, seed)
            line[f"{spec} pass@1"] = round(sum(r) / len(r), 4)
    line.update(policy=policy, policy_digest=policy_digest(policy)[:16], samples=samples, k=k, temperature=0.8, max_new_tokens=64,
                wall_s=round(time.time() - started, 1), date=datetime.date.today().isoformat(),
                load=" ".join(f"{x:.2f}" for x in os.getloadavg()))  # fmt: skip
    return line


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m codegym.experiments.procgen_band", description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", default="default", help="'default', a model directory or a hub name")
    parser.add_argument("--splits", default=",".join(PASS1_SPLITS), help="splits for pass@1 (comma-separated)")
    parser.add_argument("--k-splits", default=",".join(PASS64_SPLITS), help="splits for pass@k ('' for none)")
    parser.add_argument("--problems", type=int, default=200, help="problems per split for pass@1: the first N of the data spec's fixed seed-0 shuffle (procgen:none@N), not the first N in file order")
    parser.add_argument("--samples", type=int, default=10, help="completions per problem for pass@1")
    parser.add_argument("--k-problems", type=int, default=100, help="problems per split for pass@k (the first N of the same shuffle)")
    parser.add_argument("--k", type=int, default=64, help="completions per problem for pass@k")
    parser.add_argument("--others", default="", help="data specs of other sets for pass@1 (comma-separated), e.g. simple,mbpp:test@100")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also write the line to this JSON file")
    args = parser.parse_args(argv)
    split = lambda text: tuple(s for s in text.split(",") if s)  # noqa: E731
    line = measure(args.policy, splits=split(args.splits), k_splits=split(args.k_splits), problems=args.problems, samples=args.samples,
                   k_problems=args.k_problems, k=args.k, seed=args.seed, others=split(args.others))  # fmt: skip
    line["meets_targets"] = meets_targets(line)
    if args.out:
        args.out.write_text(json.dumps(line, indent=2) + "\n")
    print(json.dumps(line))


if __name__ == "__main__":
    main()
