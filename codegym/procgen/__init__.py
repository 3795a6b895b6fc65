"""``procgen``: procedurally generated DeepCoder-style list programs with compositional held-out splits.

``problems.load("procgen", split=...)`` for ``train``, ``validation``, ``none``, ``length``,
``compose`` and ``new_op``; training levels for the environments' ``num_levels``/``start_level``
(`level`, `levels`). The language is in `codegym.procgen.dsl`, the splits in `codegym.procgen.splits`.
"""

from codegym.procgen.splits import (
    HELDOUT_PAIRS,
    HELDOUT_SIZES,
    NEW_OP,
    SPLITS,
    TRAIN_SIZE,
    fingerprint,
    heldout,
    heldout_fingerprints,
    level,
    levels,
    generate,
    parse,
)

__all__ = ["HELDOUT_PAIRS", "HELDOUT_SIZES", "NEW_OP", "SPLITS", "TRAIN_SIZE", "fingerprint", "heldout", "heldout_fingerprints",
           "level", "levels", "generate", "parse"]
