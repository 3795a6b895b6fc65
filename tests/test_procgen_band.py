"""The band measurement of issue 23 (`codegym.experiments.procgen_band`): its estimates and targets."""

from __future__ import annotations

from codegym.experiments.procgen_band import TARGETS, measure, meets_targets
from codegym.models import Sample
from codegym.problems import load


class ReferencePolicy:
    """Writes the reference body of the problem in the first ``right`` of its samples and ``return None`` after."""

    def __init__(self, right: int) -> None:
        self.right = right
        self.bodies = {p.prompt: p.reference[len(p.prompt):] for s in ("none", "length") for p in load("procgen", split=s)}

    def sample(self, prompts, n=1, max_new_tokens=64, temperature=0.8, top_p=1.0, seed=None):
        return [[Sample(self.bodies[prompt] if j < self.right else "    return None\n", [], [], []) for j in range(n)]
                for prompt in prompts]


def test_pass1_is_the_share_of_passing_samples_and_pass_k_the_share_of_problems_solved(in_tmp):
    line = measure("default", model=ReferencePolicy(right=1), splits=("none",), k_splits=("length",), problems=3, samples=4,
                   k_problems=2, k=5, progress=False)
    assert line["none_pass1"] == 0.25 and line["none_pass1_problems"] == 3 and line["none_solved_once"] == 3
    assert line["length_pass5"] == 1.0 and line["length_pass5_problems"] == 2
    nothing = measure("default", model=ReferencePolicy(right=0), splits=("none",), k_splits=(), problems=2, samples=2, progress=False)
    assert nothing["none_pass1"] == 0.0 and nothing["none_solved_once"] == 0


def test_targets_are_issue_23s_band():
    inside = {"none_pass1": 0.15, "length_pass1": 0.02, "compose_pass1": 0.5, "new_op_pass1": 0.02,
              "length_pass64": 0.10, "compose_pass64": 1.0, "new_op_pass64": 0.3}
    assert set(inside) == set(TARGETS) and all(meets_targets(inside).values())
    outside = {**inside, "none_pass1": 0.61, "length_pass1": 0.019, "new_op_pass64": 0.099}
    assert meets_targets(outside) == {**meets_targets(inside), "none_pass1": False, "length_pass1": False, "new_op_pass64": False}
    assert meets_targets({"none_pass1": 0.149, "length_pass64": None}) == {"none_pass1": False}
