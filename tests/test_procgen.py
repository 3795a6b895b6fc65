"""The procgen list-program generator: splits, hygiene, functional de-duplication, shipped data, env levels."""

from __future__ import annotations

import random

import gymnasium as gym
import pytest

import codegym  # noqa: F401  (registers the environments)
from codegym import problems, procgen
from codegym.procgen import dsl
from codegym.procgen import splits as gen
from codegym.procgen.dsl import Step


@pytest.fixture(scope="module")
def data():
    return {s: problems.load("procgen", split=s) for s in procgen.SPLITS}


def test_split_sizes_and_metadata(data):
    assert len(data["train"]) == procgen.TRAIN_SIZE
    for split, size in procgen.HELDOUT_SIZES.items():
        assert len(data[split]) == size
    p = data["none"][0]
    assert set(p.metadata) >= {"program", "length", "operations", "split"} and p.metadata["split"] == "none"
    assert p.metadata["program"].startswith("xs | ") and p.metadata["length"] == len(p.metadata["operations"])


def test_split_definitions(data):
    train_max = max(gen.TRAIN_LENGTHS)
    for p in data["train"]:
        ops = set(p.metadata["operations"])
        assert p.metadata["length"] <= train_max
        assert not any(pair <= ops for pair in procgen.HELDOUT_PAIRS)
        assert procgen.NEW_OP not in ops or p.metadata["length"] == 1
    assert any(procgen.NEW_OP in p.metadata["operations"] for p in data["train"])  # shown in isolation
    for pair in procgen.HELDOUT_PAIRS:  # each operation of a held-out pair is seen in training
        assert all(any(op in p.metadata["operations"] for p in data["train"]) for op in pair)
    assert all(p.metadata["length"] > train_max for p in data["length"])
    assert all(any(pair <= set(p.metadata["operations"]) for pair in procgen.HELDOUT_PAIRS) for p in data["compose"])
    assert all(procgen.NEW_OP in p.metadata["operations"] and p.metadata["length"] >= 2 for p in data["new_op"])
    assert all(p.metadata["length"] >= 2 for s in ("none", "validation") for p in data[s])


def test_functional_deduplication_across_splits(data):
    prints = {s: [procgen.fingerprint(procgen.parse(p.metadata["program"])) for p in data[s]] for s in procgen.SPLITS}
    held = [fp for s in procgen.HELDOUT_SIZES for fp in prints[s]]
    assert len(set(held)) == len(held)  # no two held-out problems compute the same function
    assert not set(prints["train"]) & set(held)  # no training task computes a held-out function
    assert len(set(prints["train"])) == len(prints["train"])  # distinct training tasks


def test_hygiene():
    assert not gen.hygienic([Step("Sort"), Step("Sum")])  # sorting before a sum is redundant
    assert not gen.hygienic([Step("Reverse"), Step("Reverse"), Step("Sum")])
    assert not gen.hygienic([Step("Sort"), Step("Head")])  # = Minimum, a shorter program
    assert not gen.hygienic([Step("Filter", ">0"), Step("Filter", "<0")])  # constant output
    assert gen.hygienic([Step("Filter", ">0"), Step("Map", "*2"), Step("Sum")])


def test_prompts_tests_and_references(data):
    for p in data["none"][:50] + data["new_op"][:20] + data["train"][:50]:
        assert p.reference.startswith(p.prompt) and p.prompt.count(">>> ") == p.metadata["examples"] >= 2
        hidden = [t for t in p.tests if t.removeprefix("assert ").split(" == ")[0] not in p.prompt]
        assert len(hidden) >= 5 and all(t.startswith(f"assert {p.entry_point}(") and " == " in t for t in p.tests)
    tests = [t for p in data["none"] for t in p.tests]
    assert any("solve([]" in t for t in tests) and any("solve([-" in t for t in tests)


def test_interpreter_matches_python():
    steps = [Step("Filter", "odd"), Step("Scanl1", "-"), Step("Take", k=2)]
    assert dsl.run(steps, [3, 2, 5, 7]) == [3, -2]
    assert dsl.run([Step("Head")], []) is None and dsl.run([Step("Access")], [1, 2], n=2) is None
    body = dsl.python_body(steps)
    namespace: dict = {}
    exec("from itertools import accumulate\ndef solve(xs):\n" + body, namespace)  # our own generated code, not untrusted
    assert namespace["solve"]([3, 2, 5, 7]) == [3, -2]
    # One step in the shape of a longer program, so the new operation is seen written as an assignment.
    assert dsl.python_body([Step("Scanl1", "max")]) == "    result = list(accumulate(xs, max))\n    return result\n"


def test_references_pass_in_the_sandbox(data, executor):
    chosen = [p for s in procgen.SPLITS for p in data[s][:15]]
    results = executor.run_many([(p.reference_program(), list(p.tests)) for p in chosen])
    assert all(r.passed and r.trusted for r in results)


def test_generation_is_deterministic_and_matches_the_shipped_file(data):
    shipped = {p.task_id: p for p in data["train"][:30]}
    for seed in (0, 7, 29):
        assert procgen.level(seed) == shipped[f"procgen/train/{seed}"]  # the shipped levels are the generator's
    a, b = gen.sample_program(random.Random(3), "compose"), gen.sample_program(random.Random(3), "compose")
    assert a == b


def test_levels_are_distinct_and_procgen_like():
    first = procgen.levels(20, 0)
    assert [p.task_id for p in first] == [p.task_id for p in problems.load("procgen", split="train")[:20]]
    later = procgen.levels(5, 6000)
    assert all(int(p.task_id.rsplit("/", 1)[1]) >= 6000 for p in later)
    assert len({p.metadata["program"] for p in later}) == 5


def test_env_num_levels_and_start_level(executor):
    env = gym.make("codegym/CodeSynthesis-v0", problems="procgen", split="train", num_levels=3, start_level=10, executor=executor)
    seen = {env.reset(seed=i)[1]["task_id"] for i in range(12)}
    assert seen <= {p.task_id for p in procgen.levels(3, 10)} and len(seen) > 1
    stream = gym.make("codegym/CodeSynthesisSeq-v0", problems="procgen", split="train", num_levels=0, start_level=100, executor=executor)
    ids = {stream.reset(seed=i)[1]["task_id"] for i in range(4)}
    assert len(ids) == 4 and all(int(t.rsplit("/", 1)[1]) >= 100 for t in ids)
    obs, info = stream.reset(options={"task_id": "procgen/train/123"})
    body = stream.unwrapped.problem.reference[len(stream.unwrapped.problem.prompt):]
    _, reward, terminated, _, info = stream.step(body)
    assert terminated and info["outcome"] == "passed" and reward == 1.0
    held = gym.make("codegym/CodeSynthesisSeq-v0", problems="procgen", split="none", num_levels=5, start_level=2, executor=executor)
    assert [p.task_id for p in held.unwrapped.problems] == [f"procgen/none/{i}" for i in range(2, 7)]
    with pytest.raises(ValueError, match="non-negative"):
        gym.make("codegym/CodeSynthesisSeq-v0", problems="procgen", split="train", num_levels=-1)


def test_data_specs():
    from codegym.experiments.data import parse_spec

    spec = parse_spec("procgen:length@200")
    assert (spec.source, spec.split, spec.limit) == ("procgen", "length", 200)
