"""The contamination check: a held-out problem whose template family is in the corpus is flagged."""

from __future__ import annotations

import json

from codegym.experiments.contamination import KEYS, check
from codegym.problems import load


def _record(name: str, text: str, source: str) -> dict:
    return {"text": text, "name": name, "file": "", "package": "", "license": "", "line": 1, "source": source,
            "has_docstring": True, "split": "train"}  # fmt: skip


def test_template_family_and_drawn_synthetic_families(tmp_path):
    basic = load("basic")
    count_even = next(p for p in basic if p.entry_point == "count_even")  # family count_{c.name}
    count_odd = next(p for p in basic if p.entry_point == "count_odd")
    reverse = next(p for p in basic if p.entry_point == "reverse_string")
    corpus = tmp_path / "corpus.jsonl"
    rows = [_record("count_odd", count_odd.reference, "templates"),
            _record("add", "def add(a, b):\n    return a + b\n", "synthetic")]  # fmt: skip
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))

    report = check({"set": [count_even, reverse]}, str(corpus), behaviour=False)["set"]
    flagged = {m["task_id"]: m for m in report["matches"]}
    assert flagged[count_even.task_id]["template_family_in_corpus"]  # another instance of its family is in
    # reverse_string is a synthetic family's name, but the corpus drew no function of that family
    assert reverse.task_id not in flagged and report["name_in_templates"] == 0
    assert set(KEYS) <= set(report)

    without_corpus = check({"set": [reverse]}, None, behaviour=False)["set"]
    assert without_corpus["name_in_templates"] == 1  # every synthetic family counts without a corpus
