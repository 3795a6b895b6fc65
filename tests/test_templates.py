"""The ``basic`` templates: every instance names its family, and the bundled split holds out whole families."""

from __future__ import annotations

from collections import Counter

from codegym.data_gen.build_bundled import family_splits
from codegym.data_gen.emit import EmitOptions
from codegym.data_gen.templates import functions


def test_family_split_keeps_every_variant_of_a_task_in_one_split():
    templates = list(functions())
    split = family_splits(templates, EmitOptions().splits, seed=0)
    assert set(split) == {t.family for t in templates}
    names = {t.name: split[t.family] for t in templates}
    assert names["count_even"] == names["count_odd"] == names["count_greater_than_5"]  # one family
    assert names["starts_with_a"] == names["ends_with_z"]  # mirror tasks are one family
    sizes = Counter(split[t.family] for t in templates)
    assert sizes["test"] >= 0.1 * len(templates) and sizes["validation"] >= 0.1 * len(templates)
    assert sizes["train"] >= 0.6 * len(templates)
    assert family_splits(templates, EmitOptions().splits, seed=0) == split  # deterministic
